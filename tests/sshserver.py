"""A real OpenSSH server on 127.0.0.1 for the remote-run tests (Debian's openssh-server).

Host and client keys are generated per test session; the server runs in the foreground under
the test's control so it can be stopped and restarted to simulate a dropped connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def available() -> str | None:
    """None when the tests can run, else the reason they cannot."""
    if not os.path.exists(SSHD):
        return "OpenSSH server not installed (Debian package openssh-server; .ci/run installs it)"
    for tool in ("ssh", "scp", "ssh-keygen"):
        if not shutil.which(tool):
            return f"{tool} not installed (Debian package openssh-client)"
    return None


def remote_slmbench() -> str:
    """The command the "remote device" runs: this checkout's slmbench with this Python
    (``env PYTHONPATH=<checkout> <python> -m slmbench``), whatever is installed."""
    import shlex
    import sys

    import slmbench

    root = os.path.dirname(os.path.dirname(os.path.abspath(slmbench.__file__)))
    return f"env PYTHONPATH={shlex.quote(root)} {shlex.quote(sys.executable)} -m slmbench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SSHServer:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.host_key = self.dir / "host_ed25519"
        self.client_key = self.dir / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)
        (self.dir / "authorized_keys").write_text(
            (self.dir / "client_ed25519.pub").read_text())
        os.chmod(self.dir / "authorized_keys", 0o600)
        self.config = self.dir / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin yes", "StrictModes no", "UsePAM no",
            f"PidFile {self.dir / 'sshd.pid'}", "LogLevel ERROR",
            # keep the test environment's PATH etc. out of the remote side's way
            "PermitUserEnvironment no", "Subsystem sftp /usr/lib/openssh/sftp-server", ""]))
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation dir
        self.proc: subprocess.Popen | None = None

    @property
    def user_host(self) -> str:
        import getpass

        return f"{getpass.getuser()}@127.0.0.1"

    @property
    def client_opts(self) -> list[str]:
        return ["-i", str(self.client_key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def inventory_vars(self) -> dict:
        """Ansible host variables that reach this server."""
        import getpass
        import shlex

        return {"ansible_host": "127.0.0.1", "ansible_port": self.port,
                "ansible_user": getpass.getuser(),
                "ansible_ssh_private_key_file": str(self.client_key),
                "ansible_ssh_common_args": " ".join(shlex.quote(o) for o in self.client_opts[2:])}

    def start(self, timeout: float = 10.0) -> "SSHServer":
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
