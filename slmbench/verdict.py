"""Which model and quantization should ship on this device for this use: targets, verdicts,
the recommendation, the Pareto front and a composite score (``slmbench recommend``).

The rules (docs/recommend.md has them with examples):

* **A config** is one model file with one set of settings on one device (its timing record),
  joined with the quality record of the same model file on that device and its sustained
  test, if any.
* **A target** names a metric of :data:`slmbench.config.TARGET_METRICS` and a limit, per
  workload for the timed ones.  Every measured value carries its 95 % CI (Student t over the
  repetitions, over the quality windows, or llama-perplexity's standard errors).  For a limit
  the value must stay under (``max``): *pass* when the whole CI is at or under it, *fail* when
  the whole CI is above it, *uncertain* when the limit lies inside the CI (never a pass);
  without a CI the value alone decides.  A metric that was not measured is *missing*.  The
  margin is ``(limit - value) / limit`` (``max``) or ``(value - limit) / limit`` (``min``):
  positive is headroom, negative a miss by that much.
* **A workload**'s end-to-end latency is ``TTFT(P) + (G - 1) x t_tok`` with ``t_tok`` the mean
  per-token decode time of ``tgG@dP`` (G tokens decoded after P in the KV cache): the first
  token comes with the prefill, each other one needs one decode at the workload's depth.  Its
  CI half-width is the root sum of squares of the two parts' half-widths.
* **The recommendation** (per device, per workload and, with several workloads, for all of
  them at once): among the configs that pass every target, the best quality - lowest bits
  per byte, or lowest KL against its reference when no candidate has bits per byte.  Configs
  whose quality is not significantly worse than the best (paired t over the same windows,
  else the two standard errors) tie with it; ties go to the least peak memory (within
  max(1 MiB, 1 %) is a tie too), then to the fastest (lowest end-to-end latency of the
  workload; for all workloads the highest score).  When nothing passes: the closest misses
  and what would have to change.
* **The Pareto front** of quality (as above), speed (end-to-end latency, or the score) and
  peak memory: configs no other config beats on one without losing on another.
* **The score** of a config over workloads W is ``geomean_w(G_w / e2e_s_w)``: the tokens per
  second a user of each workload gets, waiting for the first one included, averaged
  geometrically so that each workload counts by ratio (twice as fast at one workload raises
  the score by the same factor whichever it is).  Secondary to the verdicts: a fast config
  that fails a target is still failed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from slmbench.compare import config_key, fmt_value, labeler
from slmbench.config import (WORKLOAD, WORKLOADS, Target, parse_targets, targets_workloads,
                             test_name, unknown_workload, workload_name, workload_shape)
from slmbench.errors import ConfigError, ResultsFormatError
from slmbench.results import Run, read_run
from slmbench.schema import QualityMetrics, Record, Stats, TestResult
from slmbench.stats import mean_ci, paired_test

Z95 = 1.959963984540054
LN2 = math.log(2)
TIE_ALPHA = 0.05  # quality differences with p >= this (or a CI containing 0) are ties
MEMORY_TIE_MIB = 1.0
MEMORY_TIE_PCT = 1.0
N_CLOSEST = 3


# --------------------------------------------------------------------------- values

@dataclass
class Estimate:
    """A measured value and its 95 % CI (None bounds: no uncertainty known)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None  # repetitions or windows behind the CI
    method: str = ""  # how the CI was made

    @property
    def has_ci(self) -> bool:
        return _finite(self.low) and _finite(self.high)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _stats_estimate(stats: Stats | None, scale: float = 1.0, what: str = "repetitions"
                    ) -> Estimate | None:
    if stats is None or not _finite(stats.mean):
        return None
    est = Estimate(stats.mean * scale, n=stats.n)
    if stats.n >= 2 and _finite(stats.ci95_low) and _finite(stats.ci95_high):
        est.low, est.high = stats.ci95_low * scale, stats.ci95_high * scale
        est.method = f"Student t over {stats.n} {what}"
    else:
        est.method = f"{stats.n} {what}: no CI"
    return est


def _ms(t: TestResult | None) -> Estimate | None:
    if t is None:
        return None
    if t.ms is None and t.samples_ns:
        from slmbench.stats import summarize

        t.ms = summarize([ns / 1e6 for ns in t.samples_ns])
    return _stats_estimate(t.ms)


def _ts(t: TestResult | None) -> Estimate | None:
    if t is None:
        return None
    if t.ts is None and t.samples_ts:
        from slmbench.stats import summarize

        t.ts = summarize(t.samples_ts)
    return _stats_estimate(t.ts)


# --------------------------------------------------------------------------- workloads

@dataclass
class WorkloadPerf:
    """One workload on one config: its tests' values and the end-to-end composite."""

    workload: str
    n_prompt: int
    n_gen: int
    ttft_ms: Estimate | None = None
    decode_tps: Estimate | None = None
    token_ms: Estimate | None = None  # mean per-token decode time at depth P
    e2e_s: Estimate | None = None
    tokens_per_s: float | None = None  # G / e2e_s: what the score averages
    missing: list[str] = field(default_factory=list)  # tests not measured


def workload_perf(tests: dict[str, TestResult], name: str) -> WorkloadPerf:
    """The end-to-end latency of workload ``name`` from a config's tests (module doc)."""
    p, g = workload_shape(name) or (0, 0)
    ttft_name, tg_name = test_name("ttft", p, 1, 0), test_name("tg", 0, g, p)
    perf = WorkloadPerf(workload_name(name), p, g)
    ttft, tg = tests.get(ttft_name), tests.get(tg_name)
    perf.missing = [n for n, t in ((ttft_name, ttft), (tg_name, tg)) if t is None]
    perf.ttft_ms = _ms(ttft)
    perf.decode_tps = _ts(tg)
    tg_ms = _ms(tg)
    if tg_ms is not None:
        perf.token_ms = Estimate(tg_ms.value / g, n=tg_ms.n, method=tg_ms.method)
        if tg_ms.has_ci:
            perf.token_ms.low, perf.token_ms.high = tg_ms.low / g, tg_ms.high / g
    if perf.ttft_ms is not None and perf.token_ms is not None:
        t_tok = perf.token_ms
        value = (perf.ttft_ms.value + (g - 1) * t_tok.value) / 1000.0
        perf.e2e_s = Estimate(value, method="TTFT + (G - 1) x decode per token")
        if perf.ttft_ms.has_ci and t_tok.has_ci:
            h1 = (perf.ttft_ms.high - perf.ttft_ms.low) / 2
            h2 = (g - 1) * (t_tok.high - t_tok.low) / 2
            half = math.hypot(h1, h2) / 1000.0
            perf.e2e_s.low, perf.e2e_s.high = value - half, value + half
            perf.e2e_s.method += "; CI half-widths added in quadrature"
        perf.tokens_per_s = g / value if value > 0 else None
    return perf


def measured_workloads(tests: dict[str, TestResult]) -> list[str]:
    """The presets whose two tests a config has."""
    return [w.name for w in WORKLOADS
            if test_name("ttft", w.n_prompt, 1, 0) in tests
            and test_name("tg", 0, w.n_gen, w.n_prompt) in tests]


def score(perfs: dict[str, WorkloadPerf], workloads: Sequence[str]) -> float | None:
    """geomean over ``workloads`` of G / e2e_s; None unless every one was measured."""
    rates = [perfs[w].tokens_per_s if w in perfs else None for w in workloads]
    if not rates or any(r is None or r <= 0 for r in rates):
        return None
    return math.exp(sum(math.log(r) for r in rates) / len(rates))


# --------------------------------------------------------------------------- quality

@dataclass
class _Quality:
    """A quality record of one model file, with what pairing it with another needs."""

    rec: Record
    m: QualityMetrics

    @property
    def corpus(self) -> str | None:
        return self.rec.quality_input.corpus_sha256 if self.rec.quality_input else None

    @property
    def reference(self) -> str | None:
        return self.rec.quality_input.reference if self.rec.quality_input else None

    @property
    def file_name(self) -> str | None:
        return self.rec.model.file_name if self.rec.model else None

    @property
    def bits_per_weight(self) -> float:
        return self.rec.model.bits_per_weight if self.rec.model else 0.0

    def same_windows(self, other: "_Quality") -> bool:
        """Both scored the same tokens in the same windows (so they pair window by window)."""
        a, b = self.m, other.m
        return (self.corpus is not None and self.corpus == other.corpus
                and a.n_ctx == b.n_ctx and a.n_tokens == b.n_tokens and a.n_bytes == b.n_bytes
                and _windows(a, "window_nll") is not None
                and len(_windows(a, "window_nll") or []) == len(_windows(b, "window_nll") or []))


def _windows(m: QualityMetrics, name: str) -> list[float] | None:
    w = getattr(m, name, None)
    if not isinstance(w, list) or len(w) < 2 or not all(_finite(x) for x in w):
        return None
    return [float(x) for x in w]


def _nll_se(m: QualityMetrics) -> float | None:
    """Standard error of the mean NLL per token: over windows, else llama-perplexity's."""
    w = _windows(m, "window_nll")
    if w:
        return mean_ci(w)[1]
    if _finite(m.ppl_err) and _finite(m.ppl) and m.ppl:
        return m.ppl_err / m.ppl
    return None


def _spread(est: Estimate, windows: list[float] | None, se: float | None, n_tokens: int,
            se_name: str, scale: float = 1.0) -> Estimate:
    """``est`` with its 95 % CI: Student t over per-window values (their spread around their
    mean, times ``scale``, set around est.value), else +-Z95 x the token-level standard error
    ``se`` (x ``scale``); neither leaves ``est`` without a CI."""
    if windows:
        mean, _se, low, high = mean_ci(windows)
        est.low = est.value + (low - mean) * scale
        est.high = est.value + (high - mean) * scale
        est.n, est.method = len(windows), f"Student t over {len(windows)} windows"
    elif se is not None:
        half = Z95 * se * scale
        est.low, est.high = est.value - half, est.value + half
        est.n, est.method = n_tokens, f"token-level standard error ({se_name})"
    return est


def bits_per_byte(q: _Quality) -> Estimate | None:
    m = q.m
    if not _finite(m.bits_per_byte):
        return None
    est = Estimate(m.bits_per_byte)
    if not (m.n_tokens and m.n_bytes):
        return est
    scale = m.n_tokens / (LN2 * m.n_bytes)  # bits per byte per nat of mean NLL
    return _spread(est, _windows(m, "window_nll"), _nll_se(m), m.n_tokens, "ppl_err", scale)


def kl_mean(q: _Quality) -> Estimate | None:
    m = q.m
    if not _finite(m.kl_mean):
        return None
    return _spread(Estimate(m.kl_mean), _windows(m, "window_kl"),
                   m.kl_mean_err if _finite(m.kl_mean_err) else None, m.n_tokens,
                   "kl_mean_err")


def top1_pct(q: _Quality) -> Estimate | None:
    m = q.m
    if not _finite(m.top1_pct):
        return None
    return _spread(Estimate(m.top1_pct), None, m.top1_err if _finite(m.top1_err) else None,
                   m.n_tokens, "top1_err")


def quality_change(cand: _Quality, base: _Quality | None, metric: str) -> Estimate | None:
    """Increase in % of bits per byte (``metric`` 'bits_per_byte') or perplexity ('ppl') of
    ``cand`` over its reference: the one it was scored against (same process, same tokens),
    else ``base`` (another record of the same model).  Paired over windows when both have
    per-window NLL on the same windows; else from the standard errors (the covariance
    llama-perplexity's delta_ppl_err implies, or none for two separate records)."""
    m = cand.m
    if base is cand:
        return Estimate(0.0, method="the reference itself")

    def finish(d: float, low: float | None, high: float | None, ref_nll: float, n: int | None,
               method: str) -> Estimate:
        f = (lambda x: 100.0 * x / ref_nll) if metric == "bits_per_byte" \
            else (lambda x: 100.0 * math.expm1(x))
        return Estimate(f(d), None if low is None else f(low), None if high is None else f(high),
                        n=n, method=method)

    if _finite(m.ref_ppl) and _finite(m.nll):  # scored against its reference
        ref_nll = math.log(m.ref_ppl)
        w, wr = _windows(m, "window_nll"), _windows(m, "window_ref_nll")
        if w and wr and len(w) == len(wr):
            t = paired_test(wr, w)
            return finish(t["mean"], t["low"], t["high"], _mean(wr), t["n"],
                          f"paired t over {t['n']} windows")
        d = m.nll - ref_nll
        se = _token_diff_se(m)
        if se is None:
            return finish(d, None, None, ref_nll, None, "no uncertainty recorded")
        return finish(d, d - Z95 * se, d + Z95 * se, ref_nll, m.n_tokens,
                      "token-level paired standard error (delta_ppl_err)")
    if base is None or not _finite(base.m.nll) or not _finite(m.nll):
        return None
    d = m.nll - base.m.nll
    if metric == "bits_per_byte" and _finite(m.bits_per_byte) and _finite(base.m.bits_per_byte) \
            and not cand.same_windows(base):
        # different tokens (another corpus slice or tokenizer): compare bits per byte as such
        d_pct = 100.0 * (m.bits_per_byte / base.m.bits_per_byte - 1.0)
        se1, se2 = _nll_se(m), _nll_se(base.m)
        if se1 is None or se2 is None:
            return Estimate(d_pct, method="no uncertainty recorded")
        half = 100.0 * Z95 * math.hypot(se1, se2) / base.m.nll
        return Estimate(d_pct, d_pct - half, d_pct + half, method="two standard errors")
    if cand.same_windows(base):
        t = paired_test(_windows(base.m, "window_nll"), _windows(m, "window_nll"))
        return finish(t["mean"], t["low"], t["high"], base.m.nll, t["n"],
                      f"paired t over {t['n']} windows ({base.rec.quant})")
    se1, se2 = _nll_se(m), _nll_se(base.m)
    if se1 is None or se2 is None:
        return finish(d, None, None, base.m.nll, None, "no uncertainty recorded")
    se = math.hypot(se1, se2)
    return finish(d, d - Z95 * se, d + Z95 * se, base.m.nll, None, "two standard errors")


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _token_diff_se(m: QualityMetrics) -> float | None:
    """SE of mean NLL - mean reference NLL from ppl_err, ref_ppl_err and delta_ppl_err (which
    llama-perplexity's formula builds from their covariance)."""
    if not all(_finite(x) for x in (m.ppl, m.ppl_err, m.ref_ppl, m.ref_ppl_err,
                                    m.delta_ppl_err)):
        return None
    e1, e2 = m.ppl_err / m.ppl, m.ref_ppl_err / m.ref_ppl
    cov = ((m.ppl * e1) ** 2 + (m.ref_ppl * e2) ** 2 - m.delta_ppl_err ** 2) \
        / (2 * m.ppl * m.ref_ppl)
    return math.sqrt(max(0.0, e1 * e1 + e2 * e2 - 2 * cov))


def quality_tie(a: "Candidate", b: "Candidate", metric: str) -> bool:
    """a's and b's quality do not differ significantly (``metric``: bits_per_byte or
    kl_mean): paired over windows where both scored the same ones, else within the two
    standard errors."""
    qa, qb = a._quality, b._quality
    if qa is None or qb is None:
        return False
    if qa is qb:
        return True
    name = "window_nll" if metric == "bits_per_byte" else "window_kl"
    wa, wb = _windows(qa.m, name), _windows(qb.m, name)
    if qa.same_windows(qb) and wa and wb:
        t = paired_test(wa, wb)
        return not (t["high"] < 0 or t["low"] > 0) or t["p_t"] >= TIE_ALPHA
    ea, eb = a.quality_estimate(metric), b.quality_estimate(metric)
    if ea is None or eb is None:
        return False
    half = math.hypot(*((e.high - e.low) / 2 if e.has_ci else 0.0 for e in (ea, eb)))
    return abs(ea.value - eb.value) <= half


# --------------------------------------------------------------------------- checks

@dataclass
class Check:
    """One target on one config: the value, its CI, the margin and the verdict."""

    target: str  # 'ttft_ms[chat]'
    metric: str
    workload: str | None
    bound: str  # 'max' or 'min'
    limit: float
    unit: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin_pct: float | None = None  # positive: headroom; negative: missed by that much
    verdict: str = "missing"  # pass, uncertain, fail, missing
    method: str = ""
    note: str = ""

    def needed_change_pct(self) -> float | None:
        """How much the value would have to change to meet the limit (signed %)."""
        if not _finite(self.value) or not self.value:
            return None
        return 100.0 * (self.limit / self.value - 1.0)


def judge(target: Target, est: Estimate | None, note: str = "") -> Check:
    """The verdict of one target on one estimate (module doc)."""
    c = Check(target.name, target.metric, target.workload, target.bound, target.limit,
              target.unit, note=note)
    if est is None or not _finite(est.value):
        c.verdict = "missing"
        c.note = note or "not measured"
        return c
    c.value, c.method = est.value, est.method
    lim, v = target.limit, est.value
    if est.has_ci:
        c.ci_low, c.ci_high = est.low, est.high
    worst, best = (est.high, est.low) if target.bound == "max" else (est.low, est.high)
    if not est.has_ci:
        worst = best = v
    ok = (lambda x: x <= lim) if target.bound == "max" else (lambda x: x >= lim)
    c.verdict = "pass" if ok(worst) else "fail" if not ok(best) else "uncertain"
    if lim:
        c.margin_pct = 100.0 * ((lim - v) if target.bound == "max" else (v - lim)) / abs(lim)
    return c


def overall(checks: Iterable[Check]) -> str:
    """fail if any target fails, pass if every one passes, else uncertain."""
    verdicts = [c.verdict for c in checks]
    if "fail" in verdicts:
        return "fail"
    return "pass" if all(v == "pass" for v in verdicts) else "uncertain"


# --------------------------------------------------------------------------- candidates

@dataclass
class Candidate:
    """One config on one device with everything its verdicts need."""

    label: str
    device: str
    model_id: str | None
    quant: str | None
    settings: dict[str, Any]
    status: str = "ok"  # ok, failed, skipped
    reason: str | None = None
    run: str | None = None
    peak_rss_mib: float | None = None
    workloads: dict[str, WorkloadPerf] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    verdict: str = "pass"  # over every target in scope; failed/skipped for such configs
    score: float | None = None
    bits_per_byte: Estimate | None = None
    kl_mean: Estimate | None = None
    quality_note: str | None = None

    def __post_init__(self) -> None:
        self._tests: dict[str, TestResult] = {}
        self._quality: _Quality | None = None
        self._base: _Quality | None = None  # the reference to compute increases against
        self._is_reference = False
        self._sustained: TestResult | None = None

    def quality_estimate(self, metric: str) -> Estimate | None:
        return self.bits_per_byte if metric == "bits_per_byte" else self.kl_mean

    def checks_for(self, targets: Sequence[Target]) -> list[Check]:
        names = {t.name for t in targets}
        return [c for c in self.checks if c.target in names]

    def speed(self, workload: str | None, workloads: Sequence[str]) -> float | None:
        """Lower is faster: e2e seconds of ``workload``; for all workloads the negative score;
        without workloads the negative decode tokens/s of the longest tg test at depth 0."""
        if workload is not None:
            perf = self.workloads.get(workload)
            return perf.e2e_s.value if perf and perf.e2e_s else None
        if workloads:
            return -self.score if self.score is not None else None
        tg = [t for t in self._tests.values() if t.test == "tg" and not t.n_depth]
        est = _ts(max(tg, key=lambda t: t.n_gen)) if tg else None
        return -est.value if est else None


def metric_estimate(cand: Candidate, target: Target) -> tuple[Estimate | None, str]:
    """The value of a target's metric on a config, and why there is none."""
    m = target.metric
    if target.workload is not None:
        perf = cand.workloads.get(target.workload)
        missing = f"not measured ({', '.join(perf.missing)} missing: run with --workload " \
                  f"{target.workload})" if perf and perf.missing else "not measured"
        if perf is None:
            return None, missing
        est = {"ttft_ms": perf.ttft_ms, "decode_tps": perf.decode_tps,
               "e2e_s": perf.e2e_s}[m]
        return est, ("" if est else missing)
    if m == "peak_rss_mib":
        return (Estimate(cand.peak_rss_mib, method="single value") if cand.peak_rss_mib
                is not None else None), "no memory figure"
    if m == "sustained_retained_pct":
        t = cand._sustained
        res = getattr(t, "sustained", None) if t is not None else None
        series = getattr(res, getattr(res, "primary", "decode") or "decode", None) if res else None
        value = getattr(series, "retained_pct", None) if series is not None else None
        return (Estimate(value, method="single value") if _finite(value) else None,
                "no sustained test of this model file")
    q = cand._quality
    if q is None:
        return None, cand.quality_note or "no quality record of this model file"
    if cand._is_reference and m in ("kl_mean", "top1_pct", "bits_per_byte_increase_pct",
                                    "ppl_increase_pct"):
        exact = {"kl_mean": 0.0, "top1_pct": 100.0}.get(m, 0.0)
        return Estimate(exact, method="the KL reference itself"), ""
    if m == "bits_per_byte":
        return cand.bits_per_byte, "no bits per byte recorded"
    if m == "kl_mean":
        return cand.kl_mean, "no KL reference in its quality record"
    if m == "top1_pct":
        return top1_pct(q), "no KL reference in its quality record"
    metric = "bits_per_byte" if m == "bits_per_byte_increase_pct" else "ppl"
    return quality_change(q, cand._base, metric), \
        "no reference to compare with (score a higher-precision quant of the same model too)"


# --------------------------------------------------------------------------- decisions

@dataclass
class Miss:
    """A config that does not pass, and what it lacks."""

    label: str
    verdict: str
    misses: list[str] = field(default_factory=list)  # one sentence per failed / unsure target


@dataclass
class Decision:
    """The recommendation for one device and one workload (None: all workloads at once)."""

    device: str
    workload: str | None
    targets: list[str] = field(default_factory=list)
    recommended: str | None = None
    reason: str = ""
    passing: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)  # tied on quality with the recommended one
    quality_metric: str | None = None
    speed_metric: str = ""
    pareto: list[str] = field(default_factory=list)
    closest: list[Miss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def scope(self) -> str:
        if self.workload:
            return self.workload
        return "all workloads" if self.speed_metric.startswith("score") else "overall"


@dataclass
class DeviceResult:
    device: str
    runs: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def best_score(self) -> float | None:
        scores = [c.score for c in self.candidates if c.score is not None]
        return max(scores) if scores else None


@dataclass
class Recommendation:
    runs: list[str]
    targets: list[str]  # 'ttft_ms[chat] <= 1000 ms'
    workloads: list[str]
    score_workloads: list[str]
    devices: list[DeviceResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed_configs(self) -> list[tuple[str, str]]:
        """(device, label) of every config that fails a target or failed to measure."""
        return [(d.device, c.label) for d in self.devices for c in d.candidates
                if c.verdict in ("fail", "failed")]


# --------------------------------------------------------------------------- inputs

def load_targets(spec: Any) -> list[Target]:
    """Targets from a YAML file path, a mapping, a list of Target or None (no targets)."""
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)) and all(isinstance(t, Target) for t in spec):
        return list(spec)
    where = "targets"
    if isinstance(spec, (str, os.PathLike)):
        from slmbench.suite import read_targets_file

        if not os.path.isfile(spec):
            raise ConfigError(f"--targets {os.fspath(spec)}: no such file")
        where = os.fspath(spec)
        spec = read_targets_file(spec)
    targets, problems = parse_targets(spec, where)
    if problems:
        raise ConfigError("; ".join(problems))
    return targets


def parse_workloads(names: Any) -> list[str]:
    """--workload values (a list or comma-separated text) -> canonical names."""
    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else list(names)
    out = []
    for n in items:
        n = str(n).strip()
        if not n:
            continue
        if workload_shape(n) is None:
            raise ConfigError(f"--workload: {unknown_workload(n)}")
        if workload_name(n) not in out:
            out.append(workload_name(n))
    return out


def _is_quality(rec: Record, labels: dict[str, str]) -> bool:
    if any(t.test == "quality" for t in rec.tests) or rec.quality_input is not None:
        return True
    return " quality" in (labels.get(rec.record_id or "") or "")


def _device_of(rec: Record, run: Run) -> str:
    return rec.device or run.env.device_label or "unknown device"


def build_candidates(runs: Sequence[Run], notes: list[str]) -> dict[str, list[Candidate]]:
    """device -> its configs, each joined with its model file's quality and sustained tests.
    The first run that has a config's test wins; a config ok anywhere is ok."""
    by_device: dict[str, dict[tuple, Candidate]] = {}
    quality: dict[str, dict[tuple, list[_Quality]]] = {}
    failed_quality: dict[str, dict[tuple, str]] = {}
    sustained: dict[str, dict[tuple, TestResult]] = {}
    for run in runs:
        labels = {c.record_id: c.label or "" for c in run.manifest.configs}
        for rec in sorted(run.records, key=lambda r: r.status != "ok"):
            device = _device_of(rec, run)
            file_key = (rec.model_id, rec.quant)
            if _is_quality(rec, labels):
                qt = next((t for t in rec.tests if t.test == "quality" and t.metrics), None)
                if rec.status == "ok" and qt is not None:
                    quality.setdefault(device, {}).setdefault(file_key, []).append(
                        _Quality(rec, qt.metrics))
                else:
                    failed_quality.setdefault(device, {}).setdefault(
                        file_key, f"quality {rec.status}: {rec.reason or 'no metrics'}")
                continue
            for t in rec.tests:
                if t.test == "sustained" and rec.status == "ok":
                    sustained.setdefault(device, {}).setdefault(file_key, t)
            timed = [t for t in rec.tests if t.test in ("pp", "tg", "ttft")]
            if " sustained " in (labels.get(rec.record_id or "") or "") or (
                    rec.status == "ok" and not timed):
                continue  # a sustained config (or an empty record): not a timing config
            key = config_key(rec, run.env)
            cands = by_device.setdefault(device, {})
            cand = cands.get(key)
            if cand is None:
                cand = cands[key] = Candidate("", device, rec.model_id, rec.quant,
                                              dict(key[3]), status=rec.status,
                                              reason=rec.reason, run=run.run_id)
            elif rec.status != "ok":
                continue
            elif cand.status != "ok":  # failed in one run, measured in another: measured
                cand.status, cand.reason, cand.run = "ok", None, run.run_id
            for t in timed:
                if t.name in cand._tests:
                    note = (f"{device} {rec.model_id}:{rec.quant} {t.name} measured more than "
                            f"once; the first ({cand.run}) is used")
                    if note not in notes:
                        notes.append(note)
                    continue
                cand._tests[t.name] = t
            if cand.peak_rss_mib is None and rec.memory is not None:
                cand.peak_rss_mib = rec.memory.peak_rss_mib
    out: dict[str, list[Candidate]] = {}
    for device, cands in by_device.items():
        qmap = quality.get(device, {})
        for key, cand in cands.items():
            fk = (cand.model_id, cand.quant)
            got = qmap.get(fk, [])
            if len(got) > 1:  # several quality records: one with a KL reference first
                got = sorted(got, key=lambda q: q.reference is None)
            cand._quality = got[0] if got else None
            cand.quality_note = failed_quality.get(device, {}).get(fk)
            cand._sustained = sustained.get(device, {}).get(fk)
            if cand._quality is not None:
                cand.bits_per_byte = bits_per_byte(cand._quality)
                cand.kl_mean = kl_mean(cand._quality)
                cand._base, cand._is_reference = _reference_of(cand._quality, qmap)
                if cand._is_reference and cand.kl_mean is None:
                    cand.kl_mean = Estimate(0.0, method="the KL reference itself")
        out[device] = list(cands.values())
    label = labeler([config_key_of(c) for cs in out.values() for c in cs])
    for cs in out.values():
        for c in cs:
            c.label = label(config_key_of(c))
    for device in out:
        out[device].sort(key=lambda c: c.label)
    return out


def config_key_of(c: Candidate) -> tuple:
    """The compare key without the device: labels are the same on every device."""
    return (c.model_id, c.quant, "", tuple(sorted(c.settings.items())))


def _reference_of(q: _Quality, qmap: dict[tuple, list[_Quality]]) -> tuple[_Quality | None,
                                                                          bool]:
    """(the record to compute increases against, whether q is its siblings' KL reference).
    Increases use the record's own reference when it has one; else the highest-precision
    quant of the same model scored on the same text and window (which may be q itself)."""
    model = q.rec.model_id
    siblings = [s for (mid, _quant), qs in qmap.items() if mid == model for s in qs
                if s.corpus == q.corpus and s.m.n_ctx == q.m.n_ctx]
    is_ref = bool(q.file_name) and any(s.reference == q.file_name for s in siblings
                                       if s is not q)
    if _finite(q.m.ref_ppl):
        return None, is_ref
    named = next((s for s in siblings if s.file_name and s.file_name in
                  {x.reference for x in siblings if x.reference}), None)
    if named is not None:
        return named, is_ref
    best = max(siblings, key=lambda s: s.bits_per_weight, default=None)
    return best, is_ref


# --------------------------------------------------------------------------- the decision

def recommend(runs: Sequence[Run | str | os.PathLike], targets: Any = None,
              workloads: Any = None) -> Recommendation:
    """Verdicts, recommendations, Pareto fronts and scores for the configs of ``runs`` (run
    objects or run directories; see api.recommend for fleet directories and hf:// paths)."""
    runs = [r if isinstance(r, Run) else read_run(r) for r in runs]
    if not runs:
        raise ResultsFormatError("no run directories given")
    target_list = load_targets(targets)
    asked = parse_workloads(workloads)
    notes: list[str] = []
    by_device = build_candidates(runs, notes)
    if not by_device:
        raise ResultsFormatError("no timing records in " + ", ".join(r.path for r in runs)
                                 + " (recommend needs runs of `slmbench run` or `bench`)")
    if asked:
        dropped = [t for t in target_list if t.workload and t.workload not in asked]
        if dropped:
            notes.append("targets of other workloads left out (--workload " + ",".join(asked)
                         + "): " + ", ".join(t.name for t in dropped))
        target_list = [t for t in target_list if t.workload is None or t.workload in asked]
        scope = asked
    else:
        scope = targets_workloads(target_list)
        if not scope:  # no targets on workloads: the presets measured
            seen = {w for cs in by_device.values() for c in cs
                    for w in measured_workloads(c._tests)}
            scope = [w.name for w in WORKLOADS if w.name in seen]
    res = Recommendation(runs=[r.path for r in runs], targets=[t.text() for t in target_list],
                         workloads=scope, score_workloads=list(scope), notes=notes)
    for device, cands in by_device.items():
        res.devices.append(_device_result(device, cands, target_list, scope, runs))
    res.devices.sort(key=lambda d: d.device)
    return res


def _device_result(device: str, cands: list[Candidate], targets: list[Target],
                   scope: list[str], runs: Sequence[Run]) -> DeviceResult:
    dr = DeviceResult(device, runs=sorted({c.run for c in cands if c.run}), candidates=cands)
    for c in cands:
        c.workloads = {w: workload_perf(c._tests, w) for w in scope}
        c.score = score(c.workloads, scope)
        c.checks = []
        for t in targets:
            est, why = metric_estimate(c, t)
            c.checks.append(judge(t, est, "" if est is not None else why))
        c.verdict = c.status if c.status != "ok" else overall(c.checks)
        if c._quality is None and c.status == "ok" and c.quality_note:
            dr.notes.append(f"{c.label}: {c.quality_note}")
    scopes: list[str | None] = list(scope) + ([None] if len(scope) > 1 else [])
    if not scopes:
        scopes = [None]
    for w in scopes:
        chosen = [t for t in targets if t.workload is None or w is None or t.workload == w]
        dr.decisions.append(decide(device, cands, chosen, w, scope))
    return dr


def decide(device: str, cands: list[Candidate], targets: list[Target], workload: str | None,
           workloads: Sequence[str]) -> Decision:
    """The recommendation among ``cands`` for ``targets`` (module doc)."""
    d = Decision(device, workload, targets=[t.text() for t in targets])
    d.speed_metric = (f"e2e_s[{workload}]" if workload else
                      f"score ({', '.join(workloads)})" if workloads else "decode tokens/s")
    ok = [c for c in cands if c.status == "ok"]
    verdict = {c.label: overall(c.checks_for(targets)) for c in ok}
    passing = [c for c in ok if verdict[c.label] == "pass"]
    d.passing = [c.label for c in passing]
    d.uncertain = [c.label for c in ok if verdict[c.label] == "uncertain"]
    metric = _quality_metric(passing or ok)
    d.quality_metric = metric
    d.pareto = [c.label for c in pareto_front(ok, metric, workload, workloads)]
    if not passing:
        d.reason = ("nothing passes every target" if targets else "no config was measured")
        d.closest = closest_misses(ok, targets, verdict)
        return d
    best, ties, why = choose(passing, metric, workload, workloads)
    d.recommended, d.ties, d.reason = best.label, [c.label for c in ties if c is not best], why
    if not targets:
        d.notes.append("no targets: every measured config is a candidate")
    return d


def _quality_metric(cands: Sequence[Candidate]) -> str | None:
    if any(c.bits_per_byte is not None for c in cands):
        return "bits_per_byte"
    if any(c.kl_mean is not None for c in cands):
        return "kl_mean"
    return None


def choose(passing: list[Candidate], metric: str | None, workload: str | None,
           workloads: Sequence[str]) -> tuple[Candidate, list[Candidate], str]:
    """(the recommended config, the configs tied with it on quality, why)."""
    def q(c: Candidate) -> float:
        est = c.quality_estimate(metric) if metric else None
        return est.value if est is not None else math.inf

    def speed(c: Candidate) -> float:
        s = c.speed(workload, workloads)
        return s if s is not None else math.inf

    rated = sorted([c for c in passing if q(c) < math.inf], key=q)
    if rated:
        top = rated[0]
        tied = [c for c in rated if c is top or quality_tie(top, c, metric)]
    else:
        top, tied = None, list(passing)
    mem = [c.peak_rss_mib for c in tied if c.peak_rss_mib is not None]
    low_mem = min(mem) if mem else None
    if low_mem is not None:
        slack = max(MEMORY_TIE_MIB, MEMORY_TIE_PCT / 100.0 * low_mem)
        lightest = [c for c in tied if c.peak_rss_mib is not None
                    and c.peak_rss_mib <= low_mem + slack]
    else:
        lightest = list(tied)
    best = min(lightest, key=lambda c: (speed(c), q(c), c.label))
    n = len(passing)
    parts = [f"passes every target ({n} of the configs do)" if n > 1 else
             "the only config that passes every target"]
    if metric and top is not None:
        est = best.quality_estimate(metric)
        parts.append(f"{_metric_text(metric)} {_fmt_est(est)}")
        if best is top and len(tied) == 1:
            parts.append("the best quality")
        elif best is top:
            parts.append(f"the best quality; {len(tied) - 1} other(s) tie with it "
                         f"(difference not significant)")
        else:
            parts.append(f"ties on quality with the best ({top.label}: difference not "
                         "significant)")
        if len(tied) > 1:
            parts.append("ties broken by memory" + (" then speed" if len(lightest) > 1 else "")
                         + (f" ({best.peak_rss_mib:,.0f} MiB peak RSS)"
                            if best.peak_rss_mib is not None else ""))
    else:
        parts.append("no quality figure among them: chosen by memory then speed")
    unrated = [c.label for c in passing if q(c) == math.inf]
    if rated and unrated:
        parts.append(f"{len(unrated)} passing config(s) without a quality figure not ranked")
    return best, tied, "; ".join(parts)


def pareto_front(cands: Sequence[Candidate], metric: str | None, workload: str | None,
                 workloads: Sequence[str]) -> list[Candidate]:
    """Configs no other config beats on quality, speed or memory without losing on another
    (lower is better on each; configs missing a dimension are left out)."""
    points = []
    for c in cands:
        dims = [c.speed(workload, workloads), c.peak_rss_mib]
        if metric:
            est = c.quality_estimate(metric)
            dims.append(est.value if est is not None else None)
        if all(x is not None for x in dims):
            points.append((c, dims))

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [c for c, p in points if not any(dominates(o, p) for _, o in points)]


def closest_misses(cands: Sequence[Candidate], targets: Sequence[Target],
                   verdict: dict[str, str], n: int = N_CLOSEST) -> list[Miss]:
    """The configs nearest to passing: no failed target first (only uncertain or missing
    ones), then by their largest shortfall; each with what it misses and by how much."""
    def shortfall(c: Candidate) -> tuple:
        checks = c.checks_for(targets)
        fails = [c for c in checks if c.verdict == "fail"]
        worst = max((-(x.margin_pct or 0.0) for x in fails), default=0.0)
        missing = sum(x.verdict == "missing" for x in checks)
        return (len(fails) > 0, missing, worst, len(fails), c.label)

    out = []
    for c in sorted(cands, key=shortfall)[:n]:
        miss = Miss(c.label, verdict[c.label])
        for x in c.checks_for(targets):
            if x.verdict != "pass":
                miss.misses.append(miss_text(x))
        out.append(miss)
    return out


def miss_text(x: Check) -> str:
    """'misses ttft_ms[chat] by 12 % (1,120 ms, limit <= 1,000 ms): needs -11 %'."""
    op = "<=" if x.bound == "max" else ">="
    unit = "" if x.unit == "%" else f" {x.unit}"
    pct = "%" if x.unit == "%" else ""
    if x.verdict == "missing":
        return f"{x.target}: {x.note or 'not measured'}"
    value = f"{_fmt(x.value)}{pct}{unit}"
    limit = f"{op} {_fmt(x.limit)}{pct}{unit}"
    if x.verdict == "uncertain":
        return (f"{x.target} uncertain: {value}, 95% CI [{_fmt(x.ci_low)}, {_fmt(x.ci_high)}] "
                f"contains the limit {limit}: more repetitions (or windows) would tell")
    need = x.needed_change_pct()
    change = ""
    if need is not None:
        direction = "lower" if need < 0 else "higher"
        change = f": needs {abs(need):.0f}% {direction}"
    by = f" by {abs(x.margin_pct):.0f}%" if x.margin_pct is not None else ""
    return f"misses {x.target}{by} ({value}, limit {limit}){change}"


# --------------------------------------------------------------------------- rendering

def _fmt(x: float | None) -> str:
    """compare.fmt_value, but "-" for anything not a finite number and "0" for -0.0."""
    if x is None or not _finite(x):
        return "-"
    if x == 0:
        return "0"
    return fmt_value(x)


def _fmt_est(est: Estimate | None) -> str:
    if est is None or not _finite(est.value):
        return "-"
    if est.has_ci:
        return f"{_fmt(est.value)} [{_fmt(est.low)}, {_fmt(est.high)}]"
    return _fmt(est.value)


def _metric_text(metric: str) -> str:
    return {"bits_per_byte": "bits/byte", "kl_mean": "KL"}.get(metric, metric)


MARK = {"pass": "pass", "fail": "FAIL", "uncertain": "uncertain", "missing": "missing"}


def _cell(x: Check) -> str:
    if x.verdict == "missing":
        return "missing"
    ci = f" [{_fmt(x.ci_low)}, {_fmt(x.ci_high)}]" if _finite(x.ci_low) else ""
    margin = f" {x.margin_pct:+.0f}%" if x.margin_pct is not None else ""
    return f"{_fmt(x.value)}{ci} {MARK[x.verdict]}{margin}"


def verdict_rows(dr: DeviceResult, targets: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The pass/fail table of one device: one row per config, one column per target."""
    names = [c.target for c in dr.candidates[0].checks] if dr.candidates else []
    header = ["config", *names, "verdict", "peak RSS MiB"]
    quality = any(c.bits_per_byte or c.kl_mean for c in dr.candidates)
    if quality:
        header.append("bits/byte" if any(c.bits_per_byte for c in dr.candidates) else "KL")
    score_col = any(c.score is not None for c in dr.candidates)
    if score_col:
        header.append("score")
    rows = []
    for c in dr.candidates:
        if c.status != "ok":
            rows.append([c.label, *["-"] * len(names), f"{c.status}: {c.reason or ''}"[:60],
                         "-"] + (["-"] if quality else []) + (["-"] if score_col else []))
            continue
        row = [c.label, *[_cell(x) for x in c.checks], c.verdict.upper() if c.verdict == "fail"
               else c.verdict, _fmt(c.peak_rss_mib)]
        if quality:
            est = c.bits_per_byte if "bits/byte" in header else c.kl_mean
            row.append(_fmt_est(est))
        if score_col:
            row.append(_fmt(c.score))
        rows.append(row)
    return header, rows


def decision_line(d: Decision) -> str:
    if d.recommended:
        return f"{d.scope}: recommend {d.recommended} - {d.reason}"
    if not d.closest:
        return f"{d.scope}: {d.reason}"
    first = d.closest[0]
    return (f"{d.scope}: {d.reason}; closest: {first.label} ("
            + "; ".join(first.misses[:2]) + ")")


def render_text(res: Recommendation) -> str:
    from slmbench.display import table

    out = ["targets: " + ("; ".join(res.targets) if res.targets else "none (every config "
                                                                      "passes)")]
    if res.workloads:
        out.append("workloads: " + ", ".join(_workload_text(w) for w in res.workloads))
    for dr in res.devices:
        out += ["", f"device {dr.device} ({len(dr.candidates)} configs; runs "
                    f"{', '.join(dr.runs)})"]
        for d in dr.decisions:
            out.append("  " + decision_line(d))
            for m in d.closest[1:] if not d.recommended else []:
                out.append(f"    also close: {m.label} (" + "; ".join(m.misses[:2]) + ")")
            if d.pareto:
                axes = ([_metric_text(d.quality_metric)] if d.quality_metric else []) \
                    + [d.speed_metric, "peak RSS"]
                out.append(f"    Pareto front ({', '.join(axes)}): {', '.join(d.pareto)}")
        header, rows = verdict_rows(dr, res.targets)
        out += ["", table(rows, header)]
        out += [f"  note: {n}" for n in dr.notes]
    side = devices_side_by_side(res)
    if side:
        header, rows = side
        out += ["", f"score by device (geometric mean over {', '.join(res.score_workloads)} of "
                    "G / end-to-end seconds; secondary to the targets):", table(rows, header)]
    out += [f"note: {n}" for n in res.notes]
    out += ["", legend(res)]
    return "\n".join(out)


def _workload_text(w: str) -> str:
    p, g = workload_shape(w) or (0, 0)
    return f"{w} {p}/{g}" if w in WORKLOAD else w


def devices_side_by_side(res: Recommendation) -> tuple[list[str], list[list[str]]] | None:
    """config x device: the score and the verdict; None for one device or no score."""
    if len(res.devices) < 2 or not res.score_workloads:
        return None
    labels = sorted({c.label for d in res.devices for c in d.candidates})
    header = ["config", *[d.device for d in res.devices]]
    rows = []
    for label in labels:
        row = [label]
        for d in res.devices:
            c = next((c for c in d.candidates if c.label == label), None)
            row.append("-" if c is None else f"{_fmt(c.score)} {c.verdict}")
        rows.append(row)
    rows.append(["best score", *[_fmt(d.best_score) for d in res.devices]])
    return header, rows


def legend(res: Recommendation) -> str:
    return ("Each cell: value [95% CI] verdict margin. pass = the whole CI meets the limit; "
            "FAIL = the whole CI misses it; uncertain = the limit is inside the CI (not a "
            "pass); margin = headroom (+) or shortfall (-) as % of the limit. Recommended: the "
            "best quality (bits/byte, else KL) among configs passing every target; quality "
            "ties (not significant) go to the least peak memory, then the fastest. "
            "docs/recommend.md has the rules.")


def render_markdown(res: Recommendation) -> str:
    out = ["## Verdict", ""]
    out += verdict_markdown(res)
    out += ["", f"<sub>{legend(res)}</sub>"]
    return "\n".join(out)


def verdict_markdown(res: Recommendation, heading: str = "###") -> list[str]:
    """The Verdict section's body: targets, the recommendation per device and workload, the
    pass/fail table (also the top of the report)."""
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["Targets: " + ("; ".join(f"`{t}`" for t in res.targets) if res.targets else
                          "none given (every measured config is a candidate)")]
    if res.workloads:
        out[-1] += "  \nWorkloads: " + ", ".join(_workload_text(w) for w in res.workloads)
    for dr in res.devices:
        out += ["", f"{heading} {dr.device}", ""]
        for d in dr.decisions:
            if d.recommended:
                out.append(f"- **{d.scope}: {esc(d.recommended)}** - {esc(d.reason)}")
            else:
                out.append(f"- **{d.scope}: {esc(d.reason)}**" + (
                    "; closest: " + "; ".join(f"{esc(m.label)} ({esc('; '.join(m.misses))})"
                                              for m in d.closest) if d.closest else ""))
            if d.pareto:
                out.append(f"  - Pareto front: {esc(', '.join(d.pareto))}")
        header, rows = verdict_rows(dr, res.targets)
        out += ["", "| " + " | ".join(esc(h) for h in header) + " |",
                "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for r in rows:
            out.append("| " + " | ".join(esc(x) for x in r) + " |")
        out += [f"- note: {esc(n)}" for n in dr.notes]
    side = devices_side_by_side(res)
    if side:
        header, rows = side
        out += ["", f"Score by device (geometric mean over {', '.join(res.score_workloads)} "
                    "of G / end-to-end seconds; secondary to the targets):", "",
                "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        out += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    out += [f"- note: {esc(n)}" for n in res.notes]
    return out


def render_html(res: Recommendation) -> str:
    """The Verdict section as HTML (the report's top)."""
    import html

    def esc(text: str) -> str:
        return html.escape(text)

    out = ["<h2>Verdict</h2>", "<p>Targets: " + (esc("; ".join(res.targets)) if res.targets
                                               else "none given (every measured config is a "
                                                    "candidate)")
           + ("<br>Workloads: " + esc(", ".join(_workload_text(w) for w in res.workloads))
              if res.workloads else "") + "</p>"]
    for dr in res.devices:
        out.append(f"<h3>{esc(dr.device)}</h3><ul>")
        for d in dr.decisions:
            out.append(f"<li><b>{esc(decision_line(d))}</b>"
                       + (f"<br>Pareto front: {esc(', '.join(d.pareto))}" if d.pareto else "")
                       + "</li>")
        out.append("</ul>")
        header, rows = verdict_rows(dr, res.targets)
        out.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header)
                   + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                             for r in rows) + "</tbody></table>")
        out += [f"<p>note: {esc(n)}</p>" for n in dr.notes]
    out.append(f"<p><small>{esc(legend(res))}</small></p>")
    return "\n".join(out)


def suite_targets(runs: Sequence[Run]) -> Any:
    """The targets the runs' suites recorded (the first run that has some), or None."""
    return next((r.manifest.suite.get("targets") for r in runs
                 if r.manifest.suite and r.manifest.suite.get("targets")), None)


def report_section(runs: Sequence[Run], targets: Any = None) -> tuple[list[str], str]:
    """(Markdown lines, HTML) of the report's Verdict section: ``targets`` or the suites'."""
    try:
        res = recommend(list(runs), targets if targets is not None else suite_targets(runs))
    except ResultsFormatError as exc:  # e.g. quality records only: the rest of the report
        return ["## Verdict", "", f"- no verdict: {exc}"], \
            f"<h2>Verdict</h2><p>no verdict: {exc}</p>"
    md = ["## Verdict", ""] + verdict_markdown(res) + ["", f"<sub>{legend(res)}</sub>"]
    return md, render_html(res)


def to_json_dict(res: Recommendation) -> dict:
    from slmbench.schema import to_dict

    data = to_dict(res)
    data["failed_configs"] = [{"device": d, "config": c} for d, c in res.failed_configs]
    data["legend"] = legend(res)
    return data
