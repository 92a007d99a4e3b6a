"""matplotlib figures of an analysis table (PNG and SVG).

Each ``fig_*`` function builds one figure (or returns None when the data cannot support it)
and :func:`make_all` lists them; :func:`write_all` saves them.  Built to be read at a glance:
model names on the points, human tick labels (135M, 1B, 32k), decode in ms per token, fits
drawn with their exponent or slope, and no label drawn over another - labels that would
collide are moved apart, and :func:`overlapping_labels` (matplotlib's own text extents) is
what the tests check every figure with.
"""

from __future__ import annotations

import os
from typing import Any

from slmbench.analysis import QUANT_RANK, comparable_groups, linear_fit, loglog_fit, per_model
from slmbench.findings import human_count, human_ctx, pareto, plus_mib

PARTS = [("model_mib", "weights", "#4C72B0"), ("kv_mib", "KV cache", "#DD8452"),
         ("compute_mib", "compute", "#55A868"), ("other_mib", "other", "#8C8C8C")]
CTX_TICKS = [1024, 4096, 32768, 131072]
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
         "grid.linewidth": 0.6, "figure.dpi": 110, "savefig.dpi": 130,
         "savefig.bbox": "tight", "figure.facecolor": "white"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def _save(fig: Any, out_dir: str, stem: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        fig.savefig(path)
        paths.append(path)
    _plt().close(fig)
    return paths


def _human_axis(ax: Any, axis: str = "x", ctx: bool = False) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fmt = FuncFormatter(lambda v, _pos: human_ctx(v) if ctx else human_count(v))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(fmt)
    target.set_minor_formatter(NullFormatter())


def _log_ticks(ax: Any, axis: str, lo: float, hi: float) -> None:
    """Readable ticks on a log axis: 1-2-5 steps within the data, human labels."""
    import math

    from matplotlib.ticker import FixedLocator

    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.05 <= v <= hi * 1.05:
                ticks.append(v)
    if len(ticks) > 8:
        ticks = [t for t in ticks if str(int(t / 10 ** math.floor(math.log10(t))))
                 in ("1", "5")] or ticks
    if len(ticks) >= 2:
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(FixedLocator(ticks))
    _human_axis(ax, axis)


# --------------------------------------------------------------------------- overlap

def _texts(fig: Any) -> list[Any]:
    """Every visible, non-empty text a reader reads: tick labels, annotations, axis labels,
    titles (legends are laid out by matplotlib and excluded)."""
    def drawn(labels: list, lim: tuple, i: int) -> list:
        lo, hi = min(lim), max(lim)
        span = (hi - lo) * 1e-6
        return [t for t in labels if lo - span <= t.get_position()[i] <= hi + span]

    out = []
    for ax in fig.axes:
        items = (drawn(ax.get_xticklabels(), ax.get_xlim(), 0)
                 + drawn(ax.get_yticklabels(), ax.get_ylim(), 1) + list(ax.texts))
        items += [ax.xaxis.label, ax.yaxis.label, ax.title]
        out += [t for t in items if t.get_visible() and t.get_text().strip()]
    return out


def overlapping_labels(fig: Any, pad_px: float = 0.0) -> list[tuple[str, str]]:
    """Pairs of labels whose drawn extents overlap (after layout), as their texts."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _texts(fig)
    boxes = [t.get_window_extent(renderer).expanded(1.0, 1.0) for t in texts]
    pairs = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = boxes[i], boxes[j]
            if (a.x0 < b.x1 - pad_px and b.x0 < a.x1 - pad_px and a.y0 < b.y1 - pad_px
                    and b.y0 < a.y1 - pad_px):
                pairs.append((texts[i].get_text(), texts[j].get_text()))
    return pairs


def label_points(ax: Any, xs: list[float], ys: list[float], labels: list[str],
                 fontsize: int = 7) -> int:
    """Name each point where its label collides with nothing already drawn.

    Candidate places are tried nearest first - right or left of the point, then further up or
    down with a leader line - against matplotlib's text extents of the labels placed so far,
    the legend and the axes' edges.  A label with no free place is left out rather than drawn
    over another; returns how many were left out (the figure says so)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    taken = []
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    from matplotlib.transforms import Bbox

    # the points themselves are obstacles too (a label may touch only its own point)
    pts = ax.transData.transform(list(zip(xs, ys)))
    dots = [Bbox.from_extents(x - 3.5, y - 3.5, x + 3.5, y + 3.5) for x, y in pts]
    steps = [0, 9, -9, 18, -18, 27, -27, 36, -36, 48, -48]
    places = [(dx, dy) for dy in steps for dx in (5, -5)]
    order = sorted(range(len(labels)), key=lambda i: (ys[i], xs[i]))
    omitted = 0
    for i in order:
        for dx, dy in places:
            ann = ax.annotate(
                labels[i], (xs[i], ys[i]), xytext=(dx, dy - 3), textcoords="offset points",
                fontsize=fontsize, color="#333333", ha="left" if dx > 0 else "right",
                arrowprops=({"arrowstyle": "-", "color": "#999999", "lw": 0.5,
                             "shrinkA": 0, "shrinkB": 2} if abs(dy) > 9 else None))
            box = ann.get_window_extent(renderer)
            fits = (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0
                    and box.y1 <= inside.y1)
            if fits and not any(box.overlaps(t) for t in taken) and not any(
                    box.overlaps(d) for j, d in enumerate(dots) if j != i):
                taken.append(box)
                break
            ann.remove()
        else:
            omitted += 1
    if omitted:
        ax.text(0.99, 0.01, f"{omitted} label{'s' if omitted > 1 else ''} left out (crowded)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="#777777")
    return omitted


# --------------------------------------------------------------------------- figures

def _biggest_group(df, min_models: int = 2):
    groups = [((d, q), g) for (d, q), g in comparable_groups(df)]
    groups = [x for x in groups if x[1]["model_id"].nunique() >= min_models]
    return sorted(groups, key=lambda x: -x[1]["model_id"].nunique())


def fig_latency_vs_params(df, kind: str = "tg") -> Any:
    """Latency vs parameters for one test kind: a point per model (named), a log-log fit per
    quantization with its exponent; decode in ms per token."""
    import numpy as np

    from slmbench.findings import _timed

    series = []
    for (device, quant), g in _biggest_group(df):
        name, rows = _timed(g, kind)
        if name is None:
            continue
        per = per_model(rows)
        per = per[per["parameters"].notna() & per["latency_ms"].notna()]
        if len(per) >= 2:
            series.append((device, quant, name, per))
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo, hi = [], []
    for i, (device, quant, name, per) in enumerate(series[:6]):
        c = colors[i % len(colors)]
        what = ", ".join(x for x in (quant, device) if x != "unknown")
        ax.scatter(per["parameters"], per["latency_ms"], color=c, s=22, zorder=3,
                   label=f"{what} ({name})" if what else name)
        fit = loglog_fit(per["parameters"], per["latency_ms"])
        if fit:
            xs = np.geomspace(per["parameters"].min(), per["parameters"].max(), 30)
            ax.plot(xs, fit["a"] * xs ** fit["k"], "--", color=c, lw=1,
                    label=f"fit: ∝ params^{fit['k']:.2f} (R² {fit['r2']:.2f})")
        if i == 0:
            named = per
        lo += [per["parameters"].min(), per["latency_ms"].min()]
        hi += [per["parameters"].max(), per["latency_ms"].max()]
    ax.set_xscale("log")
    ax.set_yscale("log")
    allp = [p for *_, per in series for p in per["parameters"]]
    alll = [v for *_, per in series for v in per["latency_ms"]]
    _log_ticks(ax, "x", min(allp), max(allp))
    _log_ticks(ax, "y", min(alll), max(alll))
    ax.yaxis.set_major_formatter(_plain_formatter())
    unit = "ms per token" if kind == "tg" else "ms"
    word = {"tg": "decode", "pp": "prefill", "ttft": "time to first token"}[kind]
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{word} latency ({unit}, median)")
    ax.set_title(f"{word} latency vs parameters (log-log)")
    ax.legend(loc="upper left", frameon=False)
    fig.tight_layout()
    if len(named) <= 40:
        label_points(ax, list(named["parameters"]), list(named["latency_ms"]),
                     list(named.index))
    return fig


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 10 else f"{v:.2g}")


def fig_memory_vs_params(df) -> Any:
    """Memory vs parameters with the linear fit (MiB per billion parameters), vocabulary as
    colour, each model named."""
    import numpy as np
    from matplotlib.colors import LogNorm

    from slmbench.findings import _memory_rows

    groups = _biggest_group(df, 3)
    if not groups:
        return None
    (device, quant), g = groups[0]
    per = _memory_rows(g)
    per = per[per["memory_mib"].notna() & per["parameters"].notna()]
    if len(per) < 3:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    x = per["parameters"] / 1e9
    vocab = per["vocab_size"] if "vocab_size" in per else None
    if vocab is not None and vocab.notna().all() and vocab.nunique() > 1:
        sc = ax.scatter(x, per["memory_mib"], c=vocab, cmap="viridis", s=30, zorder=3,
                        norm=LogNorm(vocab.min(), vocab.max()))
        cb = fig.colorbar(sc, ax=ax, pad=0.02)
        cb.set_label("vocabulary (tokens)")
        ticks = sorted(set(vocab))
        if len(ticks) > 6:
            ticks = [v for v in (16000, 32000, 64000, 128000, 256000, 512000)
                     if vocab.min() <= v <= vocab.max()] or [vocab.min(), vocab.max()]
        cb.set_ticks(ticks)
        cb.ax.yaxis.set_major_formatter(_count_formatter())
        cb.ax.yaxis.set_minor_formatter(_null())
    else:
        ax.scatter(x, per["memory_mib"], s=30, zorder=3)
    fit = linear_fit(x, per["memory_mib"])
    if fit:
        xs = np.linspace(0, x.max() * 1.05, 20)
        ax.plot(xs, fit["intercept"] + fit["slope"] * xs, "--", color="#444444", lw=1,
                label=f"{fit['slope']:,.0f} MiB per billion parameters "
                      f"{plus_mib(fit['intercept'])} (R² {fit['r2']:.2f})")
        ax.legend(loc="upper left", frameon=False)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(_count_formatter(1e9))
    metric = "peak resident memory" if per["peak_rss_mib"].notna().all() else "memory"
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{metric} (MiB)")
    what = ", ".join(v for v in (quant, device) if v != "unknown")
    ax.set_title(f"memory vs parameters{f' ({what})' if what else ''}: above the line = "
                 "more than size predicts")
    fig.tight_layout()
    label_points(ax, list(x), list(per["memory_mib"]), list(per.index))
    return fig


def _count_formatter(scale: float = 1.0):
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: human_count(v * scale) if v else "0")


def _breakdown_rows(df):
    """One row per model x quant x device: the four parts, sorted by parameters."""
    keys = ["model_id", "quant", "device"]
    per = df[df["model_mib"].notna()].groupby(keys).first(numeric_only=True).reset_index()
    if per.empty:
        return per
    per["_q"] = per["quant"].map(lambda q: QUANT_RANK.index(q) if q in QUANT_RANK else 99)
    per = per.sort_values(["parameters", "model_id", "_q", "device"], na_position="last")
    multi_dev = per["device"].nunique() > 1
    multi_q = per["quant"].nunique() > 1
    per["label"] = [m + (f" {q}" if multi_q else "") + (f" ({d})" if multi_dev else "")
                    for m, q, d in zip(per["model_id"], per["quant"], per["device"])]
    return per


def fig_memory_breakdown(df) -> Any:
    """Horizontal stacked bars sorted by parameters (smallest on top): MiB, and the same as
    % of the total, so 25 models stay readable."""
    per = _breakdown_rows(df)
    if per.empty:
        return None
    plt = _plt()
    n = len(per)
    fig, (ax, axp) = plt.subplots(1, 2, figsize=(10, 0.28 * n + 1.9), sharey=True,
                                  gridspec_kw={"width_ratios": [3, 2]})
    ys = list(range(n))[::-1]
    left = [0.0] * n
    leftp = [0.0] * n
    totals = per[[c for c, _, _ in PARTS]].fillna(0).sum(axis=1).replace(0, float("nan"))
    for col, word, color in PARTS:
        vals = per[col].fillna(0).tolist()
        pct = (100 * per[col].fillna(0) / totals).fillna(0).tolist()
        ax.barh(ys, vals, left=left, color=color, label=word, height=0.75)
        axp.barh(ys, pct, left=leftp, color=color, height=0.75)
        left = [a + b for a, b in zip(left, vals)]
        leftp = [a + b for a, b in zip(leftp, pct)]
    from matplotlib.ticker import MaxNLocator

    ax.set_yticks(ys, per["label"])
    ax.set_xlim(0, max(left) * 1.12 if max(left) > 0 else 1)  # the last tick inside
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("MiB")
    axp.set_xlabel("% of the total")
    axp.set_xlim(0, 100)
    ax.grid(axis="y", visible=False)
    axp.grid(axis="y", visible=False)
    ctx = per["n_ctx"].dropna()
    at = f" at n_ctx {int(ctx.mode().iloc[0]):,}" if len(ctx) else ""
    fig.suptitle(f"memory breakdown{at}, sorted by parameters", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="upper center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, 1.0 - 0.45 / (0.28 * n + 1.9)))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / (0.28 * n + 1.9)))
    return fig


def fig_kv_share_vs_context(df) -> Any:
    """The KV share projected from the measured context to 128k per model, 50 % and 80 %
    lines, line style by attention type."""
    import numpy as np

    from slmbench.analysis import kv_curve

    keys = ["model_id", "quant", "device", "n_ctx", "type_k"]
    rows = df[df["kv_basis"].notna()].groupby(keys, dropna=False).first(numeric_only=False)
    if rows.empty:
        return None
    rows = rows.reset_index()
    # one curve per model and quant: the smallest measured context
    rows = rows.sort_values("n_ctx").drop_duplicates(["model_id", "quant", "device"])
    rows = rows.sort_values(["parameters", "model_id"], na_position="last")
    if len(rows) > 30:
        rows = rows.head(30)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 5))
    cmap = plt.get_cmap("tab20" if len(rows) > 10 else "tab10")
    styles = {"MHA": "-", "GQA": "--", "MQA": ":", "MLA": "-."}
    multi_q = rows["quant"].nunique() > 1
    for i, (_, r) in enumerate(rows.iterrows()):
        start = int(r["n_ctx"]) if r["n_ctx"] == r["n_ctx"] and (r["n_ctx"] or 0) > 0 else 512
        ctxs = [int(c) for c in np.geomspace(min(start, 131072), 131072, 48)]
        shares = kv_curve(r.to_dict(), ctxs)
        if not any(s is not None for s in shares):
            continue
        color = cmap(i % cmap.N)
        att = r.get("attention_type") if isinstance(r.get("attention_type"), str) else None
        label = r["model_id"] + (f" {r['quant']}" if multi_q else "") + (f" ({att})" if att
                                                                          else "")
        ax.plot(ctxs, [100 * (s or 0) for s in shares], styles.get(att, "-"), color=color,
                lw=1.3, label=label)
        if r.get("kv_share") == r.get("kv_share") and r["n_ctx"] == r["n_ctx"]:
            ax.plot([r["n_ctx"]], [100 * r["kv_share"]], "o", color=color, ms=3.5)
    for level in (50, 80):
        ax.axhline(level, color="#555555", lw=0.8, ls=(0, (4, 3)))
        ax.text(1.005, level, f"{level} %", transform=ax.get_yaxis_transform(), va="center",
                fontsize=7, color="#555555")
    ax.set_xscale("log", base=2)
    ax.set_xticks(CTX_TICKS, [human_ctx(c) for c in CTX_TICKS])
    ax.xaxis.set_minor_formatter(_null())
    ax.set_xlim(right=131072 * 1.05)
    ax.set_ylim(0, 100)
    ax.set_xlabel("context length (tokens, log scale)")
    ax.set_ylabel("KV cache share of memory (%)")
    ax.set_title("KV share projected from the measured point (dot) to 128k")
    ncol = 1 if len(rows) <= 15 else 2
    ax.legend(loc="upper left", bbox_to_anchor=(1.06, 1.0), frameon=False, fontsize=7,
              ncol=ncol, title="solid MHA, dashed GQA, dotted MQA", title_fontsize=7)
    fig.tight_layout()
    return fig


def _null():
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def fig_quant_speedup(speedups) -> Any:
    if speedups is None or speedups.empty:
        return None
    kinds = {"pp": 0, "ttft": 1, "tg": 2}
    pivot = speedups.pivot_table(index="quant", columns="test", values="speedup",
                                 aggfunc="mean")
    order = [q for q in QUANT_RANK if q in pivot.index] + [q for q in pivot.index
                                                            if q not in QUANT_RANK]
    tests = speedups.drop_duplicates("test").assign(
        _k=lambda d: d["kind"].map(kinds), _n=lambda d: d["n_prompt"].fillna(0)
        + d["n_gen"].fillna(0), _d=lambda d: d["n_depth"].fillna(0))
    cols = list(tests.sort_values(["_k", "_d", "_n"])["test"])
    pivot = pivot.loc[order, [c for c in cols if c in pivot.columns]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(pivot.columns) + 3),
                                    0.5 * len(pivot) + 2))
    span = max(abs(pivot.values[pivot.values == pivot.values] - 1).max(), 0.05)
    im = ax.imshow(pivot.values, cmap="RdBu", vmin=1 - span, vmax=1 + span, aspect="auto")
    ax.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(pivot.index)), pivot.index)
    ax.grid(False)
    for i in range(len(pivot.index)):
        for j in range(len(pivot.columns)):
            v = pivot.values[i, j]
            if v == v:
                ax.text(j, i, f"{v:.2f}x", ha="center", va="center", fontsize=8,
                        color="white" if abs(v - 1) > 0.6 * span else "black")
    ref = speedups["reference"].iloc[0]
    fig.colorbar(im, ax=ax, label=f"speedup vs {ref} (> 1 faster)")
    models = sorted(speedups["model_id"].unique())
    ax.set_title("quantization speedup per test"
                 + (f" ({models[0]})" if len(models) == 1 else
                    f" (mean over {len(models)} models)"))
    fig.tight_layout()
    return fig


def fig_decode_drift(runs: list) -> Any:
    series = [(f"{r.model_id} {r.quant} {t.name}", t.token_ms) for run in runs
              for r in run.records if r.status == "ok" for t in r.tests if t.token_ms]
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    lows, highs = [], []
    for label, reps in series[:12]:
        n = min(len(x) for x in reps)
        mean = [sum(rep[i] for rep in reps) / len(reps) for i in range(n)]
        ax.plot(range(1, n + 1), mean, label=label, lw=1)
        lows.append(min(mean))
        highs.append(max(mean))
    if min(lows) > 0 and max(highs) / min(lows) > 20:  # models of very different speeds
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain_formatter())
    ax.set_xlabel("token index")
    ax.set_ylabel("ms per token (mean over repetitions)")
    ax.set_title("decode latency per token (a rising line = throttling)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


GROUP_METRICS = {"prefill": ["latency_ms", "ts_mean"],
                 "decode": ["latency_ms", "ts_mean", "decode_gbs"],
                 "memory": ["peak_rss_mib", "model_mib", "kv_mib", "compute_mib", "other_mib",
                            "kv_share", "kv_share_32k"]}


def fig_correlations(corr) -> Any:
    """Spearman rho of cost metrics vs facts, one panel per test group (prefill, decode,
    memory), each one comparison - the test and quantization with the most models - never an
    average over groups."""
    if corr is None or corr.empty:
        return None
    panels = []
    for group in ("prefill", "decode", "memory"):
        g = corr[corr["group"] == group]
        if g.empty:
            continue
        best = g.groupby(["test", "device", "quant"])["n"].max().sort_values(ascending=False)
        test, device, quant = best.index[0]
        sub = g[(g["test"] == test) & (g["device"] == device) & (g["quant"] == quant)]
        pivot = sub.pivot_table(index="metric", columns="fact", values="spearman_rho")
        rows = [m for m in GROUP_METRICS[group] if m in pivot.index]
        if not rows:
            continue
        what = ", ".join(x for x in (test if group != "memory" else "", quant, device)
                         if x and x != "unknown")
        panels.append((group, f"{what}, " if what else "", int(best.iloc[0]),
                       pivot.loc[rows]))
    if not panels:
        return None
    plt = _plt()
    facts = sorted({f for *_, p in panels for f in p.columns})
    heights = [len(p) + 1.2 for *_, p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(0.9 * len(facts) + 3.5,
                                                      0.42 * sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    im = None
    for ax, (group, what, n, pivot) in zip(axes[:, 0], panels):
        pivot = pivot.reindex(columns=facts)
        im = ax.imshow(pivot.values, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
        ax.set_yticks(range(len(pivot.index)), pivot.index)
        ax.set_xticks(range(len(facts)), facts if ax is axes[-1, 0] else [""] * len(facts),
                      rotation=30, ha="right")
        ax.grid(False)
        for i in range(len(pivot.index)):
            for j in range(len(facts)):
                v = pivot.values[i, j]
                if v == v:
                    ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 else "black")
        ax.set_title(f"{group} ({what}n {n} models)", fontsize=9, loc="left")
    fig.colorbar(im, ax=list(axes[:, 0]), label="Spearman rho", shrink=0.8)
    return fig


def fig_quality_pareto(df) -> Any:
    """Quality vs decode speed per model; the speed/quality front as a line, marker size =
    weights MiB."""
    if "q_ppl" not in df or df["q_ppl"].isna().all():
        return None
    qual = df[df["test"] == "quality"].groupby(["model_id", "quant", "device"],
                                               dropna=False).first(numeric_only=True)
    tg = df[(df["test"] == "tg") & (df["n_depth"].fillna(0) == 0)]
    speed = tg.groupby(["model_id", "quant", "device"], dropna=False).agg(
        ms=("latency_ms", "first"), mib=("model_mib", "first"))
    joined = speed.join(qual[["q_ppl", "q_kl_mean", "q_delta_ppl"]], how="inner").reset_index()
    joined = joined[joined["ms"].notna()]
    if joined.empty:
        return None
    use_kl = joined["q_kl_mean"].notna().sum() >= 2
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    to_label = []
    for i, ((model, device), g) in enumerate(joined.groupby(["model_id", "device"])):
        c = colors[i % len(colors)]
        g = g.assign(ts=1000 / g["ms"])
        ref = next((q for q in QUANT_RANK if q in set(g["quant"])), g["quant"].iloc[0])
        y = g["q_kl_mean"].fillna(0.0) if use_kl else g["q_ppl"]
        where = f" ({device})" if device != "unknown" else ""
        ax.scatter(g["ts"], y, s=20 + g["mib"].fillna(0) / 4, alpha=0.75, color=c,
                   label=f"{model}{where}", zorder=3)
        to_label.append((list(g["ts"]), list(y), list(g["quant"])))
        quality = {r.quant: {"kl_mean": r.q_kl_mean, "delta_ppl": r.q_delta_ppl}
                   for r in g.itertuples()}
        if not use_kl:
            base = g[g["quant"] == ref]["q_ppl"]
            for r in g.itertuples():
                quality[r.quant]["delta_ppl"] = r.q_ppl - (base.iloc[0] if len(base) else 0)
        sp = {r.quant: r.ts for r in g.itertuples()}
        front, _, _ = pareto(sp, quality, ref)
        if len(front) >= 2:
            pts = g.set_index("quant").loc[front]
            fy = pts["q_kl_mean"].fillna(0.0) if use_kl else pts["q_ppl"]
            ax.plot(pts["ts"], fy, "-", color=c, lw=1, alpha=0.8,
                    label=f"front: {', '.join(front)}")
    ax.set_xlabel("decode tokens/s (higher is better)")
    ax.set_ylabel("KL divergence from the reference (nats, lower is better)" if use_kl
                  else "perplexity (lower is better)")
    ax.set_title("quality vs speed (marker size: weights MiB)")
    ax.legend(loc="best", frameon=False)
    fig.tight_layout()
    xs, ys, names = ([v for t in to_label for v in t[k]] for k in range(3))
    label_points(ax, xs, ys, names)
    return fig


def make_all(df, runs: list | None = None, speedups=None, corr=None) -> list[tuple[str, Any]]:
    """(stem, figure) for every figure the data supports, in report order."""
    from slmbench.analysis import correlation_table, quant_speedups

    speedups = quant_speedups(df) if speedups is None else speedups
    corr = correlation_table(df) if corr is None else corr
    out = []
    for stem, build in (
            ("latency-vs-params-pp", lambda: fig_latency_vs_params(df, "pp")),
            ("latency-vs-params-ttft", lambda: fig_latency_vs_params(df, "ttft")),
            ("latency-vs-params-tg", lambda: fig_latency_vs_params(df, "tg")),
            ("memory-vs-params", lambda: fig_memory_vs_params(df)),
            ("memory-breakdown", lambda: fig_memory_breakdown(df)),
            ("kv-share-vs-context", lambda: fig_kv_share_vs_context(df)),
            ("quant-speedup", lambda: fig_quant_speedup(speedups)),
            ("quality-pareto", lambda: fig_quality_pareto(df)),
            ("correlations", lambda: fig_correlations(corr)),
            ("decode-drift", lambda: fig_decode_drift(runs or []))):
        fig = build()
        if fig is not None:
            out.append((stem, fig))
    return out


def write_all(df, out_dir: str, runs: list | None = None, speedups=None,
              corr=None) -> list[str]:
    """Save every figure as PNG and SVG; the paths written."""
    paths: list[str] = []
    for stem, fig in make_all(df, runs, speedups, corr):
        paths += _save(fig, out_dir, stem)
    return paths


def fig_sustained(test: Any, title: str = "", marks: list | None = None) -> Any:
    """A sustained test over time: the workload's tokens/s per window (left axis, with the
    burst, 90 %-of-burst and sustained levels) and the temperature (right axis; the CPU clock
    when there is no temperature).  ``marks``: (seconds, label) events to draw, e.g. when a
    competing load started.  None for a test without windows."""
    res = getattr(test, "sustained", None)
    if res is None or not res.windows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ws = res.windows
    attr = "decode_ts" if res.primary == "decode" else "prefill_ts"
    sp = res.decode if res.primary == "decode" else res.prefill
    xs, ys = [], []
    for w in ws:
        v = getattr(w, attr)
        xs += [w.t_start_s, w.t_end_s]
        ys += [v if v is not None else float("nan")] * 2
    ax.plot(xs, ys, color="#4C72B0", lw=1.8, label=f"{res.primary} tokens/s")
    done = [w for w in ws if w.complete and getattr(w, attr) is not None]
    ax.plot([(w.t_start_s + w.t_end_s) / 2 for w in done], [getattr(w, attr) for w in done],
            "o", color="#4C72B0", ms=3)
    partial = [w for w in ws if not w.complete and getattr(w, attr) is not None]
    if partial:
        ax.plot([(w.t_start_s + w.t_end_s) / 2 for w in partial],
                [getattr(w, attr) for w in partial], "o", mfc="white", color="#4C72B0", ms=4,
                label="incomplete window (not in the summary)")
    end = ws[-1].t_end_s
    if sp is not None and sp.burst_ts:
        ax.axhline(sp.burst_ts, color="#55A868", lw=1, ls="--",
                   label=f"burst {sp.burst_ts:,.1f}")
        ax.axhline(0.9 * sp.burst_ts, color="#C44E52", lw=0.8, ls=":", label="90% of burst")
        sus = done[-sp.sustained_windows:] if sp.sustained_windows else []
        if sus:
            ax.hlines(sp.sustained_ts, sus[0].t_start_s, sus[-1].t_end_s, color="#DD8452",
                      lw=2.2, label=f"sustained {sp.sustained_ts:,.1f} "
                                    f"({sp.retained_pct:.0f}% of burst)")
        if sp.below_90_s is not None:
            ax.axvline(sp.below_90_s, color="#C44E52", lw=1, alpha=0.6)
            ax.annotate(f"< 90% at {sp.below_90_s:g} s", (sp.below_90_s, 0.9 * sp.burst_ts),
                        xytext=(4, -12), textcoords="offset points", fontsize=8,
                        color="#C44E52")
    ax.set_xlim(0, end)
    top = max([v for v in ys if v == v] + [sp.burst_ts if sp and sp.burst_ts else 0])
    ax.set_ylim(0, 1.15 * top if top > 0 else 1)
    ax.set_xlabel("time since the workload started (s)")
    ax.set_ylabel(f"{res.primary} tokens/s")
    right = ax.twinx()
    temps = [(w, w.temp_c) for w in ws if w.temp_c is not None]
    if temps:
        tx = [(w.t_start_s + w.t_end_s) / 2 for w, _ in temps]
        right.plot(tx, [v for _, v in temps], color="#8C2D04", lw=1.2, marker="s", ms=2.5,
                   label="temperature (hottest sensor)")
        gpu = [(w, w.temp_gpu_c) for w in ws if w.temp_gpu_c is not None]
        if gpu and any(w.temp_gpu_c != w.temp_c for w, _ in gpu):
            right.plot([(w.t_start_s + w.t_end_s) / 2 for w, _ in gpu], [v for _, v in gpu],
                       color="#8C2D04", lw=1, ls="--", label="GPU temperature")
        right.set_ylabel("temperature (C)")
    else:
        clocks = [(w, w.cpu_mhz) for w in ws if w.cpu_mhz is not None]
        if clocks:
            right.plot([(w.t_start_s + w.t_end_s) / 2 for w, _ in clocks],
                       [v for _, v in clocks], color="#8C2D04", lw=1.2, marker="s", ms=2.5,
                       label="CPU clock (fastest core)")
            right.set_ylabel("CPU clock (MHz)")
        else:
            right.set_yticks([])
            right.text(0.99, 0.02, "no temperature or clock sensor on this device",
                       transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                       color="#666666")
    for t_mark, label in marks or []:
        ax.axvline(t_mark, color="black", lw=1, ls="-.", label=label)
    hot = [w for w in ws if w.sensors and w.sensors.throttled]
    for i, w in enumerate(hot):
        ax.axvspan(w.t_start_s, w.t_end_s, color="#C44E52", alpha=0.08, lw=0,
                   label="throttling flagged" if i == 0 else None)
    lines = ax.get_legend_handles_labels()
    lines2 = right.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper center",
              bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=7, frameon=False)
    ax.set_title(title or f"{test.name}: speed and temperature over time", fontsize=10)
    fig.tight_layout()
    return fig


def sustained_figures(runs: list, out_dir: str) -> list[str]:
    """One figure per sustained test of the runs (failed configs too: a killed run's windows
    are the finding); the paths written."""
    import re

    paths: list[str] = []
    for run in runs:
        for rec in run.records:
            for t in rec.tests:
                threads = rec.settings.n_threads if rec.settings else "?"
                title = f"{rec.model_id} {rec.quant} t{threads} {t.name}"
                fig = fig_sustained(t, title)
                if fig is None:
                    continue
                stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"sustained-{rec.model_id}-{rec.quant}-"
                                                         f"{rec.record_id[:8]}")
                paths += _save(fig, out_dir, stem)
    return paths


# --------------------------------------------------------------------------- profiles

PROFILE_COLORS = {"output": "#C44E52", "attention": "#55A868", "kv_copy": "#8172B2",
                  "norm": "#CCB974", "rope": "#64B5CD", "elementwise": "#DD8452",
                  "embedding": "#937860", "other": "#8C8C8C", "noise": "#D9D9D9",
                  "unattributed": "#F2F2F2"}
MATMUL_COLORS = ["#1F4E79", "#2E75B6", "#5B9BD5", "#9DC3E6", "#BDD7EE"]


def _profiled(runs: list) -> list[tuple[str, Any]]:
    """(label, record) of every ok record with a profile test; labels unique (the thread
    count added where a model repeats)."""
    recs = [r for run in runs for r in run.records
            if r.status == "ok" and any(t.profile is not None for t in r.tests)]
    labels = [f"{r.model_id} {r.quant}" for r in recs]
    return [(lab + (f" t{r.settings.n_threads}" if labels.count(lab) > 1 and r.settings
                    else ""), r) for lab, r in zip(labels, recs)]


def fig_profile_classes(runs: list) -> Any:
    """Per phase, one stacked bar per profiled model: the share of each operator class in the
    profiled time per token (`slmbench profile`), the total ms per token beside it."""
    from slmbench.profile import CLASS_ORDER

    recs = _profiled(runs)
    if not recs:
        return None
    profiles = {(lab, t.profile.phase): t.profile for lab, r in recs for t in r.tests
                if t.profile is not None}
    phases = [ph for ph in ("prefill", "decode") if any(k[1] == ph for k in profiles)]
    order: dict[str, tuple] = {}
    for p in profiles.values():
        for c in p.classes:
            order.setdefault(c.label, (CLASS_ORDER.index(c.op_class), c.label))
    labels = sorted(order, key=lambda k: order[k])
    matmuls = [x for x in labels if x.startswith("matmul")]
    colors = {x: MATMUL_COLORS[i % len(MATMUL_COLORS)] for i, x in enumerate(matmuls)}
    colors.update({x: PROFILE_COLORS.get(x.split(" ")[0], "#8C8C8C") for x in labels
                   if x not in colors})
    ncol = min(6, len(labels))
    legend_in = 0.17 * -(-len(labels) // ncol) + 0.08  # inches of legend under the axes
    height = 0.5 * len(recs) + 1.6 + legend_in
    plt = _plt()
    fig, axes = plt.subplots(1, len(phases), figsize=(5.6 * len(phases) + 1.5, height),
                             sharey=True, squeeze=False)
    names = [lab for lab, _r in recs]
    for ax, phase in zip(axes[0], phases):
        for i, name in enumerate(names):
            p = profiles.get((name, phase))
            if p is None:
                continue
            left = 0.0
            for lab in labels:
                c = next((c for c in p.classes if c.label == lab), None)
                if c is None or c.pct <= 0:
                    continue
                ax.barh(i, c.pct, left=left, color=colors[lab], edgecolor="white", lw=0.4,
                        hatch="//" if lab == "noise" else None, label=lab)
                if c.pct >= 8:
                    r, g, b = (int(colors[lab][k:k + 2], 16) for k in (1, 3, 5))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 140  # white text on dark bars
                    ax.text(left + c.pct / 2, i, f"{c.pct:.0f}", ha="center", va="center",
                            fontsize=7, color="white" if dark else "black")
                left += c.pct
            ax.text(101.5, i, f"{p.total_ms:.3g} ms/token", va="center", fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the profiled time per token (%)")
        ax.set_title(f"{phase}: where the time goes")
        ax.set_yticks(range(len(names)), names)
        ax.grid(False)
    axes[0][0].invert_yaxis()  # the first model on top (the y axis is shared: invert once)
    seen: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, handle)
    keys = [k for k in labels if k in seen]
    fig.legend([seen[k] for k in keys], keys, loc="lower center", ncol=ncol, frameon=False,
               fontsize=7)
    fig.tight_layout(rect=(0, legend_in / height, 1, 1))
    return fig


def fig_profile_blocks(runs: list) -> Any:
    """Per phase, the profiled time per token of each block (layer), one line per model."""
    from matplotlib.ticker import MaxNLocator

    data = [(lab, t.profile) for lab, r in _profiled(runs) for t in r.tests
            if t.profile is not None and any(x.layer is not None for x in t.profile.layers)]
    if not data:
        return None
    phases = [ph for ph in ("prefill", "decode") if any(p.phase == ph for _l, p in data)]
    plt = _plt()
    fig, axes = plt.subplots(1, len(phases), figsize=(5.4 * len(phases), 3.6), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        for lab, p in data:
            if p.phase == phase:
                blocks = [x for x in p.layers if x.layer is not None]
                ax.plot([x.layer for x in blocks], [1000 * x.ms for x in blocks], marker="o",
                        ms=3, lw=1.2, label=lab)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block (layer)")
        ax.set_ylabel("µs per token")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{phase}: time per block")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def profile_figures(runs: list, out_dir: str) -> list[str]:
    """The profile figures of the runs (none without profiles); the paths written."""
    paths: list[str] = []
    for stem, build in (("profile-classes", fig_profile_classes),
                        ("profile-blocks", fig_profile_blocks)):
        fig = build(runs)
        if fig is not None:
            paths += _save(fig, out_dir, stem)
    return paths
