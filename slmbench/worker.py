"""One config in its own process, spawned (``python -m slmbench.worker CONFIG.json RECORD.json``)
or forked from the pre-imported fork server of :mod:`slmbench.isolate`.

Isolation is the point: a segfault, an out-of-memory kill or a hang in llama.cpp takes down this
process only, and every model is measured in fresh memory (clean RSS and high-water mark).  The
runner owns results.jsonl; the worker only writes its Record to RECORD.json (atomically, so a
half-written file never looks like a result).  :func:`execute` is the one place that interprets
a payload (``Config.worker_payload``); :func:`run` is a worker's life from start to exit code,
the same for both ways of starting it.

Protocol on the worker's stdout, one line each (llama.cpp's own output is sent to stderr):
``ready`` once imports and llama.cpp start-up are done, then ``progress <message>`` lines, then
``done`` once the record is written.  Bad input (SlmbenchError) becomes a failed Record with the
message and exit code 0; anything else is a bug: traceback on stderr, exit code 1.

Test-only hook: ``SLMBENCH_TEST_CRASH=<index>[:mode][,...]`` makes the worker of config <index>
crash right after ``ready``: mode ``segv`` (default, SIGSEGV), ``kill`` (SIGKILL, like the OOM
killer), ``hang`` (sleeps until the runner's timeout) or ``exit`` (exit code 3); ``segv-after``
crashes after the record is written (like a backend crashing in its teardown).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

PARENT_ENV = "SLMBENCH_WORKER_PARENT"
PROGRESS_INTERVAL_S = 0.25
CRASH_ENV = "SLMBENCH_TEST_CRASH"


def _protocol_stream() -> IO[str]:
    """A private copy of stdout for the protocol; fd 1 then points at stderr.

    C code (llama.cpp, ggml) printing to stdout can then never corrupt the protocol.
    """
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")


def parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` when the parent dies (Linux/Android); False elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux
        return False


def _die_with_parent(parent: int | None = None) -> None:
    """Exit when the parent (runner or fork server) dies, even by SIGKILL: no orphan measures."""
    if parent is None:
        parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    kernel_watches = parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # it died before the kernel was watching
        os._exit(3)
    if kernel_watches:
        return  # no thread waking up during timed regions

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="slmbench-parent-watch", daemon=True).start()


def _crash_if_asked(index: int, after: bool = False) -> None:
    spec = os.environ.get(CRASH_ENV, "")
    for item in spec.split(","):
        target, _, mode = item.strip().partition(":")
        if not target or not target.isdigit() or int(target) != index:
            continue
        mode = mode or "segv"
        if mode.endswith("-after") != after:
            continue
        mode = mode.removesuffix("-after")
        if mode == "hang":
            while True:
                time.sleep(3600)
        if mode == "exit":
            sys.stderr.write("test crash: exit 3\n")
            sys.stderr.flush()
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL if mode == "kill" else signal.SIGSEGV)
        time.sleep(10)  # the signal is delivered before this returns


def _write_atomic(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def preload() -> None:
    """Every import and the llama.cpp start-up a worker needs before ``ready``.

    The fork server runs this once; a spawned worker runs it itself.  It must start no thread
    (the fork server checks): importing numpy starts OpenBLAS's, which shuts them down by itself
    before a fork.  llama.cpp's OpenMP threads only start with the first computation.
    """
    from slmbench.errors import SlmbenchError

    try:
        from slmbench.llama_backend import llama

        llama()
        import gguf  # noqa: F401 - imported lazily by the header reader; load it now
        import numpy  # noqa: F401
        import slmbench.measure  # noqa: F401
        import slmbench.profile  # noqa: F401
        import slmbench.quality  # noqa: F401
        import slmbench.sensors  # noqa: F401
        import slmbench.suite  # noqa: F401 - the Job type of a payload
    except SlmbenchError:
        pass  # execute() meets it again, and it becomes a failed record


def job_of(payload: dict) -> Any:
    """The typed job of a payload (``Config.worker_payload``)."""
    from slmbench.schema import from_dict
    from slmbench.suite import Job

    return from_dict(Job, payload)


def failed_record(payload: dict, reason: str, started: str | None = None) -> Any:
    """A failed Record that still says what was attempted."""
    from slmbench.schema import Record, utc_now

    try:
        job = job_of(payload)
    except Exception:  # noqa: BLE001 - the reason matters more than the settings
        job = None
    return Record(record_id=(job.record_id if job else payload.get("record_id")) or "",
                  run_id=None, status="failed", reason=reason,
                  model_id=job.model_id if job else None, quant=job.quant if job else None,
                  device=job.device if job else None, started_at=started or utc_now(),
                  finished_at=utc_now(), settings=job.settings if job else None)


def _measure_quality(job: Any, progress: Any, started: str) -> Any:
    """A suite's quality config: perplexity / bits per byte (and KL against the reference)."""
    from slmbench.quality import measure_quality, quality_record

    q = job.quality

    def window_done(done: int, total: int, ppl: float) -> None:
        progress(f"quality {done}/{total} ppl {ppl:.3f}")

    test = measure_quality(job.path, reference=job.reference_path, corpus=q.get("corpus"),
                           n_ctx=q["n_ctx"], n_threads=q["n_threads"], n_batch=q["n_batch"],
                           max_windows=q.get("chunks") or 0, progress=window_done)
    record = quality_record(job.path, test, reference=job.reference_path,
                            corpus=q.get("corpus"), model_id=job.model_id, quant=job.quant,
                            n_threads=q["n_threads"], n_batch=q["n_batch"], started_at=started)
    record.device = job.device
    return record


def execute(payload: dict, progress: Callable[[str], None], started: str | None = None) -> Any:
    """Measure the config of a worker payload (``Config.worker_payload``) in this process.

    Bad input (SlmbenchError) becomes a failed Record with the message; anything else is a bug
    and propagates.  The one interpretation of a payload, for every way of isolating it.
    """
    from slmbench.errors import SlmbenchError
    from slmbench.measure import measure_model
    from slmbench.schema import utc_now

    started = started or utc_now()
    job = job_of(payload)
    try:
        if job.kind == "quality":
            return _measure_quality(job, progress, started)
        if job.kind == "sustained":
            from slmbench.sustained import measure_sustained, spec_from_values

            return measure_sustained(job.path, job.settings, spec_from_values(job.sustained),
                                     model_id=job.model_id, quant=job.quant, device=job.device,
                                     record_id=job.record_id, windows_path=job.windows_path,
                                     windows_file=job.windows_file, progress=progress)
        if job.kind == "profile":
            from slmbench.profile import measure_profile

            return measure_profile(job.path, job.settings, **(job.profile or {}),
                                   model_id=job.model_id, quant=job.quant, device=job.device,
                                   progress=progress)
        return measure_model(job.path, job.settings, job.plan, model_id=job.model_id,
                             quant=job.quant, device=job.device, progress=progress,
                             cooldown_s=job.cooldown_s, max_temp_c=job.max_temp_c)
    except SlmbenchError as exc:
        return failed_record(payload, str(exc), started)


def run(cfg: dict, out_path: str, parent: int | None = None) -> int:
    """A worker's life after start: protocol, ready, measure, record written, done.

    ``parent`` is the process whose death must end this one (default: SLMBENCH_WORKER_PARENT
    or the parent process).
    """
    proto = _protocol_stream()
    _die_with_parent(parent)
    preload()  # start-up cost belongs before 'ready' (a forked worker finds it done)
    from slmbench.llama_backend import set_log_echo
    from slmbench.schema import to_dict

    set_log_echo(False)  # SLMBENCH_LLAMA_LOG=1 copies llama.cpp's log to stderr
    proto.write("ready\n")
    index = int(cfg.get("index", -1))
    _crash_if_asked(index)
    last = {"t": 0.0, "test": ""}

    def progress(message: str) -> None:
        """At most ~4 lines a second: each one wakes the runner, which competes for the CPU."""
        now = time.monotonic()
        test = message.split(" ", 1)[0]
        if test != last["test"] or now - last["t"] >= PROGRESS_INTERVAL_S:
            last["t"], last["test"] = now, test
            proto.write(f"progress {message}\n")

    record = execute(cfg, progress)
    _write_atomic(out_path, to_dict(record))
    proto.write("done\n")
    _crash_if_asked(index, after=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        sys.stderr.write("usage: python -m slmbench.worker CONFIG.json RECORD.json\n")
        return 2
    config_path, out_path = argv
    with open(config_path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    return run(cfg, out_path)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # the record is on disk: skip interpreter and library teardown (tens of ms per config)
    os._exit(code)
