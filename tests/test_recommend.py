"""Workload presets, targets and `slmbench recommend`.

Most tests plant records with known values and spreads (five samples m - 2d .. m + 2d: mean m,
95% CI m +- 1.963 d) in real run directories and check each verdict rule; a few run the tiny
synthetic model for the parts that touch llama.cpp (the plan's tests, per-window quality,
`run --targets` exit codes).
"""

from __future__ import annotations

import json
import math

import pytest

from slmbench import config
from slmbench.cli import main
from slmbench.config import Target, TestPlan, config_id, parse_targets, workload_shape
from slmbench.errors import ConfigError
from slmbench.verdict import (Estimate, judge, load_targets, recommend, score, workload_perf)
from slmbench.results import append_record, read_run, write_json_atomic
from slmbench.schema import (Memory, ModelFacts, QualityInput, QualityMetrics, Record, Settings,
                             TestResult)
from slmbench.stats import paired_test, summarize

HALF = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # CI half-width per unit d of five samples


def five(mean: float, d: float) -> list[float]:
    return [mean - 2 * d, mean - d, mean, mean + d, mean + 2 * d]


def timed(kind: str, p: int, g: int, depth: int, ms: list[float]) -> TestResult:
    n = p if kind != "tg" else g
    return TestResult(test=kind, name=config.test_name(kind, p, g, depth), n_prompt=p,
                      n_gen=g, n_depth=depth, samples_ns=[int(x * 1e6) for x in ms],
                      samples_ts=[n * 1e3 / x for x in ms], ms=summarize(ms),
                      ts=summarize([n * 1e3 / x for x in ms]))


def timing(model="m", quant="Q8_0", *, device="dev-a", threads=2, ttft=(400.0, 5.0),
           token_ms=(20.0, 0.2), rss=1000.0, p=512, g=128, extra=(), status="ok") -> Record:
    """A timing record with the chat tests: ttft512 (mean ttft[0] ms) and tg128@d512 (mean
    token_ms[0] per token)."""
    tests = [timed("ttft", p, 1, 0, five(*ttft)),
             timed("tg", 0, g, p, five(token_ms[0] * g, token_ms[1] * g)), *extra]
    return Record(record_id=f"{model}-{quant}-{threads}-{device}", run_id="r", status=status,
                  reason="out of memory" if status == "failed" else None, model_id=model,
                  quant=quant, device=device,
                  settings=Settings(n_threads=threads, n_threads_batch=threads, repetitions=5),
                  memory=Memory(n_ctx=1024, model_mib=rss / 2, kv_mib=10, compute_mib=10,
                                output_mib=1, peak_rss_mib=rss, other_mib=0, kv_share=0.01)
                  if status == "ok" else None,
                  tests=tests if status == "ok" else [],
                  model=ModelFacts(path=f"/x/{model}-{quant}.gguf",
                                   file_name=f"{model}-{quant}.gguf", file_size_bytes=1,
                                   model_size_bytes=1, n_params=1,
                                   bits_per_weight={"F16": 16, "Q8_0": 8.5}.get(quant, 4.5),
                                   file_type=quant, architecture="llama", name=model,
                                   n_vocab=1, n_layer=1, n_embd=1, n_head=1, n_head_kv=1,
                                   n_embd_head_k=1, n_embd_head_v=1, n_ff=1, n_ctx_train=1,
                                   kv_bytes_per_token_f16=1, kv_bytes_per_token_q8_0=1))


def quality(model="m", quant="Q8_0", *, device="dev-a", windows=(1.0, 1.02, 0.98, 1.01, 0.99),
            ref_windows=None, kl=None, reference=None) -> Record:
    """A quality record: mean NLL per window ``windows`` (nats); 100 tokens and 50 bytes per
    window; with ``ref_windows`` / ``kl`` the reference's NLL and the KL per window."""
    w = list(windows)
    n_tok, n_bytes = 100 * len(w), 50 * len(w)
    nll = sum(w) / len(w)
    m = QualityMetrics(nll=nll, ppl=math.exp(nll), ppl_err=0.01,
                       bits_per_byte=nll * n_tok / math.log(2) / n_bytes, n_tokens=n_tok,
                       n_bytes=n_bytes, n_windows=len(w), n_ctx=256, window_nll=w)
    if ref_windows is not None:
        rn = sum(ref_windows) / len(ref_windows)
        m.ref_ppl, m.ref_ppl_err, m.window_ref_nll = math.exp(rn), 0.01, list(ref_windows)
        m.delta_ppl = m.ppl - m.ref_ppl
    if kl is not None:
        m.kl_mean, m.kl_mean_err, m.window_kl = sum(kl) / len(kl), 0.0001, list(kl)
        m.top1_pct, m.top1_err = 95.0, 0.5
    rec = timing(model, quant, device=device)
    rec.record_id += "-quality"
    rec.settings = Settings(n_threads=0, n_ctx=256, prompt="text", repetitions=1, warmup=0)
    rec.memory = None
    rec.tests = [TestResult(test="quality", name="quality@256", metrics=m)]
    rec.quality_input = QualityInput(corpus="c.txt", corpus_sha256="abc", reference=reference)
    return rec


def write_run(tmp_path, name, records, device="dev-a"):
    d = tmp_path / name
    d.mkdir()
    for r in records:
        append_record(d, r)
    write_json_atomic(d / "env.json", {"device": {"label": device}})
    return str(d)


CHAT = {"ttft_ms": {"chat": 1000}, "decode_tps": {"chat": 10}}


def decision(res, device="dev-a", workload="chat"):
    dr = next(d for d in res.devices if d.device == device)
    return next(d for d in dr.decisions if d.workload == workload)


def candidate(res, label, device="dev-a"):
    dr = next(d for d in res.devices if d.device == device)
    return next(c for c in dr.candidates if c.label == label)


# --------------------------------------------------------------------------- presets, plans

def test_presets_and_custom_shapes():
    assert workload_shape("chat") == (512, 128)
    assert workload_shape("autocomplete") == (64, 16)
    assert workload_shape("summarize") == (2048, 256)
    assert workload_shape("rag") == (4096, 128)
    assert workload_shape("1024/64") == (1024, 64)
    assert workload_shape("0/64") is None and workload_shape("chatty") is None


def test_plan_adds_exactly_the_workload_tests_and_keeps_old_ids():
    plan = TestPlan([64], [16], [0], True)
    rid = config_id("m:Q8_0", Settings(), plan)
    same = TestPlan([64], [16], [0], True, None)
    assert config_id("m:Q8_0", Settings(), same) == rid  # null workloads: the id is unchanged
    plan.workloads = [[512, 128], [64, 16]]
    names = [config.test_name(*t) for t in plan.tests()]
    # the lists' tests, then ttft512 and tg128@d512; chat's shape is not crossed with -p/-n
    # and autocomplete's ttft64 is not measured twice
    assert names == ["pp64", "ttft64", "tg16", "ttft512", "tg128@d512", "tg16@d64"]
    assert plan.n_ctx_needed() == 640
    assert config_id("m:Q8_0", Settings(), plan) != rid


def test_suite_workloads_and_targets(tmp_path):
    from slmbench.suite import expand, parse_suite

    targets = tmp_path / "t.yaml"
    targets.write_text("e2e_s: {summarize: 20}\npeak_rss_mib: 2048\n")
    model = tmp_path / "m-Q8_0.gguf"
    model.write_bytes(b"")
    suite = parse_suite({"models": [{"path": str(model)}], "n_prompt": [64], "n_gen": [16],
                         "workloads": "chat"}, overrides={"targets": str(targets)})
    assert suite.values["workloads"] == ["chat", "summarize"]  # the targets add theirs
    assert suite.values["targets"] == {"e2e_s": {"summarize": 20}, "peak_rss_mib": 2048}
    plan = expand(suite)[0].plan
    assert plan.workloads == [[512, 128], [2048, 256]]
    # the suite as the manifest keeps it reads back to the same configs
    again = parse_suite(suite.to_dict())
    assert [c.record_id for c in expand(again)] == [c.record_id for c in expand(suite)]


@pytest.mark.parametrize("raw, message", [
    ({"ttft": {"chat": 1}}, "unknown metric 'ttft' (known: ttft_ms, decode_tps"),
    ({"ttft_ms": {"chatt": 1}}, "unknown workload 'chatt' (known: autocomplete, chat, "
                                "summarize, rag"),
    ({"ttft_ms": 1000}, "ttft_ms: name the workload, e.g. ttft_ms: {chat: 1000}"),
    ({"peak_rss_mib": {"chat": 1}}, "one limit for the whole config"),
    ({"kl_mean": "small"}, "kl_mean: expected a number"),
    ([1, 2], "expected a mapping of metric: limit"),
])
def test_bad_targets_name_the_problem(raw, message):
    _targets, problems = parse_targets(raw)
    assert problems and message in problems[0]
    with pytest.raises(ConfigError, match="^[^\n]*$") as exc:
        load_targets(raw)
    assert message in str(exc.value)


def test_targets_file_and_suite_problems(tmp_path):
    from slmbench.suite import parse_suite

    model = tmp_path / "m-Q8_0.gguf"
    model.write_bytes(b"")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ttft_ms: {chat: 1000\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_targets(str(bad))
    with pytest.raises(ConfigError, match="no such file"):
        load_targets(str(tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match="kl_mean needs quality tests with a KL reference"):
        parse_suite({"models": [{"path": str(model)}], "targets": {"kl_mean": 0.02}})
    with pytest.raises(ConfigError, match="bits_per_byte needs quality tests"):
        parse_suite({"models": [{"path": str(model)}], "targets": {"bits_per_byte": 2}})
    with pytest.raises(ConfigError, match="unknown workload 'lunch'"):
        parse_suite({"models": [{"path": str(model)}], "workloads": ["lunch"]})


# --------------------------------------------------------------------------- verdict rules

@pytest.mark.parametrize("bound_metric, limit, est, verdict, margin", [
    ("ttft_ms", 1000, Estimate(800, 780, 820), "pass", 20.0),
    ("ttft_ms", 1000, Estimate(1120, 1100, 1140), "fail", -12.0),
    ("ttft_ms", 1000, Estimate(990, 960, 1020), "uncertain", 1.0),  # the limit in the CI
    ("ttft_ms", 1000, Estimate(1010, 980, 1040), "uncertain", -1.0),
    ("ttft_ms", 1000, Estimate(1000, 1000, 1000), "pass", 0.0),  # at the limit passes
    ("ttft_ms", 1000, Estimate(990), "pass", 1.0),  # no CI: the value decides
    ("decode_tps", 10, Estimate(12, 11, 13), "pass", 20.0),
    ("decode_tps", 10, Estimate(8, 7, 9), "fail", -20.0),
    ("decode_tps", 10, Estimate(10.5, 9.5, 11.5), "uncertain", 5.0),
    ("decode_tps", 10, None, "missing", None),
])
def test_judge(bound_metric, limit, est, verdict, margin):
    wl = "chat" if bound_metric in ("ttft_ms", "decode_tps") else None
    c = judge(Target(bound_metric, limit, wl), est)
    assert c.verdict == verdict
    assert c.margin_pct == (pytest.approx(margin) if margin is not None else None)


def test_e2e_uses_decode_at_the_workload_depth():
    rec = timing(ttft=(400.0, 5.0), token_ms=(20.0, 0.2),
                 extra=[timed("tg", 0, 128, 0, five(128 * 5.0, 1.0))])  # fast at depth 0
    tests = {t.name: t for t in rec.tests}
    perf = workload_perf(tests, "chat")
    assert perf.ttft_ms.value == pytest.approx(400.0)
    assert perf.token_ms.value == pytest.approx(20.0)  # tg128@d512, not tg128
    assert perf.e2e_s.value == pytest.approx((400.0 + 127 * 20.0) / 1000)
    h_ttft, h_tok = 5.0 * HALF, 127 * 0.2 * HALF
    assert perf.e2e_s.high - perf.e2e_s.value == pytest.approx(
        math.hypot(h_ttft, h_tok) / 1000, rel=1e-4)
    assert perf.decode_tps.value == pytest.approx(
        sum(128e3 / x for x in five(2560, 25.6)) / 5)
    assert perf.tokens_per_s == pytest.approx(128 / perf.e2e_s.value)
    missing = workload_perf(tests, "rag")
    assert missing.e2e_s is None and missing.missing == ["ttft4096", "tg128@d4096"]


def test_score_is_the_geometric_mean_of_end_to_end_rates():
    from slmbench.verdict import WorkloadPerf

    perfs = {"chat": WorkloadPerf("chat", 512, 128, tokens_per_s=10.0),
             "rag": WorkloadPerf("rag", 4096, 128, tokens_per_s=40.0)}
    assert score(perfs, ["chat", "rag"]) == pytest.approx(20.0)
    assert score(perfs, ["chat", "summarize"]) is None  # a workload not measured


# --------------------------------------------------------------------------- recommendations

def test_best_quality_among_passing_and_uncertain_is_not_a_pass(tmp_path):
    recs = [
        timing("m", "F16", ttft=(900.0, 100.0), rss=3000),  # CI contains 1000: uncertain
        timing("m", "Q8_0", ttft=(500.0, 5.0), rss=1800),
        timing("m", "Q4_K_M", ttft=(300.0, 5.0), rss=1200),
        timing("m", "Q2_K", ttft=(1300.0, 5.0), rss=900),  # fails TTFT
        quality("m", "F16", windows=[1.0, 1.1, 0.9, 1.05, 0.95]),
        quality("m", "Q8_0", windows=[1.01, 1.11, 0.91, 1.06, 0.96]),
        quality("m", "Q4_K_M", windows=[1.10, 1.21, 1.0, 1.16, 1.05]),
        quality("m", "Q2_K", windows=[1.5, 1.6, 1.4, 1.55, 1.45]),
    ]
    res = recommend([write_run(tmp_path, "a", recs)], CHAT)
    d = decision(res)
    assert candidate(res, "m:F16").verdict == "uncertain"
    f16_ttft = candidate(res, "m:F16").checks[0]
    assert (f16_ttft.verdict, f16_ttft.ci_low < 1000 < f16_ttft.ci_high) == ("uncertain", True)
    assert candidate(res, "m:Q2_K").verdict == "fail"
    assert d.passing == ["m:Q4_K_M", "m:Q8_0"] and d.uncertain == ["m:F16"]
    # Q8_0 is +0.01 nats on every window: significantly better than Q4_K_M's +0.1
    assert d.recommended == "m:Q8_0"
    assert "bits/byte" in d.reason and "best quality" in d.reason
    assert d.quality_metric == "bits_per_byte"


def test_quality_tie_goes_to_memory_then_speed(tmp_path):
    # Q8_0 and Q6_K: differences within the window noise (paired t not significant) -> tie;
    # Q6_K needs less memory; the two thread counts of Q6_K share its quality record and
    # memory, so the faster one (4 threads) wins
    recs = [
        timing("m", "Q8_0", ttft=(500.0, 5.0), rss=1800),
        timing("m", "Q6_K", threads=2, ttft=(600.0, 5.0), rss=1500),
        timing("m", "Q6_K", threads=4, ttft=(450.0, 5.0), rss=1505),
        quality("m", "Q8_0", windows=[1.0, 1.1, 0.9, 1.05, 0.95]),
        quality("m", "Q6_K", windows=[1.002, 1.098, 0.903, 1.049, 0.951]),
    ]
    res = recommend([write_run(tmp_path, "a", recs)], CHAT)
    d = decision(res)
    assert d.recommended == "m:Q6_K t=4 tb=4"
    assert set(d.ties) == {"m:Q8_0 t=2 tb=2", "m:Q6_K t=2 tb=2"}
    assert "ties broken by memory then speed" in d.reason


def test_significant_quality_difference_is_not_a_tie(tmp_path):
    # Q6_K worse by 0.01 nats on every window: tiny, but paired over the same windows it is
    # significant, so the better Q8_0 wins despite more memory
    recs = [timing("m", "Q8_0", rss=1800), timing("m", "Q6_K", rss=1500),
            quality("m", "Q8_0", windows=[1.0, 1.1, 0.9, 1.05, 0.95]),
            quality("m", "Q6_K", windows=[1.01, 1.111, 0.909, 1.06, 0.961])]
    d = decision(recommend([write_run(tmp_path, "a", recs)], CHAT))
    assert d.recommended == "m:Q8_0" and d.ties == []


def test_paired_test_sees_what_unpaired_errors_hide():
    base = [1.0, 1.3, 0.7, 1.2, 0.8, 1.1]
    cand = [x + 0.01 for x in base]
    t = paired_test(base, cand)
    assert t["mean"] == pytest.approx(0.01) and t["low"] > 0 and t["p_t"] < 1e-6
    assert t["p_wilcoxon"] < 0.05


def test_kl_when_there_is_no_bits_per_byte(tmp_path):
    q8 = quality("m", "Q8_0", kl=[0.010, 0.012, 0.011, 0.009, 0.010], reference="m-F16.gguf",
                 ref_windows=[1.0] * 5)
    q4 = quality("m", "Q4_K_M", kl=[0.050, 0.052, 0.049, 0.051, 0.048],
                 reference="m-F16.gguf", ref_windows=[1.0] * 5)
    for q in (q8, q4):
        q.tests[0].metrics.bits_per_byte = None
    recs = [timing("m", "Q8_0", rss=1800), timing("m", "Q4_K_M", rss=1200), q8, q4]
    d = decision(recommend([write_run(tmp_path, "a", recs)], {**CHAT, "kl_mean": 0.02}))
    assert d.quality_metric == "kl_mean" and d.recommended == "m:Q8_0"


def test_nothing_passes_names_the_closest_misses(tmp_path):
    recs = [timing("big", "Q8_0", ttft=(1120.0, 5.0), token_ms=(200.0, 0.5), rss=3000),
            timing("big", "Q4_K_M", ttft=(1600.0, 5.0), token_ms=(30.0, 0.3), rss=2000)]
    res = recommend([write_run(tmp_path, "a", recs)], CHAT)
    d = decision(res)
    assert d.recommended is None and d.passing == []
    assert d.reason == "nothing passes every target"
    assert [m.label for m in d.closest] == ["big:Q8_0", "big:Q4_K_M"]
    first = d.closest[0].misses
    assert any(s.startswith("misses ttft_ms[chat] by 12% (1,120 ms, limit <= 1,000 ms): "
                            "needs 11% lower") for s in first)
    assert any(s.startswith("misses decode_tps[chat] by 50%") and "needs 100% higher" in s
               for s in first)
    assert "closest: big:Q8_0" in res_text(res)


def res_text(res):
    from slmbench.verdict import render_text

    return render_text(res)


def test_pareto_front(tmp_path):
    # A: best quality, slow, big; B: fast, small, worse quality; C: dominated by B on every
    # axis; D: as fast as B but bigger and worse quality than B -> dominated
    recs = [timing("m", "A", ttft=(900.0, 1.0), rss=3000), timing("m", "B", ttft=(300.0, 1.0),
                                                                 rss=1000),
            timing("m", "C", ttft=(400.0, 1.0), rss=1200), timing("m", "D", ttft=(300.0, 1.0),
                                                                 rss=1100),
            quality("m", "A", windows=[1.0] * 2 + [1.01] * 3),
            quality("m", "B", windows=[1.2] * 2 + [1.21] * 3),
            quality("m", "C", windows=[1.3] * 2 + [1.31] * 3),
            quality("m", "D", windows=[1.25] * 2 + [1.26] * 3)]
    d = decision(recommend([write_run(tmp_path, "a", recs)], CHAT))
    assert d.pareto == ["m:A", "m:B"]


def test_failed_config_is_failed_and_devices_side_by_side(tmp_path):
    a = write_run(tmp_path, "a", [timing("m", "Q8_0", device="laptop", ttft=(200.0, 1.0)),
                                  timing("m", "Q4_K_M", device="laptop", ttft=(150.0, 1.0))],
                  device="laptop")
    b = write_run(tmp_path, "b", [timing("m", "Q8_0", device="phone", ttft=(800.0, 1.0),
                                         token_ms=(120.0, 0.5)),
                                  timing("m", "Q4_K_M", device="phone", status="failed")],
                  device="phone")
    res = recommend([a, b], CHAT)
    assert [d.device for d in res.devices] == ["laptop", "phone"]
    assert candidate(res, "m:Q4_K_M", "phone").verdict == "failed"
    assert ("phone", "m:Q4_K_M") in res.failed_configs
    assert ("phone", "m:Q8_0") in res.failed_configs  # 1000 / 120 ms = 8.3 tokens/s < 10
    assert decision(res, "laptop").recommended == "m:Q4_K_M"  # no quality: memory, speed
    text = res_text(res)
    assert "score by device" in text and "best score" in text
    lap, ph = (candidate(res, "m:Q8_0", d).score for d in ("laptop", "phone"))
    assert lap > ph
    data = json.loads(json.dumps(__import__("slmbench.verdict",
                                            fromlist=["x"]).to_json_dict(res)))
    assert data["devices"][0]["decisions"][0]["recommended"] == "m:Q4_K_M"


def test_increase_against_the_reference_and_the_reference_itself(tmp_path):
    ref_w = [1.0, 1.1, 0.9, 1.05, 0.95]
    q4_w = [x * 1.04 for x in ref_w]  # +4 % NLL = +4 % bits per byte on the same bytes
    recs = [timing("m", "F16", rss=3000), timing("m", "Q4_K_M", rss=1200),
            quality("m", "F16", windows=ref_w),
            quality("m", "Q4_K_M", windows=q4_w, ref_windows=ref_w,
                    kl=[0.03] * 5, reference="m-F16.gguf")]
    res = recommend([write_run(tmp_path, "a", recs)],
                    {"bits_per_byte_increase_pct": 3, "kl_mean": 0.02})
    q4 = {c.metric: c for c in candidate(res, "m:Q4_K_M").checks}
    assert q4["bits_per_byte_increase_pct"].value == pytest.approx(4.0)
    assert q4["bits_per_byte_increase_pct"].verdict == "fail"  # every window is +4 %
    assert q4["kl_mean"].verdict == "fail"
    f16 = {c.metric: c for c in candidate(res, "m:F16").checks}
    assert f16["kl_mean"].value == 0.0 and f16["bits_per_byte_increase_pct"].value == 0.0
    assert decision(res).recommended == "m:F16"


def test_increase_against_a_separate_record_of_the_model(tmp_path):
    # no KL reference anywhere: the highest-precision quant scored is the base, paired
    ref_w = [1.0, 1.1, 0.9, 1.05, 0.95]
    recs = [timing("m", "Q8_0"), timing("m", "Q4_0"),
            quality("m", "Q8_0", windows=ref_w),
            quality("m", "Q4_0", windows=[x + 0.02 for x in ref_w])]
    res = recommend([write_run(tmp_path, "a", recs)], {"ppl_increase_pct": 1})
    c = candidate(res, "m:Q4_0").checks[0]
    assert c.value == pytest.approx(100 * math.expm1(0.02)) and c.verdict == "fail"
    assert "paired t over 5 windows" in c.method
    assert candidate(res, "m:Q8_0").checks[0].value == 0.0


def test_missing_metric_is_missing_not_pass(tmp_path):
    res = recommend([write_run(tmp_path, "a", [timing("m", "Q8_0")])],
                    {"kl_mean": 0.02, "e2e_s": {"rag": 30}})
    checks = {c.target: c for c in candidate(res, "m:Q8_0").checks}
    assert checks["kl_mean"].verdict == "missing"
    assert "ttft4096" in checks["e2e_s[rag]"].note
    assert candidate(res, "m:Q8_0").verdict == "uncertain"
    assert decision(res, workload="rag").recommended is None


def test_workload_option_restricts_the_targets(tmp_path):
    res = recommend([write_run(tmp_path, "a", [timing("m", "Q8_0")])],
                    {"ttft_ms": {"chat": 1000, "rag": 5000}}, workloads="chat")
    assert res.workloads == ["chat"] and res.targets == ["ttft_ms[chat] <= 1000 ms"]
    assert any("rag" in n for n in res.notes)
    with pytest.raises(ConfigError, match="unknown workload 'lunch'"):
        recommend([str(tmp_path / "a")], None, workloads="lunch")


# --------------------------------------------------------------------------- command line

def test_cli_recommend(tmp_path, capsys):
    run = write_run(tmp_path, "a", [timing("m", "Q8_0"), timing("m", "Q4_K_M", rss=800)])
    targets = tmp_path / "t.yaml"
    targets.write_text("ttft_ms: {chat: 1000}\npeak_rss_mib: 2048\n")
    assert main(["recommend", run, "--targets", str(targets)]) == 0
    out = capsys.readouterr().out
    assert "chat: recommend m:Q4_K_M" in out and "peak_rss_mib" in out
    assert main(["recommend", run, "--targets", str(targets), "--md"]) == 0
    assert "## Verdict" in capsys.readouterr().out
    assert main(["recommend", run, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["workloads"] == ["chat"]
    targets.write_text("ttft: {chat: 1000}\n")
    assert main(["recommend", run, "--targets", str(targets)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown metric 'ttft'" in err


# --------------------------------------------------------------------------- compare, paired

def test_compare_judges_quality_paired_over_windows(tmp_path):
    from slmbench.compare import compare_runs

    base_w = [1.0, 1.3, 0.7, 1.2, 0.8, 1.1]
    steady = [x * 1.06 for x in base_w]  # +6 % on every window: significant
    noisy = [x * f for x, f in zip(base_w, [1.35, 0.85, 1.3, 0.9, 1.25, 0.9])]  # +5.5 %, noisy
    runs = {}
    for name, w in (("base", base_w), ("steady", steady), ("noisy", noisy)):
        q = quality("m", "Q4_K_M", windows=w)
        q.tests[0].metrics.ppl_err = 1e-6  # token-level SEs would call anything significant
        runs[name] = write_run(tmp_path, name, [q])
    res = compare_runs(runs["base"], runs["steady"], threshold=0.05)
    bpb = next(r for r in res.rows if r.metric == "bits_per_byte")
    assert bpb.verdict == "worse" and bpb.regression
    assert bpb.change_pct == pytest.approx(6.0) and bpb.n_base == 6
    assert "paired over 6 windows" in bpb.note and 0 < bpb.ci_low_pct < 6 < bpb.ci_high_pct
    res = compare_runs(runs["base"], runs["noisy"], threshold=0.05)
    bpb = next(r for r in res.rows if r.metric == "bits_per_byte")
    assert bpb.verdict == "too noisy to tell" and not bpb.regression
    assert bpb.ci_low_pct < 0 < bpb.ci_high_pct


# --------------------------------------------------------------------------- real runs

def test_quality_records_keep_per_window_values(tiny_models):
    from slmbench.quality import measure_quality

    m = measure_quality(tiny_models["Q4_0"], reference=tiny_models["F16"], n_ctx=64,
                        n_threads=2, max_windows=5).metrics
    assert len(m.window_nll) == len(m.window_ref_nll) == len(m.window_kl) == 5
    # every window scores the same number of tokens: the window means average to the totals
    assert sum(m.window_nll) / 5 == pytest.approx(m.nll, rel=1e-9)
    assert sum(m.window_kl) / 5 == pytest.approx(m.kl_mean, rel=1e-9)
    assert math.exp(sum(m.window_ref_nll) / 5) == pytest.approx(m.ref_ppl, rel=1e-9)
    plain = measure_quality(tiny_models["Q8_0"], n_ctx=64, n_threads=2, max_windows=3).metrics
    assert len(plain.window_nll) == 3 and plain.window_kl is None


def test_run_targets_exit_codes(tiny_model, tmp_path, capsys):
    """`run --targets`: 0 when every config meets them, 1 when one misses, 2 on bad input."""
    base = ["run", "--models", tiny_model, "-p", "16", "-n", "4", "-r", "3", "--warmup", "0",
            "-t", "1", "--workload", "32/8", "--results", str(tmp_path / "results")]
    loose = tmp_path / "loose.yaml"
    loose.write_text("ttft_ms: {32/8: 60000}\npeak_rss_mib: 100000\n")
    assert main(base + ["--targets", str(loose), "--run-id", "ok"]) == 0
    out = capsys.readouterr().out
    assert "32/8: recommend" in out
    run = read_run(tmp_path / "results" / "ok")
    names = {t.name for r in run.records for t in r.tests}
    assert {"ttft32", "tg8@d32", "pp16", "tg4"} <= names
    assert run.manifest.suite["targets"] == {"ttft_ms": {"32/8": 60000},
                                             "peak_rss_mib": 100000}
    tight = tmp_path / "tight.yaml"
    tight.write_text("peak_rss_mib: 1\n")
    assert main(base + ["--targets", str(tight), "--run-id", "tight"]) == 1
    captured = capsys.readouterr()
    assert "nothing passes every target" in captured.out
    assert "miss a target" in captured.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("peak_rss: 1\n")
    assert main(base + ["--targets", str(bad), "--run-id", "bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown metric 'peak_rss'" in err
    assert not (tmp_path / "results" / "bad").exists()  # nothing measured on bad input
    # the verdict of a finished run, again, from its directory
    assert main(["recommend", str(tmp_path / "results" / "tight"), "--targets",
                 str(loose)]) == 0


def test_report_starts_with_the_verdict(tmp_path):
    from slmbench.report import write_report

    recs = [timing("m", "Q8_0", rss=1800), timing("m", "Q4_K_M", rss=1200),
            quality("m", "Q8_0", windows=[1.0, 1.1, 0.9, 1.05, 0.95]),
            quality("m", "Q4_K_M", windows=[1.2, 1.3, 1.1, 1.25, 1.15])]
    run = write_run(tmp_path, "a", recs)
    paths = write_report([run], str(tmp_path / "rep"), targets={"peak_rss_mib": 1500})
    md = open(paths["markdown"], encoding="utf-8").read()
    assert md.index("## Verdict") < md.index("## Environment and method")
    assert "**chat: m:Q4_K_M**" in md and "| m:Q8_0 | 1,800 FAIL -20% |" in md
    html = open(paths["html"], encoding="utf-8").read()
    assert html.index("<h2>Verdict</h2>") < html.index("Environment and method")


def test_a_config_failed_in_one_run_and_measured_in_another_is_measured(tmp_path):
    a = write_run(tmp_path, "a", [timing("m", "Q8_0", status="failed")])
    b = write_run(tmp_path, "b", [timing("m", "Q8_0")])
    res = recommend([a, b], CHAT)
    c = candidate(res, "m:Q8_0")
    assert (c.status, c.verdict, c.run) == ("ok", "pass", "b")
    assert decision(res).recommended == "m:Q8_0"


def test_without_workloads_the_decision_is_overall(tmp_path):
    rec = timing("m", "Q8_0")
    rec.tests = [timed("tg", 0, 16, 0, five(160.0, 1.0))]  # no workload's tests
    res = recommend([write_run(tmp_path, "a", [rec])], {"peak_rss_mib": 2048})
    d = res.devices[0].decisions[0]
    assert (d.workload, d.scope, d.recommended) == (None, "overall", "m:Q8_0")
    assert d.speed_metric == "decode tokens/s"


def test_sustained_retained_pct_reads_the_primary_series():
    from types import SimpleNamespace

    from slmbench.verdict import Candidate, metric_estimate

    c = Candidate("m:Q8_0", "dev", "m", "Q8_0", {})
    target = Target("sustained_retained_pct", 80.0)
    est, why = metric_estimate(c, target)
    assert est is None and "no sustained test" in why
    c._sustained = SimpleNamespace(sustained=SimpleNamespace(
        primary="decode", decode=SimpleNamespace(retained_pct=72.5)))
    est, _ = metric_estimate(c, target)
    check = judge(target, est)
    assert (check.value, check.verdict, check.margin_pct) == (72.5, "fail", pytest.approx(-9.375))


def test_sustained_target_on_planted_records(tmp_path):
    from slmbench.schema import SustainedResult, SustainedSpeed
    from slmbench.suite import parse_suite

    def sustained(quant, retained):
        rec = timing("m", quant)
        rec.record_id += "-sustained"
        rec.tests = [TestResult(test="sustained", name="sustained:tg128:600s/10s",
                                sustained=SustainedResult(
                                    workload="tg128", primary="decode",
                                    decode=SustainedSpeed(metric="decode",
                                                          retained_pct=retained)))]
        return rec

    recs = [timing("m", "Q8_0"), timing("m", "Q4_K_M"), sustained("Q8_0", 92.0),
            sustained("Q4_K_M", 70.0)]
    res = recommend([write_run(tmp_path, "a", recs)], {"sustained_retained_pct": 80})
    assert len(res.devices[0].candidates) == 2  # sustained records are not timing configs
    assert candidate(res, "m:Q8_0").checks[0].verdict == "pass"
    q4 = candidate(res, "m:Q4_K_M").checks[0]
    assert (q4.value, q4.verdict) == (70.0, "fail")
    model = tmp_path / "m-Q8_0.gguf"
    model.write_bytes(b"")
    with pytest.raises(ConfigError, match="sustained_retained_pct needs a sustained test"):
        parse_suite({"models": [{"path": str(model)}],
                     "targets": {"sustained_retained_pct": 80}})
    parse_suite({"models": [{"path": str(model)}], "sustained": True,
                 "targets": {"sustained_retained_pct": 80}})
