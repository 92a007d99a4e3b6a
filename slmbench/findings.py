"""Every statistic over an analysis table, and the findings stated with their numbers.

:func:`analyze` returns one JSON-able dict: the fits (latency and memory vs parameters), the
spread around the size trend in prefill vs decode, partial correlations with the control in
both forms, correlations (all of them), confounders by attention type, the memory split per
model, the KV projection, the quantization study of each model, the decode roofline, a short
summary, and ``findings``: sentences built only from those numbers.  ``analyze --json``
prints it, ``--stats-csv`` flattens it, the report states it.

Statistics across models compare one device and one quantization at a time and need 3 models
(8 before they are more than weak evidence); a model's quantization study needs 2 quants.
"""

from __future__ import annotations

import math
from typing import Any

from slmbench.analysis import (MIN_N, QUANT_RANK, WEAK_N, comparable_groups,
                               correlation_table, linear_fit, loglog_fit, partial_both,
                               per_model, quant_speedups, settings_note)

KIND_WORD = {"pp": "prefill", "ttft": "TTFT", "tg": "decode"}
MEMORY_PARTS = [("model_mib", "weights"), ("kv_mib", "KV"), ("compute_mib", "compute"),
                ("other_mib", "other")]
ALPHA = 0.05


# --------------------------------------------------------------------------- formatting

def human_count(x: float | None) -> str:
    """135000000 -> '135M', 1.7e9 -> '1.7B', 32768 -> '33k'."""
    if x is None or x != x:
        return "?"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 100 or v == int(v) else f"{v:.3g}{suffix}"
    return f"{x:.0f}"


def human_ctx(n: float | None) -> str:
    """32768 -> '32k', 131072 -> '128k', 2048 -> '2k', 1000 -> '1000'."""
    if n is None or n != n:
        return "n/a"
    n = int(n)
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def plus_mib(x: float) -> str:
    """An intercept after a slope: '+ 537 MiB', '- 25 MiB'."""
    return f"{'+' if x >= 0 else '-'} {abs(x):,.0f} MiB"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _weak(n: int) -> str:
    return " - weak evidence (n < 8)" if n < WEAK_N else ""


def _signed_pct(x: float) -> str:
    return f"{100 * x:+.0f} %"


def _range_pct(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{100 * lo:.0f} %" if round(100 * lo) == round(100 * hi) else \
        f"{100 * lo:.0f}-{100 * hi:.0f} %"


def _names(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit
                                       else "")


def _group_label(device: str, quant: str, *more: str) -> str:
    """' (Q4_0, cpu-x86, n 20)' - the parts that are known - or ''."""
    bits = [b for b in (quant, device, *more) if b and b != "unknown"]
    return f" ({', '.join(bits)})" if bits else ""


def _clean(obj: Any) -> Any:
    """NaN / inf -> None, numpy scalars -> Python, recursively (json.dumps-safe)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


# --------------------------------------------------------------------------- pieces

def _timed(g, kind: str):
    """Rows of the test name of this kind with the most models (depth 0 first)."""
    rows = g[(g["test"] == kind) & g["latency_ms"].notna() & g["parameters"].notna()]
    if rows.empty:
        return None, rows
    shallow = rows[rows["n_depth"].fillna(0) == 0]
    rows = shallow if not shallow.empty else rows
    counts = rows.groupby("name")["model_id"].nunique()
    best = max(counts.index, key=lambda nm: (counts[nm], -len(nm), nm))
    return best, rows[rows["name"] == best]


def _extremes(residuals: dict[str, float], k: int = 2) -> tuple[list, list]:
    ordered = sorted(residuals.items(), key=lambda kv: kv[1])
    above = [(m, r) for m, r in reversed(ordered) if r > 0][:k]
    below = [(m, r) for m, r in ordered if r < 0][:k]
    return above, below


def _bootstrap_sd_ratio(lp, lt, ld, n_boot: int = 1000) -> list[float] | None:
    """95 % interval of SD(prefill residuals) / SD(decode residuals), resampling models."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = len(lp)
    ratios = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        x = lp[i]
        if np.ptp(x) == 0:
            continue
        sds = []
        for y in (lt[i], ld[i]):
            coef = np.polyfit(x, y, 1)
            sds.append(np.sqrt(((y - np.polyval(coef, x)) ** 2).sum() / max(1, n - 2)))
        if sds[1] > 0:
            ratios.append(sds[0] / sds[1])
    if len(ratios) < n_boot // 2:
        return None
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def latency_fits(df, out: dict) -> None:
    """Finding 1: latency vs parameters per test kind, and the spread around the trend."""
    import numpy as np

    for (device, quant), g in comparable_groups(df):
        label = _group_label(device, quant)
        fits = {}
        parts = []
        for kind in ("pp", "ttft", "tg"):
            name, rows = _timed(g, kind)
            if name is None:
                continue
            per = per_model(rows)
            fit = loglog_fit(per["parameters"], per["latency_ms"], list(per.index))
            if not fit:
                continue
            fits[kind] = (name, per, fit)
            entry = {"kind": kind, "test": name, "device": device, "quant": quant,
                     "metric": "latency_ms" if kind != "tg" else "latency_ms (per token)",
                     "x": "parameters", "form": "loglog", **fit}
            out["fits"].append(entry)
            unit = " (ms per token)" if kind == "tg" else ""
            parts.append(f"{KIND_WORD[kind]} {name}{unit} ∝ params^{fit['k']:.2f} "
                         f"(95 % CI {fit['k_ci95'][0]:.2f}..{fit['k_ci95'][1]:.2f}, "
                         f"R² {fit['r2']:.2f}, n {fit['n']})")
        if parts:
            n_min = min(f[2]["n"] for f in fits.values())
            short = ", ".join(f"{KIND_WORD[k]} ∝ params^{f[2]['k']:.2f}"
                              for k, f in fits.items())
            out["findings"].append({
                "topic": "latency", "device": device, "quant": quant,
                "headline": f"Latency vs size{_group_label(device, quant, f'n {n_min}')}: "
                            f"{short}.",
                "text": f"Latency grows with size{label}: " + "; ".join(parts) + "."
                + _weak(n_min)})
        prefill = "pp" if "pp" in fits else "ttft" if "ttft" in fits else None
        if not prefill or "tg" not in fits:
            continue
        # the spread around the size trend, on the models both tests measured
        pname, pper, _ = fits[prefill]
        dname, dper, _ = fits["tg"]
        common = [m for m in pper.index if m in dper.index
                  and pper.at[m, "latency_ms"] > 0 and dper.at[m, "latency_ms"] > 0]
        if len(common) < MIN_N:
            continue
        params = pper.loc[common, "parameters"].astype(float)
        pfit = loglog_fit(params, pper.loc[common, "latency_ms"], common)
        dfit = loglog_fit(params, dper.loc[common, "latency_ms"], common)
        if not pfit or not dfit:
            continue
        ratio = pfit["resid_sd_log"] / dfit["resid_sd_log"] if dfit["resid_sd_log"] else None
        ci = _bootstrap_sd_ratio(np.log(params.values),
                                 np.log(pper.loc[common, "latency_ms"].astype(float).values),
                                 np.log(dper.loc[common, "latency_ms"].astype(float).values))
        above, below = _extremes(pfit["residuals"])
        d_above, d_below = _extremes(dfit["residuals"])
        out["spread"].append({
            "device": device, "quant": quant, "prefill_test": pname, "decode_test": dname,
            "n": len(common), "prefill_resid_sd_log": pfit["resid_sd_log"],
            "decode_resid_sd_log": dfit["resid_sd_log"], "ratio": ratio, "ratio_ci95": ci,
            "prefill_above": above, "prefill_below": below, "decode_above": d_above,
            "decode_below": d_below})
        sp, sd = pfit["resid_sd_log"], dfit["resid_sd_log"]
        if ratio is None:
            continue
        more = "prefill than in decode" if ratio > 1 else "decode than in prefill"
        ci_txt = f" (bootstrap 95 % CI {ci[0]:.1f}-{ci[1]:.1f})" if ci else ""
        verdict = (f"architecture matters more in {more}" if ci and (ci[0] > 1 or ci[1] < 1)
                   else f"the spread is larger in {more.split(' than')[0]}, but the "
                        "difference is within noise")
        where = _group_label(device, quant, f"{len(common)} models")
        text = (f"Spread around the size trend{where}: "
                f"{KIND_WORD[prefill]} {pname} ±{100 * (math.exp(sp) - 1):.0f} % (residual SD "
                f"{sp:.2f} in log space) against decode {dname} ±{100 * (math.exp(sd) - 1):.0f} "
                f"% ({sd:.2f}): {ratio:.1f}x{ci_txt} - {verdict}.")
        if above or below:
            text += (f" Furthest above the {KIND_WORD[prefill]} trend: "
                     + (", ".join(f"{m} ({_signed_pct(r)})" for m, r in above) or "none")
                     + "; below: "
                     + (", ".join(f"{m} ({_signed_pct(r)})" for m, r in below) or "none")
                     + ".")
        headline = (f"Around the size trend{_group_label(device, quant)} "
                    f"{KIND_WORD[prefill]} spreads {ratio:.1f}x as much as decode{ci_txt}: "
                    f"{verdict}" + (f"; furthest above: {above[0][0]}" if above else "") + ".")
        out["findings"].append({"topic": "latency-spread", "device": device, "quant": quant,
                                "headline": headline, "text": text + _weak(len(common))})


def _memory_rows(g):
    """One row per model at the group's most common n_ctx, with its total memory."""
    rows = g
    if g["n_ctx"].notna().any():
        mode = g.groupby("model_id")["n_ctx"].first().mode()
        if len(mode):
            rows = g[(g["n_ctx"] == mode.iloc[0]) | g["n_ctx"].isna()]
    per = per_model(rows)
    parts = per.reindex(columns=[c for c, _ in MEMORY_PARTS])
    total = parts.sum(axis=1, min_count=4)
    per["memory_mib"] = per["peak_rss_mib"].where(per["peak_rss_mib"].notna(), total) \
        if "peak_rss_mib" in per else total
    per["split_total_mib"] = total
    return per


def memory_fits(df, out: dict) -> None:
    """Findings 2 and 3: memory vs parameters (linear and log-log), the vocabulary effect net
    of size with the control in the form that fits, and each component's share."""
    for (device, quant), g in comparable_groups(df):
        label = _group_label(device, quant)
        per = _memory_rows(g)
        ctx = g["n_ctx"].dropna()
        at_ctx = f"n_ctx {int(ctx.mode().iloc[0]):,}" if len(ctx) else ""
        # -- shares per model
        split = per[per["split_total_mib"].notna() & (per["split_total_mib"] > 0)]
        for model, r in split.iterrows():
            out["memory_shares"].append({
                "model_id": model, "device": device, "quant": quant,
                "n_ctx": r.get("n_ctx"), "total_mib": r["split_total_mib"],
                **{f"{word}_mib": r[col] for col, word in MEMORY_PARTS},
                **{f"{word}_pct": 100 * r[col] / r["split_total_mib"]
                   for col, word in MEMORY_PARTS}})
        if len(split) >= 2:
            bits = []
            for col, word in MEMORY_PARTS:
                share = 100 * split[col] / split["split_total_mib"]
                bits.append(f"{word} {share.median():.0f} % ({share.min():.0f}-"
                            f"{share.max():.0f})")
            what = f"median share over {len(split)} models (range)"
            medians = ", ".join(b.split(" (")[0] for b in bits)
            out["findings"].append({
                "topic": "memory-split", "device": device, "quant": quant,
                "headline": f"Memory split{_group_label(device, quant, at_ctx)}, medians: "
                            f"{medians}.",
                "text": "Memory = weights + KV + compute + other"
                        f"{_group_label(device, quant, at_ctx)}, {what}: "
                        + ", ".join(bits) + "."})
        if "parameters" not in per or per["parameters"].notna().sum() < MIN_N:
            continue
        # -- memory vs parameters
        sub = per[per["memory_mib"].notna() & per["parameters"].notna()]
        labels = list(sub.index)
        lin = linear_fit(sub["parameters"] / 1e9, sub["memory_mib"], labels)
        log = loglog_fit(sub["parameters"], sub["memory_mib"], labels)
        metric = "peak_rss_mib" if sub["peak_rss_mib"].notna().all() else "memory_mib"
        if lin:
            out["memory_fits"].append({"device": device, "quant": quant, "metric": metric,
                                       "x": "parameters (billions)", "form": "linear",
                                       "slope_mib_per_billion": lin["slope"], **lin})
        if log:
            out["memory_fits"].append({"device": device, "quant": quant, "metric": metric,
                                       "x": "parameters", "form": "loglog", **log})
        vocab_effect = vocab_short = ""
        if "vocab_size" in sub:
            pc = partial_both(sub["vocab_size"], sub["memory_mib"], sub["parameters"])
            if pc:
                out["partial_correlations"].append({
                    "device": device, "quant": quant, "x": "vocab_size", "y": metric,
                    "control": "parameters", **pc})
                vocab_effect = " " + _partial_sentence(pc, "memory", "vocabulary", weak=False)
                c = pc[pc["chosen"]]
                vocab_short = (f"; vocabulary net of size: partial r {c['partial_r']:+.2f} "
                               f"(p {_p(c['p'])}, {pc['chosen']} control)")
        if lin:
            above, below = _extremes(lin["residuals"])
            vocab = sub["vocab_size"] if "vocab_size" in sub else None
            loglog = (f"; log-log: ∝ params^{log['k']:.2f}, R² {log['r2']:.2f}" if log else "")
            mem_word = "Peak memory" if metric == "peak_rss_mib" else "Memory"
            text = (f"{mem_word} grows about linearly with parameters"
                    f"{_group_label(device, quant, at_ctx)}: "
                    f"{lin['slope']:,.0f} MiB per billion parameters (95 % CI "
                    f"{lin['slope_ci95'][0]:,.0f}..{lin['slope_ci95'][1]:,.0f}) "
                    f"{plus_mib(lin['intercept'])}, R² {lin['r2']:.2f}, n {lin['n']}{loglog}."
                    f"{vocab_effect} Above the line: {_who(above, vocab)}; below: "
                    f"{_who(below, vocab)}.")
            n_txt = f"n {lin['n']}"
            out["findings"].append({
                "topic": "memory", "device": device, "quant": quant,
                "headline": f"{mem_word}{_group_label(device, quant, n_txt)}: "
                            f"{lin['slope']:,.0f} MiB per billion parameters "
                            f"{plus_mib(lin['intercept'])} (R² {lin['r2']:.2f}){vocab_short}.",
                "text": text + _weak(lin["n"])})
        # -- vocabulary -> compute buffer, net of size
        if "vocab_size" in per and "compute_mib" in per:
            pc = partial_both(per["vocab_size"], per["compute_mib"], per["parameters"])
            if pc:
                out["partial_correlations"].append({
                    "device": device, "quant": quant, "x": "vocab_size", "y": "compute_mib",
                    "control": "parameters", **pc})
                c = pc[pc["chosen"]]
                out["findings"].append({
                    "topic": "memory-split", "device": device, "quant": quant,
                    "headline": f"Compute buffer vs vocabulary net of size{label}: partial r "
                                f"{c['partial_r']:+.2f} (p {_p(c['p'])}).",
                    "text": f"Compute buffer vs vocabulary{label}: "
                            + _partial_sentence(pc, "the compute buffer", "vocabulary",
                                                capital=False)})


def _who(items: list, vocab: Any) -> str:
    """'m19 (+673 MiB, vocabulary 128k), ...' for the models off a memory line."""
    out = []
    for m, r in items:
        v = vocab.get(m) if vocab is not None else None
        out.append(f"{m} ({r:+,.0f} MiB" + (f", vocabulary {human_count(v)}" if v is not None
                                             and v == v else "") + ")")
    return ", ".join(out) or "none"


def _partial_sentence(pc: dict, y_word: str, x_word: str, capital: bool = True,
                      weak: bool = True) -> str:
    chosen = pc[pc["chosen"]]
    other_form = "log" if pc["chosen"] == "linear" else "linear"
    other = pc.get(other_form)
    sig = chosen["p"] < ALPHA
    control = "parameters" if pc["chosen"] == "linear" else "log(parameters)"
    head = (f"{y_word} rises with {x_word} net of size" if sig and chosen["partial_r"] > 0
            else f"{y_word} falls with {x_word} net of size" if sig else
            f"no effect of {x_word} on {y_word} net of size can be shown")
    head = head[0].upper() + head[1:] if capital else head
    text = (f"{head}: partial r {chosen['partial_r']:+.2f} "
            f"(p {_p(chosen['p'])}, n {chosen['n']}) controlling for {control}")
    if other:
        other_ctl = "parameters" if other_form == "linear" else "log(parameters)"
        text += (f", which describes {y_word} better (R² {chosen['r2_control']:.2f} against "
                 f"{other['r2_control']:.2f} for {other_ctl}; controlling for {other_ctl}: "
                 f"{other['partial_r']:+.2f}, p {_p(other['p'])})")
    return text + "." + (_weak(chosen["n"]) if weak else "")


def kv_projection(df, out: dict) -> None:
    """Finding 4: KV share at 32k and at the training context, by attention type."""
    cols = ["kv_share", "kv_mib_32k", "kv_share_32k", "kv_share_train_ctx", "kv_mib_train_ctx",
            "ctx_kv_share_50", "ctx_kv_share_80", "n_ctx_train", "n_ctx", "kv_mib"]
    for (device, quant), g in comparable_groups(df):
        label = _group_label(device, quant)
        per = _memory_rows(g)
        basis = g.groupby("model_id")["kv_basis"].first()
        per["kv_basis"] = basis
        per = per[per["kv_basis"].notna()]
        for model, r in per.iterrows():
            out["kv_projection"].append({
                "model_id": model, "device": device, "quant": quant,
                "attention_type": r.get("attention_type"), "basis": r["kv_basis"],
                **{c: r.get(c) for c in cols}})
        known = per[per["kv_share_32k"].notna()]
        if len(known) < 2:  # one model: its quantization study says it
            continue
        over = list(known.index[known["kv_share_32k"] > 0.8])
        by_type = known.groupby(known["attention_type"].fillna("unknown"))
        bits, short = [], []
        for att, k in sorted(by_type, key=lambda kv: -kv[1]["kv_share_32k"].median()):
            s = "s" if len(k) > 1 else ""
            who = (f"the {len(k)} model{s} without GQA (MHA" if att == "MHA" else
                   f"{len(k)} model{s} of unknown attention type (" if att == "unknown" else
                   f"the {len(k)} {att} model{s} (")
            n_over = int((k["kv_share_32k"] > 0.8).sum())
            bits.append(f"{_range_pct(list(k['kv_share_32k']))} for {who}"
                        f"{'; ' if att == 'MHA' else ''}{n_over} of {len(k)} above 80 %)")
            short.append(f"{_range_pct(list(k['kv_share_32k']))} "
                         + ("without GQA" if att == "MHA" else "attention type unknown"
                            if att == "unknown" else f"with {att}")
                         + f" ({n_over} of {len(k)} above 80 %)")
        bases = known["kv_basis"].value_counts()
        basis_txt = ", ".join(f"{n} {'from facts' if b == 'facts' else 'linear in n_ctx'}"
                              for b, n in bases.items())
        text = (f"At 32k context{label} the KV cache would be {'; '.join(bits)} of memory "
                f"(weights, compute and other held at their measured size; projected "
                f"{basis_txt}).")
        if over:
            text += f" Above 80 %: {_names(over, 6)}."
        train = known[known["kv_share_train_ctx"].notna()]
        if len(train):
            top = train["kv_share_train_ctx"].idxmax()
            text += (f" At their training context the KV share is "
                     f"{_range_pct(list(train['kv_share_train_ctx']))}, highest for {top} "
                     f"({100 * train.at[top, 'kv_share_train_ctx']:.0f} % at "
                     f"{human_ctx(train.at[top, 'n_ctx_train'])}).")
        out["findings"].append({"topic": "kv", "device": device, "quant": quant,
                                "headline": f"KV share of memory at 32k context{label}: "
                                            + "; ".join(short) + ".",
                                "text": text})


def confounders(corr, df, out: dict) -> None:
    """Correlations that flip or vanish within attention types (where those are known)."""
    import numpy as np
    from scipy import stats as sst

    if corr is None or corr.empty:
        return
    for (device, quant), g in comparable_groups(df):
        for (group, test), gt in corr[(corr["device"] == device) & (corr["quant"] == quant)] \
                .groupby(["group", "test"]):
            rows = g if group == "memory" else g[g["name"] == test]
            per = per_model(rows)
            if "attention_type" not in per or per["attention_type"].notna().sum() < 2 * MIN_N:
                continue
            types = per["attention_type"].dropna()
            if types.nunique() < 2:
                continue
            for _, c in gt.iterrows():
                sub = per.loc[types.index, [c["fact"], c["metric"]]].astype(float)
                sub["type"] = types
                sub = sub.dropna()
                if len(sub) < 2 * MIN_N:
                    continue
                within = {}
                for att, s in sub.groupby("type"):
                    if len(s) >= MIN_N and np.ptp(s[c["fact"]]) > 0 and np.ptp(s[c["metric"]]) > 0:
                        rho, p = sst.spearmanr(s[c["fact"]], s[c["metric"]])
                        within[att] = {"n": len(s), "spearman_rho": float(rho),
                                       "spearman_p": float(p)}
                # net of attention type: demean within each type, Pearson, dof n - k - 1
                dm = sub.groupby("type")[[c["fact"], c["metric"]]].transform(lambda v: v -
                                                                             v.mean())
                k = sub["type"].nunique()
                net_r = net_p = None
                if dm[c["fact"]].std() > 0 and dm[c["metric"]].std() > 0:
                    net_r = float(np.corrcoef(dm[c["fact"]], dm[c["metric"]])[0, 1])
                    dof = len(sub) - k - 1
                    if dof > 0 and abs(net_r) < 1:
                        t = net_r * math.sqrt(dof / (1 - net_r ** 2))
                        net_p = float(2 * sst.t.sf(abs(t), dof))
                overall = c["spearman_rho"]
                strong = abs(overall) >= 0.5 and c["spearman_p"] < ALPHA
                flips = [a for a, w in within.items()
                         if abs(w["spearman_rho"]) >= 0.3 and w["spearman_rho"] * overall < 0]
                vanishes = (strong and within and all(abs(w["spearman_rho"]) < 0.3
                                                      for w in within.values()))
                verdict = "flips" if strong and flips else "vanishes" if vanishes else None
                entry = {"device": device, "quant": quant, "group": group, "test": test,
                         "metric": c["metric"], "fact": c["fact"], "n": int(c["n"]),
                         "spearman_rho": overall, "spearman_p": c["spearman_p"],
                         "within": within, "net_of_attention_r": net_r,
                         "net_of_attention_p": net_p, "verdict": verdict}
                out["confounders"].append(entry)
                if verdict:
                    why = (" (newer models use GQA and more training tokens)"
                           if c["fact"] in ("training_tokens", "tokens_per_param",
                                            "chinchilla_ratio") else "")
                    parts = ", ".join(f"{a} {w['spearman_rho']:+.2f} (n {w['n']})"
                                      for a, w in within.items())
                    net = (f"; net of attention type r {net_r:+.2f}"
                           + (f" (p {_p(net_p)})" if net_p is not None else "")
                           if net_r is not None else "")
                    out["findings"].append({
                        "topic": "confounder", "device": device, "quant": quant,
                        "headline": f"{c['metric']} vs {c['fact']} ({verdict})",
                        "text": f"Caution - {c['metric']} vs {c['fact']}"
                                f"{_group_label(device, quant, test)}: Spearman {overall:+.2f} "
                                f"over {int(c['n'])} models, but within attention types "
                                f"{parts}{net}: the correlation {verdict} - attention type "
                                f"confounds it{why}."})


def quant_study(df, out: dict) -> None:
    """Per model and device with 2+ quantizations: speedups per test kind and how they change
    with prompt length and depth, memory saved, quality cost, the speed/quality front."""
    speed = quant_speedups(df)
    if speed.empty:
        return
    runs_of = speed.groupby(["model_id", "device"])["run_id"].nunique()
    for (model, device, run_id), s in speed.groupby(["model_id", "device", "run_id"],
                                                    dropna=False):
        for col in ("n_threads", "n_gpu_layers"):  # a sweep: the most common setting
            if s[col].nunique() > 1:
                s = s[s[col] == s[col].mode().iloc[0]]
        ref = s["reference"].iloc[0]
        others = s[s["quant"] != ref]
        study: dict[str, Any] = {"model_id": model, "device": device, "run_id": run_id,
                                 "reference": ref,
                                 "speedups": others.to_dict("records")}
        where = [x for x in (device if device != "unknown" else None,
                             run_id if runs_of.get((model, device), 1) > 1 else None) if x]
        label = model + (f" ({', '.join(where)})" if where else "")
        texts: list[str] = []
        heads: dict[int, str] = {}  # index in texts -> its headline
        kinds = []
        firsts: dict[str, Any] = {}
        noisy = False
        for kind in ("pp", "ttft", "tg"):
            k = others[(others["kind"] == kind)]
            if k.empty:
                continue
            base = k[k["n_depth"].fillna(0) == 0]
            base = base if not base.empty else k
            # the shortest prompt (prefill) / generation (decode) at depth 0
            size_col = "n_gen" if kind == "tg" else "n_prompt"
            first = base.sort_values(size_col)["test"].iloc[0]
            row = base[base["test"] == first].sort_values("speedup", ascending=False)
            row = row.drop_duplicates("quant")
            firsts[kind] = row.set_index("quant")["speedup"]
            kinds.append(f"{KIND_WORD[kind]} {first} " + ", ".join(
                f"{r.quant} {r.speedup:.2f}x" + ("*" if r.noisy else "")
                for r in row.itertuples()))
            noisy = noisy or bool(row["noisy"].any())
        text = f"Quantization of {label} against {ref} (speedup, > 1 is faster): " \
               + "; ".join(kinds) + "." + (" (* a CV above 10 %: within the noise of the "
                                           "machine.)" if noisy else "")
        pre = firsts.get("pp", firsts.get("ttft"))
        dec = firsts.get("tg")
        order = list((dec if dec is not None else pre).index) if (dec is not None or
                                                                    pre is not None) else []
        heads[0] = (f"Quantization of {label} vs {ref}: " + ", ".join(
            f"{q} " + " / ".join(x for x in (
                f"{pre[q]:.2f}x prefill" if pre is not None and q in pre else "",
                f"{dec[q]:.2f}x decode" if dec is not None and q in dec else "") if x)
            for q in order) + ("" if not noisy else " (some within noise)") + ".")
        trends = []
        pp = others[(others["kind"] == "pp") & (others["n_depth"].fillna(0) == 0)]
        if pp["n_prompt"].nunique() >= 2:
            lo, hi = pp["n_prompt"].min(), pp["n_prompt"].max()
            for q, gq in pp.groupby("quant"):
                a = gq[gq["n_prompt"] == lo]["speedup"]
                b = gq[gq["n_prompt"] == hi]["speedup"]
                if len(a) and len(b):
                    trends.append(f"{q} prefill {a.iloc[0]:.2f}x at {int(lo)} tokens -> "
                                  f"{b.iloc[0]:.2f}x at {int(hi)}")
        for kind in ("tg", "pp"):
            dep = others[others["kind"] == kind]
            if dep["n_depth"].fillna(0).nunique() >= 2:
                lo, hi = dep["n_depth"].fillna(0).min(), dep["n_depth"].max()
                size_col = "n_gen" if kind == "tg" else "n_prompt"
                for q, gq in dep.groupby("quant"):
                    gq = gq.sort_values(size_col)
                    a = gq[gq["n_depth"].fillna(0) == lo]["speedup"]
                    b = gq[gq["n_depth"] == hi]["speedup"]
                    if len(a) and len(b):
                        trends.append(f"{q} {KIND_WORD[kind]} {a.iloc[0]:.2f}x at depth "
                                      f"{int(lo)} -> {b.iloc[0]:.2f}x at depth {int(hi)}")
        if trends:
            text += " With longer prompts and deeper context: " + "; ".join(trends) + "."
        study["trends"] = trends
        mem = others.drop_duplicates("quant")
        rows = df[(df["model_id"] == model) & (df["device"] == device)]
        if isinstance(run_id, str) and "run_id" in rows:
            rows = rows[rows["run_id"] == run_id]
        ref_mib = rows[rows["quant"] == ref]["model_mib"].dropna()
        saved = []
        for r in mem.itertuples():
            if r.memory_saved_mib == r.memory_saved_mib and len(ref_mib):
                pct = 100 * r.memory_saved_mib / ref_mib.iloc[0]
                peak = (f", peak {r.peak_saved_mib:,.0f} MiB" if r.peak_saved_mib ==
                        r.peak_saved_mib else "")
                saved.append(f"{r.quant} {r.memory_saved_mib:,.0f} MiB of weights "
                             f"({-pct:+.0f} %){peak}")
        if saved:
            texts.append(text)
            text = f"Memory of {label} saved against {ref}: " + "; ".join(saved) + "."
        else:
            texts.append(text)
            text = f"Memory of {label}:"
        text += _split_of_quants(rows)
        texts.append(text)
        text = ""
        # quality against the reference
        qual = rows[(rows["test"] == "quality")]
        quality = {}
        if not qual.empty:
            ref_ppl = qual[qual["quant"] == ref]["q_ppl"].dropna()
            for q, gq in qual.groupby("quant"):
                r = gq.iloc[0]
                dppl = r.get("q_delta_ppl")
                if (dppl is None or dppl != dppl) and len(ref_ppl) and r.get("q_ppl") == \
                        r.get("q_ppl"):
                    dppl = r["q_ppl"] - ref_ppl.iloc[0]
                ratio = (r["q_ppl"] / ref_ppl.iloc[0]) if len(ref_ppl) and \
                    r.get("q_ppl") == r.get("q_ppl") else r.get("q_ppl_ratio")
                quality[q] = {"ppl": r.get("q_ppl"), "delta_ppl": dppl, "ppl_ratio": ratio,
                              "kl_mean": r.get("q_kl_mean"), "top1_pct": r.get("q_top1_pct")}
            cost = []
            for q in _quant_order(quality):
                m = quality[q]
                if q == ref:
                    continue
                bits = []
                if m["delta_ppl"] is not None and m["delta_ppl"] == m["delta_ppl"]:
                    bits.append(f"Δppl {m['delta_ppl']:+.3g}")
                if m["kl_mean"] is not None and m["kl_mean"] == m["kl_mean"]:
                    bits.append(f"KL {m['kl_mean']:.3g}")
                if m["top1_pct"] is not None and m["top1_pct"] == m["top1_pct"]:
                    bits.append(f"top-1 {m['top1_pct']:.1f} %")
                if bits:
                    cost.append(f"{q} " + ", ".join(bits))
            if cost:
                text += f"Quality cost of {label} against {ref}: " + "; ".join(cost) + "."
        study["quality"] = quality
        # the speed / quality front on decode speed
        tg = others[(others["kind"] == "tg") & (others["n_depth"].fillna(0) == 0)]
        if not tg.empty and quality:
            first = tg.sort_values("n_gen")["test"].iloc[0]
            sp = {r.quant: r.speedup for r in tg[tg["test"] == first].itertuples()}
            sp[ref] = 1.0
            front, dominated, best = pareto(sp, quality, ref)
            study.update(pareto_front=front, dominated=dominated, best_tradeoff=best)
            if front:
                text += (f" Speed/quality front (decode {first} vs "
                         f"{'KL' if _has(quality, 'kl_mean') else 'perplexity'}): "
                         + ", ".join(front))
                if dominated:
                    text += "; dominated: " + ", ".join(f"{q} (by {by})"
                                                        for q, by in dominated.items())
                text += "."
            best_txt = ""
            if best and best[0] == ref:
                best_txt = f"{ref} itself (no quantization pays for its perplexity here)"
            elif best:
                q = best[0]
                best_txt = (f"{q} ({sp[q]:.2f}x for "
                            f"{100 * (quality[q]['ppl_ratio'] - 1):+.1f} % perplexity)")
            if best_txt:
                text += f" Best trade-off by decode speedup / perplexity ratio: {best_txt}."
            if front:
                heads[len(texts)] = (f"Speed/quality front of {label}: {', '.join(front)}"
                                     + (f"; best trade-off {best_txt}" if best_txt else "")
                                     + ".")
        texts.append(text.strip())
        out["quant_study"].append(study)
        for i, t in enumerate(texts):
            if t and not t.endswith(":"):
                out["findings"].append({"topic": "quantization", "device": device,
                                        "quant": ref, "model_id": model, "text": t,
                                        **({"headline": heads[i]} if i in heads else {})})


def _split_of_quants(rows) -> str:
    """' Memory split at n_ctx N (weights / KV / compute / other): F16 43/3/43/10 %, ...;
    KV at 32k: ...' for one model's quantizations."""
    mem = rows[rows["model_mib"].notna()].groupby("quant").first(numeric_only=True)
    mem = mem.reindex([q for q in _quant_order(mem.index)])
    total = mem[[c for c, _ in MEMORY_PARTS]].sum(axis=1, min_count=4)
    mem = mem[total.notna() & (total > 0)]
    if mem.empty:
        return ""
    parts = [f"{q} " + "/".join(f"{100 * r[c] / total[q]:.0f}" for c, _ in MEMORY_PARTS) + " %"
             for q, r in mem.iterrows()]
    ctx = mem["n_ctx"].dropna()
    text = (" Split" + (f" at n_ctx {int(ctx.iloc[0]):,}" if len(ctx) else "")
            + " (weights / KV / compute / other): " + ", ".join(parts))
    kv = mem["kv_share_32k"].dropna() if "kv_share_32k" in mem else []
    if len(kv):
        text += f"; the KV cache would be {_range_pct(list(kv))} of memory at 32k context"
    return text + "."


def _quant_order(quants) -> list[str]:
    return sorted(quants, key=lambda q: QUANT_RANK.index(q) if q in QUANT_RANK else 99)


def _has(quality: dict, key: str) -> bool:
    return any(m.get(key) is not None and m.get(key) == m.get(key) for m in quality.values())


def pareto(speedups: dict[str, float], quality: dict[str, dict], ref: str):
    """(front, dominated {quant: by}, best (quant, score)) on decode speedup (higher better)
    and KL divergence from the reference (lower better), else Δ perplexity; the reference
    sits at speedup 1 and divergence 0.  Best = highest speedup / perplexity ratio."""
    key = "kl_mean" if _has(quality, "kl_mean") else "delta_ppl"
    pts = {}
    for q, s in speedups.items():
        v = 0.0 if q == ref else quality.get(q, {}).get(key)
        if v is not None and v == v:
            pts[q] = (s, v)
    front, dominated = [], {}
    for q, (s, v) in pts.items():
        by = next((o for o, (s2, v2) in pts.items() if o != q and s2 >= s and v2 <= v
                   and (s2 > s or v2 < v)), None)
        if by:
            dominated[q] = by
        else:
            front.append(q)
    front.sort(key=lambda q: pts[q][0])
    best = None
    for q in speedups:
        ratio = quality.get(q, {}).get("ppl_ratio")
        if ratio and ratio == ratio and ratio > 0:
            score = speedups[q] / ratio
            if best is None or score > best[1]:
                best = (q, score)
    return front, dominated, best


OVER_LIMIT_PCT = 105.0  # above this a share of the probed bandwidth is a wrong limit, not noise


def roofline(df, out: dict) -> None:
    """Decode bandwidth against the probe at the same thread count; cache-resident models."""
    tg = df[(df["test"] == "tg") & df["decode_gbs"].notna()]
    if tg.empty:
        return
    tg = tg[tg["n_depth"].fillna(0) == 0]
    for r in tg.itertuples():
        out["roofline"].append({
            "model_id": r.model_id, "quant": r.quant, "device": r.device, "test": r.name,
            "n_threads": r.n_threads, "decode_gbs": r.decode_gbs, "probe_gbs": r.probe_gbs,
            "probe_threads": r.probe_threads, "roofline_pct": r.roofline_pct,
            "cache_resident": bool(r.cache_resident),
            "weights_mib": r.model_size_bytes / 2**20, "llc_mib": r.llc_bytes / 2**20})
    probed = tg[tg["roofline_pct"].notna()]
    if probed.empty:
        return
    for device, g in probed.groupby("device"):
        big = g[~g["cache_resident"].astype(bool)]
        small = g[g["cache_resident"].astype(bool)]
        llc = g["llc_bytes"].dropna()
        llc_txt = f"{llc.iloc[0] / 2**20:,.0f} MiB" if len(llc) else "unknown"
        text = f"Decode roofline ({device}; last-level cache {llc_txt}): "
        short = []
        if len(big):
            per = big.groupby("n_threads")
            text += "; ".join(
                f"at {int(t)} thread{'s' if t != 1 else ''} decode reaches "
                f"{_range_pct(list(x['roofline_pct'] / 100))} of the {x['probe_gbs'].iloc[0]:.1f} "
                f"GB/s probed" + (f" with {int(x['probe_threads'].iloc[0])} thread"
                                  f"{'s' if x['probe_threads'].iloc[0] != 1 else ''} (no "
                                  "probe at this count: an older run?)"
                                  if x["probe_threads"].iloc[0] != t else "")
                for t, x in per)
            text += (f" ({len(big)} configs larger than the cache)" if len(llc)
                     else f" ({len(big)} configs)")
            if big["roofline_pct"].max() > OVER_LIMIT_PCT:
                # a decode cannot read weights from DRAM faster than DRAM delivers them
                text += (" - above 100 %, so the probe is not this machine's limit: "
                         + ("the probe ran at another thread count, " if
                            (big["probe_threads"] != big["n_threads"]).any() else "")
                         + ("the weights may sit partly in a cache of unknown size, "
                            if not len(llc) else "")
                         + "or the probe under-reads (runs before the multi-thread probe); "
                         "re-run to probe again before reading these as a share of bandwidth")
                short.append("above 100 %: the probe is not the limit")
            short += [f"{_range_pct(list(x['roofline_pct'] / 100))} of the probe at {int(t)} "
                      f"thread{'s' if t != 1 else ''}" for t, x in per]
        if len(small):
            over = small[small["roofline_pct"] > 100]
            under = small[small["roofline_pct"] <= 100]
            if len(over):
                text += ("; " if len(big) else "") + (
                    f"{_names(sorted(set(over['model_id'] + ' ' + over['quant'])), 4)}: "
                    "weights fit in the last-level cache - cache-resident, no DRAM roofline")
                short.append(f"{len(over)} cache-resident")
            if len(under):
                text += ("; " if len(big) or len(over) else "") + ", ".join(
                    f"{r.model_id} {r.quant} {r.roofline_pct:.0f} % at {int(r.n_threads)} "
                    f"thread{'s' if r.n_threads != 1 else ''}" for r in under.itertuples()) + (
                    " of the DRAM probe (weights fit in the last-level cache, so the DRAM "
                    "roofline does not bound them)")
                short.append(f"{len(under)} within the cache at "
                             f"{_range_pct(list(under['roofline_pct'] / 100))}")
        out["findings"].append({"topic": "roofline", "device": device, "text": text + ".",
                                "headline": f"Decode roofline ({device}): "
                                            + "; ".join(short) + "."})


def _config(r: Any) -> str:
    """'m01 Q4_0 (cpu-x86)' without the parts that are unknown."""
    return r["model_id"] + "".join(f" {x}" for x in [r.get("quant")] if x and x != "unknown") \
        + "".join(f" ({x})" for x in [r.get("device")] if x and x != "unknown")


def summary(df, out: dict) -> None:
    """The report's top lines: fastest config, best quality per MiB."""
    lines = []
    tg = df[(df["test"] == "tg") & df["latency_ms"].notna() & (df["n_depth"].fillna(0) == 0)]
    if len(tg):
        r = tg.loc[tg["latency_ms"].idxmin()]
        lines.append(f"Fastest decode: {_config(r)} {r['latency_ms']:.2f} ms per token "
                     f"({1000 / r['latency_ms']:.1f} tokens/s, {r['name']}).")
    tt = df[(df["test"] == "ttft") & df["latency_ms"].notna()]
    if len(tt):
        r = tt.loc[tt["latency_ms"].idxmin()]
        lines.append(f"Fastest first token: {_config(r)} "
                     f"{r['latency_ms']:.1f} ms ({r['name']}).")
    q = df[(df["test"] == "quality") & df["q_bits_per_byte"].notna()]
    if len(q):
        mib = df.groupby(["model_id", "quant"])["model_mib"].max()
        q = q.assign(mib=[mib.get((m, k)) for m, k in zip(q["model_id"], q["quant"])])
        q = q[q["mib"].notna()]
        if len(q):
            best = q["q_bits_per_byte"].min()
            near = q[q["q_bits_per_byte"] <= 1.05 * best]
            r = near.loc[near["mib"].idxmin()]
            lines.append(f"Best quality per MiB: {_config(r)} - "
                         f"{r['q_bits_per_byte']:.3f} bits per byte (within 5 % of the best, "
                         f"{best:.3f}) with {r['mib']:,.0f} MiB of weights, the smallest such.")
    out["summary"] = lines


# --------------------------------------------------------------------------- entry

def analyze(df) -> dict[str, Any]:
    """Every statistic over the table and the findings, as one JSON-able dict."""
    out: dict[str, Any] = {
        "format": "slmbench-analysis/1", "n_rows": int(len(df)),
        "models": sorted(df["model_id"].astype(str).unique()),
        "groups": [{"device": d, "quant": q, "n_models": int(g["model_id"].nunique())}
                   for (d, q), g in comparable_groups(df)],
        "fits": [], "spread": [], "memory_fits": [], "partial_correlations": [],
        "memory_shares": [], "kv_projection": [], "quant_study": [], "confounders": [],
        "roofline": [], "correlations": [], "summary": [], "findings": [],
    }
    corr = correlation_table(df)
    latency_fits(df, out)
    memory_fits(df, out)
    kv_projection(df, out)
    quant_study(df, out)
    roofline(df, out)
    confounders(corr, df, out)
    summary(df, out)
    out["correlations"] = corr.to_dict("records") if not corr.empty else []
    note = settings_note(df)
    if note:
        out["findings"].append({"topic": "note", "text": note})
    if not any(f["topic"] in ("latency", "memory") for f in out["findings"]):
        most = max((g["n_models"] for g in out["groups"]), default=0)
        known = int(df.loc[df["parameters"].notna(), "model_id"].nunique())
        why = (f"they need {MIN_N} or more models per quantization and device (this data has "
               f"at most {most})" if most < MIN_N or known >= MIN_N else
               f"they need the models' parameters, known for {known} of "
               f"{df['model_id'].nunique()} (give a parameters column, or join facts with "
               "--catalog / --gguf)")
        out["findings"].append({"topic": "note", "text": f"No fits across models: {why}."})
    return _clean(out)


MAX_HEADLINES = 12


def headlines(result: dict) -> list[str]:
    """The summary's short lines: one headline per finding that has one (cautions merged into
    one line), at most MAX_HEADLINES."""
    out, cautions = [], []
    for f in result["findings"]:
        if f["topic"] == "confounder":
            cautions.append(f.get("headline") or f["text"])
        elif f["topic"] == "note":
            out.append(f["text"])
        elif f.get("headline"):
            out.append(f["headline"])
    if cautions:
        out.append(f"Caution - confounded by attention type: {', '.join(cautions[:4])}"
                   + (f" and {len(cautions) - 4} more" if len(cautions) > 4 else "") + ".")
    if len(out) > MAX_HEADLINES:
        out = out[:MAX_HEADLINES - 1] + [f"... {len(out) - MAX_HEADLINES + 1} more below "
                                         "(Findings)."]
    return out


def stats_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysis as one long table (``analyze --stats-csv``): a row per statistic with
    its kind, keys and numbers; lists and dicts become JSON text."""
    import json

    rows = []
    for kind in ("fits", "spread", "memory_fits", "partial_correlations", "memory_shares",
                 "kv_projection", "confounders", "roofline", "correlations"):
        for item in result.get(kind, []):
            flat = {"statistic": kind}
            for k, v in item.items():
                if isinstance(v, dict) and k in ("linear", "log"):
                    for k2, v2 in (v or {}).items():
                        flat[f"{k}_{k2}"] = v2
                else:
                    flat[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            rows.append(flat)
    for study in result.get("quant_study", []):
        for s in study.get("speedups", []):
            rows.append({"statistic": "quant_speedup", **{
                k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in s.items()}})
    for f in result.get("findings", []):
        rows.append({"statistic": "finding", **f})
    return rows


__all__ = ["analyze", "headlines", "human_count", "human_ctx", "pareto", "stats_rows"]
