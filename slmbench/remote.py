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
import threading
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
        """scp's HOST:PATH (an IPv6 address in brackets)."""
        user, at, addr = self.host.rpartition("@")
        if ":" in addr and not addr.startswith("["):
            addr = f"[{addr}]"
        return f"{user}{at}{addr}:{path}"


class UnreachableError(SlmbenchError):
    """The host cannot be reached over ssh (at the start, or for longer than allowed)."""


class Detached(SlmbenchError):
    """Following was stopped on request; the run goes on on the device."""


def _last_line(text: str) -> str:
    lines = [x for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1] if lines else "no output"


def check_remote(remote: Remote, slmbench: str) -> str:
    """The remote slmbench version; a clear error when the host or slmbench is missing."""
    proc = remote.run(f"{slmbench} --version")
    if proc.returncode == UNREACHABLE:
        raise UnreachableError(f"cannot reach {remote.host} over ssh: "
                               f"{_last_line(proc.stderr)} (check the address, that sshd runs "
                               "there - Termux: `sshd`, port 8022 - and that your key is in its "
                               "~/.ssh/authorized_keys)")
    if proc.returncode != 0:
        raise SlmbenchError(f"slmbench is not installed on {remote.host} ({slmbench!r} failed: "
                            f"{_last_line(proc.stderr)}); install it there (./install.sh, or "
                            "deploy/ansible/install.yml for a fleet) or give the command "
                            "(--remote-slmbench CMD; in an inventory: slmbench_remote)")
    return proc.stdout.strip().split()[-1] if proc.stdout.strip() else "unknown"


def push_files(remote: Remote, files: dict[str, str], remote_dir: str,
               out: IO[str] = sys.stderr, name: str | None = None) -> None:
    """Copy local files to ``remote_dir/<name>`` unless a file of the same size is there."""
    who = name or remote.host
    for local, rel in files.items():
        dst = f"{remote_dir.rstrip('/')}/{rel}"
        size = os.path.getsize(local)
        probe = remote.run(f"stat -c %s {shlex.quote(dst)} 2>/dev/null || wc -c < "
                           f"{shlex.quote(dst)} 2>/dev/null")
        if probe.returncode == 0 and probe.stdout.strip() == str(size):
            out.write(f"{who}: {rel} already there\n")
            continue
        mk = remote.run(f"mkdir -p {shlex.quote(os.path.dirname(dst))}")
        if mk.returncode != 0:
            raise SlmbenchError(f"{who}: cannot create {os.path.dirname(dst)} on {remote.host}: "
                                f"{_last_line(mk.stderr)}")
        out.write(f"{who}: copying {os.path.basename(local)} "
                  f"({size / 2**20:,.1f} MiB)\n")
        remote.scp(local, remote.target(dst))


def run_remote(host: str, suite: str | None, run_args: Sequence[str], results_dir: str,
               run_id: str, *, ssh_opts: Sequence[str] = (), port: int | None = None,
               remote_slmbench: str = "slmbench", remote_dir: str = ".cache/slmbench/remote",
               poll_s: float = 2.0, max_relaunch: int = 3, max_unreachable_s: float = 600.0,
               push: dict[str, str] | None = None, out: IO[str] = sys.stderr,
               resume: bool = False, env: dict[str, str] | None = None,
               name: str | None = None, log: IO[str] | None = None,
               stop: threading.Event | None = None) -> Path:
    """Run ``slmbench run [suite] run_args`` on ``host``; returns the local run directory.

    ``remote_slmbench`` is a command line for the remote shell (``~/venv/bin/slmbench``,
    ``python3 -m slmbench``).  ``push`` maps local files to names under ``remote_dir``; they are
    copied first (see :func:`pushed_suite`, which writes a suite that refers to them).
    ``resume`` continues run ``run_id`` there: follows it if it is still running, relaunches it
    with ``--resume`` if it stopped, only copies it back if it finished.  ``env`` is set for the
    remote run (e.g. ``SLMBENCH_DEVICE``).  Messages are ``name: ...`` (default ``host``) on
    ``out``; the remote run's own log goes to ``log`` (default ``out``).  Setting ``stop`` ends
    the following with :class:`Detached` (the run goes on there)."""
    from slmbench import __version__

    name = name or host
    log = log or out
    remote = Remote(host, ssh_opts, port)
    version = check_remote(remote, remote_slmbench)
    if version != __version__:
        out.write(f"{name}: note: slmbench {version} there, {__version__} here\n")
    rdir = f"{remote_dir.rstrip('/')}/{run_id}"
    mk = remote.run(f"mkdir -p {shlex.quote(rdir)}")
    if mk.returncode != 0:
        raise SlmbenchError(f"{name}: cannot create {rdir} on {host}: {_last_line(mk.stderr)}")
    if push:
        push_files(remote, push, remote_dir, out, name=name)
    remote_suite = None
    if suite:
        remote_suite = f"{rdir}/suite.yaml"
        remote.scp(suite, remote.target(remote_suite))
    results_remote = f"{remote_dir.rstrip('/')}/results"
    manifest = f"{results_remote}/{run_id}/manifest.json"
    log_file = f"{rdir}/run.log"
    pid_file = f"{rdir}/pid"
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())

    def launch(resume: bool) -> str:
        args = ["run"] + ([remote_suite] if remote_suite else [])
        args += list(run_args) + ["--results", results_remote]
        args += ["--resume", run_id] if resume else ["--run-id", run_id]
        # `&` ends a simple command here: `cd ~ && nohup ... &` would put a subshell in the
        # background that keeps ssh's stdout open, and this call would wait for the whole run
        command = (f"cd ~ || exit 1; {assignments} nohup {remote_slmbench} "
                   f"{' '.join(shlex.quote(a) for a in args)} >> {shlex.quote(log_file)} 2>&1 "
                   f"< /dev/null & pid=$!; echo $pid > {shlex.quote(pid_file)}; echo $pid")
        proc = remote.run(command)
        if proc.returncode != 0 or not proc.stdout.strip().isdigit():
            raise SlmbenchError(f"{name}: could not start the run on {host}: "
                                f"{_last_line(proc.stderr)}")
        return proc.stdout.strip()

    offset = 0
    relaunches = 0
    pid = ""
    if resume:
        # still running there (the local side was stopped)? finished? stopped?
        probe = remote.run(f"p=$(cat {shlex.quote(pid_file)} 2>/dev/null); "
                           'if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "ALIVE=$p"; fi; '
                           f"echo LOG=$(wc -c < {shlex.quote(log_file)} 2>/dev/null || echo 0)")
        if probe.returncode == UNREACHABLE:
            raise UnreachableError(f"{name}: cannot reach {host} over ssh: "
                                   f"{_last_line(probe.stderr)}")
        facts = dict(w.split("=", 1) for w in probe.stdout.split() if "=" in w)
        size = int(facts["LOG"]) if facts.get("LOG", "").isdigit() else 0
        state = _remote_status(remote, manifest)
        if facts.get("ALIVE"):
            pid, offset = facts["ALIVE"], size
            out.write(f"{name}: run {run_id} is still running there (pid {pid}); following it\n")
        elif state == "finished":
            out.write(f"{name}: run {run_id} finished there; fetching it\n")
        else:
            offset = size
            pid = launch(resume=state is not None)
            relaunches = 1 if state is not None else 0
            out.write(f"{name}: run {run_id} {'resumed' if state else 'started'} (pid {pid}); "
                      "following its progress\n")
    else:
        pid = launch(resume=False)
        out.write(f"{name}: run {run_id} started (pid {pid}); following its progress\n")
    last_line = ""
    unreachable_since: float | None = None
    while pid:
        if stop is not None and stop.is_set():
            raise Detached(f"{name}: stopped following; run {run_id} goes on there")
        # one short ssh call per poll: new log bytes, then whether the run is still alive
        probe = remote.run(f"tail -c +{offset + 1} {shlex.quote(log_file)} 2>/dev/null; "
                           f"echo; kill -0 {pid} 2>/dev/null && echo __ALIVE__ || echo __DONE__")
        if probe.returncode == UNREACHABLE:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > max_unreachable_s:
                raise UnreachableError(f"{name}: lost {host} for {max_unreachable_s:.0f} s; the "
                                       "run goes on there - fetch it later with --resume")
            out.write(f"{name}: connection lost ({_last_line(probe.stderr)}); retrying\n")
            _sleep(poll_s, stop)
            continue
        unreachable_since = None
        text, _, status = probe.stdout.rstrip("\n").rpartition("\n")
        if text:
            log.write(text if text.endswith("\n") else text + "\n")
            offset += len(text.encode("utf-8"))
            last_line = next((x for x in reversed(text.splitlines()) if x.strip()), last_line)
        if status.strip() == "__ALIVE__":
            _sleep(poll_s, stop)
            continue
        state = _remote_status(remote, manifest)
        if state is None and not relaunches:
            # no manifest: it stopped before measuring (a suite error, a missing model file
            # there...); running it again would fail the same way
            raise SlmbenchError(f"{name}: the run stopped before it started: "
                                f"{last_line.strip() or 'no output'} (log: {log_file} on {host}; "
                                "local model or corpus paths in the suite must exist on the "
                                "device)")
        if state in ("finished", "interrupted") or relaunches >= max_relaunch:
            break
        relaunches += 1
        out.write(f"{name}: the run stopped ({state or 'no manifest'}); resuming "
                  f"({relaunches}/{max_relaunch})\n")
        pid = launch(resume=True)
    local = Path(results_dir)
    local.mkdir(parents=True, exist_ok=True)
    remote.scp(remote.target(f"{results_remote}/{run_id}"), str(local), recursive=True)
    out.write(f"{name}: results copied to {local / run_id}\n")
    return local / run_id


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


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


def prepare_suite(suite: str | None, overrides: dict[str, Any], dest_dir: str, *,
                  offline: bool = False, push_files: bool = False
                  ) -> tuple[str, list[str], dict[str, str] | None]:
    """What a device is given: (suite file, run arguments, files to push).

    Without ``push_files``: a copy of the suite file in ``dest_dir`` and the overrides as flags
    (the suite is checked on the device, where its local paths must exist).  With it: a
    rewritten copy of the suite (overrides applied, checked here) whose local files point at
    copies pushed to the device, and the files to push."""
    import shutil

    from slmbench.config import override_argv
    from slmbench.suite import load_suite, resolve_suite_path

    path = os.path.join(dest_dir, "suite.yaml")
    offline_args = ["--offline"] if offline else []
    if push_files:
        push = pushed_suite(load_suite(suite, overrides), path)
        return path, offline_args, push
    shutil.copyfile(resolve_suite_path(suite), path)
    return path, override_argv(overrides) + offline_args, None


def run_suite_remote(host: str, suite: str | None, overrides: dict[str, Any], *,
                     results_dir: str = "results", run_id: str | None = None,
                     resume: str | None = None, offline: bool = False, port: int | None = None,
                     remote_slmbench: str = "slmbench", push_files: bool = False) -> Path:
    """`slmbench run SUITE --host HOST`: the suite (with its command-line overrides) run on the
    device over ssh, the run directory copied back; returns its local path.

    ``push_files`` copies the suite's local files to the device first and runs a rewritten
    copy of the suite (overrides applied) whose paths point at the copies.  ``resume=RUN_ID``
    follows, relaunches or fetches that run (see :func:`run_remote`).
    """
    import tempfile

    from slmbench.errors import ConfigError
    from slmbench.results import new_run_id

    if resume and run_id and resume != run_id:
        raise ConfigError("give either --resume RUN_ID or --run-id RUN_ID, not both")
    ssh = {"ssh_opts": ssh_options_from_env(), "port": port, "remote_slmbench": remote_slmbench}
    if resume and suite is None and not overrides and not push_files:
        # the run goes on with the suite its manifest recorded there
        return run_remote(host, None, ["--offline"] if offline else [], results_dir, resume,
                          resume=True, **ssh)
    with tempfile.TemporaryDirectory() as tmp:
        suite_path, run_args, push = prepare_suite(suite, overrides, tmp, offline=offline,
                                                   push_files=push_files)
        return run_remote(host, suite_path, run_args, results_dir,
                          resume or run_id or new_run_id(), resume=bool(resume), push=push,
                          **ssh)
