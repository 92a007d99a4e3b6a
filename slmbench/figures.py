"""matplotlib figures of a results table (PNG and SVG); each returns the paths it wrote."""

from __future__ import annotations

import os
from typing import Any

from slmbench.analysis import QUANT_RANK, loglog_fit


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_dir: str, stem: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        fig.savefig(path, dpi=110)
        paths.append(path)
    _plt().close(fig)
    return paths


def _finish(fig: Any, ax: Any, out_dir: str, stem: str, *, xlabel: str, ylabel: str,
            title: str | None = None, legend_size: int = 7) -> list[str]:
    """Axis labels, title, legend and layout shared by the line/scatter figures, then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def latency_vs_params(df, out_dir: str, test: str = "tg") -> list[str]:
    import numpy as np

    g = df[(df["test"] == test) & df["parameters"].notna() & df["ms_median"].notna()]
    if g["model_id"].nunique() < 2:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for quant, gq in g.groupby("quant"):
        name = gq["name"].iloc[0]
        gq = gq[gq["name"] == name]
        ax.scatter(gq["parameters"], gq["ms_median"], label=f"{quant} ({name})")
        fit = loglog_fit(gq["parameters"], gq["ms_median"])
        if fit:
            xs = np.geomspace(gq["parameters"].min(), gq["parameters"].max(), 20)
            ax.plot(xs, fit["a"] * xs ** fit["k"], "--",
                    label=f"{quant}: ∝ params^{fit['k']:.2f}, R² {fit['r2']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, out_dir, f"latency-vs-params-{test}", xlabel="parameters",
                   ylabel="ms (median)",
                   title=f"{'decode' if test == 'tg' else 'prefill'} latency vs parameters")


def memory_breakdown(df, out_dir: str) -> list[str]:
    per = df.groupby(["model_id", "quant"]).first(numeric_only=True).reset_index()
    cols = [c for c in ("model_mib", "kv_mib", "compute_mib", "other_mib") if c in per]
    if per.empty or not cols:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(per)), 4.5))
    bottom = [0.0] * len(per)
    labels = [f"{m}\n{q}" for m, q in zip(per["model_id"], per["quant"])]
    for col in cols:
        vals = per[col].fillna(0).tolist()
        ax.bar(labels, vals, bottom=bottom, label=col.replace("_mib", ""))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("MiB")
    ax.set_title("memory breakdown (weights / KV / compute reserved / other)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _save(fig, out_dir, "memory-breakdown")


def kv_share_vs_context(df, out_dir: str) -> list[str]:
    g = df.groupby(["model_id", "quant", "n_ctx"]).first(numeric_only=True).reset_index()
    g = g.dropna(subset=["kv_share", "n_ctx"])
    if g.empty:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (model, quant), gm in g.groupby(["model_id", "quant"]):
        gm = gm.sort_values("n_ctx")
        ax.plot(gm["n_ctx"], 100 * gm["kv_share"], marker="o", label=f"{model} {quant}")
    ax.set_xscale("log", base=2)
    ax.axhline(50, color="grey", lw=0.5)
    ax.axhline(80, color="grey", lw=0.5)
    return _finish(fig, ax, out_dir, "kv-share-vs-context", xlabel="context length (tokens)",
                   ylabel="KV cache share of memory (%)")


def quant_speedup_heatmap(speedups, out_dir: str) -> list[str]:
    if speedups is None or speedups.empty:
        return []
    pivot = speedups.pivot_table(index="quant", columns="test", values="speedup", aggfunc="mean")
    order = [q for q in QUANT_RANK if q in pivot.index] + [q for q in pivot.index
                                                            if q not in QUANT_RANK]
    pivot = pivot.loc[order]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(pivot.columns) + 3, 0.5 * len(pivot) + 2))
    im = ax.imshow(pivot.values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(pivot.index)), pivot.index)
    for i in range(len(pivot.index)):
        for j in range(len(pivot.columns)):
            v = pivot.values[i, j]
            if v == v:
                ax.text(j, i, f"{v:.2f}x", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label="speedup vs highest precision")
    ax.set_title("quantization speedup")
    fig.tight_layout()
    return _save(fig, out_dir, "quant-speedup")


def decode_drift(runs: list, out_dir: str) -> list[str]:
    series = [(f"{r.model_id} {r.quant} {t.name}", t.token_ms) for run in runs
              for r in run.records if r.status == "ok" for t in r.tests if t.token_ms]
    if not series:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, reps in series[:12]:
        n = min(len(x) for x in reps)
        mean = [sum(rep[i] for rep in reps) / len(reps) for i in range(n)]
        ax.plot(range(1, n + 1), mean, label=label)
    return _finish(fig, ax, out_dir, "decode-drift", xlabel="token index",
                   ylabel="ms per token (mean over repetitions)",
                   title="decode latency per token (drift = throttling)", legend_size=6)


def correlation_heatmap(corr, out_dir: str) -> list[str]:
    if corr is None or corr.empty:
        return []
    pivot = corr.pivot_table(index="metric", columns="fact", values="spearman_rho",
                             aggfunc="mean")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.1 * len(pivot.columns) + 3, 0.45 * len(pivot) + 2))
    im = ax.imshow(pivot.values, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(pivot.index)), pivot.index)
    fig.colorbar(im, ax=ax, label="Spearman rho (mean over groups)")
    ax.set_title("cost metrics vs model facts")
    fig.tight_layout()
    return _save(fig, out_dir, "correlations")


def quality_pareto(df, out_dir: str) -> list[str]:
    """Per model and device: perplexity vs decode tok/s, marker size = weights MiB."""
    if "q_ppl" not in df or df["q_ppl"].isna().all():
        return []
    quality = df[df["test"] == "quality"].groupby(["model_id", "quant", "device"],
                                                  dropna=False)["q_ppl"].first()
    speed = df[df["test"] == "tg"].groupby(["model_id", "quant", "device"],
                                           dropna=False).agg(ts=("ts_mean", "first"),
                                                             mib=("model_mib", "first"))
    joined = speed.join(quality, how="inner").reset_index()
    if joined.empty:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (model, device), g in joined.groupby(["model_id", "device"], dropna=False):
        ax.scatter(g["ts"], g["q_ppl"], s=20 + g["mib"].fillna(0) / 4, alpha=0.7,
                   label=f"{model} ({device})")
        for _, r in g.iterrows():
            ax.annotate(r["quant"], (r["ts"], r["q_ppl"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    return _finish(fig, ax, out_dir, "quality-pareto", xlabel="decode tokens/s (higher is better)",
                   ylabel="perplexity (lower is better)",
                   title="quality vs speed (marker size: weights MiB)")


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
