"""One config in a fresh process: ``run_isolated(payload, timeout_s) -> (Record, worker info)``.

Everything about running a worker lives here: starting it, its stdout protocol (see
:mod:`slmbench.worker`), its stderr (kept per config: the last lines become the failure reason,
``on_stderr`` streams it), the timeout, killing its whole process group, turning a signal into a
one-line reason and reading the record it wrote.  Whatever happens, the caller gets one Record.

A worker starts in one of two ways (``SLMBENCH_WORKER_START=fork|spawn``; fork by default on
Linux and Android, spawn elsewhere):

- **fork**: a fork server - ``python -m slmbench.isolate FD``, started on the first config and
  stopped by :func:`shutdown` - has imported numpy, llama_cpp, gguf and slmbench and initialised
  llama.cpp's backend, but loaded no model and runs no thread (it checks before every fork:
  numpy's OpenBLAS threads are shut down by OpenBLAS's own fork handler, and llama.cpp's OpenMP
  threads only start with the first computation, which never happens in the server).  For each
  config it forks a child that gets the runner's pipes as stdin/stdout/stderr (passed over a
  Unix socket), its own session and process group, the runner's current environment, and dies
  when the server dies.  A child starts in a few milliseconds instead of ~150 ms or more of
  interpreter start and imports.  Its memory starts clean: after a fork the kernel sets the
  child's high-water mark to the child's own resident memory, and the server has loaded nothing.
- **spawn**: ``python -m slmbench.worker CONFIG.json RECORD.json`` (macOS, Windows, or when the
  fork server cannot start or refuses; the record's warnings then say why).

The server reaps its children and reports each exit status; before reaping it kills what is
left of the child's process group (helpers such as tegrastats), while the pid cannot be reused.
It exits when the runner closes the socket or dies (EOF, and SIGTERM from the kernel), killing
its children's groups first; a child whose server is killed outright gets SIGKILL from the
kernel.  Only one worker runs at a time per process (a second caller waits): benchmarks should
not share the CPU.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from slmbench.errors import SlmbenchError

START_ENV = "SLMBENCH_WORKER_START"
KILL_GRACE_S = 2.0
SERVER_START_TIMEOUT_S = 120.0
MAX_MESSAGE = 1 << 20

SIGNAL_NOTES = {
    "SIGKILL": "killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)",
    "SIGSEGV": "crashed: SIGSEGV (segmentation fault)",
    "SIGBUS": "crashed: SIGBUS (bus error: truncated or changed model file?)",
    "SIGABRT": "crashed: SIGABRT (abort: a failed llama.cpp assertion?)",
    "SIGILL": "crashed: SIGILL (illegal instruction: built for another CPU?)",
}

_lock = threading.Lock()  # one worker at a time; guards _server
_server: _ForkServer | None = None


def start_method() -> str:
    """``fork`` or ``spawn``: SLMBENCH_WORKER_START, else fork where it is safe (Linux)."""
    value = os.environ.get(START_ENV, "").strip().lower()
    if value not in ("", "fork", "spawn"):
        raise SlmbenchError(f"{START_ENV}={value!r}: expected fork or spawn")
    can_fork = hasattr(os, "fork") and sys.platform.startswith(("linux", "android"))
    if value == "spawn" or not can_fork:
        return "spawn"
    return "fork"


def run_isolated(payload: dict, timeout_s: float, *,
                 on_progress: Callable[[str], None] | None = None,
                 on_stderr: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Run one config (a ``Config.worker_payload``) in a fresh process; never raises for it.

    Returns the Record - the worker's, or a failed one whose reason says what went wrong (crash,
    kill, timeout, exit code) - and the worker info (the fields of ``schema.WorkerInfo``):
    ``start_method`` (fork or spawn), ``exit_code``, ``wall_s``, ``start_ms`` (start -> ready)
    and, after a failure, ``stderr_tail``; plus ``server_start_ms`` when this call started the
    fork server.  A worker spawned because the fork server was unavailable adds a warning.
    ``on_progress`` gets the worker's progress messages, ``on_stderr`` every stderr line.
    """
    from slmbench.worker import failed_record

    with _lock, tempfile.TemporaryDirectory(prefix="slmbench-worker-") as tmp:
        out_file = os.path.join(tmp, "record.json")
        info: dict[str, Any] = {"start_method": start_method()}
        fallback = None
        try:
            child = None
            if info["start_method"] == "fork":
                try:
                    server = _fork_server(info)
                    t_start = time.monotonic()  # the timeout and start_ms are the worker's
                    child = server.fork(payload, out_file)
                except SlmbenchError as exc:  # the server could not start or would not fork
                    info["start_method"] = "spawn"
                    fallback = f"worker spawned: the fork server is unavailable ({exc})"
            if child is None:
                t_start = time.monotonic()
                child = _spawn_worker(payload, tmp, out_file)
            problem = _supervise(child, t_start, timeout_s, info, on_progress, on_stderr)
        except BaseException:
            if info["start_method"] == "fork":
                shutdown()  # the talk with the server was cut short: its children die with it
            raise
        if os.path.exists(out_file):  # written atomically: a complete measurement
            from slmbench.schema import Record, from_dict

            with open(out_file, encoding="utf-8") as fh:
                record = from_dict(Record, json.load(fh))
            if problem:  # e.g. a crash in a backend's teardown at exit
                record.warnings.append(f"{problem}, after writing its result")
        else:
            record = failed_record(payload, problem or "worker exited without writing a result")
        if fallback:
            record.warnings.append(fallback)
        return record, info


def _supervise(child: Any, t_start: float, timeout_s: float, info: dict[str, Any],
               on_progress: Callable[[str], None] | None,
               on_stderr: Callable[[str], None] | None) -> str | None:
    """Wait for the worker under the timeout, kill its group, fill ``info``; the problem."""
    state: dict[str, Any] = {"ready": None, "note": "", "eof": threading.Event()}
    tail: collections.deque[str] = collections.deque(maxlen=40)
    readers = [threading.Thread(target=_read_protocol, args=(child.stdout, state, on_progress),
                                daemon=True),
               threading.Thread(target=_read_stderr, args=(child.stderr, tail, on_stderr),
                                daemon=True)]
    for t in readers:
        t.start()
    timed_out = False
    try:
        deadline = t_start + timeout_s
        while True:
            # sleep until the worker closes its protocol pipe (it is exiting), waking once a
            # second at most: polling would compete with the measurement
            remaining = deadline - time.monotonic()
            state["eof"].wait(min(max(remaining, 0.0), 1.0))
            if child.poll() is None and state["eof"].is_set():
                try:
                    child.wait(timeout=max(0.0, min(remaining, 5.0)))
                except subprocess.TimeoutExpired:
                    pass
            if child.poll() is not None:
                break
            if time.monotonic() > deadline:
                timed_out = True
                _kill_group(child)
                break
    finally:
        if child.poll() is None:  # Ctrl-C or an error in the runner: no orphan
            _kill_group(child)
        else:
            _kill_group(child, grace=0)  # helpers the worker may have started
        for t in readers:
            t.join(timeout=5)
        child.stdout.close()
        child.stderr.close()
    wall = time.monotonic() - t_start
    rc = child.returncode
    info.update(exit_code=rc, wall_s=round(wall, 3),
                start_ms=round(1000 * (state["ready"] - t_start), 1) if state["ready"] else None)
    during = f" during {state['note']}" if state["note"] else ""
    problem = None
    if timed_out:
        problem = f"timed out after {timeout_s:.0f} s{during}; the worker was killed"
    elif getattr(child, "lost", None):
        problem = f"worker lost{during}: {child.lost}"
    elif rc is not None and rc < 0:
        name = _signal_name(-rc)
        problem = f"worker {SIGNAL_NOTES.get(name, f'killed by {name}')}{during}"
    elif rc != 0:
        last = next((x for x in reversed(tail) if x.strip()), "no error output")
        problem = f"worker exited with code {rc}: {last.strip()[:300]}"
    if rc != 0 and tail:
        info["stderr_tail"] = [x.rstrip() for x in list(tail)[-10:]]
    return problem


def _read_protocol(pipe: IO[str], state: dict[str, Any],
                   on_progress: Callable[[str], None] | None) -> None:
    try:
        for line in pipe:
            line = line.rstrip("\n")
            if line == "ready":
                state["ready"] = time.monotonic()
            elif line.startswith("progress "):
                state["note"] = line[9:]
                if on_progress is not None:
                    on_progress(state["note"])
    finally:
        state["eof"].set()


def _read_stderr(pipe: IO[str], tail: collections.deque,
                 on_stderr: Callable[[str], None] | None) -> None:
    for line in pipe:
        tail.append(line)
        if on_stderr is not None:
            on_stderr(line)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _kill_group(child: Any, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left."""
    if grace > 0:
        child.signal_group(signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    child.signal_group(signal.SIGKILL)
    child.wait()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- spawn

class _Spawned(subprocess.Popen):
    """``python -m slmbench.worker`` in its own session (process group = its pid)."""

    def signal_group(self, sig: int) -> None:
        _killpg(self.pid, sig)


def _spawn_worker(payload: dict, tmp: str, out_file: str) -> _Spawned:
    cfg_file = os.path.join(tmp, "config.json")
    with open(cfg_file, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    env = dict(os.environ, SLMBENCH_WORKER_PARENT=str(os.getpid()))
    return _Spawned([sys.executable, "-m", "slmbench.worker", cfg_file, out_file],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True, env=env, text=True, encoding="utf-8",
                    errors="replace", bufsize=1)


# --------------------------------------------------------------------------- fork: runner side

class _ServerGone(Exception):
    pass


class _ForkServer:
    """The runner's end of the fork server: start it, ask for children, hear of their exits."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.log = tempfile.TemporaryFile()  # the server's own output (a bug's traceback)
        env = dict(os.environ, SLMBENCH_WORKER_PARENT=str(os.getpid()))
        t0 = time.monotonic()
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slmbench.isolate", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=self.log,
                stderr=self.log, start_new_session=True, env=env)
        try:
            hello = self.recv(SERVER_START_TIMEOUT_S)
        except _ServerGone:
            hello = None
        except BaseException:  # Ctrl-C while it starts
            self.close()
            raise
        if not hello or "ready" not in hello:
            self.close()
            raise SlmbenchError(self._why(hello))
        self.hello = hello  # {"ready": pid, "threads": 1}
        self.start_ms = round(1000 * (time.monotonic() - t0), 1)

    def _why(self, hello: dict | None) -> str:
        if hello and hello.get("error"):
            return str(hello["error"])
        self.log.seek(0)
        lines = [x for x in self.log.read().decode(errors="replace").splitlines() if x.strip()]
        if lines:
            return lines[-1][:300]
        return (f"no answer within {SERVER_START_TIMEOUT_S:.0f} s" if hello is None
                else f"unexpected answer {hello!r}")

    def alive(self) -> bool:
        return self.proc.poll() is None and self.sock.fileno() >= 0

    def send(self, msg: dict, fds: list[int] = ()) -> None:
        try:
            socket.send_fds(self.sock, [json.dumps(msg).encode()], list(fds))
        except OSError as exc:
            raise _ServerGone(f"the fork server is gone ({exc.strerror})") from None

    def recv(self, timeout: float | None) -> dict | None:
        """The server's next message; None after ``timeout`` seconds; _ServerGone at EOF."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            try:
                code = self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            raise _ServerGone("the fork server exited" + (
                f" ({SIGNAL_NOTES.get(_signal_name(-code), _signal_name(-code))})"
                if code is not None and code < 0 else ""))
        return json.loads(data)

    def fork(self, payload: dict, out_file: str) -> _Forked:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.send({"op": "fork", "payload": payload, "out": out_file,
                       "env": dict(os.environ), "cwd": os.getcwd()}, [out_w, err_w])
        except _ServerGone as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise SlmbenchError(str(exc)) from None
        finally:
            os.close(out_w)
            os.close(err_w)
        stdout = os.fdopen(out_r, encoding="utf-8", errors="replace")
        stderr = os.fdopen(err_r, encoding="utf-8", errors="replace")
        try:
            reply = self.recv(30.0)
        except _ServerGone as exc:
            reply = {"error": str(exc)}
        if not reply or "pid" not in reply:
            stdout.close()
            stderr.close()
            if not reply:  # it may have forked a child nobody watches: stop it all
                self.close()
            raise SlmbenchError((reply or {}).get("error") or "the fork server did not answer")
        return _Forked(self, reply["pid"], stdout, stderr)

    def close(self) -> None:
        """Closing the socket stops the server, which kills its children first."""
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class _Forked:
    """A worker forked by the server: the Popen methods the supervision loop uses."""

    def __init__(self, server: _ForkServer, pid: int, stdout: IO[str], stderr: IO[str]):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.returncode: int | None = None
        self.lost: str | None = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = self.server.recv(left)
            except _ServerGone as exc:  # the kernel killed the child with its server
                self.lost, self.returncode = str(exc), -signal.SIGKILL
                break
            if msg is None:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            if msg.get("exit") == self.pid:
                self.returncode = msg["status"]
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: int) -> None:
        """Ask the server: it alone knows whether the pid is still its (unreaped) child."""
        if self.returncode is None:
            try:
                self.server.send({"op": "kill", "pid": self.pid, "sig": int(sig)})
            except _ServerGone:
                pass


def _fork_server(info: dict[str, Any]) -> _ForkServer:
    """The running fork server, started now if there is none (or it died)."""
    global _server
    if _server is not None and not _server.alive():
        _server.close()
        _server = None
    if _server is None:
        _server = _ForkServer()
        info["server_start_ms"] = _server.start_ms
    return _server


def shutdown() -> None:
    """Stop the fork server (at the end of a sweep); the next worker starts a new one."""
    global _server
    server, _server = _server, None
    if server is not None:
        server.close()


atexit.register(shutdown)


# --------------------------------------------------------------------------- fork: the server

def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _set_name(name: bytes) -> None:
    """What ``ps -o comm`` and ``top`` show (at most 15 bytes)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except Exception:  # noqa: BLE001
        pass


def _stop_server(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(fd: int) -> None:
    """The fork server's loop (``python -m slmbench.isolate FD``)."""
    from slmbench import worker

    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    signal.signal(signal.SIGTERM, _stop_server)
    runner = int(os.environ.get(worker.PARENT_ENV) or os.getppid())
    worker.parent_death_signal(signal.SIGTERM)  # besides EOF on the socket
    if os.getppid() != runner:
        return
    _set_name(b"slmbench-server")
    worker.preload()
    if _threads() > 1:  # OpenBLAS (numpy) shuts its threads down in its fork handler
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    import gc

    gc.collect()
    gc.freeze()  # children's collections leave the server's objects (and their pages) alone
    resident = _resident_pages()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    children: set[int] = set()
    me = os.getpid()
    sock.send(json.dumps({"ready": me, "threads": _threads()}).encode())
    try:
        while True:
            ready, _, _ = select.select([sock, wake_r], [], [])
            if wake_r in ready:
                os.read(wake_r, 4096)
                _reap(children, sock)
            if sock not in ready:
                continue
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
            if not data:
                return  # the runner closed the socket or died
            msg = json.loads(data)
            if msg["op"] == "kill":
                if msg["pid"] in children:  # unreaped: the pid (and group) is still its
                    _killpg(msg["pid"], msg["sig"])
                continue
            try:
                n = _threads()
                if n != 1:
                    sock.send(json.dumps({"error": f"the fork server runs {n} threads; "
                                                   "forking it is not safe"}).encode())
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                try:
                    pid = os.fork()
                except OSError as exc:  # EAGAIN, ENOMEM: the runner spawns instead
                    sock.send(json.dumps({"error": f"fork failed: {exc}"}).encode())
                    continue
                if pid == 0:
                    _child(msg, fds, server=me, runner_sock=sock, wake=(wake_r, wake_w),
                           resident=resident)
                children.add(pid)
                sock.send(json.dumps({"pid": pid}).encode())
            finally:
                for f in fds:
                    os.close(f)
    finally:
        for pid in children:
            _killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _reap(children: set[int], sock: socket.socket) -> None:
    for pid in list(children):
        try:
            exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            children.discard(pid)
            continue
        if exited is None:
            continue
        _killpg(pid, signal.SIGKILL)  # its helpers; the zombie keeps the pid from reuse
        _, status = os.waitpid(pid, 0)
        children.discard(pid)
        try:
            sock.send(json.dumps({"exit": pid,
                                  "status": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:
            pass  # the runner is gone; the loop sees EOF next


def _child(msg: dict, fds: list[int], server: int, runner_sock: socket.socket,
           wake: tuple[int, int], resident: list[tuple[int, int, bool]]) -> None:
    """In the forked child: become a fresh worker, run it, exit (never return to the loop)."""
    code = 1
    try:
        os.setsid()  # own session and process group: killed as a whole, no terminal signals
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        runner_sock.close()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for f in (null, *fds, *wake):
            os.close(f)
        os.environ.clear()  # the runner's, as it is now
        os.environ.update(msg["env"])
        os.chdir(msg["cwd"])
        _set_name(b"slmbench-worker")
        _make_own(resident)
        from slmbench.worker import run

        code = run(msg["payload"], msg["out"], parent=server)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a bug: traceback on stderr, exit code 1
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _resident_pages() -> list[tuple[int, int, bool]]:
    """(address, length, copy) runs of pages this process (the fork server) has resident, for
    ``_make_own`` in its children: file-backed ones, and ``copy`` ones of the malloc heap.

    A fork does not copy the page-table entries of read-only file mappings (shared libraries,
    Python's code): a forked worker's resident memory would start ~15 MiB lower than a spawned
    worker's, which mapped those pages while importing.  And a forked worker shares the server's
    writable pages until its first write to each, which then costs a copy-on-write fault: model
    loading (C code allocating from the malloc heap) took ~2-5 ms longer on a tiny model.
    Copying the heap (~10 MiB, ~6 ms) before 'ready' evens that out; Python's own arenas are
    left shared (copying them costs ~10 ms more and changed nothing measurable).
    """
    from array import array

    page = os.sysconf("SC_PAGE_SIZE")
    runs: list[tuple[int, int, bool]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps, \
                open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split(None, 5)
                name = fields[5].strip() if len(fields) == 6 else ""
                # glibc's heap is "[heap]"; Android names its allocators' "[anon:scudo:...]"
                copy = fields[1] == "rw-p" and (name == "[heap]" or name.startswith("[anon:"))
                if not fields[1].startswith("r") or not (copy or name.startswith("/")):
                    continue
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                pagemap.seek(lo // page * 8)
                entries = array("Q", pagemap.read((hi - lo) // page * 8))
                start = None
                for i, entry in enumerate([*entries, 0]):
                    if entry >> 63 and start is None:  # bit 63: page present
                        start = i
                    elif not entry >> 63 and start is not None:
                        runs.append((lo + start * page, (i - start) * page, copy))
                        start = None
    except (OSError, ValueError):
        return []
    return runs


def _make_own(runs: list[tuple[int, int, bool]]) -> None:
    """In a forked child, before 'ready': map the server's resident file pages (they are in the
    page cache) and take private copies of its heap pages, so that neither happens while
    measuring and memory figures mean what they mean for a spawned worker."""
    import ctypes

    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    populate = True
    page = os.sysconf("SC_PAGE_SIZE")
    for addr, length, copy in runs:
        # MADV_POPULATE_WRITE / MADV_POPULATE_READ (Linux 5.14)
        if populate and madvise(addr, length, 23 if copy else 22) == 0:
            continue
        populate = False  # an older kernel: touch every page
        for p in range(addr, addr + length, page):
            if copy:
                ctypes.memmove(p, p, 1)
            else:
                ctypes.string_at(p, 1)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    os._exit(0)
