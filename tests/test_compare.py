"""Regression gate: statistics on raw samples.

Sample values are synthetic (seeded lognormal draws): these tests check the statistics and the
verdict rules, not llama.cpp.  Run directories are real ones written with append_record.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slmbench.cli import main
from slmbench.compare import compare_runs, parse_metrics, parse_threshold
from slmbench.errors import SlmbenchError
from slmbench.results import Run, append_record, read_run, write_json_atomic
from slmbench.schema import Memory, Record, Settings, TestResult
from slmbench.stats import (bootstrap_pooled_ratio_ci, bootstrap_ratio_ci, mann_whitney_min_p,
                            mann_whitney_p, summarize, welch_log_p)


def draw(rng, mean, cv, size):
    """Positive samples with the given mean and coefficient of variation (lognormal)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return [float(x) for x in rng.lognormal(math.log(mean) - sigma * sigma / 2, sigma, size)]


def make_record(rng, *, pp_ms=50.0, tg_ms=10.0, ttft_ms=20.0, cv=0.01, kv=100.0, n=8,
                model="m", quant="Q8_0", n_gen=32, threads=2, status="ok", tests=None):
    """A Record like the runner writes: pp64, tg32 (with per-token latencies), ttft64, memory."""
    if tests is None:
        pp = draw(rng, pp_ms, cv, n)
        # cv is the noise between repetitions (a background job, a clock change); tokens
        # within one repetition jitter by 1 %
        token_ms = [draw(rng, f * tg_ms / n_gen, 0.01, n_gen) for f in draw(rng, 1.0, cv, n)]
        tg = [sum(rep) for rep in token_ms]
        ttft = draw(rng, ttft_ms, cv, n)
        tests = [
            TestResult(test="pp", name="pp64", n_prompt=64, samples_ns=[int(x * 1e6) for x in pp],
                       samples_ts=[64e3 / x for x in pp], ms=summarize(pp),
                       ts=summarize([64e3 / x for x in pp])),
            TestResult(test="tg", name=f"tg{n_gen}", n_gen=n_gen,
                       samples_ns=[int(x * 1e6) for x in tg],
                       samples_ts=[n_gen * 1e3 / x for x in tg], token_ms=token_ms,
                       ms=summarize(tg)),
            TestResult(test="ttft", name="ttft64", n_prompt=64, n_gen=1,
                       samples_ns=[int(x * 1e6) for x in ttft],
                       samples_ts=[65e3 / x for x in ttft], ms=summarize(ttft)),
        ]
    mem = Memory(n_ctx=512, model_mib=500.0, kv_mib=kv, compute_mib=50.0, output_mib=0.5,
                 peak_rss_mib=700.0, other_mib=50.0, kv_share=0.1)
    return Record(record_id=f"{model}-{quant}-{threads}", run_id="r", status=status,
                  reason="boom" if status == "failed" else None, model_id=model, quant=quant,
                  device="cpu-test", settings=Settings(n_threads=threads, repetitions=n),
                  memory=mem if status == "ok" else None, tests=tests if status == "ok" else [])


def write_run(tmp_path, name, records, env=None):
    d = tmp_path / name
    d.mkdir()
    for r in records:
        append_record(d, r)
    write_json_atomic(d / "env.json", env or {"device": {"label": "cpu-test"}})
    return str(d)


def verdicts(res):
    return {(r.test, r.metric): r.verdict for r in res.rows}


def test_same_distribution_is_same(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng)])
    res = compare_runs(read_run(a), read_run(b))
    assert not res.regressions
    assert set(verdicts(res).values()) == {"same"}
    assert {m for _, m in verdicts(res)} >= {"prefill", "decode", "decode_p90", "ttft",
                                              "kv_mib", "peak_rss_mib"}
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "decode (tok/s)" in out and "ttft (ms)" in out


def test_twenty_percent_slower_is_a_regression(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, pp_ms=60.0, tg_ms=12.0, ttft_ms=24.0)])
    res = compare_runs(read_run(a), read_run(b))
    v = verdicts(res)
    for key in (("pp64", "prefill"), ("tg32", "decode"), ("tg32", "decode_p90"),
                ("ttft64", "ttft")):
        assert v[key] == "slower", key
    assert v[("memory", "kv_mib")] == "same"
    decode = next(r for r in res.rows if r.metric == "decode")
    assert decode.change_pct == pytest.approx(-16.7, abs=1.5)  # 10 ms -> 12 ms per 32 tokens
    assert decode.ci_high_pct < 0 and decode.p_value < 0.01 and decode.regression
    ttft = next(r for r in res.rows if r.metric == "ttft")
    assert ttft.change_pct == pytest.approx(20, abs=1.5) and ttft.ci_low_pct > 0
    assert main(["compare", a, b]) == 1
    out = capsys.readouterr().out
    assert "SLOWER" in out and "4 regression(s)" in out


def test_faster_candidate_is_not_a_regression(tmp_path):
    rng = np.random.default_rng(12)
    a = write_run(tmp_path, "a", [make_record(rng, tg_ms=12.0)])
    b = write_run(tmp_path, "b", [make_record(rng, tg_ms=10.0)])
    res = compare_runs(read_run(a), read_run(b))
    assert verdicts(res)[("tg32", "decode")] == "faster"
    assert not res.regressions and main(["compare", a, b]) == 0


def test_noisy_candidate_is_too_noisy_not_a_regression(tmp_path):
    rng = np.random.default_rng(0)
    a = write_run(tmp_path, "a", [make_record(rng, n=5)])
    # 5 repetitions, CV 40 % and 6 % slower on average: the data cannot tell what changed
    b = write_run(tmp_path, "b", [make_record(rng, n=5, cv=0.4, pp_ms=53.0, tg_ms=10.6,
                                              ttft_ms=21.2)])
    res = compare_runs(read_run(a), read_run(b), metrics=["timed"])
    assert not res.regressions
    assert all(r.verdict == "too noisy to tell" for r in res.rows)
    assert all(r.ci_high_pct - r.ci_low_pct > 10 for r in res.rows)
    assert main(["compare", a, b]) == 0


def test_noisy_candidates_rarely_raise_an_alarm():
    """Over 40 seeded noisy candidates at most 2 flag a regression (alpha is 1 % per metric)."""
    flagged, noisy, rows = 0, 0, 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        base = Run(path="a", run_id="a", records=[make_record(rng, n=5)])
        cand = Run(path="b", run_id="b", records=[make_record(
            rng, n=5, cv=0.4, pp_ms=53.0, tg_ms=10.6, ttft_ms=21.2)])
        res = compare_runs(base, cand, metrics=["timed"])
        flagged += bool(res.regressions)
        noisy += sum(r.verdict == "too noisy to tell" for r in res.rows)
        rows += len(res.rows)
    assert flagged <= 2 and noisy >= 0.95 * rows


def test_unequal_noise_guard():
    """5 noisy samples all above 5 tight ones: Mann-Whitney says p = 0.008 and the bootstrap CI
    excludes 0, but with noise this unequal that happens 1 time in 16: too noisy, no alarm."""
    from slmbench.compare import Measure, judge

    base = Measure("tg32", "decode", "tok/s", "timed", True, None,
                   [3200.0, 3210.0, 3190.0, 3205.0, 3195.0])
    cand = Measure("tg32", "decode", "tok/s", "timed", True, None,
                   [3150.0, 2700.0, 2300.0, 1900.0, 1500.0])
    for m in (base, cand):
        m.value = float(np.median(m.samples))
    row = judge(base, cand, 0.05, 0.01)
    assert row.p_value < 0.01 and row.ci_high_pct < 0 and row.change_pct < -5
    assert row.p_welch > 0.01
    assert row.verdict == "too noisy to tell" and not row.regression and "Welch" in row.note
    # the same shift with equal (small) noise is a regression
    cand.samples = [x * 0.7 for x in base.samples]
    cand.value = float(np.median(cand.samples))
    row = judge(base, cand, 0.05, 0.01)
    assert row.verdict == "slower" and row.regression and row.p_welch < 0.01


def test_too_few_samples_says_so(tmp_path):
    rng = np.random.default_rng(5)
    # 3 + 3 repetitions, 30 % slower: the smallest Mann-Whitney p is 0.1, never < 0.01
    a = write_run(tmp_path, "a", [make_record(rng, n=3)])
    b = write_run(tmp_path, "b", [make_record(rng, n=3, tg_ms=13.0)])
    res = compare_runs(read_run(a), read_run(b), metrics=["decode"])
    row = next(r for r in res.rows if r.metric == "decode")
    assert row.verdict == "too noisy to tell" and "add repetitions" in row.note
    # with alpha 0.2 the same data is significant
    res = compare_runs(read_run(a), read_run(b), alpha=0.2, metrics=["decode"])
    assert verdicts(res)[("tg32", "decode")] == "slower"
    a2 = write_run(tmp_path, "a2", [make_record(rng, n=2)])
    res = compare_runs(read_run(a2), read_run(b), metrics=["decode"])
    assert verdicts(res)[("tg32", "decode")] == "too noisy to tell"


def test_summaries_without_raw_samples_are_compared_by_value(tmp_path):
    """A llama-bench csv import keeps only avg/stddev: a value, never a verdict."""
    rng = np.random.default_rng(9)
    rec = make_record(rng)
    for t in rec.tests:
        t.samples_ns, t.samples_ts, t.token_ms = [], [], None
        t.ts = summarize([1000.0, 1010.0, 990.0])
        t.ts.n, t.ts.median = 0, None  # what the csv importer writes
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [rec])
    res = compare_runs(a, b, metrics=["decode", "prefill"])
    assert {r.metric for r in res.rows} == {"decode", "prefill"}
    for r in res.rows:
        assert r.cand == pytest.approx(1000.0) and r.n_cand == 0
        assert r.verdict == "too noisy to tell" and "no raw samples" in r.note


def test_seeded_statistics_are_reproducible(tmp_path):
    rng = np.random.default_rng(10)
    a = write_run(tmp_path, "a", [make_record(rng, cv=0.05)])
    b = write_run(tmp_path, "b", [make_record(rng, cv=0.05, tg_ms=10.5)])
    first, second = compare_runs(a, b), compare_runs(a, b)
    assert [(r.ci_low_pct, r.ci_high_pct, r.p_value) for r in first.rows] == \
        [(r.ci_low_pct, r.ci_high_pct, r.p_value) for r in second.rows]


def test_memory_growth_caught(tmp_path, capsys):
    rng = np.random.default_rng(4)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, kv=110.0)])
    assert main(["compare", a, b, "--metric", "memory", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    kv = next(r for r in data["rows"] if r["metric"] == "kv_mib")
    assert kv["verdict"] == "worse" and kv["regression"] and kv["change_pct"] == pytest.approx(10)
    assert data["regressions"] == 1 and data["summary"]["worse"] == 1
    assert {r["metric"] for r in data["rows"]} == {"peak_rss_mib", "model_mib", "kv_mib",
                                                   "compute_mib", "output_mib", "other_mib"}
    # shrinking memory is better, not a regression; growth under 1 MiB is rounding
    c = write_run(tmp_path, "c", [make_record(rng, kv=90.0)])
    assert verdicts(compare_runs(a, c))[("memory", "kv_mib")] == "better"
    small = make_record(rng)
    small.memory.output_mib = 0.9  # +80 % but 0.4 MiB
    d = write_run(tmp_path, "d", [small])
    row = next(r for r in compare_runs(a, d).rows if r.metric == "output_mib")
    assert row.verdict == "same" and "floor" in row.note


def test_unmatched_configs_and_tests_listed_markdown(tmp_path, capsys):
    rng = np.random.default_rng(5)
    only_tg = make_record(rng, model="m", quant="Q8_0", threads=4)
    only_tg.tests = [t for t in only_tg.tests if t.test == "tg"]
    a = write_run(tmp_path, "a", [make_record(rng), make_record(rng, quant="Q4_0"),
                                  make_record(rng, threads=4)])
    # repetitions differ (n=6 vs 8): still the same config
    b = write_run(tmp_path, "b", [make_record(rng, n=6), make_record(rng, model="other"),
                                  only_tg])
    res = compare_runs(read_run(a), read_run(b))
    assert res.unmatched_base == ["m:Q4_0 t=2"]
    assert res.unmatched_cand == ["other:Q8_0 t=2"]
    assert res.unmatched_tests_base == ["m:Q8_0 t=4 pp64", "m:Q8_0 t=4 ttft64"]
    assert res.unmatched_tests_cand == []
    assert {r.config for r in res.rows} == {"m:Q8_0 t=2", "m:Q8_0 t=4"}
    assert main(["compare", a, b, "--md"]) == 0
    md = capsys.readouterr().out
    lines = md.splitlines()
    assert lines[0].startswith("### slmbench compare: `a` → `b`")
    header = next(i for i, line in enumerate(lines) if line.startswith("| config |"))
    assert set(lines[header + 1]) <= set("|-:")
    table = [line for line in lines[header:] if line.startswith("|")]
    assert len(table) == 2 + len(res.rows)
    assert all(line.count("|") == 11 for line in table)
    assert "Configs only in base: `m:Q4_0 t=2`" in md and "`m:Q8_0 t=4 pp64`" in md


def test_json_output_parses(tmp_path, capsys):
    rng = np.random.default_rng(6)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, tg_ms=13.0)])
    assert main(["compare", a, b, "--json", "--threshold", "3%", "--alpha", "0.05"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["threshold"] == pytest.approx(0.03) and data["alpha"] == 0.05
    assert data["base_run"] == "a" and data["cand_run"] == "b"
    row = next(r for r in data["rows"] if r["metric"] == "decode")
    assert row["verdict"] == "slower" and row["unit"] == "tok/s" and row["n_base"] == 8
    assert row["ci_low_pct"] < row["change_pct"] < row["ci_high_pct"] < 0
    assert data["regressions"] == sum(r["regression"] for r in data["rows"]) >= 1
    assert "Mann-Whitney" in data["legend"]


def test_failed_in_candidate_is_a_regression(tmp_path, capsys):
    rng = np.random.default_rng(7)
    a = write_run(tmp_path, "a", [make_record(rng), make_record(rng, quant="Q4_0")])
    b = write_run(tmp_path, "b", [make_record(rng), make_record(rng, quant="Q4_0",
                                                                status="failed")])
    res = compare_runs(a, b)
    failed = [r for r in res.rows if r.verdict == "failed"]
    assert len(failed) == 1 and failed[0].regression and failed[0].note == "boom"
    assert main(["compare", a, b]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bad_input_exit_2_with_one_line(tmp_path, capsys):
    rng = np.random.default_rng(8)
    a = write_run(tmp_path, "a", [make_record(rng)])
    b = write_run(tmp_path, "b", [make_record(rng, model="x")])
    (tmp_path / "empty").mkdir()
    cases = {
        "missing": ["compare", a, str(tmp_path / "missing")],
        "not a run": ["compare", a, str(tmp_path / "empty")],
        "no matching": ["compare", a, b],
        "threshold": ["compare", a, a, "--threshold", "abc"],
        "between": ["compare", a, a, "--threshold", "150%"],
        "alpha": ["compare", a, a, "--alpha", "2"],
        "unknown metric": ["compare", a, a, "--metric", "speedz"],
    }
    for expected, argv in cases.items():
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("slmbench compare: error:"), err
        assert expected in err, (expected, err)
    assert main(["compare", a, a, "--alpha", "x"]) == 2  # argparse's own one-line error
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_parse_threshold_and_metrics():
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("0.05") == pytest.approx(0.05)
    assert parse_threshold("5") == pytest.approx(0.05)
    for bad in ("abc", "0", "-3%", "100%", "nan", ""):
        with pytest.raises(SlmbenchError):
            parse_threshold(bad)
    assert parse_metrics(["decode"]) == {"decode", "decode_p90"}
    assert parse_metrics(["TTFT", "kv"]) == {"ttft", "kv_mib"}
    assert parse_metrics(["p90"]) == {"decode_p90"}
    assert parse_metrics(["kl"]) == {"kl_mean", "kl_p99"}
    assert "peak_rss_mib" in parse_metrics(["memory"]) and "ppl" in parse_metrics(["quality"])
    with pytest.raises(SlmbenchError):
        parse_metrics(["nope"])


def test_statistics_match_a_reference():
    from scipy import stats as sst

    base = [10.0, 10.2, 9.9, 10.1, 10.05, 9.95]
    cand = [11.0, 11.3, 10.9, 11.1, 11.2, 10.95]
    assert mann_whitney_p(base, cand) == pytest.approx(
        sst.mannwhitneyu(base, cand, alternative="two-sided").pvalue)
    # complete separation is the smallest exact p: 2 / C(12, 6)
    assert mann_whitney_p(base, cand) == pytest.approx(2 / math.comb(12, 6))
    assert mann_whitney_min_p(6, 6) == pytest.approx(2 / 924)
    assert mann_whitney_min_p(3, 3) == pytest.approx(0.1)
    for n1, n2 in ((3, 4), (5, 5), (4, 7)):
        separated = sst.mannwhitneyu(list(range(n1)), list(range(10, 10 + n2)),
                                     alternative="two-sided", method="exact").pvalue
        assert mann_whitney_min_p(n1, n2) == pytest.approx(separated)

    assert welch_log_p(base, cand) == pytest.approx(
        sst.ttest_ind(np.log(cand), np.log(base), equal_var=False).pvalue)
    assert welch_log_p([2.0, 2.0], [3.0, 3.0]) == 0.0 and welch_log_p([2.0, 2.0], [2.0, 2.0]) == 1
    assert math.isnan(welch_log_p([1.0], [2.0, 3.0])) and math.isnan(welch_log_p([0, 1], [1, 2]))

    lo, hi = bootstrap_ratio_ci(base, cand, n_boot=4000, seed=1)
    # reference: the percentile bootstrap written out by hand (base indices drawn first)
    b, c = np.array(base), np.array(cand)
    rng = np.random.default_rng(1)
    bi, ci = rng.integers(0, 6, (4000, 6)), rng.integers(0, 6, (4000, 6))
    ratios = np.median(c[ci], axis=1) / np.median(b[bi], axis=1) - 1
    assert lo == pytest.approx(np.percentile(ratios, 2.5))
    assert hi == pytest.approx(np.percentile(ratios, 97.5))
    assert 0.05 < lo < hi < 0.15  # the true change is +10 %


def test_pooled_bootstrap_matches_a_loop_and_resamples_repetitions():
    rng = np.random.default_rng(3)
    base = [list(rng.normal(10, 1, 16)) for _ in range(5)]
    cand = [list(rng.normal(12, 1, 16)) for _ in range(5)]
    lo, hi = bootstrap_pooled_ratio_ci(base, cand, q=90, n_boot=500, seed=4)
    ref_rng = np.random.default_rng(4)

    def boot(groups):
        idx = ref_rng.integers(0, len(groups), (500, len(groups)))
        return np.array([np.percentile(np.concatenate([groups[i] for i in row]), 90)
                         for row in idx])

    ratios = boot(base)
    ratios = boot(cand) / ratios - 1
    assert (lo, hi) == (pytest.approx(np.percentile(ratios, 2.5)),
                        pytest.approx(np.percentile(ratios, 97.5)))
    # ragged repetitions take the loop path and give a sane interval
    ragged = base[:4] + [base[4][:10]]
    lo2, hi2 = bootstrap_pooled_ratio_ci(ragged, cand, n_boot=300)
    assert 0.1 < lo2 < hi2 < 0.35


def test_quality_regression_caught(tmp_path, capsys):
    def rec(ppl, kl, top1=90.0):
        return Record(record_id="q", run_id="r", model_id="m", quant="Q4_K_M", device="cpu-test",
                      settings=Settings(n_ctx=512), tests=[TestResult(
                          test="quality", name="quality@512",
                          metrics={"ppl": ppl, "kl_mean": kl, "top1_pct": top1, "n_ctx": 512})])
    a = write_run(tmp_path, "a", [rec(10.0, 0.010)])
    b = write_run(tmp_path, "b", [rec(10.1, 0.020)])
    res = compare_runs(read_run(a), read_run(b))
    assert {r.metric: r.verdict for r in res.rows} == {"ppl": "same", "kl_mean": "worse",
                                                       "top1_pct": "same"}
    assert main(["compare", a, b]) == 1
    capsys.readouterr()
    c = write_run(tmp_path, "c", [rec(11.0, 0.0104, 80.0)])  # KL +4 %: within the threshold
    res = compare_runs(a, c)
    assert {r.metric: r.verdict for r in res.rows} == {"ppl": "worse", "kl_mean": "same",
                                                       "top1_pct": "worse"}
    # near-zero KL: +50 % but 0.0002 nats is below the absolute floor
    d = write_run(tmp_path, "d", [rec(10.0, 0.0004)])
    e = write_run(tmp_path, "e", [rec(10.0, 0.0006)])
    assert main(["compare", d, e, "--metric", "kl"]) == 0
