"""A config's trend across many runs (llama.cpp versions, quant recipes, dates).

Runs are ordered by llama-cpp-python / llama.cpp version (env.json) or by date; for every config,
test and metric the value per run (median of the samples) is listed with its spread, and a step
between consecutive runs of a config is marked when `slmbench compare` would call it a change
(same rules, same statistics: see slmbench.compare).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterable

from slmbench.compare import Measure, index_run, judge, labeler, metric_label, parse_metrics
from slmbench.errors import ConfigError, ResultsFormatError
from slmbench.results import Run

STEP_VERDICTS = ("faster", "slower", "better", "worse")


# ------------------------------------------------------------------------ version and date --

def _build(run: Run) -> str | None:
    """llama.cpp build of a run: env.json llama_cpp.build / build_number / build_commit, or the
    build a llama-bench import kept in the records."""
    lc = run.env.llama_cpp
    for value in (lc.build, lc.build_number, lc.build_commit) if lc else ():
        if value:
            return str(value)
    for rec in run.records:
        extra = rec.extra or {}
        for key in ("build_number", "build_commit"):
            if extra.get(key):
                return str(extra[key])
    return None


def run_version(run: Run) -> str | None:
    """'0.3.16', '0.3.16 b6123', 'llama.cpp b6123' or None when env.json names no version."""
    v = run.env.versions.get("llama_cpp_python")
    build = _build(run)
    if build and build.isdigit():
        build = f"b{build}"
    elif build and not re.fullmatch(r"b\d+", build):
        build = f"@{build[:9]}"  # a commit hash: shown, but it has no order
    if v and build:
        return f"{v} {build}"
    if v:
        return str(v)
    return f"llama.cpp {build}" if build else None


def run_date(run: Run) -> str:
    """ISO start time: manifest started_at, else the earliest record start, else ''."""
    if run.manifest.started_at:
        return str(run.manifest.started_at)
    starts = sorted(str(r.started_at) for r in run.records if r.started_at)
    return starts[0] if starts else ""


def _release_key(text: str) -> tuple:
    """Sortable key of a version string: 0.3.9 < 0.3.10, 1.0rc1 < 1.0, build b99 < b100."""
    out: list[tuple] = []
    for part in text.split():
        part = part.lstrip("vb")
        m = re.match(r"(\d+(?:\.\d+)*)(.*)", part)
        if m:
            nums = tuple(int(x) for x in m.group(1).split("."))
            rest = m.group(2)
            out.append((0, nums, 1 if not rest else 0, rest))  # a release after its rc
        else:
            out.append((1, (), 0, part))  # a commit hash: no order, only grouping
    return tuple(out)


@dataclass
class RunInfo:
    run_id: str
    path: str
    version: str | None
    date: str
    label: str  # what the trend shows for this run


def order_runs(runs: list[Run], by: str = "version",
               notes: list[str] | None = None) -> list[tuple[Run, RunInfo]]:
    """Runs in trend order with their labels.  By version, runs without one go last (by date)."""
    if by not in ("version", "date"):
        raise ConfigError(f"--by {by!r}: choose version or date")
    infos = [(r, RunInfo(r.run_id, r.path, run_version(r), run_date(r), "")) for r in runs]
    if by == "date":
        infos.sort(key=lambda x: x[1].date)
        for _, i in infos:
            i.label = i.date[:16].replace("T", " ") or i.run_id
    else:
        missing = [i.run_id for _, i in infos if i.version is None]
        if missing and notes is not None:
            notes.append(f"no llama-cpp-python / llama.cpp version in env.json of "
                         f"{', '.join(missing)}: ordered by date after the versioned runs")
        infos.sort(key=lambda x: (x[1].version is None, _release_key(x[1].version or ""),
                                  x[1].date))
        for _, i in infos:
            i.label = i.version or (i.date[:10] or i.run_id)
    return infos


# ---------------------------------------------------------------------------------- history --

@dataclass
class Point:
    run_id: str
    label: str
    index: int  # position of the run in HistoryResult.runs
    value: float  # median of the samples (pooled p90 for decode_p90), or the single value
    spread: float  # stdev of the per-repetition samples (0 for single values)
    n: int  # samples (0 for single values)
    step: str = ""  # '' or the compare verdict against the previous point (faster/slower/...)
    step_change_pct: float | None = None
    step_p_value: float | None = None
    regression: bool = False


@dataclass
class Series:
    config: str
    test: str
    metric: str
    unit: str
    kind: str
    higher_is_better: bool
    points: list[Point] = field(default_factory=list)


@dataclass
class HistoryResult:
    by: str
    threshold: float
    alpha: float
    runs: list[RunInfo] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[tuple[Series, Point]]:
        return [(s, p) for s in self.series for p in s.points if p.step]


def history(runs: Iterable[Run], by: str = "version", threshold: float = 0.05,
            alpha: float = 0.01, metrics: Iterable[str] | None = None) -> HistoryResult:
    """Trend of every config, test and metric over the runs; steps judged like compare."""
    runs = list(runs)
    if len(runs) < 2:
        raise ConfigError("history needs at least two run directories")
    wanted = parse_metrics(metrics) if metrics is not None else None
    res = HistoryResult(by=by, threshold=threshold, alpha=alpha)
    ordered = order_runs(runs, by, res.notes)
    res.runs = [info for _, info in ordered]
    indexed = [index_run(run, res.notes) for run, _ in ordered]
    label = labeler(dict.fromkeys(k for idx in indexed for k in idx))
    table: dict[tuple, Series] = {}
    previous: dict[tuple, Measure] = {}
    for i, ((run, info), idx) in enumerate(zip(ordered, indexed)):
        for key, cfg in idx.items():
            if cfg.status != "ok":
                continue
            name = label(key)
            for m in cfg.measures():
                if wanted is not None and m.metric not in wanted:
                    continue
                skey = (key, m.test, m.metric)
                s = table.get(skey)
                if s is None:
                    s = table[skey] = Series(name, m.test, m.metric, m.unit, m.kind,
                                             m.higher_is_better)
                pt = Point(run.run_id, info.label, i, m.value, m.spread, len(m.samples))
                prev = previous.get(skey)
                if prev is not None:
                    row = judge(prev, m, threshold, alpha, name)
                    if row.verdict in STEP_VERDICTS:
                        pt.step, pt.regression = row.verdict, row.regression
                        pt.step_change_pct, pt.step_p_value = row.change_pct, row.p_value
                previous[skey] = m
                s.points.append(pt)
    kinds = {"timed": 0, "quality": 1, "memory": 2}
    res.series = sorted(table.values(),
                        key=lambda s: (s.config, kinds.get(s.kind, 3), s.test, s.metric))
    if not res.series:
        raise ResultsFormatError("no measured config in these runs" +
                                 (" for the chosen --metric" if wanted else ""))
    return res


# -------------------------------------------------------------------------------- rendering --

def _fmt(x: float) -> str:
    from slmbench.compare import fmt_value

    return fmt_value(x)


def render(res: HistoryResult) -> str:
    from slmbench.display import table

    out = [f"runs ordered by {res.by}:"]
    out += [f"  {i + 1:>2}  {r.label:<24} {r.run_id:<32} {r.date[:19]}"
            for i, r in enumerate(res.runs)]
    for s in res.series:
        out += ["", f"{s.config}  {s.test}  {metric_label(s.metric, s.unit)}"]
        rows = []
        for p in s.points:
            step = ""
            if p.step:
                step = p.step.upper() if p.regression else p.step
                if p.step_change_pct is not None:
                    step += f" {p.step_change_pct:+.1f}%"
                if p.step_p_value is not None:
                    step += f" (p {p.step_p_value:.2g})"
            spread = f"± {_fmt(p.spread)}" if p.n > 1 else ""
            rows.append([p.label, p.run_id, _fmt(p.value), spread, str(p.n or "-"), step])
        out.append(table(rows, ["run", "run id", "value", "spread", "n", "step vs previous"]))
    out.append("")
    out += [f"note: {n}" for n in res.notes]
    steps = res.steps
    out.append(f"{len(steps)} step change(s), {sum(p.regression for _, p in steps)} for the "
               f"worse (threshold {100 * res.threshold:g}%, alpha {res.alpha:g}; same rules as "
               "`slmbench compare`)")
    return "\n".join(out)


def plot(res: HistoryResult, out_dir: str) -> list[str]:
    """One trend figure per test and metric (a line per config), PNG and SVG; the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    labels = [r.label for r in res.runs]
    ticks = [lab if labels.count(lab) == 1 else f"{lab}\n{r.run_id}"
             for lab, r in zip(labels, res.runs)]
    groups: dict[tuple[str, str], list[Series]] = {}
    for s in res.series:
        groups.setdefault((s.test, s.metric), []).append(s)
    paths = []
    for (test, metric), group in groups.items():
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(ticks) + 2), 4.2))
        for s in group:
            xs = [p.index for p in s.points]
            ax.errorbar(xs, [p.value for p in s.points], yerr=[p.spread for p in s.points],
                        marker="o", capsize=3, label=s.config)
            for p in s.points:
                if p.step:
                    ax.annotate(f"{p.step} {p.step_change_pct:+.0f}%"
                                if p.step_change_pct is not None else p.step,
                                (p.index, p.value), textcoords="offset points", xytext=(0, 9),
                                ha="center", fontsize=8,
                                color="tab:red" if p.regression else "tab:green")
        ax.set_xticks(range(len(ticks)), ticks, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(ticks) - 0.4)
        ax.margins(y=0.15)
        ax.set_xlabel(f"run (by {res.by})")
        spread = " (median ± stdev)" if group[0].kind == "timed" else ""
        ax.set_ylabel((group[0].unit or metric) + spread)
        better = "higher" if group[0].higher_is_better else "lower"
        ax.set_title(f"{test}: {metric_label(metric, group[0].unit)} ({better} is better)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        stem = os.path.join(out_dir, "history-" + re.sub(r"[^\w.-]+", "_", f"{test}-{metric}"))
        for ext in ("png", "svg"):
            fig.savefig(f"{stem}.{ext}", dpi=110)
            paths.append(f"{stem}.{ext}")
        plt.close(fig)
    return paths
