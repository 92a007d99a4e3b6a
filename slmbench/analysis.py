"""Many runs -> one tidy table, and the statistics the SLM survey drew by hand.

A row per model x quant x settings x test, with the test's aggregates, the memory breakdown
and the model's facts (catalog facts when the model is in the catalog, else GGUF facts).
Statistics refuse to speak below n = 3 and flag n < 8 as weak evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Iterable

from slmbench.errors import SlmbenchError
from slmbench.results import Run, read_run

MIN_N = 3
WEAK_N = 8
QUANT_RANK = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M",
              "Q4_K_S", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K"]
COST_METRICS = ["ms_median", "ts_mean", "token_ms_median", "load_ms", "peak_rss_mib", "model_mib",
                "kv_mib", "compute_mib", "other_mib", "kv_share", "decode_gbs"]
FACTS = ["parameters", "vocab_size", "training_tokens", "layers", "hidden_size", "kv_heads",
         "bits_per_weight"]
# CSV import: these columns (a published table or a colleague's spreadsheet) are understood
CSV_COLUMNS = ["model_id", "quant", "device", "test", "name", "n_prompt", "n_gen", "n_depth",
               "ms_median", "ts_mean", *COST_METRICS[2:], *FACTS]


def _runs(items: Iterable[Any]) -> list[Run]:
    return [x if isinstance(x, Run) else read_run(x) for x in items]


def load_table(runs_or_dirs: Iterable[Any], catalog: Any = None):
    """A tidy DataFrame of every ok test of every run, joined with model facts."""
    import pandas as pd

    runs = _runs(runs_or_dirs)
    facts_by_id: dict[str, dict] = {}
    if catalog is None:
        try:
            from slmbench.catalog import load_catalog

            catalog = load_catalog()
        except SlmbenchError:
            catalog = None
    if catalog is not None:
        facts_by_id = {m.id: m.facts for m in catalog.models}
    rows = []
    for run in runs:
        device_env = run.env.device_label
        bandwidth = run.env.bandwidth_gbs
        for rec in run.records:
            if rec.status != "ok":
                continue
            m, mem, s = rec.model, rec.memory, rec.settings
            cat = facts_by_id.get(rec.model_id or "", {})
            base = {
                "run_id": run.run_id, "model_id": rec.model_id, "quant": rec.quant,
                "device": rec.device or device_env, "source": rec.source,
                "n_threads": s.n_threads if s else None,
                "n_gpu_layers": s.n_gpu_layers if s else None,
                "type_k": s.type_k if s else None,
                "parameters": cat.get("parameters") or (m.n_params if m else None),
                "vocab_size": cat.get("vocab_size") or (m.n_vocab if m else None),
                "training_tokens": cat.get("training_tokens"),
                "layers": cat.get("layers") or (m.n_layer if m else None),
                "hidden_size": cat.get("hidden_size") or (m.n_embd if m else None),
                "kv_heads": cat.get("kv_heads") or (m.n_head_kv if m else None),
                "attention_type": cat.get("attention_type"),
                "bits_per_weight": m.bits_per_weight if m else None,
                "model_size_bytes": m.model_size_bytes if m else None,
                "load_ms": rec.load.load_ms if rec.load else None,
                "n_ctx": mem.n_ctx if mem else None,
            }
            if mem:
                base.update(peak_rss_mib=mem.peak_rss_mib, model_mib=mem.model_mib,
                            kv_mib=mem.kv_mib, compute_mib=mem.compute_mib,
                            other_mib=mem.other_mib, kv_share=mem.kv_share)
                if mem.projection:
                    p = mem.projection
                    base.update(n_ctx_train=p.n_ctx_train,
                                kv_share_train_ctx=p.kv_share_at_train_ctx,
                                ctx_kv_share_50=p.ctx_kv_share_50,
                                ctx_kv_share_80=p.ctx_kv_share_80)
            for t in rec.tests:
                row = dict(base, test=t.test, name=t.name, n_prompt=t.n_prompt, n_gen=t.n_gen,
                           n_depth=t.n_depth, samples_ms=[ns / 1e6 for ns in t.samples_ns],
                           throttled=bool(t.sensors and t.sensors.throttled))
                if t.ms:
                    row.update(ms_median=t.ms.median, ms_mean=t.ms.mean, ms_stdev=t.ms.stdev,
                               ms_cv_pct=t.ms.cv_pct, ms_ci95_low=t.ms.ci95_low,
                               ms_ci95_high=t.ms.ci95_high, n_samples=t.ms.n)
                if t.ts:
                    row.update(ts_mean=t.ts.mean, ts_stdev=t.ts.stdev)
                if t.test == "tg" and t.ts and m and m.model_size_bytes:
                    # decode roofline: every token reads all weights once
                    achieved = m.model_size_bytes * t.ts.mean / 1e9
                    row["decode_gbs"] = achieved
                    if bandwidth:
                        row["roofline_pct"] = 100.0 * achieved / bandwidth
                if t.token_ms_median is not None:
                    row.update(token_ms_median=t.token_ms_median, token_ms_p90=t.token_ms_p90,
                               token_ms_p99=t.token_ms_p99)
                if t.metrics:
                    row.update({f"q_{k}": v for k, v in asdict(t.metrics).items()
                                if not isinstance(v, list)})  # per-window series stay out
                rows.append(row)
    if not rows:
        raise SlmbenchError("no measured tests in the given runs (all failed, skipped or empty)")
    df = pd.DataFrame(rows)
    for col in ("peak_rss_mib", "model_mib", "kv_mib", "compute_mib", "other_mib", "kv_share",
                "ms_median", "ts_mean", "token_ms_median"):
        if col not in df:  # e.g. imported llama-bench runs carry no memory breakdown
            df[col] = float("nan")
    return _derived(df)


def _derived(df):
    n, d = df.get("parameters"), df.get("training_tokens")
    if n is not None and d is not None:
        df["tokens_per_param"] = d / n
        df["chinchilla_ratio"] = d / (20 * n)
        df["train_flops"] = 6 * n * d
    return df


def load_csv(path: str):
    """A table with the documented CSV_COLUMNS (at least model_id, name and one metric)."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise SlmbenchError(f"{path}: cannot read CSV ({exc})") from None
    missing = [c for c in ("model_id", "name") if c not in df.columns]
    if missing:
        raise SlmbenchError(f"{path}: missing column(s) {', '.join(missing)}; documented "
                            f"columns: {', '.join(CSV_COLUMNS)}")
    if "test" not in df.columns:
        df["test"] = df["name"].str.extract(r"^(pp|tg|ttft)", expand=False)
    df = df.rename(columns={"token_ms_p50": "token_ms_median"})  # the name before schema 2
    return _derived(df)


# --------------------------------------------------------------------------- statistics

def correlate(x, y) -> dict[str, Any] | None:
    """Pearson and Spearman with p-values; None below MIN_N pairs."""
    import numpy as np
    from scipy import stats as sst

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < MIN_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    pr, pp = sst.pearsonr(x, y)
    sr, sp = sst.spearmanr(x, y)
    return {"n": n, "pearson_r": float(pr), "pearson_p": float(pp), "spearman_rho": float(sr),
            "spearman_p": float(sp), "weak": n < WEAK_N}


def partial_correlation(x, y, control) -> dict[str, Any] | None:
    """Correlation of x and y net of log(control): residuals of both on log(control)."""
    import numpy as np
    from scipy import stats as sst

    x, y, c = (np.asarray(v, dtype=float) for v in (x, y, control))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(c) & (c > 0)
    x, y, c = x[ok], y[ok], np.log(c[ok])
    n = len(x)
    if n < MIN_N + 1 or np.ptp(c) == 0:
        return None
    design = np.column_stack([np.ones(n), c])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    r = float(np.corrcoef(rx, ry)[0, 1])
    dof = n - 3
    t = r * math.sqrt(dof / max(1e-12, 1 - r * r)) if dof > 0 else float("nan")
    p = float(2 * sst.t.sf(abs(t), dof)) if dof > 0 else float("nan")
    return {"n": n, "partial_r": r, "p": p, "weak": n < WEAK_N}


def loglog_fit(x, y) -> dict[str, Any] | None:
    """y = a * x^k: k with its 95% CI (t on the slope's SE), R², n."""
    import numpy as np
    from scipy import stats as sst

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = len(lx)
    if n < MIN_N or np.ptp(lx) == 0:
        return None
    res = sst.linregress(lx, ly)
    half = float(sst.t.ppf(0.975, n - 2) * res.stderr) if n > 2 else float("nan")
    return {"n": n, "k": float(res.slope), "k_ci95": [float(res.slope - half),
                                                      float(res.slope + half)],
            "a": float(math.exp(res.intercept)), "r2": float(res.rvalue ** 2),
            "weak": n < WEAK_N}


def correlation_table(df, metrics: list[str] | None = None, facts: list[str] | None = None):
    """Per test name, device and quant: every metric vs every fact (n >= 3 only)."""
    import pandas as pd

    out = []
    for (name, device, quant), g in df.groupby(["name", "device", "quant"], dropna=False):
        per_model = g.groupby("model_id").first(numeric_only=True)
        for metric in metrics or COST_METRICS:
            if metric not in per_model:
                continue
            for fact in facts or FACTS:
                if fact not in per_model:
                    continue
                c = correlate(per_model[fact], per_model[metric])
                if c:
                    out.append({"test": name, "device": device, "quant": quant,
                                "metric": metric, "fact": fact, **c})
    return pd.DataFrame(out)


def quant_speedups(df):
    """Per model and test: speedup of each quant vs the highest-precision quant present."""
    import pandas as pd

    out = []
    for (model, name, device), g in df.groupby(["model_id", "name", "device"], dropna=False):
        g = g.dropna(subset=["ms_median"])
        present = [q for q in QUANT_RANK if q in set(g["quant"])]
        if len(present) < 2:
            continue
        ref = g[g["quant"] == present[0]].iloc[0]
        for _, row in g.iterrows():
            out.append({"model_id": model, "test": name, "device": device, "quant": row["quant"],
                        "reference": present[0],
                        "speedup": ref["ms_median"] / row["ms_median"],
                        "memory_saved_mib": (ref.get("model_mib") or 0) - (row.get("model_mib")
                                                                         or 0),
                        "bits_per_weight": row.get("bits_per_weight")})
    return pd.DataFrame(out)


def findings(df) -> list[str]:
    """Plain sentences computed from the statistics."""
    sentences = []
    for test in ("tg", "pp"):
        g = df[(df["test"] == test)]
        for (name, quant), gg in g.groupby(["name", "quant"]):
            per = gg.groupby("model_id").first(numeric_only=True)
            fit = loglog_fit(per.get("parameters", []), per.get("ms_median", []))
            if fit:
                what = "decode" if test == "tg" else "prefill"
                weak = " (weak evidence: n < 8)" if fit["weak"] else ""
                sentences.append(
                    f"{what} latency ({name}, {quant}) grows as params^{fit['k']:.2f} "
                    f"(95% CI {fit['k_ci95'][0]:.2f}..{fit['k_ci95'][1]:.2f}), "
                    f"R² {fit['r2']:.2f}, n {fit['n']}{weak}")
    per = df.groupby("model_id").first(numeric_only=True)
    if {"vocab_size", "compute_mib", "parameters"} <= set(per.columns):
        pc = partial_correlation(per["vocab_size"], per["compute_mib"], per["parameters"])
        if pc:
            sentences.append(
                f"vocabulary size vs compute buffer, net of model size: partial r "
                f"{pc['partial_r']:.2f} (p {pc['p']:.3g}, n {pc['n']})"
                + (" - weak evidence" if pc["weak"] else ""))
    return sentences
