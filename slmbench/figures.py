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
