"""run_isolated: one config in a fresh process, forked from the fork server or spawned.

Real processes throughout: a tiny GGUF model, the worker's crash hook (SLMBENCH_TEST_CRASH) and
a fake `tegrastats` helper on PATH.  No timing assertions (timings are in benchmarks/).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from slmbench import isolate
from slmbench.errors import SlmbenchError
from slmbench.isolate import run_isolated
from slmbench.suite import expand, parse_suite

FAST = {"n_prompt": [16], "n_gen": [4], "repetitions": 1, "warmup": 0, "threads": 1}
METHODS = ["fork", "spawn"]


@pytest.fixture(autouse=True)
def _fresh_server():
    isolate.shutdown()
    yield
    isolate.shutdown()


@pytest.fixture(params=METHODS)
def method(request, monkeypatch) -> str:
    monkeypatch.setenv("SLMBENCH_WORKER_START", request.param)
    return request.param


def payload_of(path: str, **extra) -> dict:
    (cfg,) = expand(parse_suite({"models": [path], **FAST, **extra}))
    return cfg.worker_payload(path, "test-device")


def _is_worker(p: psutil.Process) -> bool:
    return p.name() == "slmbench-worker" or "slmbench.worker" in " ".join(p.cmdline())


class WorkerWatch(threading.Thread):
    """Finds the running worker among this process's descendants and notes its facts."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.facts: dict = {}
        self.stop = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for p in psutil.Process().children(recursive=True):
                    if _is_worker(p):
                        parent = p.parent()
                        self.facts = {"pid": p.pid, "pgid": os.getpgid(p.pid),
                                      "sid": os.getsid(p.pid), "parent_pid": parent.pid,
                                      "parent_name": parent.name(), "threads": p.num_threads()}
                        return
            except (psutil.Error, ProcessLookupError):
                pass
            time.sleep(0.02)


def test_fork_path_measures_in_a_child_of_the_fork_server(tiny_model, monkeypatch):
    monkeypatch.delenv("SLMBENCH_WORKER_START", raising=False)
    assert isolate.start_method() == "fork"  # the default on Linux
    notes: list[str] = []
    record, info = run_isolated(payload_of(tiny_model), 60, on_progress=notes.append)
    assert record.status == "ok" and [t.name for t in record.tests] == ["pp16", "ttft16", "tg4"]
    assert record.record_id and record.device == "test-device" and record.settings.n_threads == 1
    assert info["start_method"] == "fork" and info["exit_code"] == 0 and info["start_ms"] > 0
    assert "server_start_ms" in info  # this config started the server (lazily)
    assert any(n.startswith("tg4") for n in notes)
    server = isolate._server
    assert server is not None and server.hello["threads"] == 1  # forked single-threaded only
    # the next config reuses the server; the worker is its child, in its own session and group
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:hang")
    watch = WorkerWatch()
    record, info = run_isolated(payload_of(tiny_model), 3)
    watch.stop.set()
    assert info["start_method"] == "fork" and "server_start_ms" not in info
    assert isolate._server is server
    f = watch.facts
    assert f["parent_pid"] == server.proc.pid and f["parent_name"] == "slmbench-server"
    assert f["pgid"] == f["sid"] == f["pid"] != os.getpgid(0)
    assert record.status == "failed" and "timed out after 3 s" in record.reason
    assert _gone(f["pid"])
    isolate.shutdown()
    assert server.proc.poll() is not None and isolate._server is None


def test_spawn_path_runs_python_m_slmbench_worker(tiny_model, monkeypatch):
    monkeypatch.setenv("SLMBENCH_WORKER_START", "spawn")
    record, info = run_isolated(payload_of(tiny_model), 60)
    assert record.status == "ok" and record.tests
    assert info["start_method"] == "spawn" and info["exit_code"] == 0 and info["start_ms"] > 0
    assert isolate._server is None  # spawning starts no fork server
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:hang")
    watch = WorkerWatch()
    run_isolated(payload_of(tiny_model), 3)
    watch.stop.set()
    f = watch.facts
    assert f["parent_pid"] == os.getpid() and f["pgid"] == f["sid"] == f["pid"]


def test_a_bad_start_method_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SLMBENCH_WORKER_START", "vfork")
    with pytest.raises(SlmbenchError, match="SLMBENCH_WORKER_START='vfork': expected fork or"):
        isolate.start_method()


@pytest.mark.parametrize("mode, expect", [
    ("segv", "worker crashed: SIGSEGV (segmentation fault)"),
    ("kill", "worker killed by SIGKILL (out of memory?"),
    ("hang", "timed out after 3 s; the worker was killed"),
    ("exit", "worker exited with code 3: test crash: exit 3"),
])
def test_each_crash_is_one_failed_record(tiny_model, monkeypatch, method, mode, expect):
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", f"0:{mode}")
    lines: list[str] = []
    record, info = run_isolated(payload_of(tiny_model), 3, on_stderr=lines.append)
    assert record.status == "failed" and record.reason.startswith(expect), record.reason
    assert "\n" not in record.reason
    assert record.model_id == "tiny" and record.quant == "Q8_0" and record.record_id
    assert info["start_method"] == method and info["start_ms"] > 0  # it crashed after 'ready'
    codes = {"segv": -signal.SIGSEGV, "kill": -signal.SIGKILL, "exit": 3}
    if mode in codes:
        assert info["exit_code"] == codes[mode]
    if mode == "exit":  # stderr is the worker's own, line by line
        assert "test crash: exit 3\n" in lines and info["stderr_tail"] == ["test crash: exit 3"]
    # the next config is measured normally
    monkeypatch.delenv("SLMBENCH_TEST_CRASH")
    record, info = run_isolated(payload_of(tiny_model), 60)
    assert record.status == "ok" and info["start_method"] == method


def test_a_crash_after_the_record_keeps_it_with_a_warning(tiny_model, monkeypatch, method):
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:segv-after")
    record, info = run_isolated(payload_of(tiny_model), 60)
    assert record.status == "ok" and record.tests
    warning = record.warnings[-1]
    assert warning.startswith("worker crashed: SIGSEGV (segmentation fault) during tg4")
    assert warning.endswith(", after writing its result")
    assert info["exit_code"] == -signal.SIGSEGV and info["start_method"] == method


def test_bad_input_is_a_clean_failed_record(tmp_path, monkeypatch, method):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(64))
    record, info = run_isolated(payload_of(str(corrupt)), 60)
    assert record.status == "failed" and "corrupt.gguf" in record.reason
    assert info["exit_code"] == 0 and "stderr_tail" not in info


def test_forked_and_spawned_workers_report_the_same_memory(tiny_model, monkeypatch):
    """A fork does not map the server's file pages (libraries, code) into the child; the child
    maps them again before 'ready', so a forked worker's resident memory starts where a spawned
    one's does (without that, rss_before_load was ~14 MiB lower and the peak ~8 MiB)."""
    got = {}
    for method in METHODS:
        monkeypatch.setenv("SLMBENCH_WORKER_START", method)
        run_isolated(payload_of(tiny_model), 60)  # the fork server starts outside the figures
        record, info = run_isolated(payload_of(tiny_model), 60)
        assert record.status == "ok" and info["start_method"] == method
        got[method] = (record.load.rss_before_load_mib, record.memory.peak_rss_mib,
                       record.memory.hwm_rss_mib)
    for fork, spawn in zip(got["fork"], got["spawn"]):
        assert abs(fork - spawn) < 4.0, got


def _fake_tegrastats(tmp_path: Path) -> Path:
    """A `tegrastats` on PATH that SIGKILLs the worker that started it, then keeps running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "tegrastats"
    script.write_text('#!/bin/sh\necho $$ > "$FAKE_TEGRASTATS_PID"\nkill -9 $PPID\n'
                      'while true; do sleep 0.1; done\n')  # no output: no SIGPIPE ends it
    script.chmod(0o755)
    return bin_dir


def test_helpers_die_with_their_worker(tiny_model, tmp_path, monkeypatch, method):
    monkeypatch.setenv("PATH", f"{_fake_tegrastats(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    pid_file = tmp_path / "tegrastats.pid"
    monkeypatch.setenv("FAKE_TEGRASTATS_PID", str(pid_file))
    record, info = run_isolated(payload_of(tiny_model), 60)
    assert record.status == "failed" and "SIGKILL" in record.reason
    _wait_for(lambda: _gone(int(pid_file.read_text())))


def test_a_dead_fork_server_fails_its_config_and_is_replaced(tiny_model, monkeypatch):
    monkeypatch.delenv("SLMBENCH_WORKER_START", raising=False)
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:hang")
    watch = WorkerWatch()
    killer = threading.Thread(target=lambda: (_wait_for(lambda: watch.facts),
                                              os.kill(watch.facts["parent_pid"], signal.SIGKILL)))
    killer.start()
    record, info = run_isolated(payload_of(tiny_model), 60)
    killer.join()
    assert record.status == "failed" and "fork server exited" in record.reason, record.reason
    assert "SIGKILL" in record.reason
    # the worker died with its server (the kernel's parent-death signal)
    _wait_for(lambda: _gone(watch.facts["pid"]))
    monkeypatch.delenv("SLMBENCH_TEST_CRASH")
    record, info = run_isolated(payload_of(tiny_model), 60)
    assert record.status == "ok" and info["start_method"] == "fork" and "server_start_ms" in info


def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    """Dead (a zombie counts: in a container nobody may reap an orphan)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
