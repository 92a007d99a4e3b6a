"""The measurement engine on synthetic models (issue: measurement)."""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest

from slmbench.cli import main
from slmbench.errors import SlmbenchError
from slmbench.config import TestPlan
from slmbench.measure import measure_model
from slmbench.memory import parse_buffers
from slmbench.schema import Record, Settings, from_dict, to_dict
from slmbench.stats import summarize

# one thread: two threads on a loaded 2-core machine stall on each other's barriers
FAST = dict(n_threads=1, repetitions=3, warmup=1)


@pytest.fixture(scope="module")
def record(tiny_model) -> Record:
    plan = TestPlan(n_prompt=[16, 512], n_gen=[12], n_depth=[0, 32])
    return measure_model(tiny_model, Settings(**FAST), plan, model_id="tiny", quant="Q8_0")


def test_record_has_every_test_and_roundtrips(record):
    names = [t.name for t in record.tests]
    assert names == ["pp16", "ttft16", "pp512", "ttft512", "tg12",
                     "pp16@d32", "ttft16@d32", "pp512@d32", "ttft512@d32", "tg12@d32"]
    again = from_dict(Record, json.loads(json.dumps(to_dict(record))))
    assert to_dict(again) == to_dict(record)
    assert record.status == "ok" and record.model.file_type == "Q8_0"
    assert record.settings.n_threads == 1 and record.memory.n_ctx >= 512 + 1 + 32


def test_longer_prompts_take_longer(record):
    by = {t.name: t for t in record.tests}
    # minima: robust to a busy machine stretching one repetition
    assert by["pp512"].ms.min > by["pp16"].ms.min * 2
    assert by["ttft512"].ms.min > by["ttft16"].ms.min


def test_decode_series_and_stats(record):
    tg = next(t for t in record.tests if t.name == "tg12")
    assert len(tg.samples_ns) == 3 and len(tg.token_ms) == 3
    assert all(len(rep) == 12 and all(x > 0 for x in rep) for rep in tg.token_ms)
    # the whole-generation sample is the sum of its per-token latencies
    for ns, rep in zip(tg.samples_ns, tg.token_ms):
        assert abs(ns / 1e6 - sum(rep)) < 0.01 * ns / 1e6 + 0.01
    assert 0 < tg.token_ms_median <= tg.token_ms_p90 <= tg.token_ms_p99
    # llama-bench's t/s: per-sample tokens/s, averaged
    assert tg.samples_ts == pytest.approx([12e9 / ns for ns in tg.samples_ns])
    assert tg.ts.mean == pytest.approx(statistics.fmean(tg.samples_ts))
    # llama.cpp's counters saw the same single-token decodes
    assert all(p.n_eval == 12 for p in tg.perf)
    pp = next(t for t in record.tests if t.name == "pp512")
    assert all(p.n_p_eval == 512 for p in pp.perf)


def test_memory_breakdown_every_buffer_kind(record):
    mem = record.memory
    kinds = {b.kind for b in mem.buffers}
    assert kinds == {"model", "kv", "compute", "output"}
    assert mem.model_mib > 0 and mem.kv_mib > 0 and mem.compute_mib > 0
    assert abs(mem.kv_analytic_error_pct) < 2.0
    assert mem.peak_rss_mib >= record.load.rss_after_ctx_mib * 0.99
    assert 0 < mem.kv_share < 1
    assert mem.rss_sample_hz is None or mem.rss_sample_hz > 50
    assert mem.projection.n_ctx_train == 2048
    p50, p80 = mem.projection.ctx_kv_share_50, mem.projection.ctx_kv_share_80
    # None = not reached within 1M tokens (depends on how much "other" memory the process holds)
    assert p50 is None or p80 is None or p50 < p80
    assert p50 is not None or p80 is None


@pytest.mark.parametrize("cache", ["f16", "q8_0"])
def test_kv_buffer_matches_analytic_at_three_contexts(tiny_model, cache):
    shares = []
    # llama.cpp logs sizes to 0.01 MiB: contexts large enough that rounding stays < 1 %
    for n_ctx in (1024, 4096, 16384):
        s = Settings(n_threads=2, repetitions=1, warmup=0, n_ctx=n_ctx, type_k=cache,
                     type_v=cache, flash_attn="on")
        rec = measure_model(tiny_model, s, TestPlan(n_prompt=[8], n_gen=[], ttft=False))
        assert rec.memory.n_ctx == n_ctx
        assert abs(rec.memory.kv_analytic_error_pct) < 2.0, (cache, n_ctx, rec.memory)
        shares.append(rec.memory.kv_share)
    assert shares[0] < shares[1] < shares[2]  # KV share rises with the context


def test_parse_buffers_sample_lines():
    lines = [
        "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB",
        "load_tensors:        CUDA0 model buffer size =  1200.50 MiB",
        "llama_kv_cache:        CPU KV buffer size =     7.50 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =     1.25 MiB",
        "llama_context:        CPU  output buffer size =     0.98 MiB",
        "sched_reserve:        CPU compute buffer size =   515.75 MiB",
        "sched_reserve:  CUDA_Host compute buffer size =    12.01 MiB",
        "llama_context: n_ctx = 512",
    ]
    got = [(b.kind, b.device, b.mib) for b in parse_buffers(lines)]
    assert got == [("model", "CPU_Mapped", 235.16), ("model", "CUDA0", 1200.5),
                   ("kv", "CPU", 7.5), ("kv", "CUDA0", 1.25), ("output", "CPU", 0.98),
                   ("compute", "CPU", 515.75), ("compute", "CUDA_Host", 12.01)]


def test_summarize_matches_reference():
    from scipy import stats as sst

    xs = [10.0, 11.0, 9.5, 10.5, 12.0]
    s = summarize(xs)
    assert s.mean == pytest.approx(statistics.fmean(xs))
    assert s.stdev == pytest.approx(statistics.stdev(xs))
    assert s.cv_pct == pytest.approx(100 * statistics.stdev(xs) / statistics.fmean(xs))
    lo, hi = sst.t.interval(0.95, len(xs) - 1, loc=s.mean, scale=sst.sem(xs))
    assert (s.ci95_low, s.ci95_high) == (pytest.approx(lo), pytest.approx(hi))
    assert summarize([]) is None and summarize([3.0]).stdev == 0.0


def test_bad_settings_are_one_line_errors(tiny_model, tmp_path):
    plan = TestPlan(n_prompt=[64], n_gen=[32], n_depth=[64])
    bad = [
        (Settings(n_ctx=100), "smaller than prompt + generation + depth"),
        (Settings(n_threads=-1), "threads: must be >= 0"),
        (Settings(type_k="q9_9"), "unknown KV cache type 'q9_9'"),
        (Settings(repetitions=0), "repetitions"),
    ]
    for settings, text in bad:
        with pytest.raises(SlmbenchError) as err:
            measure_model(tiny_model, settings, plan)
        assert text in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SlmbenchError, match="no such model file"):
        measure_model(str(tmp_path / "missing.gguf"), Settings(), plan)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"<html>404</html>")
    with pytest.raises(SlmbenchError, match="not a GGUF file"):
        measure_model(str(junk), Settings(n_threads=1), plan)


def test_bench_cli_json_and_errors(tiny_models, capsys):
    rc = main(["bench", tiny_models["Q4_0"], "-p", "16", "-n", "4", "-r", "2", "-t", "1",
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in out[0]["tests"]] == ["pp16", "ttft16", "tg4"]
    rc = main(["bench", tiny_models["Q4_0"], "-p", "16", "-n", "4", "-r", "2", "-t", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "tokens/s" in text and "KV share" in text
    for argv, expected in ((["-t", "-1"], "--threads: must be >= 0"),
                           (["-p", "x"], "a list of integers"),
                           (["--cache-type", "q9"], "unknown KV cache type 'q9'"),
                           (["--n-ctx", "8", "-p", "16"], "smaller than")):
        assert main(["bench", tiny_models["Q4_0"], *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and err.count("\n") == 0, err


def test_bench_several_files_isolated_workers(tiny_models, capsys):
    rc = main(["bench", tiny_models["Q8_0"], tiny_models["Q4_K_M"], "-p", "16", "-n", "4",
               "-r", "1", "-t", "1", "--no-ttft", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["quant"] for r in out] == ["Q8_0", "Q4_K_M"]
    assert all(r["status"] == "ok" and r["memory"]["model_mib"] > 0 for r in out)


def test_breakdown_process_vs_unified_memory():
    """Jetson-style unified memory: GPU buffers are outside RSS, so the system basis is used."""
    from slmbench.memory import breakdown
    from slmbench.schema import Buffer

    bufs = [Buffer("model", "CUDA0", 500.0), Buffer("kv", "CUDA0", 100.0),
            Buffer("compute", "CUDA0", 50.0), Buffer("model", "CPU_Mapped", 20.0)]
    common = dict(n_ctx=2048, peak_rss_mib=200.0, hwm=210.0, info=None, type_k="f16",
                  type_v="f16", swa_full=False, n_ubatch=512, rss_hz=150.0)
    cpu = breakdown(bufs, **common, available_drop_mib=760.0, unified_memory=False,
                    rss_before_load_mib=60.0)
    assert cpu.accounting == "process" and cpu.other_mib == 0.0
    assert cpu.reserved_not_resident_mib == pytest.approx(670 - 210)
    jet = breakdown(bufs, **common, available_drop_mib=760.0, unified_memory=True,
                    rss_before_load_mib=60.0)
    assert jet.accounting == "system"
    assert jet.other_mib == pytest.approx(60 + 760 - 670)
    assert jet.kv_share == pytest.approx(100 / (520 + 100 + 50 + 150), abs=1e-5)


def test_t_quantiles_match_scipy():
    from scipy import stats as sst

    from slmbench.stats import t_quantile_975

    for df in list(range(1, 60)) + [100, 1000, 10**6]:
        assert t_quantile_975(df) == pytest.approx(sst.t.ppf(0.975, df), rel=1e-5)


def test_append_record_closes_a_torn_line(tmp_path, capsys):
    from slmbench.results import append_record, iter_record_dicts

    (tmp_path / "results.jsonl").write_text('{"record_id": "a"}\n{"record_id": "to')
    append_record(tmp_path, {"record_id": "b"})
    ids = [r["record_id"] for r in iter_record_dicts(tmp_path / "results.jsonl")]
    assert ids == ["a", "b"]
    err = capsys.readouterr().err  # one clean line, not a Python UserWarning with source
    assert err.startswith("slmbench: warning: ") and err.count("\n") == 1
    assert "results.jsonl:2: skipped malformed line" in err


def test_bandwidth_probe():
    """One figure per thread count, both kernels recorded, the faster kept; typed in env.json."""
    from slmbench.bandwidth import probe_bandwidth
    from slmbench.schema import Bandwidth, from_dict

    bw = probe_bandwidth([2, 1], size_mib=16, repeats=2)
    assert [p["n_threads"] for p in bw["threads"]] == [1, 2] and bw["array_mib"] == 16
    for p in bw["threads"]:
        assert p["read_gbs"] == max(p["kernels_gbs"].values()) > 0.1
        assert set(p["kernels_gbs"]) == set(bw["kernels"]) >= {"numpy-max"}
    typed = from_dict(Bandwidth, bw)
    assert typed.at_threads(2) == (bw["threads"][1]["read_gbs"], 2)
    assert typed.at_threads(8)[1] == 2 and typed.read_gbs == bw["threads"][1]["read_gbs"]
    assert from_dict(Bandwidth, {"read_gbs": 7.0}).at_threads(4) == (7.0, 1)  # version 1


def test_rss_sampler_sleeps_in_timed_regions_and_keeps_the_peak():
    """Paused = no wake-ups inside the region; memory touched there still counts (edge sample)."""
    import time

    from slmbench.memory import RSSSampler

    sampler = RSSSampler(hz=200).start()
    time.sleep(0.1)
    with sampler.paused():
        before = sampler.n_samples
        time.sleep(0.3)
        during = sampler.n_samples - before
        block = bytearray(64 * 1024 * 1024)  # 64 MiB made resident inside the paused region
        for i in range(0, len(block), 4096):
            block[i] = 1
    peak_after_region = sampler.peak_mib
    time.sleep(0.1)
    sampler.stop()
    assert during <= 1  # at most the wake-up already in flight when the pause began
    assert sampler.achieved_hz > 100  # counted over the time it was awake
    from slmbench.memory import rss_mib
    assert peak_after_region >= rss_mib() - 1
    del block


def test_auto_repetitions_stop_rule():
    """-r auto: at least 3, then until the 95% CI half-width is within the target, else at the
    repetition or time limit; a fixed count stops at the count."""
    from slmbench.measure import _stop_reason

    fixed = Settings(repetitions=5)
    assert [_stop_reason(fixed, [100] * n, 0.0) for n in (4, 5)] == [None, "fixed"]
    auto = Settings(repetitions=3, target_ci_pct=2.0, max_repetitions=8, max_test_s=10.0)
    assert _stop_reason(auto, [100, 100], 0.0) is None            # never below the minimum
    assert _stop_reason(auto, [100, 101, 100], 0.0) == "target"   # CI +-1.4 %
    noisy = [100, 130] * 3                                         # CI ~ +-13 %
    assert _stop_reason(auto, noisy, 0.0) is None
    assert _stop_reason(auto, noisy + [100, 130], 0.0) == "max_repetitions"
    assert _stop_reason(auto, noisy, 10.0) == "max_time"


def test_auto_repetitions_end_to_end(tiny_model):
    from slmbench import config

    plan = TestPlan(n_prompt=[16], n_gen=[8], ttft=False)
    loose = Settings(n_threads=1, repetitions=3, target_ci_pct=1000.0, max_repetitions=9,
                     max_test_s=30.0)
    rec = measure_model(tiny_model, loose, plan)
    assert {t.stop_reason for t in rec.tests} == {"target"}
    assert all(t.ms.n == 3 and t.ci_half_pct is not None for t in rec.tests)
    strict = Settings(n_threads=1, repetitions=3, target_ci_pct=1e-9, max_repetitions=4,
                      max_test_s=30.0)
    rec = measure_model(tiny_model, strict, plan)
    assert all(t.ms.n == 4 and t.stop_reason == "max_repetitions" for t in rec.tests)
    assert any("target ±1e-09% not reached" in w for w in rec.warnings)
    # a fixed count keeps the config ids it had before -r auto existed
    assert config.config_id("m:Q8_0", Settings(), plan) == "5e918a3a95455b6a"


def test_a_run_at_depth_does_not_hold_a_copy_of_the_kv_cache(tmp_path):
    """The context filled to a depth is snapshotted to a file, not into the process: the
    peak RSS of a run at depth grows by the KV cache llama.cpp allocates, not by a second
    copy of it (a 52 MiB snapshot here)."""
    from slmbench.synth import SynthSpec, write_synthetic

    path = write_synthetic(str(tmp_path / "deep.gguf"), SynthSpec(
        n_embd=256, n_layer=16, n_head=4, n_head_kv=4, n_ff=512, n_vocab=1024, n_ctx=4096))
    settings = Settings(n_threads=1, repetitions=2, warmup=0)
    shallow = measure_model(path, settings, TestPlan(n_prompt=[16], n_gen=[4], n_depth=[0]),
                            model_id="deep", quant="F16")
    deep = measure_model(path, settings, TestPlan(n_prompt=[16], n_gen=[4], n_depth=[3300]),
                         model_id="deep", quant="F16")
    # the KV of the 3300 cells filled: 16 layers x 2 x 256 x 2 bytes per cell
    snapshot_mib = 3300 * 16 * 2 * 256 * 2 / 2**20
    assert snapshot_mib > 50
    growth = (deep.memory.peak_rss_mib - shallow.memory.peak_rss_mib
              - (deep.memory.kv_mib - shallow.memory.kv_mib))
    assert growth < snapshot_mib / 2.5, (growth, deep.memory, shallow.memory)
    # the repetitions after the first restored the snapshot: same context, same decode work
    tg = next(t for t in deep.tests if t.test == "tg")
    assert all(p.n_eval == 4 for p in tg.perf)


def test_a_busy_machine_is_measured_and_flagged(tiny_model):
    """Another process spinning on a core while a test runs: the test records how many cores'
    worth of CPU others took (from the machine's and this process's real CPU time) and warns
    that the machine was busy - a slowed test can look perfectly steady, so its CV cannot say."""
    import subprocess
    import sys

    from slmbench.sensors import OTHER_CPU_WARN_CORES, OtherCPU, busy_warning

    n_cpu = os.cpu_count() or 1
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # spinning before the window opens
        window = OtherCPU()
        time.sleep(1.0)  # this process sleeps: the busy CPU time is the spinner's
        assert 0.7 <= window.cores() <= 1.3
        plan = TestPlan(n_prompt=[16], n_gen=[8], ttft=False)
        rec = measure_model(tiny_model, Settings(n_threads=n_cpu, repetitions=3,
                                                 target_ci_pct=1e-9,
                                                 max_repetitions=100_000, max_test_s=0.8,
                                                 warmup=1), plan)
    finally:
        spin.kill()
        spin.wait()
    for t in rec.tests:  # its threads wanted every core: they took turns with the spinner
        assert t.other_cpu_cores is not None and t.other_cpu_cores >= OTHER_CPU_WARN_CORES
        assert any(w.startswith(f"{t.name}: other processes used") and "busy" in w
                   for w in rec.warnings)
        # with a core left free for the spinner, the same figure is no warning
        assert (busy_warning(t.name, t.other_cpu_cores, n_cpu - 1) is None) == (n_cpu >= 2)
    assert OtherCPU().cores() is None  # a window too short to tell
