"""One config in a fresh process: the one isolation path of `run` and `bench`.

Interim extraction of the runner's worker handling (spawned ``python -m slmbench.worker``).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any, Callable

from slmbench.schema import Record, from_dict

KILL_GRACE_S = 2.0
SIGNAL_NOTES = {
    "SIGKILL": "killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)",
    "SIGSEGV": "crashed: SIGSEGV (segmentation fault)",
    "SIGBUS": "crashed: SIGBUS (bus error: truncated or changed model file?)",
    "SIGABRT": "crashed: SIGABRT (abort: a failed llama.cpp assertion?)",
    "SIGILL": "crashed: SIGILL (illegal instruction: built for another CPU?)",
}


def run_isolated(payload: dict, timeout_s: float, *,
                 on_progress: Callable[[str], None] | None = None,
                 on_stderr: Callable[[str], Any] | None = None) -> tuple[Record, dict]:
    """Measure ``payload`` in a fresh worker; (record, worker info).  Never raises for a
    problem of the config: a crash, kill or timeout is a failed Record."""
    with tempfile.TemporaryDirectory(prefix="slmbench-worker-") as tmp:
        cfg_file = os.path.join(tmp, "config.json")
        out_file = os.path.join(tmp, "record.json")
        with open(cfg_file, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        env = dict(os.environ)
        env["SLMBENCH_WORKER_PARENT"] = str(os.getpid())
        t_spawn = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "slmbench.worker", cfg_file, out_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env, text=True, encoding="utf-8", errors="replace",
            bufsize=1)
        state: dict[str, Any] = {"ready": None, "note": "", "eof": threading.Event()}
        tail: collections.deque[str] = collections.deque(maxlen=40)
        readers = [threading.Thread(target=_read_protocol, args=(proc.stdout, state, on_progress),
                                    daemon=True),
                   threading.Thread(target=_read_stderr, args=(proc.stderr, tail, on_stderr),
                                    daemon=True)]
        for t in readers:
            t.start()
        timed_out = False
        try:
            deadline = t_spawn + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                state["eof"].wait(min(max(remaining, 0.0), 1.0))
                if proc.poll() is None and state["eof"].is_set():
                    try:
                        proc.wait(timeout=max(0.0, min(remaining, 5.0)))
                    except subprocess.TimeoutExpired:
                        pass
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    _kill_group(proc)
                    break
        finally:
            if proc.poll() is None:
                _kill_group(proc)
            else:
                _kill_group(proc, grace=0)
        for t in readers:
            t.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
        wall = time.monotonic() - t_spawn
        rc = proc.returncode
        worker = {"exit_code": rc, "wall_s": round(wall, 3),
                  "start_ms": (round(1000 * (state["ready"] - t_spawn), 1)
                               if state["ready"] else None)}
        during = f" during {state['note']}" if state["note"] else ""
        problem = None
        if timed_out:
            problem = f"timed out after {timeout_s:.0f} s{during}; the worker was killed"
        elif rc is not None and rc < 0:
            name = _signal_name(-rc)
            problem = f"worker {SIGNAL_NOTES.get(name, f'killed by {name}')}{during}"
        elif rc != 0:
            last = next((x for x in reversed(tail) if x.strip()), "no error output")
            problem = f"worker exited with code {rc}: {last.strip()[:300]}"
        if os.path.exists(out_file):
            with open(out_file, encoding="utf-8") as fh:
                record = from_dict(Record, json.load(fh))
            if problem:
                record.warnings.append(f"{problem}, after writing its result")
        else:
            record = Record(record_id="", status="failed",
                            reason=problem or "worker exited without writing a result")
        if rc != 0 and tail:
            worker["stderr_tail"] = [x.rstrip() for x in list(tail)[-10:]]
        return record, worker


def _read_protocol(pipe: IO[str], state: dict[str, Any], on_progress: Any) -> None:
    try:
        for line in pipe:
            line = line.rstrip("\n")
            if line == "ready":
                state["ready"] = time.monotonic()
            elif line.startswith("progress "):
                state["note"] = line[9:]
                if on_progress:
                    on_progress(state["note"])
    finally:
        state["eof"].set()


def _read_stderr(pipe: IO[str], tail: collections.deque, on_stderr: Any) -> None:
    for line in pipe:
        tail.append(line)
        if on_stderr:
            on_stderr(line)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    if grace > 0:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
