"""Compare two runs with statistics on the raw samples: the regression gate.

The rules (also in docs/compare.md and printed as the legend under every table):

* **timed metrics** - prefill tok/s, TTFT ms, decode tok/s, p90 per-token decode latency - use the
  raw per-repetition samples.  change = value(cand) / value(base) - 1 where value is the median
  (for p90: the 90th percentile of all tokens pooled, as in the analyze table); a seeded 95 %
  percentile-bootstrap CI of that change (2000 resamples of each side; for p90 whole repetitions
  are resampled); a two-sided Mann-Whitney U p-value (for p90: on the per-repetition p90s).
  *significant* = p < alpha, the CI excludes 0 on the side of the change, and a Welch t-test on
  the log samples agrees (p < alpha): rank tests assume equal noise, and 5 noisy samples all on
  one side of 5 tight ones (1 chance in 16) would otherwise be a false alarm.  Then, in order:

  1. fewer than 3 samples on either side          -> too noisy to tell
  2. significant and |change| > threshold          -> faster / slower (slower = regression)
  3. CI wider than 2 x threshold                   -> too noisy to tell
  4. |change| > threshold (but not significant)    -> too noisy to tell
  5. otherwise                                     -> same

* **memory** (peak RSS, weights, KV, compute, output, other) is deterministic enough to judge as
  single numbers: worse / better when it changes by more than the threshold *and* by at least
  1 MiB (rounding and page-granularity noise); growth is a regression.
* **quality**: perplexity, bits per byte and mean KL of two records that scored the same windows
  (same corpus, window size and tokens; records with ``window_nll`` / ``window_kl``) are judged
  with a paired test over the windows: the per-window differences give a Student-t 95 % CI of
  the change and a paired t-test p (the Wilcoxon signed-rank p is noted).  worse / better =
  p < alpha, the CI excludes 0 and the change is beyond the threshold; beyond the threshold but
  not significant -> too noisy to tell.  Without per-window values (older records, top-1
  agreement, KL p99) they are single values: worse / better beyond the threshold.  Either way
  a tiny absolute floor applies to near-zero KL.
* a config that is ok in the base run and *failed* in the candidate is a regression too.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from slmbench.errors import ConfigError, ResultsFormatError
from slmbench.results import Run, read_run
from slmbench.schema import EnvInfo, Memory, Record, TestResult
from slmbench.stats import (bootstrap_pooled_ratio_ci, bootstrap_ratio_ci, mann_whitney_min_p,
                            mann_whitney_p, paired_test, percentile, welch_log_p)

MIN_SAMPLES = 3
NOISY_CI_FACTOR = 2.0  # a CI wider than this many thresholds cannot tell "same" from a change
N_BOOT = 2000
SEED = 0
MEMORY_FLOOR_MIB = 1.0
IGNORED_SETTINGS = ("repetitions", "warmup", "target_ci_pct", "max_repetitions", "max_test_s")

# metric id -> (unit, higher is better)
TIMED_METRICS: dict[str, tuple[str, bool]] = {
    "prefill": ("tok/s", True),
    "ttft": ("ms", False),
    "decode": ("tok/s", True),
    "decode_p90": ("ms/token", False),
    # sustained tests: one sample per window of the sustained part (the last 20 %, >= 3)
    "sustained": ("tok/s", True),
    "retained": ("% of burst", True),
}
WORSE_NOT_SLOWER = ("retained",)  # timed, but judged better / worse
MEMORY_METRICS = ("peak_rss_mib", "model_mib", "kv_mib", "compute_mib", "output_mib",
                  "other_mib")
# quality metric -> (higher is better, absolute floor below which a change is ignored)
QUALITY_METRICS: dict[str, tuple[bool, float]] = {
    "ppl": (False, 0.0),
    "bits_per_byte": (False, 0.0),
    "kl_mean": (False, 1e-3),
    "kl_p99": (False, 1e-2),
    "top1_pct": (True, 0.1),
}
# quality metric -> the per-window series it is made of (QualityMetrics)
QUALITY_WINDOWS = {"ppl": "window_nll", "bits_per_byte": "window_nll", "kl_mean": "window_kl"}
GROUPS = {"timed": tuple(TIMED_METRICS), "speed": tuple(TIMED_METRICS),
          "memory": MEMORY_METRICS, "quality": tuple(QUALITY_METRICS),
          "sustain": ("sustained", "retained")}
ALL_METRICS = tuple(TIMED_METRICS) + MEMORY_METRICS + tuple(QUALITY_METRICS)

VERDICTS = ("faster", "slower", "better", "worse", "same", "too noisy to tell", "failed")


# --------------------------------------------------------------------------------- measures --

@dataclass
class Measure:
    """One metric of one test of one config, ready to be compared."""

    test: str  # test name ('pp64', 'tg32@d512', 'quality@512') or 'memory'
    metric: str  # an id of ALL_METRICS
    unit: str
    kind: str  # 'timed', 'memory' or 'quality'
    higher_is_better: bool
    value: float | None  # median of samples, pooled p90, or the single value
    samples: list[float] = field(default_factory=list)  # per repetition (timed)
    groups: list[list[float]] | None = None  # decode_p90: token latencies per repetition
    note: str = ""
    windows: list[float] | None = None  # quality: per-window values the metric is made of
    pairing: tuple | None = None  # quality: what must be equal for windows to pair

    @property
    def spread(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0


def _timed(test: str, metric: str, samples: list[float], fallback: float | None = None,
           **kw) -> Measure:
    unit, hib = TIMED_METRICS[metric]
    value = statistics.median(samples) if samples else fallback
    note = "" if samples else "no raw samples (e.g. a llama-bench csv import): value only"
    return Measure(test, metric, unit, "timed", hib, value, samples, note=note, **kw)


def _center(stats) -> float | None:
    """Median of a summary, or its mean when only avg/stddev were kept (llama-bench csv)."""
    if stats is None:
        return None
    return stats.median if stats.median is not None else stats.mean


def test_measures(t: TestResult) -> list[Measure]:
    """The comparable metrics of one test."""
    out: list[Measure] = []
    if t.test == "pp":
        out.append(_timed(t.name, "prefill", [float(x) for x in t.samples_ts],
                          _center(t.ts)))
    elif t.test == "ttft":
        out.append(_timed(t.name, "ttft", [ns / 1e6 for ns in t.samples_ns],
                          _center(t.ms)))
    elif t.test == "tg":
        out.append(_timed(t.name, "decode", [float(x) for x in t.samples_ts], _center(t.ts)))
        groups = [list(map(float, rep)) for rep in (t.token_ms or []) if rep]
        if groups:
            m = _timed(t.name, "decode_p90", [percentile(g, 90) for g in groups], groups=groups)
            m.value = percentile([x for g in groups for x in g], 90)
            out.append(m)
        elif t.token_ms_p90 is not None:
            out.append(_timed(t.name, "decode_p90", [], t.token_ms_p90))
    if t.sustained is not None:
        out += sustained_measures(t)
    if t.metrics:
        m = t.metrics
        pairing = (m.n_ctx, m.n_windows, m.n_tokens, m.n_bytes)
        for name, (hib, _floor) in QUALITY_METRICS.items():
            v = getattr(m, name)
            if isinstance(v, (int, float)) and math.isfinite(v):
                windows = QUALITY_WINDOWS.get(name)
                windows = getattr(m, windows, None) if windows else None
                out.append(Measure(t.name, name, "%" if name.endswith("_pct") else "",
                                   "quality", hib, float(v), windows=windows or None,
                                   pairing=pairing))
    return [m for m in out if m.value is not None]


def sustained_measures(t: TestResult) -> list[Measure]:
    """A sustained test's speed and % of burst retained, with the windows of its sustained
    part as samples (their median is the test's sustained_ts / retained_pct).  A run that
    stopped early is compared too, with a note."""
    res = t.sustained
    sp = (res.decode if res.primary == "decode" else res.prefill) if res else None
    if sp is None or not sp.burst_ts or not sp.sustained_windows:
        return []
    attr = "decode_ts" if sp.metric == "decode" else "prefill_ts"
    values = [getattr(w, attr) for w in res.windows if w.complete and getattr(w, attr)]
    part = values[-sp.sustained_windows:]
    note = "" if res.stop_reason == "duration" else f"stopped early ({res.stop_reason})"
    out = [_timed(t.name, "sustained", part), _timed(t.name, "retained",
                                                     [100.0 * v / sp.burst_ts for v in part])]
    for m in out:
        m.note = m.note or note
    return out


def memory_measures(mem: Memory | None) -> list[Measure]:
    if mem is None:
        return []
    out = []
    for name in MEMORY_METRICS:
        v = getattr(mem, name, None)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out.append(Measure("memory", name, "MiB", "memory", False, float(v)))
    return out


def parse_metrics(tokens: Iterable[str] | None) -> set[str] | None:
    """--metric names -> metric ids.  A name is an id ('decode_p90', 'kv_mib'), a group ('timed',
    'memory', 'quality') or a part of an id ('decode' -> decode and decode_p90, 'kv' -> kv_mib,
    'p90', 'kl')."""
    if tokens is None:
        return None
    wanted: set[str] = set()
    for raw in tokens:
        tok = raw.strip().lower().replace(" ", "_")
        if not tok:
            continue
        hit = set(GROUPS.get(tok, ()))
        hit |= {m for m in ALL_METRICS
                if m == tok or m.startswith(tok + "_") or m.endswith("_" + tok)}
        if not hit:
            raise ConfigError(f"--metric {raw!r}: unknown metric; choose from "
                              f"{', '.join(ALL_METRICS)} or a group: timed, memory, quality, "
                              "sustain")
        wanted |= hit
    if not wanted:
        raise ConfigError("--metric: no metric named; e.g. --metric decode,kv_mib")
    return wanted


# ---------------------------------------------------------------------------------- configs --

def config_key(rec: Record, env: EnvInfo | None) -> tuple:
    """What must be equal for two records to measure the same thing (repetitions may differ)."""
    settings = asdict(rec.settings) if rec.settings else {}
    for k in IGNORED_SETTINGS:
        settings.pop(k, None)
    device = rec.device or (env.device_label if env else None)
    return (rec.model_id, rec.quant, device, tuple(sorted(settings.items())))


_ABBREV = {"n_threads": "t", "n_threads_batch": "tb", "n_batch": "b", "n_ubatch": "ub",
           "n_ctx": "ctx", "n_gpu_layers": "ngl", "flash_attn": "fa", "type_k": "ctk",
           "type_v": "ctv", "load_mode": "load", "swa_full": "swa_full", "prompt": "prompt",
           "seed": "seed"}


def labeler(keys: Iterable[tuple]) -> Callable[[tuple], str]:
    """model:quant plus the device and the settings that differ among the given configs, so
    every config gets a short label that still tells it apart from the others."""
    keys = list(keys)
    devices = {k[2] for k in keys}
    varying = sorted({name for k in keys for name, value in k[3]
                      if len({dict(o[3]).get(name) for o in keys}) > 1})

    def label(key: tuple) -> str:
        model, quant, device, settings = key
        s = dict(settings)
        parts = [f"{model}:{quant}"]
        if len(devices) > 1:
            parts.append(f"@{device}")
        parts += [f"{_ABBREV.get(n, n)}={s.get(n)}" for n in varying]
        return " ".join(parts)

    return label


@dataclass
class Config:
    """The records of one config in one run, merged (a quality record and a speed record of the
    same settings become one config)."""

    key: tuple
    status: str = "ok"
    reason: str | None = None
    tests: dict[str, TestResult] = field(default_factory=dict)
    memory: Memory | None = None

    def measures(self) -> list[Measure]:
        out = [m for t in self.tests.values() for m in test_measures(t)]
        return out + memory_measures(self.memory)


def index_run(run: Run, notes: list[str] | None = None) -> dict[tuple, Config]:
    """config key -> Config; ok records win over failed ones, the first record of a test wins."""
    out: dict[tuple, Config] = {}
    for rec in sorted(run.records, key=lambda r: r.status != "ok"):  # ok first, stable
        key = config_key(rec, run.env)
        cfg = out.get(key)
        if rec.status != "ok":
            if cfg is None:
                out[key] = Config(key, rec.status, rec.reason)
            continue
        if cfg is None:
            cfg = out[key] = Config(key)
        for t in rec.tests:
            if t.name in cfg.tests:
                if notes is not None:
                    notes.append(f"{run.run_id}: {rec.model_id}:{rec.quant} {t.name} measured "
                                 "twice; the first is compared")
                continue
            cfg.tests[t.name] = t
        if cfg.memory is None:
            cfg.memory = rec.memory
    return out


# ---------------------------------------------------------------------------------- verdicts --

@dataclass
class Row:
    """One compared metric: both values, the change, its CI and p-value, and the verdict."""

    config: str
    test: str
    metric: str
    unit: str
    kind: str  # 'timed', 'memory', 'quality' or 'status'
    higher_is_better: bool
    base: float | None = None
    cand: float | None = None
    change_pct: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    p_value: float | None = None  # Mann-Whitney U, two-sided
    p_welch: float | None = None  # Welch t-test on log values: the unequal-noise guard
    n_base: int | None = None
    n_cand: int | None = None
    verdict: str = "same"
    regression: bool = False
    note: str = ""


def judge(b: Measure, c: Measure, threshold: float, alpha: float, config: str = "") -> Row:
    """Apply the compare rules (module doc) to one metric of one config."""
    row = Row(config, b.test, b.metric, b.unit, b.kind, b.higher_is_better, b.value, c.value)
    if b.kind == "timed":
        _judge_timed(row, b, c, threshold, alpha)
    elif b.kind == "quality" and _paired(b, c):
        _judge_paired(row, b, c, threshold, alpha, QUALITY_METRICS[b.metric][1])
    else:
        floor = MEMORY_FLOOR_MIB if b.kind == "memory" else QUALITY_METRICS[b.metric][1]
        _judge_single(row, threshold, floor)
        if b.kind == "quality" and b.metric in QUALITY_WINDOWS:
            row.note = row.note or "single values: no per-window values on the same windows"
    if b.metric in GROUPS["sustain"]:   # e.g. a run stopped early is said so
        early = [f"{side} {m.note}" for side, m in (("base", b), ("candidate", c)) if m.note]
        if early and not any(m.note in row.note for m in (b, c) if m.note):
            row.note = "; ".join(filter(None, [row.note, *early]))
    return row


def _paired(b: Measure, c: Measure) -> bool:
    """Both scored the same windows (so the per-window values pair)."""
    return (b.windows is not None and c.windows is not None and len(b.windows) >= 2
            and len(b.windows) == len(c.windows) and b.pairing == c.pairing
            and all(math.isfinite(x) for x in b.windows + c.windows))


def _judge_paired(row: Row, b: Measure, c: Measure, threshold: float, alpha: float,
                  floor: float) -> None:
    """A quality metric judged over the windows both records scored (module doc)."""
    t = paired_test(b.windows, c.windows)
    mean_b = sum(b.windows) / len(b.windows)
    row.n_base = row.n_cand = t["n"]
    if b.metric == "ppl":  # ppl = exp(mean NLL): the change is exp(mean difference) - 1
        def to_change(x: float) -> float:
            return math.expm1(x)
    else:  # bits per byte and KL are proportional to the mean over windows
        def to_change(x: float) -> float:
            return x / mean_b if mean_b else math.nan
    change = to_change(t["mean"])
    row.change_pct = 100.0 * change
    if math.isfinite(t["low"]):
        row.ci_low_pct, row.ci_high_pct = 100.0 * to_change(t["low"]), 100.0 * to_change(t["high"])
    row.p_value = t["p_t"]
    wilcoxon = "" if math.isnan(t["p_wilcoxon"]) else f", Wilcoxon p {t['p_wilcoxon']:.2g}"
    paired = f"paired over {t['n']} windows{wilcoxon}"
    significant = t["p_t"] < alpha and (t["low"] > 0 or t["high"] < 0)
    if abs(row.cand - row.base) < floor:
        row.verdict = "same"
        row.note = f"below the absolute floor ({floor:g} {row.unit})".replace(" )", ")")
    elif significant and abs(change) > threshold:
        _direction(row, change)
        row.note = paired
    elif abs(change) > threshold:
        row.verdict = "too noisy to tell"
        row.note = f"beyond the threshold but not significant ({paired})"
    else:
        row.verdict = "same"
        row.note = f"significant but within the threshold ({paired})" if significant else ""


def _direction(row: Row, change: float) -> None:
    better = (change > 0) == row.higher_is_better
    if row.kind == "timed" and row.metric not in WORSE_NOT_SLOWER:
        row.verdict = "faster" if better else "slower"
    else:
        row.verdict = "better" if better else "worse"
    row.regression = not better


def _judge_timed(row: Row, b: Measure, c: Measure, threshold: float, alpha: float) -> None:
    row.n_base, row.n_cand = len(b.samples), len(c.samples)
    if b.value and c.value is not None:
        row.change_pct = 100.0 * (c.value / b.value - 1.0)
    if row.n_base < MIN_SAMPLES or row.n_cand < MIN_SAMPLES:
        row.verdict = "too noisy to tell"
        row.note = b.note or c.note or f"fewer than {MIN_SAMPLES} samples"
        return
    if not b.value or not c.value:
        row.verdict = "too noisy to tell"
        row.note = "a value is zero"
        return
    change = c.value / b.value - 1.0
    if b.groups and c.groups:
        lo, hi = bootstrap_pooled_ratio_ci(b.groups, c.groups, 90.0, N_BOOT, SEED)
    else:
        lo, hi = bootstrap_ratio_ci(b.samples, c.samples, N_BOOT, SEED)
    p = mann_whitney_p(b.samples, c.samples)
    pw = welch_log_p(b.samples, c.samples)
    row.ci_low_pct, row.ci_high_pct, row.p_value = 100.0 * lo, 100.0 * hi, p
    row.p_welch = None if math.isnan(pw) else pw
    ranks_agree = p < alpha and ((lo > 0 and change > 0) or (hi < 0 and change < 0))
    significant = ranks_agree and (math.isnan(pw) or pw < alpha)
    if significant and abs(change) > threshold:
        _direction(row, change)
    elif hi - lo > NOISY_CI_FACTOR * threshold or abs(change) > threshold:
        row.verdict = "too noisy to tell"
        min_p = mann_whitney_min_p(row.n_base, row.n_cand)
        if min_p >= alpha:
            more = ("more windows in the sustained part (a longer --duration or a shorter "
                    "--window)" if b.metric in GROUPS["sustain"] else "add repetitions")
            row.note = (f"{row.n_base}+{row.n_cand} samples cannot reach p < {alpha:g} (smallest "
                        f"possible p {min_p:.3g}): {more}")
        elif ranks_agree:
            row.note = ("the two runs differ in noise: the Welch test on log values is not "
                        f"significant (p {pw:.2g})")
        elif hi - lo > NOISY_CI_FACTOR * threshold:
            row.note = f"CI wider than {NOISY_CI_FACTOR:g} x threshold"
        else:
            row.note = "beyond the threshold but not significant"
    else:
        row.verdict = "same"
        if significant:
            row.note = "significant but within the threshold"


def _judge_single(row: Row, threshold: float, floor: float) -> None:
    b, c = row.base, row.cand
    assert b is not None and c is not None
    diff = c - b
    change = diff / abs(b) if b else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    row.change_pct = 100.0 * change if b else None
    if abs(change) <= threshold:
        row.verdict = "same"
    elif abs(diff) < floor:
        row.verdict = "same"
        row.note = f"below the absolute floor ({floor:g} {row.unit})".replace(" )", ")")
    else:
        _direction(row, change)


# ---------------------------------------------------------------------------------- compare --

@dataclass
class CompareResult:
    base_run: str
    cand_run: str
    threshold: float
    alpha: float
    rows: list[Row] = field(default_factory=list)
    unmatched_base: list[str] = field(default_factory=list)  # configs only in the base run
    unmatched_cand: list[str] = field(default_factory=list)  # configs only in the candidate
    unmatched_tests_base: list[str] = field(default_factory=list)  # 'config test'
    unmatched_tests_cand: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    def summary(self) -> dict[str, int]:
        """verdict -> number of rows, plus 'regressions'."""
        counts = Counter(r.verdict for r in self.rows)
        out = {v: counts[v] for v in VERDICTS if counts[v]}
        out["regressions"] = len(self.regressions)
        return out


def _as_run(run: Run | str) -> Run:
    return run if isinstance(run, Run) else read_run(run)


def compare_runs(base: Run | str, cand: Run | str, threshold: float = 0.05, alpha: float = 0.01,
                 metrics: Iterable[str] | None = None) -> CompareResult:
    """Compare every matched config, test and metric of two runs (run objects or directories).

    ``metrics`` takes the --metric names (see :func:`parse_metrics`); None = all.
    """
    base, cand = _as_run(base), _as_run(cand)
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold {threshold!r}: must be between 0 and 1 (0.05 = 5%)")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha {alpha!r}: must be between 0 and 1")
    wanted = parse_metrics(metrics) if metrics is not None else None
    res = CompareResult(base_run=base.run_id, cand_run=cand.run_id, threshold=threshold,
                        alpha=alpha)
    b_map = index_run(base, res.notes)
    c_map = index_run(cand, res.notes)
    label = labeler(list(b_map) + [k for k in c_map if k not in b_map])

    def status(cfg: Config) -> str:
        return "" if cfg.status == "ok" else f" ({cfg.status})"

    res.unmatched_base = sorted(label(k) + status(cfg) for k, cfg in b_map.items()
                                if k not in c_map)
    res.unmatched_cand = sorted(label(k) + status(cfg) for k, cfg in c_map.items()
                                if k not in b_map)
    matched = 0
    for key, cb in b_map.items():
        cc = c_map.get(key)
        if cc is None:
            continue
        name = label(key)
        if cb.status != "ok" or cc.status != "ok":
            if cb.status == "ok" and cc.status == "failed":
                res.rows.append(Row(name, "-", "status", "", "status", True, verdict="failed",
                                    regression=True, note=cc.reason or "failed in candidate"))
            elif cb.status == cc.status:
                res.notes.append(f"{name}: {cb.status} in both runs")
            else:
                res.notes.append(f"{name}: {cb.status} in base, {cc.status} in candidate")
            continue
        matched += 1
        res.unmatched_tests_base += [f"{name} {t}" for t in cb.tests if t not in cc.tests]
        res.unmatched_tests_cand += [f"{name} {t}" for t in cc.tests if t not in cb.tests]
        cand_measures = {(m.test, m.metric): m for m in cc.measures()}
        for mb in cb.measures():
            mc = cand_measures.get((mb.test, mb.metric))
            if mc is None or (wanted is not None and mb.metric not in wanted):
                continue
            res.rows.append(judge(mb, mc, threshold, alpha, name))
    if not matched and not res.rows:
        raise ConfigError(
          f"no matching configs between {base.path} and {cand.path} (base has {len(b_map)}, "
          f"candidate {len(c_map)} configs; configs match by model, quant, device and "
          "settings other than repetitions/warmup)")
    if not res.rows:
        raise ResultsFormatError(f"{base.path} and {cand.path}: {matched} matched config(s) but no "
                                 "common test" + (" for the chosen --metric" if wanted else ""))
    return res


def parse_threshold(text: str) -> float:
    """'5%', '5' (percent) or '0.05' -> 0.05."""
    t = str(text).strip()
    try:
        value = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise ConfigError(f"--threshold {text!r}: expected a number such as 5% or 0.05")
    if not t.endswith("%") and value >= 1:
        value /= 100.0  # a bare "5" means 5 %
    if not 0 < value < 1:
        raise ConfigError(f"--threshold {text!r}: must be between 0% and 100%, e.g. 5%")
    return value


# -------------------------------------------------------------------------------- rendering --

def fmt_value(x: float | None) -> str:
    """Enough digits for any magnitude: 3,210 / 123.4 / 12.35 / 0.0123."""
    if x is None or not math.isfinite(x):
        return "-"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def metric_label(metric: str, unit: str) -> str:
    return f"{metric} ({unit})" if unit else metric


HEADER = ["config", "test", "metric", "base", "candidate", "change", "95% CI", "p", "n",
          "verdict"]


def _cells(r: Row, notes: dict[str, int]) -> list[str]:
    """Table cells of one row; a row's note becomes a numbered footnote (kept in ``notes``)."""
    ci = "-" if r.ci_low_pct is None else f"[{r.ci_low_pct:+.1f}, {r.ci_high_pct:+.1f}]%"
    p = "-" if r.p_value is None or math.isnan(r.p_value) else f"{r.p_value:.2g}"
    change = "-" if r.change_pct is None else f"{r.change_pct:+.1f}%"
    n = "-" if r.n_base is None else f"{r.n_base}/{r.n_cand}"
    verdict = r.verdict.upper() if r.regression else r.verdict
    if r.note:
        verdict += f" [{notes.setdefault(r.note, len(notes) + 1)}]"
    return [r.config, r.test, metric_label(r.metric, r.unit), fmt_value(r.base),
            fmt_value(r.cand), change, ci, p, n, verdict]


def _footnotes(notes: dict[str, int]) -> list[str]:
    return [f"[{i}] {text}" for text, i in notes.items()]


def legend(res: CompareResult) -> str:
    t = f"{100 * res.threshold:g}%"
    return (f"Timed metrics: change of the median (decode_p90: of the pooled p90; sustained "
            f"and retained: over the windows of the sustained part), bootstrap 95% "
            f"CI of the change from the raw samples, two-sided Mann-Whitney p. SLOWER (a "
            f"regression; WORSE for retained) = p < {res.alpha:g} (and a Welch t-test on log "
            f"values agrees), CI excluding 0 and a change beyond {t} in the bad direction; too "
            f"noisy to tell = "
            f"under {MIN_SAMPLES} samples, a CI wider than {NOISY_CI_FACTOR:g} x {t}, or a change beyond {t} that is not significant. Memory "
            f"is judged without samples: WORSE = growth beyond {t} and at least "
            f"{MEMORY_FLOOR_MIB:g} MiB. Quality: ppl, bits_per_byte and kl_mean of records "
            "that scored the same windows are paired over the windows (paired t p and CI; "
            f"WORSE = significant and beyond {t} in the bad direction), other quality metrics "
            f"are single values (WORSE beyond {t}); lower ppl/bits_per_byte/kl, higher "
            "top1_pct is better. Exit code 1 when any regression is found.")


def _summary_line(res: CompareResult) -> str:
    s = res.summary()
    n = s.pop("regressions")
    parts = ", ".join(f"{v} {k}" for k, v in s.items())
    return f"{parts} -> " + (f"{n} regression(s)" if n else "no regression")


def _shown(res: CompareResult, changes_only: bool) -> list[Row]:
    return [r for r in res.rows if not changes_only or r.verdict != "same"]


def render_text(res: CompareResult, changes_only: bool = False) -> str:
    import textwrap

    from slmbench.display import table

    notes: dict[str, int] = {}
    rows = _shown(res, changes_only)
    out = [f"compare {res.base_run} (base) -> {res.cand_run} (candidate), threshold "
           f"{100 * res.threshold:g}%, alpha {res.alpha:g}", ""]
    out.append(table([_cells(r, notes) for r in rows], HEADER) if rows else
               "(every metric is the same)")
    out += _footnotes(notes) + [""]
    for title, items in (("configs only in base", res.unmatched_base),
                         ("configs only in candidate", res.unmatched_cand),
                         ("tests only in base", res.unmatched_tests_base),
                         ("tests only in candidate", res.unmatched_tests_cand),
                         ("notes", res.notes)):
        if items:
            out.append(f"{title}: {'; '.join(items)}")
    out += textwrap.wrap(legend(res), 100) + ["", _summary_line(res)]
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(res: CompareResult, changes_only: bool = False) -> str:
    """A table to paste into a pull request (regressions in bold)."""
    lines = [f"### slmbench compare: `{res.base_run}` → `{res.cand_run}`", "",
             f"threshold {100 * res.threshold:g}%, alpha {res.alpha:g}: "
             f"**{_summary_line(res)}**", "",
             "| " + " | ".join(HEADER) + " |",
             "|" + "|".join("---" if i < 3 or i == len(HEADER) - 1 else "---:"
                            for i in range(len(HEADER))) + "|"]
    notes: dict[str, int] = {}
    for r in _shown(res, changes_only):
        cells = [_md_escape(c) for c in _cells(r, notes)]
        if r.regression:
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{_md_escape(f)}  " for f in _footnotes(notes)] + [""]
    for title, items in (("Configs only in base", res.unmatched_base),
                         ("Configs only in candidate", res.unmatched_cand),
                         ("Tests only in base", res.unmatched_tests_base),
                         ("Tests only in candidate", res.unmatched_tests_cand),
                         ("Notes", res.notes)):
        if items:
            lines.append(f"- {title}: " + ", ".join(f"`{i}`" for i in items))
    lines += ["", f"<sub>{legend(res)}</sub>"]
    return "\n".join(lines)


def to_json_dict(res: CompareResult) -> dict:
    """The result as plain JSON data (NaN -> null), with the summary and the rules."""
    from slmbench.schema import to_dict

    data = to_dict(res)
    data["summary"] = res.summary()
    data["regressions"] = len(res.regressions)
    data["legend"] = legend(res)
    return data
