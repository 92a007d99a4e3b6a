"""The runner: isolated workers, failures as records, memory pre-check, interrupt and resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from slmbench import isolate
from slmbench.errors import SlmbenchError
from slmbench.results import iter_record_dicts, read_run
from slmbench.runner import Runner, summary_table
from slmbench.suite import expand, parse_suite

# one thread, one repetition, tiny tests: the runner is under test here, not the numbers
FAST = {"n_prompt": [16], "n_gen": [4], "repetitions": 1, "warmup": 0, "threads": 1}


def suite_of(models: list[str], **extra):
    return parse_suite({"models": models, **FAST, **extra})


def make_runner(suite, tmp_path: Path, **kwargs) -> Runner:
    return Runner(suite, results_dir=tmp_path / "results", stream=io.StringIO(), tty=False,
                  **kwargs)


def lines_of(run_dir: Path) -> list[dict]:
    return list(iter_record_dicts(run_dir / "results.jsonl"))


@pytest.fixture()
def three_models(tiny_models) -> list[str]:
    return [tiny_models["Q8_0"], tiny_models["Q4_K_M"], tiny_models["Q4_0"]]


def test_sweep_writes_one_record_per_config_with_env_and_manifest(tmp_path, three_models):
    runner = make_runner(suite_of(three_models), tmp_path)
    result = runner.run()
    assert result.status == "finished" and result.exit_code == 0
    run = read_run(result.run_dir)
    assert [r.status for r in run.records] == ["ok", "ok", "ok"]
    assert [r.record_id for r in run.records] == [c.record_id for c in runner.configs]
    assert {r.quant for r in run.records} == {"Q8_0", "Q4_K_M", "Q4_0"}
    rec = run.records[0]
    assert rec.run_id == result.run_id and rec.device and rec.settings.n_threads == 1
    assert [t.name for t in rec.tests] == ["pp16", "ttft16", "tg4"]
    assert rec.worker.exit_code == 0 and rec.worker.start_ms > 0
    assert rec.memory_estimate.total_mib > rec.memory_estimate.model_mib
    assert run.env.versions and run.manifest.status == "finished"
    assert run.manifest.n_configs == 3 and run.manifest.command
    assert run.manifest.suite["n_prompt"] == [16] and run.manifest.suite_yaml is None
    assert run.manifest.started_at <= run.manifest.finished_at
    table = summary_table(result)
    assert "pp16 t/s" in table and "tg4 t/s" in table and table.count(" ok") == 3


def test_crashes_and_hangs_do_not_stop_the_sweep(tmp_path, three_models, monkeypatch):
    # config 0 segfaults, config 1 hangs past the timeout, config 2 is killed like by the OOM
    # killer; the configs after them must still be measured
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:segv,1:hang,2:kill")
    monkeypatch.delenv("SLMBENCH_WORKER_START", raising=False)  # fork, the default on Linux
    suite = parse_suite({"models": three_models, **FAST, "threads": [1, 2], "timeout_s": 6.0})
    runner = make_runner(suite, tmp_path)
    assert len(runner.configs) == 6
    result = runner.run()
    recs = lines_of(result.run_dir)
    assert len(recs) == 6
    assert recs[0]["status"] == "failed" and "SIGSEGV" in recs[0]["reason"]
    assert recs[1]["status"] == "failed" and "timed out after 6 s" in recs[1]["reason"]
    assert recs[2]["status"] == "failed" and "SIGKILL" in recs[2]["reason"]
    assert "out of memory" in recs[2]["reason"]
    assert [r["status"] for r in recs[3:]] == ["ok", "ok", "ok"]
    assert result.exit_code == 1
    # failed records still say what was attempted
    assert recs[0]["model_id"] == "tiny" and recs[0]["settings"]["n_threads"] == 1
    # the hung worker's process group is gone
    assert not [p for p in psutil.process_iter(["cmdline"])
                if "slmbench.worker" in " ".join(p.info["cmdline"] or [])
                and p.ppid() == os.getpid()]
    # so is the fork server that forked the workers, stopped at the end of the sweep
    assert [r["worker"]["start_method"] for r in recs] == ["fork"] * 6
    assert isolate._server is None
    assert not [p for p in psutil.Process().children(recursive=True)
                if p.status() != psutil.STATUS_ZOMBIE]


def test_a_crash_after_the_result_is_written_keeps_the_measurement(tmp_path, tiny_model,
                                                                   monkeypatch):
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "0:segv-after")
    result = make_runner(suite_of([tiny_model]), tmp_path).run()
    (rec,) = lines_of(result.run_dir)
    assert rec["status"] == "ok" and rec["tests"]
    assert any("SIGSEGV" in w and "after writing its result" in w for w in rec["warnings"])
    assert rec["worker"]["exit_code"] == -11


def test_bad_settings_and_corrupt_files_are_failed_records(tmp_path, tiny_model):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(64))
    # a quantized V cache without flash attention: valid settings that llama.cpp refuses when
    # the worker creates the context; its SlmbenchError becomes the reason
    suite = parse_suite({"models": [str(corrupt), tiny_model], **FAST,
                         "cache_type": "f16/q4_0", "flash_attn": "off"})
    result = make_runner(suite, tmp_path).run()
    recs = lines_of(result.run_dir)
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert "corrupt.gguf" in recs[0]["reason"]
    assert "could not create a context" in recs[1]["reason"]
    assert recs[1]["worker"]["exit_code"] == 0  # a clean failure, not a crash
    # settings that cannot work are refused before anything runs, naming the key
    with pytest.raises(SlmbenchError, match="n_ctx: 8 is smaller than"):
        parse_suite({"models": [tiny_model], **FAST, "n_ctx": 8})


def test_memory_precheck_skips_what_cannot_fit(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("SLMBENCH_AVAILABLE_MIB", "100")
    result = make_runner(suite_of([tiny_model]), tmp_path).run()
    (rec,) = lines_of(result.run_dir)
    assert rec["status"] == "skipped"
    assert "does not fit in memory" in rec["reason"] and "100 MiB are available" in rec["reason"]
    assert rec["worker"] is None  # nothing was loaded
    assert rec["model"]["file_type"] == "Q8_0"
    assert result.exit_code == 0  # a skip is not a failure
    monkeypatch.setenv("SLMBENCH_AVAILABLE_MIB", "100000")
    result = make_runner(suite_of([tiny_model]), tmp_path).run()
    assert lines_of(result.run_dir)[0]["status"] == "ok"


def _start_runner(tmp_path: Path, suite_file: Path, run_id: str, crash: str) -> subprocess.Popen:
    env = dict(os.environ, SLMBENCH_TEST_CRASH=crash)
    return subprocess.Popen(
        [sys.executable, "-m", "slmbench", "run", str(suite_file), "--results",
         str(tmp_path / "results"), "--run-id", run_id],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run started in the background (`cmd &` without job
        # control) ignores SIGINT, and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = run_dir / "results.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} records within {timeout} s")


def _hung_worker(proc: subprocess.Popen,
                 timeout: float = 30) -> tuple[psutil.Process, list[psutil.Process]]:
    """The runner's worker and all its other descendants (the fork server, if any)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        for kid in kids:
            try:
                if kid.name() == "slmbench-worker" or "slmbench.worker" in kid.cmdline():
                    return kid, [k for k in kids if k.pid != kid.pid]
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.05)
    raise AssertionError("the runner started no worker")


def _all_gone(procs: list[psutil.Process], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(p.status() == psutil.STATUS_ZOMBIE for p in procs):
                return True  # a zombie is dead (nobody may reap an orphan in a container)
        except psutil.NoSuchProcess:
            procs = [p for p in procs if p.is_running()]
            continue
        time.sleep(0.05)
    return False


def test_sigkill_mid_sweep_then_resume_measures_each_config_once(tmp_path, three_models,
                                                                 capsys):
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(json.dumps({"models": three_models, **FAST, "threads": [1, 2]}))
    run_dir = tmp_path / "results" / "killed"
    # config 2 hangs, so the runner is surely killed while a worker is busy
    proc = _start_runner(tmp_path, suite_file, "killed", crash="2:hang")
    _wait_for_records(run_dir, 2, proc)
    worker, others = _hung_worker(proc)
    proc.kill()
    proc.communicate()
    # the worker dies with its runner (no orphan keeps measuring), and so does the fork server
    assert _all_gone([worker, *others])
    # a torn last line, as if the machine died mid-append, must not break the resume
    with open(run_dir / "results.jsonl", "a") as fh:
        fh.write('{"record_id": "torn')
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"
    runner = make_runner(None, tmp_path, run_id="killed", resume=True)  # suite from manifest
    result = runner.run()
    assert "malformed" in capsys.readouterr().err
    assert result.status == "finished" and result.measured_now == 4
    ids = [r["record_id"] for r in lines_of(run_dir)]
    expected = [c.record_id for c in expand(parse_suite(json.loads(suite_file.read_text())))]
    assert Counter(ids) == Counter(expected)  # every config exactly once
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumes"]) == 1
    # resuming a finished run measures nothing
    again = make_runner(None, tmp_path, run_id="killed", resume=True)
    assert again.run().measured_now == 0
    assert "malformed" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, three_models):
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(json.dumps({"models": three_models, **FAST}))
    proc = _start_runner(tmp_path, suite_file, "stopped", crash="1:hang")
    _wait_for_records(tmp_path / "results" / "stopped", 1, proc)
    worker, others = _hung_worker(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "slmbench run --resume stopped" in err
    assert _all_gone([worker, *others])
    manifest = json.loads((tmp_path / "results" / "stopped" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert len(lines_of(tmp_path / "results" / "stopped")) == 1  # the hung config is not recorded


def test_new_run_refuses_an_existing_run_id(tmp_path, tiny_model):
    from slmbench.errors import SlmbenchError

    make_runner(suite_of([tiny_model]), tmp_path, run_id="x").run()
    with pytest.raises(SlmbenchError, match="--resume x"):
        make_runner(suite_of([tiny_model]), tmp_path, run_id="x")
    with pytest.raises(SlmbenchError, match="no run directory"):
        make_runner(None, tmp_path, run_id="nope", resume=True)


def test_progress_lines_and_eta():
    from slmbench.progress import Progress, fmt_duration

    out = io.StringIO()
    bar = Progress(4, done=1, stream=out, tty=False)
    bar.start("m:Q8_0 t1")
    bar.note("loading")
    bar.note("pp16 1/3")
    bar.note("pp16 2/3")  # same test: no new line in a log
    bar.finish("ok")
    assert bar.eta is not None and bar.eta >= 0
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2/4] m:Q8_0 t1: started"
    assert lines[1:3] == ["[2/4] m:Q8_0 t1: loading", "[2/4] m:Q8_0 t1: pp16 1/3"]
    assert lines[3].startswith("[2/4] m:Q8_0 t1: ok in ") and "ETA" in lines[3]
    assert len(lines) == 4
    tty = io.StringIO()
    bar = Progress(2, stream=tty, tty=True)
    bar.start("x")
    bar.note("tg4 1/1")
    assert "\r\x1b[K[1/2] |" in tty.getvalue() and "x tg4 1/1" in tty.getvalue()
    bar.close()
    assert tty.getvalue().endswith("\r\x1b[K")
    assert fmt_duration(3725) == "1:02:05" and fmt_duration(65) == "1:05"


def test_download_failure_is_a_failed_record_and_the_sweep_goes_on(tmp_path, tiny_model,
                                                                  monkeypatch):
    catalog = tmp_path / "models.yaml"
    catalog.write_text("""
version: 1
models:
  - id: ghost-1m
    family: Ghost
    repo_id: slmbench-test/ghost-1m-GGUF
    files: {Q4_K_M: ghost-1m-Q4_K_M.gguf}
    source: test
""")
    monkeypatch.setenv("SLMBENCH_CATALOG", str(catalog))
    suite = parse_suite({"models": ["ghost-1m:Q4_K_M", tiny_model], **FAST})
    result = make_runner(suite, tmp_path, offline=True).run()
    recs = lines_of(result.run_dir)
    assert [r["status"] for r in recs] == ["failed", "ok"]
    assert "ghost-1m-Q4_K_M.gguf" in recs[0]["reason"] and "offline" in recs[0]["reason"]
    assert recs[0]["model_id"] == "ghost-1m" and recs[0]["quant"] == "Q4_K_M"
    assert recs[0]["worker"] is None


def test_suite_quality_configs_score_each_quant_against_the_reference(tmp_path):
    """`quality:` in a suite: one worker per model file after the timing; KL grows as bits
    shrink; a quality config that fails (corpus too short) is a record and the sweep goes on."""
    short = tmp_path / "short.txt"
    short.write_text("too short", encoding="utf-8")
    shape = {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 512,
             "n_vocab": 4096}
    suite = parse_suite({"models": [{"synthetic": shape, "name": "q", "quants": ["Q8_0", "Q4_0"]},
                                    {"synthetic": shape, "name": "s", "quants": ["Q8_0"],
                                     "quality": {"corpus": str(short)}}],
                         **FAST, "quality": {"reference": "F16", "chunks": 2, "n_ctx": 64}})
    runner = make_runner(suite, tmp_path, synth_dir=tmp_path / "synth")
    result = runner.run()
    kinds = [c.kind for c in runner.configs]
    assert kinds == ["bench"] * 3 + ["quality"] * 3
    by_id = {r.record_id: r for r in result.records}
    q8, q4, bad = (by_id[c.record_id] for c in runner.configs[3:])
    assert q8.status == q4.status == "ok" and bad.status == "failed"
    assert "corpus too short" in bad.reason and result.exit_code == 1
    m8, m4 = q8.tests[0].metrics, q4.tests[0].metrics
    assert q8.tests[0].name == "quality@64" and m8.n_windows == 2
    assert 0 < m8.kl_mean < m4.kl_mean and m8.top1_pct > m4.top1_pct
    assert q8.quant == "Q8_0" and q8.quality_input.reference.endswith(".gguf")
    assert q8.worker.exit_code == 0 and q8.device == result.records[0].device
    text = summary_table(result)
    assert "quality (lower perplexity" in text and "F16" in text and "corpus too short" in text
    # resume from the manifest: the same configs, quality included, and nothing left to do
    again = make_runner(None, tmp_path, run_id=result.run_id, resume=True,
                        synth_dir=tmp_path / "synth")
    assert [c.record_id for c in again.configs] == [c.record_id for c in runner.configs]
    assert again.run().measured_now == 0


def test_a_synthetic_suite_entry_can_be_a_gemma3_model(tmp_path):
    shape = {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 1, "n_ff": 512,
             "n_vocab": 4096, "arch": "gemma3"}
    suite = suite_of([{"synthetic": shape, "quants": ["Q8_0"]}])
    assert [c.model.key for c in expand(suite)] == ["syn-e256-l2-v4096-gemma3:Q8_0"]
    result = make_runner(suite, tmp_path, synth_dir=tmp_path / "syn").run()
    [rec] = read_run(result.run_dir).records
    assert rec.status == "ok", rec.reason
    assert rec.model.architecture == "gemma3" and rec.quant == "Q8_0"
    with pytest.raises(SlmbenchError, match=r"synthetic.arch: 'qwen9' is not one of llama"):
        parse_suite({"models": [{"synthetic": {**shape, "arch": "qwen9"}}]})
