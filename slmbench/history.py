"""A config's trend across many runs (llama.cpp versions, quant recipes, dates).

Runs are ordered by llama-cpp-python / llama.cpp version or by date; for every config, test and
metric the median per run is listed with its spread, and a step between consecutive runs is
marked with the same rule as `slmbench compare` (significant and beyond the threshold).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

from slmbench.compare import (Row, _verdict_single, _verdict_timed, config_key, config_label,
                              timed_samples)
from slmbench.errors import SlmbenchError
from slmbench.results import Run
from slmbench.stats import percentile


def run_version(run: Run) -> str:
    env = run.env or {}
    v = (env.get("versions") or {}).get("llama_cpp_python")
    build = (env.get("llama_cpp") or {}).get("build_commit") or (env.get("llama_cpp") or {}).get(
        "build_number")
    return " ".join(str(x) for x in (v, build) if x) or "unknown"


def run_date(run: Run) -> str:
    m = run.manifest or {}
    return str(m.get("started_at") or m.get("start") or (run.records[0].started_at
                                                           if run.records else "") or "")


def _version_key(text: str) -> tuple:
    return tuple(int(x) if x.isdigit() else x for x in re.split(r"[.\s+-]", text))


def order_runs(runs: list[Run], by: str = "version") -> list[Run]:
    if by == "date":
        return sorted(runs, key=run_date)
    return sorted(runs, key=lambda r: (_version_key(run_version(r)), run_date(r)))


@dataclass
class Point:
    run_id: str
    label: str
    median: float
    spread: float  # stdev of samples (0 for single values)
    n: int
    step: str = ""  # "", or the compare verdict against the previous run


@dataclass
class Series:
    config: str
    test: str
    metric: str
    unit: str
    points: list[Point] = field(default_factory=list)


def history(runs: list[Run], by: str = "version", threshold: float = 0.05,
            alpha: float = 0.01, metrics: list[str] | None = None) -> list[Series]:
    if len(runs) < 2:
        raise SlmbenchError("history needs at least two run directories")
    runs = order_runs(runs, by)
    wanted = {m.lower() for m in metrics} if metrics else None
    table: dict[tuple, Series] = {}
    previous: dict[tuple, tuple] = {}
    for run in runs:
        label = run_version(run) if by == "version" else run_date(run)[:19]
        for rec in run.records:
            if rec.status != "ok":
                continue
            ck = config_key(rec, run.env)
            for t in rec.tests:
                for metric, unit, hib, samples in timed_samples(t):
                    if wanted and metric.lower() not in wanted and \
                            metric.split()[0].lower() not in wanted:
                        continue
                    key = (ck, t.name, metric)
                    s = table.setdefault(key, Series(config_label(rec), t.name, metric, unit))
                    pt = Point(run.run_id, label, percentile(samples, 50),
                               statistics.stdev(samples) if len(samples) > 1 else 0.0,
                               len(samples))
                    if key in previous:
                        row = Row("", t.name, metric, unit, hib, None, None, None)
                        _verdict_timed(row, previous[key], samples, threshold, alpha)
                        pt.step = row.verdict if row.verdict in ("faster", "slower") else ""
                    previous[key] = samples
                    s.points.append(pt)
            if rec.memory and (not wanted or "memory" in wanted or "peak_rss_mib" in wanted):
                key = (ck, "memory", "peak_rss_mib")
                s = table.setdefault(key, Series(config_label(rec), "memory", "peak_rss_mib",
                                                 "MiB"))
                value = rec.memory.peak_rss_mib
                pt = Point(run.run_id, label, value, 0.0, 1)
                if key in previous:
                    row = Row("", "memory", "peak_rss_mib", "MiB", False, previous[key], value,
                              None)
                    _verdict_single(row, threshold, 1.0)
                    pt.step = row.verdict if row.verdict in ("better", "worse") else ""
                previous[key] = value
                s.points.append(pt)
    return [s for s in table.values() if len(s.points) >= 1]


def render(series: list[Series]) -> str:
    out = []
    for s in series:
        out.append(f"{s.config}  {s.test}  {s.metric} ({s.unit})")
        for p in s.points:
            mark = f"  <- {p.step.upper()}" if p.step else ""
            out.append(f"    {p.label:28s} {p.run_id:32s} {p.median:12,.3f} ± {p.spread:,.3f} "
                       f"(n {p.n}){mark}")
    return "\n".join(out)


def plot(series: list[Series], out_dir: str) -> list[str]:
    """One trend figure per metric (PNG and SVG); returns the paths written."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(f"{s.test} {s.metric}", []).append(s)
    for name, group in by_metric.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for s in group:
            xs = list(range(len(s.points)))
            ax.errorbar(xs, [p.median for p in s.points], yerr=[p.spread for p in s.points],
                        marker="o", capsize=3, label=s.config)
            for x, p in zip(xs, s.points):
                if p.step:
                    ax.annotate(p.step, (x, p.median), textcoords="offset points", xytext=(0, 8),
                                ha="center", fontsize=8, color="red")
        labels = [p.label for p in group[0].points]
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(name)
        ax.set_ylabel(group[0].unit)
        ax.legend(fontsize=7)
        fig.tight_layout()
        stem = os.path.join(out_dir, "history-" + re.sub(r"[^\w.-]+", "_", name))
        for ext in ("png", "svg"):
            fig.savefig(f"{stem}.{ext}")
            paths.append(f"{stem}.{ext}")
        plt.close(fig)
    return paths
