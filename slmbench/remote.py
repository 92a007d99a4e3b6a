"""Run a suite on another device over SSH (a Jetson, or a phone running Termux's sshd).

Uses the system ``ssh``/``scp`` (keys, agents and ~/.ssh/config work as for any ssh command).
The remote run is started detached (``nohup``), so a dropped connection does not stop it; the
local side follows its log with short, separate ssh calls and simply reconnects after a drop.
If the remote run itself dies (device reboot, OOM), it is relaunched with ``--resume``: nothing
measured is lost and nothing is measured twice.  At the end the run directory is copied back
into the local results folder.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Sequence

from slmbench.errors import SlmbenchError

SSH_BASE_OPTS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
UNREACHABLE = 255  # ssh's exit code for connection problems


class Remote:
    """ssh/scp to one host, with the user's extra options (port, identity, ...)."""

    def __init__(self, host: str, ssh_opts: Sequence[str] = (), port: int | None = None):
        if not host or host.startswith("-"):
            raise SlmbenchError(f"bad --host {host!r}: expected [user@]hostname")
        self.host = host
        self.opts = [*SSH_BASE_OPTS, *ssh_opts]
        self.port = port

    def _ssh_cmd(self, command: str) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self.opts, *port, self.host, command]

    def run(self, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self._ssh_cmd(command), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(self._ssh_cmd(command), UNREACHABLE, "",
                                               "ssh timed out")

    def scp(self, src: str, dst: str, recursive: bool = False) -> None:
        port = ["-P", str(self.port)] if self.port else []
        cmd = ["scp", "-q", *self.opts, *port, *(["-r"] if recursive else []), src, dst]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SlmbenchError(f"scp {src} -> {dst} failed: {_last_line(proc.stderr)}")

    def target(self, path: str) -> str:
        return f"{self.host}:{path}"


def _last_line(text: str) -> str:
    lines = [x for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1] if lines else "no output"


def check_remote(remote: Remote, slmbench: str) -> str:
    """The remote slmbench version; a clear error when the host or slmbench is missing."""
    proc = remote.run(f"{slmbench} --version")
    if proc.returncode == UNREACHABLE:
        raise SlmbenchError(f"cannot reach {remote.host} over ssh: {_last_line(proc.stderr)} "
                            "(check the address, that sshd runs there - Termux: `sshd`, port "
                            "8022 - and that your key is in its ~/.ssh/authorized_keys)")
    if proc.returncode != 0:
        raise SlmbenchError(f"slmbench is not installed on {remote.host} ({slmbench!r} failed: "
                            f"{_last_line(proc.stderr)}); install it there with ./install.sh "
                            "or pass --remote-slmbench PATH")
    return proc.stdout.strip().split()[-1] if proc.stdout.strip() else "unknown"


def push_files(remote: Remote, files: dict[str, str], remote_dir: str,
               out: IO[str] = sys.stderr) -> None:
    """Copy local files to ``remote_dir/<name>`` unless a file of the same size is there."""
    for local, name in files.items():
        dst = f"{remote_dir.rstrip('/')}/{name}"
        size = os.path.getsize(local)
        probe = remote.run(f"stat -c %s {shlex.quote(dst)} 2>/dev/null || wc -c < "
                           f"{shlex.quote(dst)} 2>/dev/null")
        if probe.returncode == 0 and probe.stdout.strip() == str(size):
            out.write(f"{remote.host}: {name} already there\n")
            continue
        mk = remote.run(f"mkdir -p {shlex.quote(os.path.dirname(dst))}")
        if mk.returncode != 0:
            raise SlmbenchError(f"cannot create {os.path.dirname(dst)} on {remote.host}: "
                                f"{_last_line(mk.stderr)}")
        out.write(f"{remote.host}: copying {os.path.basename(local)} "
                  f"({size / 2**20:,.1f} MiB)\n")
        remote.scp(local, remote.target(dst))


def run_remote(host: str, suite: str | None, run_args: Sequence[str], results_dir: str,
               run_id: str, *, ssh_opts: Sequence[str] = (), port: int | None = None,
               remote_slmbench: str = "slmbench", remote_dir: str = ".cache/slmbench/remote",
               poll_s: float = 2.0, max_relaunch: int = 3, max_unreachable_s: float = 600.0,
               push: dict[str, str] | None = None, out: IO[str] = sys.stderr) -> Path:
    """Run ``slmbench run [suite] run_args`` on ``host``; returns the local run directory.

    ``push`` maps local files to names under ``remote_dir``; they are copied first (see
    :func:`pushed_suite`, which writes a suite that refers to them)."""
    from slmbench import __version__

    remote = Remote(host, ssh_opts, port)
    version = check_remote(remote, remote_slmbench)
    if version != __version__:
        out.write(f"note: {host} has slmbench {version}, this machine {__version__}\n")
    rdir = f"{remote_dir.rstrip('/')}/{run_id}"
    mk = remote.run(f"mkdir -p {shlex.quote(rdir)}")
    if mk.returncode != 0:
        raise SlmbenchError(f"cannot create {rdir} on {host}: {_last_line(mk.stderr)}")
    if push:
        push_files(remote, push, remote_dir, out)
    remote_suite = None
    if suite:
        remote_suite = f"{rdir}/suite.yaml"
        remote.scp(suite, remote.target(remote_suite))
    results_remote = f"{remote_dir.rstrip('/')}/results"
    log = f"{rdir}/run.log"

    def launch(resume: bool) -> str:
        args = [remote_slmbench, "run"] + ([remote_suite] if remote_suite else [])
        args += list(run_args) + ["--results", results_remote]
        args += ["--resume", run_id] if resume else ["--run-id", run_id]
        command = (f"cd ~ && nohup {' '.join(shlex.quote(a) for a in args)} "
                   f">> {shlex.quote(log)} 2>&1 < /dev/null & echo $!")
        proc = remote.run(command)
        if proc.returncode != 0 or not proc.stdout.strip().isdigit():
            raise SlmbenchError(f"could not start the run on {host}: {_last_line(proc.stderr)}")
        return proc.stdout.strip()

    pid = launch(resume=False)
    out.write(f"{host}: run {run_id} started (pid {pid}); following its progress\n")
    offset = 0
    relaunches = 0
    last_line = ""
    unreachable_since: float | None = None
    while True:
        # one short ssh call per poll: new log bytes, then whether the run is still alive
        probe = remote.run(f"tail -c +{offset + 1} {shlex.quote(log)} 2>/dev/null; "
                           f"echo; kill -0 {pid} 2>/dev/null && echo __ALIVE__ || echo __DONE__")
        if probe.returncode == UNREACHABLE:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > max_unreachable_s:
                raise SlmbenchError(f"lost {host} for {max_unreachable_s:.0f} s; the run goes on "
                                    f"there - fetch it later with --resume {run_id}")
            out.write(f"{host}: connection lost ({_last_line(probe.stderr)}); retrying\n")
            time.sleep(poll_s)
            continue
        unreachable_since = None
        text, _, status = probe.stdout.rstrip("\n").rpartition("\n")
        if text:
            out.write(text if text.endswith("\n") else text + "\n")
            offset += len(text.encode("utf-8"))
            last_line = next((x for x in reversed(text.splitlines()) if x.strip()), last_line)
        if status.strip() == "__ALIVE__":
            time.sleep(poll_s)
            continue
        state = _remote_status(remote, f"{results_remote}/{run_id}/manifest.json")
        if state is None and not relaunches:
            # no manifest: it stopped before measuring (a suite error, a missing model file
            # there...); running it again would fail the same way
            raise SlmbenchError(f"{host}: the run stopped before it started: "
                                f"{last_line.strip() or 'no output'} (log: {log} on {host}; "
                                "local model or corpus paths in the suite must exist on the "
                                "device)")
        if state in ("finished", "interrupted") or relaunches >= max_relaunch:
            break
        relaunches += 1
        out.write(f"{host}: the run stopped ({state or 'no manifest'}); resuming "
                  f"({relaunches}/{max_relaunch})\n")
        pid = launch(resume=True)
    local = Path(results_dir)
    local.mkdir(parents=True, exist_ok=True)
    remote.scp(remote.target(f"{results_remote}/{run_id}"), str(local), recursive=True)
    out.write(f"{host}: results copied to {local / run_id}\n")
    return local / run_id


def pushed_suite(suite: Any, path: str) -> dict[str, str]:
    """Rewrite ``suite`` (parsed, overrides applied) so its local files - model files, quality
    corpus and reference files - point at copies pushed to the device; write it to ``path``
    (JSON, which YAML reads) and return {local file: name under the remote directory}.

    The remote suite lives in ``<remote_dir>/<run_id>/``, the files in ``<remote_dir>/files/``
    (shared by runs, so a second run does not copy them again)."""
    import hashlib
    import json

    push: dict[str, str] = {}

    def remote_name(local: str) -> str:
        if local not in push:
            name = os.path.basename(local)
            if name in push.values():  # same name, another folder
                name = f"{hashlib.sha1(local.encode()).hexdigest()[:8]}-{name}"
            push[local] = f"files/{name}"
        return "../" + push[local]  # relative to the suite file

    def quality(q: Any) -> Any:
        if not isinstance(q, dict):
            return q
        q = dict(q)
        for key in ("corpus", "reference"):
            if isinstance(q.get(key), str) and os.path.isabs(q[key]):
                q[key] = remote_name(q[key])
        return q

    data = suite.to_dict()
    if "quality" in data:
        data["quality"] = quality(data["quality"])
    for m in data["models"]:
        if isinstance(m, dict):
            if m.get("path"):
                m["path"] = remote_name(m["path"])
            if "quality" in m:
                m["quality"] = quality(m["quality"])
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    return push


def _remote_status(remote: Remote, manifest: str) -> str | None:
    import json

    proc = remote.run(f"cat {shlex.quote(manifest)}")
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout).get("status")
    except (ValueError, AttributeError):
        return None


def ssh_options_from_env() -> list[str]:
    """Extra ssh options from SLMBENCH_SSH_OPTS (e.g. "-i ~/.ssh/jetson -o Port=22")."""
    return shlex.split(os.environ.get("SLMBENCH_SSH_OPTS", ""))


def run_suite_remote(host: str, suite: str | None, overrides: dict[str, Any], *,
                     results_dir: str = "results", run_id: str | None = None,
                     offline: bool = False, port: int | None = None,
                     remote_slmbench: str = "slmbench", push_files: bool = False) -> Path:
    """`slmbench run SUITE --host HOST`: the suite (with its command-line overrides) run on the
    device over ssh, the run directory copied back; returns its local path.

    ``push_files`` copies the suite's local files to the device first and runs a rewritten
    copy of the suite (overrides applied) whose paths point at the copies.
    """
    import tempfile

    from slmbench.config import override_argv
    from slmbench.results import new_run_id
    from slmbench.suite import load_suite, resolve_suite_path

    run_id = run_id or new_run_id()
    offline_args = ["--offline"] if offline else []
    ssh = {"ssh_opts": ssh_options_from_env(), "port": port, "remote_slmbench": remote_slmbench}
    if not push_files:
        return run_remote(host, str(resolve_suite_path(suite)),
                          override_argv(overrides) + offline_args, results_dir, run_id, **ssh)
    loaded = load_suite(suite, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        suite_path = os.path.join(tmp, "suite.yaml")
        push = pushed_suite(loaded, suite_path)
        return run_remote(host, suite_path, offline_args, results_dir, run_id, push=push, **ssh)
