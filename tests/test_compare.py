"""Regression gate: statistics on raw samples (synthetic sample values test the statistics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmbench.cli import main
from slmbench.compare import compare_runs, parse_threshold
from slmbench.errors import SlmbenchError
from slmbench.results import append_record, read_run, write_json_atomic
from slmbench.schema import Memory, Record, Settings, TestResult
from slmbench.stats import bootstrap_ratio_ci, mann_whitney_p, summarize


def make_record(rng, tg_ms=10.0, pp_ms=50.0, cv=0.01, kv=100.0, n=8, model="m", quant="Q8_0"):
    def samples(mean):
        return [float(x) for x in rng.normal(mean, cv * mean, size=n)]

    tests = []
    pp = samples(pp_ms)
    tests.append(TestResult(test="pp", name="pp64", n_prompt=64,
                            samples_ns=[int(x * 1e6) for x in pp],
                            samples_ts=[64e3 / x for x in pp], ms=summarize(pp)))
    per_token = [samples(tg_ms / 32) for _ in range(n)]
    tot = [sum(r) for r in per_token]
    tests.append(TestResult(test="tg", name="tg32", n_gen=32,
                            samples_ns=[int(x * 1e6) for x in tot],
                            samples_ts=[32e3 / x for x in tot], token_ms=per_token,
                            ms=summarize(tot)))
    mem = Memory(n_ctx=512, model_mib=500.0, kv_mib=kv, compute_mib=50.0, output_mib=1.0,
                 peak_rss_mib=700.0, other_mib=50.0, kv_share=0.1)
    return Record(record_id=f"{model}{quant}", run_id="r", model_id=model, quant=quant,
                  device="cpu-test", settings=Settings(n_threads=2, repetitions=n),
                  memory=mem, tests=tests)


def write_run(tmp_path, name, records):
    d = tmp_path / name
    d.mkdir()
    for r in records:
        append_record(d, r)
    write_json_atomic(d / "env.json", {"device": {"label": "cpu-test"}})
    return str(d)


def test_same_distribution_is_same(tmp_path):
    rng = np.random.default_rng(1)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng)])
    res = compare_runs(read_run(a), read_run(b))
    assert not res.regressions and {r.verdict for r in res.rows} == {"same"}
    assert main(["compare", a, b]) == 0


def test_twenty_percent_slower_is_a_regression(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, tg_ms=12.0, pp_ms=60.0)])
    assert main(["compare", a, b]) == 1
    out = capsys.readouterr().out
    assert "SLOWER" in out and "regression(s)" in out
    res = compare_runs(read_run(a), read_run(b))
    verdicts = {(r.test, r.metric): r.verdict for r in res.rows}
    assert verdicts[("pp64", "prefill tok/s")] == "slower"
    assert verdicts[("tg32", "decode tok/s")] == "slower"
    row = next(r for r in res.rows if r.metric == "decode tok/s")
    assert row.ci_high_pct < 0 and row.p_value < 0.01 and row.change_pct == pytest.approx(-16.7, abs=2)


def test_noisy_candidate_is_not_a_regression(tmp_path):
    rng = np.random.default_rng(3)
    a = write_run(tmp_path, "a", [make_record(rng, cv=0.4, n=5)])
    b = write_run(tmp_path, "b", [make_record(rng, cv=0.4, n=5, tg_ms=10.8, pp_ms=54.0)])
    res = compare_runs(read_run(a), read_run(b))
    timed = [r for r in res.rows if r.test != "memory"]
    assert not any(r.regression for r in timed)
    assert "too noisy to tell" in {r.verdict for r in timed}
    assert main(["compare", a, b]) == 0


def test_memory_growth_caught(tmp_path, capsys):
    rng = np.random.default_rng(4)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, kv=110.0)])
    assert main(["compare", a, b, "--metric", "memory", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    kv = next(r for r in data["rows"] if r["metric"] == "kv_mib")
    assert kv["verdict"] == "worse" and kv["regression"] and data["regressions"] == 1


def test_unmatched_configs_listed_and_markdown(tmp_path, capsys):
    rng = np.random.default_rng(5)
    a = write_run(tmp_path, "a", [make_record(rng), make_record(rng, quant="Q4_0")])
    b = write_run(tmp_path, "b", [make_record(rng), make_record(rng, model="other")])
    assert main(["compare", a, b, "--md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### slmbench compare") and "| config |" in md
    res = compare_runs(read_run(a), read_run(b))
    assert res.unmatched_base == ["m:Q4_0 t2"] and res.unmatched_cand == ["other:Q8_0 t2"]


def test_bad_input_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(6)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, model="x")])
    for argv in (["compare", a, str(tmp_path / "missing")], ["compare", a, b],
                 ["compare", a, a, "--threshold", "abc"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "error" in err
    assert parse_threshold("5%") == pytest.approx(0.05) == parse_threshold("0.05")
    with pytest.raises(SlmbenchError):
        parse_threshold("150%")


def test_statistics_match_a_reference():
    from scipy import stats as sst

    base = [10.0, 10.2, 9.9, 10.1, 10.05, 9.95]
    cand = [11.0, 11.3, 10.9, 11.1, 11.2, 10.95]
    assert mann_whitney_p(base, cand) == pytest.approx(
        sst.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    lo, hi = bootstrap_ratio_ci(base, cand, n_boot=4000, seed=1)
    # reference: the same percentile bootstrap written out by hand (base indices drawn first)
    b, c = np.array(base), np.array(cand)
    rng = np.random.default_rng(1)
    bi, ci = rng.integers(0, 6, (4000, 6)), rng.integers(0, 6, (4000, 6))
    ratios = np.median(c[ci], axis=1) / np.median(b[bi], axis=1) - 1
    assert (lo, hi) == (pytest.approx(np.percentile(ratios, 2.5)),
                        pytest.approx(np.percentile(ratios, 97.5)))
    assert 0.05 < lo < hi < 0.15


def test_quality_regression_caught(tmp_path):
    def rec(ppl, kl):
        return Record(record_id="q", run_id="r", model_id="m", quant="Q4_K_M", device="cpu-test",
                      settings=Settings(n_ctx=512), tests=[TestResult(
                          test="quality", name="quality@512",
                          metrics={"ppl": ppl, "kl_mean": kl, "top1_pct": 90.0})])
    a = write_run(tmp_path, "a", [rec(10.0, 0.010)])
    b = write_run(tmp_path, "b", [rec(10.1, 0.020)])
    res = compare_runs(read_run(a), read_run(b))
    verdicts = {r.metric: r.verdict for r in res.rows}
    assert verdicts == {"ppl": "same", "kl_mean": "worse", "top1_pct": "same"}
    assert main(["compare", a, b]) == 1
