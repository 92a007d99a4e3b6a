"""Compare two runs with statistics on the raw samples: the regression gate.

Rules (documented in the README and printed as a legend):
- timed metrics (prefill tok/s, TTFT ms, decode tok/s, decode p90 ms/token) compare the medians
  of the raw per-repetition samples: change = median(cand) / median(base) - 1, a 95 % bootstrap
  confidence interval of that change (both sides resampled), and a two-sided Mann-Whitney U
  p-value.  *Significant* = p < alpha and the CI excludes 0.
  - significant and |change| > threshold -> faster / slower (slower is a regression);
  - otherwise, CI wider than 2 x threshold or fewer than 3 samples a side -> too noisy to tell;
  - otherwise -> same.
- memory metrics (peak RSS and each buffer) are deterministic enough to compare as single
  numbers: worse when they grow by more than the threshold *and* by at least 1 MiB.
- quality metrics (perplexity, bits per byte, KL divergence, top-1 agreement) are single
  values: worse / better beyond the threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from slmbench.errors import SlmbenchError
from slmbench.results import Run
from slmbench.schema import Record, TestResult
from slmbench.stats import bootstrap_ratio_ci, mann_whitney_p, percentile

MIN_SAMPLES = 3
MEMORY_FLOOR_MIB = 1.0
MEMORY_METRICS = ("peak_rss_mib", "model_mib", "kv_mib", "compute_mib", "other_mib")
QUALITY_LOWER_BETTER = ("ppl", "nll", "bits_per_byte", "kl_mean", "kl_p99")
QUALITY_HIGHER_BETTER = ("top1_pct",)
IGNORED_SETTINGS = ("repetitions", "warmup")


@dataclass
class Row:
    config: str
    test: str
    metric: str
    unit: str
    higher_is_better: bool
    base: float | None
    cand: float | None
    change_pct: float | None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    p_value: float | None = None
    n_base: int = 1
    n_cand: int = 1
    verdict: str = "same"
    regression: bool = False


@dataclass
class CompareResult:
    base_run: str
    cand_run: str
    threshold: float
    alpha: float
    rows: list[Row] = field(default_factory=list)
    unmatched_base: list[str] = field(default_factory=list)
    unmatched_cand: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]


def config_key(rec: Record, env: dict) -> tuple:
    settings = asdict(rec.settings) if rec.settings else {}
    for k in IGNORED_SETTINGS:
        settings.pop(k, None)
    device = rec.device or (env.get("device") or {}).get("label")
    return (rec.model_id, rec.quant, device, tuple(sorted(settings.items())))


def config_label(rec: Record) -> str:
    s = rec.settings
    extra = f" t{s.n_threads}" if s else ""
    if s and s.n_gpu_layers:
        extra += f" ngl{s.n_gpu_layers}"
    if s and (s.type_k != "f16" or s.type_v != "f16"):
        extra += f" kv:{s.type_k}/{s.type_v}"
    return f"{rec.model_id}:{rec.quant}{extra}"


def timed_samples(t: TestResult) -> list[tuple[str, str, bool, list[float]]]:
    """(metric, unit, higher_is_better, per-repetition samples) of one test."""
    out = []
    if t.test == "pp" and t.samples_ts:
        out.append(("prefill tok/s", "tok/s", True, list(t.samples_ts)))
    if t.test == "ttft" and t.samples_ns:
        out.append(("TTFT", "ms", False, [ns / 1e6 for ns in t.samples_ns]))
    if t.test == "tg":
        if t.samples_ts:
            out.append(("decode tok/s", "tok/s", True, list(t.samples_ts)))
        if t.token_ms:
            out.append(("decode p90", "ms/token", False,
                        [percentile(rep, 90) for rep in t.token_ms if rep]))
    return out


def _verdict_timed(row: Row, base: list[float], cand: list[float], threshold: float,
                   alpha: float) -> None:
    mb, mc = percentile(base, 50), percentile(cand, 50)
    row.base, row.cand = mb, mc
    row.n_base, row.n_cand = len(base), len(cand)
    row.change_pct = 100.0 * (mc / mb - 1.0) if mb else None
    if len(base) < MIN_SAMPLES or len(cand) < MIN_SAMPLES or not mb:
        row.verdict = "too noisy to tell"
        return
    lo, hi = bootstrap_ratio_ci(base, cand)
    p = mann_whitney_p(base, cand)
    row.ci_low_pct, row.ci_high_pct, row.p_value = 100 * lo, 100 * hi, p
    significant = p < alpha and (lo > 0 or hi < 0)
    change = mc / mb - 1.0
    if significant and abs(change) > threshold:
        better = (change > 0) == row.higher_is_better
        row.verdict = "faster" if better else "slower"
        row.regression = not better
    elif not significant and (hi - lo) > 2 * threshold:
        row.verdict = "too noisy to tell"
    else:
        row.verdict = "same"


def _verdict_single(row: Row, threshold: float, floor: float = 0.0) -> None:
    b, c = row.base, row.cand
    if b is None or c is None or (isinstance(b, float) and math.isnan(b)):
        row.verdict = "n/a"
        return
    row.change_pct = 100.0 * (c / b - 1.0) if b else None
    change = (c / b - 1.0) if b else (0.0 if c == b else math.inf)
    if abs(change) <= threshold or abs(c - b) < floor:
        row.verdict = "same"
        return
    better = (change > 0) == row.higher_is_better
    row.verdict = "better" if better else "worse"
    row.regression = not better


def compare_runs(base: Run, cand: Run, threshold: float = 0.05, alpha: float = 0.01,
                 metrics: list[str] | None = None) -> CompareResult:
    res = CompareResult(base_run=base.run_id, cand_run=cand.run_id, threshold=threshold,
                        alpha=alpha)
    b_map = {config_key(r, base.env): r for r in base.records if r.status == "ok"}
    c_map = {config_key(r, cand.env): r for r in cand.records if r.status == "ok"}
    res.unmatched_base = sorted(config_label(r) for k, r in b_map.items() if k not in c_map)
    res.unmatched_cand = sorted(config_label(r) for k, r in c_map.items() if k not in b_map)
    wanted = {m.lower() for m in metrics} if metrics else None

    def keep(metric: str) -> bool:
        return wanted is None or metric.lower() in wanted or metric.split()[0].lower() in wanted

    for key, rb in b_map.items():
        rc = c_map.get(key)
        if rc is None:
            continue
        label = config_label(rb)
        tests_c = {t.name: t for t in rc.tests}
        for tb in rb.tests:
            tc = tests_c.get(tb.name)
            if tc is None:
                continue
            samples_c = {m: s for m, _, _, s in timed_samples(tc)}
            for metric, unit, hib, sb in timed_samples(tb):
                if metric in samples_c and keep(metric):
                    row = Row(label, tb.name, metric, unit, hib, None, None, None)
                    _verdict_timed(row, sb, samples_c[metric], threshold, alpha)
                    res.rows.append(row)
            if tb.metrics and tc.metrics:
                for name in QUALITY_LOWER_BETTER + QUALITY_HIGHER_BETTER:
                    if name in tb.metrics and name in tc.metrics and keep(name):
                        row = Row(label, tb.name, name, "", name in QUALITY_HIGHER_BETTER,
                                  tb.metrics[name], tc.metrics[name], None)
                        _verdict_single(row, threshold)
                        res.rows.append(row)
        if rb.memory and rc.memory:
            for name in MEMORY_METRICS:
                if keep(name) or keep("memory"):
                    row = Row(label, "memory", name, "MiB", False, getattr(rb.memory, name),
                              getattr(rc.memory, name), None)
                    _verdict_single(row, threshold, MEMORY_FLOOR_MIB)
                    res.rows.append(row)
    if not res.rows:
        raise SlmbenchError(f"no matching configs between {base.run_id} and {cand.run_id} "
                            f"(base has {len(b_map)}, candidate {len(c_map)} measured configs; "
                            "configs match by model, quant, device and settings)")
    return res


def parse_threshold(text: str) -> float:
    t = text.strip()
    try:
        value = float(t.rstrip("%")) / (100.0 if t.endswith("%") else 1.0)
    except ValueError:
        raise SlmbenchError(f"--threshold {text!r}: expected a number such as 5% or 0.05")
    if t.endswith("%") is False and value >= 1:
        value /= 100.0  # "5" means 5 %
    if not 0 < value < 1:
        raise SlmbenchError(f"--threshold {text!r}: must be between 0% and 100%")
    return value


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _row_cells(r: Row) -> list[str]:
    ci = "-" if r.ci_low_pct is None else f"[{r.ci_low_pct:+.1f}, {r.ci_high_pct:+.1f}]"
    p = "-" if r.p_value is None or math.isnan(r.p_value) else f"{r.p_value:.3g}"
    change = "-" if r.change_pct is None else f"{r.change_pct:+.1f}%"
    verdict = r.verdict.upper() if r.regression else r.verdict
    return [r.config, r.test, f"{r.metric} ({r.unit})" if r.unit else r.metric,
            _fmt(r.base), _fmt(r.cand), change, ci, p, f"{r.n_base}/{r.n_cand}", verdict]


HEADER = ["config", "test", "metric", "base", "candidate", "change", "95% CI", "p",
          "n", "verdict"]


def legend(res: CompareResult) -> str:
    return (f"timed metrics: medians of raw samples, bootstrap 95% CI of the change, "
            f"Mann-Whitney p; a regression is p < {res.alpha} with the CI excluding 0 and a "
            f"change beyond {100 * res.threshold:.1f}% in the bad direction. Memory: single "
            f"values, worse beyond {100 * res.threshold:.1f}% and {MEMORY_FLOOR_MIB:.0f} MiB. "
            "Quality: single values beyond the threshold.")


def render_text(res: CompareResult) -> str:
    from slmbench.display import table

    out = [f"compare {res.base_run} (base) -> {res.cand_run} (candidate)",
           table([_row_cells(r) for r in res.rows], HEADER), "", legend(res)]
    for side, items in (("only in base", res.unmatched_base),
                        ("only in candidate", res.unmatched_cand)):
        if items:
            out.append(f"{side}: {', '.join(items)}")
    n = len(res.regressions)
    out.append(f"{n} regression(s)" if n else "no regression")
    return "\n".join(out)


def render_markdown(res: CompareResult) -> str:
    lines = [f"### slmbench compare: `{res.base_run}` → `{res.cand_run}`", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in res.rows:
        cells = _row_cells(r)
        if r.regression:
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", legend(res), ""]
    if res.unmatched_base or res.unmatched_cand:
        lines.append(f"Unmatched: base only {res.unmatched_base}, candidate only "
                     f"{res.unmatched_cand}")
    n = len(res.regressions)
    lines.append(f"**{n} regression(s)**" if n else "No regression.")
    return "\n".join(lines)
