"""report.md and a self-contained report.html (figures embedded) from one or more runs."""

from __future__ import annotations

import base64
import html
import os
from typing import Any

from slmbench.analysis import correlation_table, findings, load_table, quant_speedups
from slmbench.errors import SlmbenchError
from slmbench.results import Run, read_run


def _fmt(x: Any, digits: int = 2) -> str:
    try:
        if x is None or x != x:
            return "-"
        return f"{float(x):,.{digits}f}"
    except (TypeError, ValueError):
        return str(x)


def tables(df) -> dict[str, list[list[str]]]:
    """The key tables as rows of strings: results with spread, memory."""
    res = [["model", "quant", "device", "test", "ms (median)", "95% CI", "CV", "tokens/s ± sd",
            "n"]]
    timed = df[df["test"] != "quality"]
    for _, r in timed.sort_values(["model_id", "quant", "name"]).iterrows():
        ci = (f"[{_fmt(r.get('ms_ci95_low'), 3)}, {_fmt(r.get('ms_ci95_high'), 3)}]"
              if r.get("ms_ci95_low") == r.get("ms_ci95_low") else "-")
        res.append([str(r["model_id"]), str(r["quant"]), str(r.get("device")), str(r["name"]),
                    _fmt(r.get("ms_median"), 3), ci, f"{_fmt(r.get('ms_cv_pct'), 1)}%",
                    f"{_fmt(r.get('ts_mean'), 1)} ± {_fmt(r.get('ts_stdev'), 1)}",
                    _fmt(r.get("n_samples"), 0)])
    mem = [["model", "quant", "device", "n_ctx", "weights MiB", "KV MiB", "compute MiB",
            "other MiB", "peak RSS MiB", "KV share", "KV share at train ctx", "KV > 50% at",
            "KV > 80% at"]]
    measured = df[df["model_mib"].notna()] if "model_mib" in df else df.iloc[0:0]
    per = measured.groupby(["model_id", "quant", "device", "n_ctx"],
                           dropna=False).first(numeric_only=True)
    for (model, quant, device, n_ctx), r in per.iterrows():
        mem.append([str(model), str(quant), str(device), _fmt(n_ctx, 0), _fmt(r.get("model_mib")),
                    _fmt(r.get("kv_mib")), _fmt(r.get("compute_mib")), _fmt(r.get("other_mib")),
                    _fmt(r.get("peak_rss_mib"), 1), f"{100 * (r.get('kv_share') or 0):.2f}%",
                    _pct(r.get("kv_share_train_ctx"), r.get("n_ctx_train")),
                    _ctx(r.get("ctx_kv_share_50")), _ctx(r.get("ctx_kv_share_80"))])
    out = {"Results (every raw sample summarised)": res}
    side = devices_side_by_side(timed)
    if side:
        out["Devices side by side (tokens/s, mean ± sd)"] = side
    out["Memory"] = mem
    if "q_ppl" in df and df["q_ppl"].notna().any():
        qual = [["model", "quant", "test", "perplexity", "bits/byte", "KL mean", "top-1 %",
                 "tokens"]]
        for _, r in df[df["test"] == "quality"].iterrows():
            qual.append([str(r["model_id"]), str(r["quant"]), str(r["name"]),
                         f"{_fmt(r.get('q_ppl'), 4)} ± {_fmt(r.get('q_ppl_err'), 4)}",
                         _fmt(r.get("q_bits_per_byte"), 4), _fmt(r.get("q_kl_mean"), 5),
                         _fmt(r.get("q_top1_pct"), 2), _fmt(r.get("q_n_tokens"), 0)])
        out["Quality"] = qual
    if "roofline_pct" in df and df["roofline_pct"].notna().any():
        roof = [["model", "quant", "device", "test", "decode GB/s", "of probed bandwidth"]]
        for _, r in df[df["roofline_pct"].notna()].iterrows():
            roof.append([str(r["model_id"]), str(r["quant"]), str(r.get("device")),
                         str(r["name"]), _fmt(r["decode_gbs"]), f"{r['roofline_pct']:.0f}%"])
        out["Decode roofline (weights bytes x tokens/s vs memory bandwidth)"] = roof
    return out


def devices_side_by_side(timed) -> list[list[str]] | None:
    """One row per model, quant and test (no depth), one column per device; None for one device.

    What an engineer choosing between a laptop, a Jetson and a phone reads first.  Each cell
    is the mean tokens/s ± sd of that device's run; the last column names the fastest.
    """
    if "device" not in timed or timed["device"].nunique(dropna=True) < 2:
        return None
    timed = timed[(timed["n_depth"].fillna(0) == 0) & timed["ts_mean"].notna()]
    devices = sorted(timed["device"].dropna().unique())
    rows = [["model", "quant", "test", *devices, "fastest"]]
    for (model, quant, name), g in timed.groupby(["model_id", "quant", "name"], sort=True):
        best = g.groupby("device")["ts_mean"].mean()
        cells = []
        for dev in devices:
            d = g[g["device"] == dev]
            cells.append(f"{_fmt(d['ts_mean'].mean(), 1)} ± {_fmt(d['ts_stdev'].mean(), 1)}"
                         if len(d) else "-")
        fastest = (f"{best.idxmax()} ({best.max() / best.min():.2f}x)" if len(best) > 1
                   else "-")
        rows.append([str(model), str(quant), str(name), *cells, fastest])
    return rows if len(rows) > 1 else None


def _pct(share: Any, ctx: Any) -> str:
    if share is None or share != share:
        return "-"
    return f"{100 * share:.1f}% @ {_fmt(ctx, 0)}"


def _ctx(value: Any) -> str:
    """A projected context; missing means not reached within 1M tokens."""
    return "> 1M" if value is None or value != value else f"{int(value):,}"


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def method_lines(runs: list[Run]) -> list[str]:
    out = []
    for run in runs:
        env = run.env
        cpu = env.cpu.model if env.cpu else None
        dev = env.device_label
        ver = env.versions.get("llama_cpp_python")
        rec = next((r for r in run.records if r.settings), None)
        s = rec.settings if rec else None
        method = (f"{s.repetitions} repetitions after {s.warmup} warm-up, {s.n_threads} threads, "
                  f"{s.prompt} prompt tokens") if s else "settings unknown"
        out.append(f"run {run.run_id}: device {dev or '?'}, CPU {cpu or '?'}, "
                   f"llama-cpp-python {ver or '?'}; {method}")
    out.append("Spread: every test keeps its raw samples; tables show the median, the 95% "
               "confidence interval of the mean (Student t) and the coefficient of variation.")
    return out


SUSTAINED_TITLE = "Sustained performance"
SUSTAINED_CAPTION = ("One workload back to back, window by window (`slmbench sustain`, suite key "
                     "`sustained:`). Burst = the first window, sustained = the median of the "
                     "last 20% of the windows (at least 3), retained = sustained / burst; "
                     "< 90% at = the first of two windows in a row below 90% of burst. A run "
                     "stopped early (interrupted, or its worker killed) is summarised from the "
                     "windows it finished.")


def sustained_table(runs: list[Run]) -> list[list[str]] | None:
    """One row per sustained test of the runs, failed configs included (the windows a killed
    run finished are its finding); None when there is none."""
    rows = [["model", "quant", "device", "threads", "workload", "windows", "burst t/s",
             "sustained t/s", "retained", "< 90% at", "CV", "temp C first → last",
             "CPU MHz first → last", "J/token first → last", "stopped"]]

    def pair(a: Any, b: Any, digits: int = 1) -> str:
        return "-" if a is None and b is None else f"{_fmt(a, digits)} → {_fmt(b, digits)}"

    for run in runs:
        for rec in run.records:
            for t in rec.tests:
                res = t.sustained
                if res is None:
                    continue
                sp = res.decode if res.primary == "decode" else res.prefill
                done = sum(1 for w in res.windows if w.complete)
                drop = ("-" if sp is None else "never" if sp.below_90_s is None
                        else f"{sp.below_90_s:g} s")
                stopped = res.stop_reason if res.stop_reason != "duration" else "-"
                if rec.status != "ok":
                    stopped += f" ({rec.status})"
                rows.append([str(rec.model_id), str(rec.quant), str(rec.device or
                                                                     run.env.device_label),
                             str(rec.settings.n_threads if rec.settings else "?"),
                             f"{res.workload} {res.duration_s:g} s",
                             f"{done} x {res.window_s:g} s",
                             _fmt(sp.burst_ts if sp else None, 1),
                             _fmt(sp.sustained_ts if sp else None, 1),
                             f"{_fmt(sp.retained_pct, 1)}%" if sp and sp.retained_pct else "-",
                             drop, f"{_fmt(sp.cv_pct, 1)}%" if sp and sp.cv_pct else "-",
                             pair(res.temp_first_c, res.temp_last_c),
                             pair(res.cpu_mhz_first, res.cpu_mhz_last, 0),
                             pair(res.j_per_token_first, res.j_per_token_last, 4), stopped])
    return rows if len(rows) > 1 else None


PROFILE_TITLE = "Where the time goes"
PROFILE_CAPTION = ("Operator-level profiles (`slmbench profile`, suite key `profile:`): every "
                   "node of llama.cpp's graph timed inside its scheduler, added up by operator "
                   "class; shares are of the profiled time per token (the unprofiled time and "
                   "the profiling overhead beside it). Method and limits: docs/profile.md.")


def profile_table(runs: list[Run]) -> list[list[str]] | None:
    """One row per profile test of the runs; None when there is none."""
    from slmbench.profile import table_rows

    rows = table_rows([r for run in runs for r in run.records])
    return rows if len(rows) > 1 else None


def warnings_of(runs: list[Run]) -> list[str]:
    return [f"{r.model_id} {r.quant}: {w}" for run in runs for r in run.records
            for w in r.warnings]


def write_report(run_dirs: list[Any], out_dir: str, catalog: Any = None,
                 targets: Any = None) -> dict[str, str]:
    """``targets`` (a file, a mapping; default: the runs' suites') judge the configs in the
    Verdict section at the top (slmbench.verdict)."""
    from slmbench import figures
    from slmbench.verdict import report_section

    runs = [x if isinstance(x, Run) else read_run(x) for x in run_dirs]
    sustained = sustained_table(runs)
    try:
        df = load_table(runs, catalog)
    except SlmbenchError:
        if not sustained:   # a killed sustained run alone still has its windows to show
            raise
        df = None
    os.makedirs(out_dir, exist_ok=True)
    fig_dir = os.path.join(out_dir, "figures")
    figs: list[str] = []
    tabs: dict[str, list[list[str]]] = {}
    found: list[str] = []
    if df is not None:
        speed = quant_speedups(df)
        corr = correlation_table(df)
        figs += figures.latency_vs_params(df, fig_dir, "tg")
        figs += figures.latency_vs_params(df, fig_dir, "pp")
        figs += figures.memory_breakdown(df, fig_dir)
        figs += figures.kv_share_vs_context(df, fig_dir)
        figs += figures.quant_speedup_heatmap(speed, fig_dir)
        figs += figures.decode_drift(runs, fig_dir)
        figs += figures.correlation_heatmap(corr, fig_dir)
        figs += figures.quality_pareto(df, fig_dir)
        found = findings(df) or ["not enough models for fits (need 3 or more per quantization)"]
        tabs = tables(df)
        if not speed.empty:
            tabs["Quantization speedup"] = (
                [["model", "test", "quant", "vs", "speedup", "weights saved MiB"]]
                + [[str(r.model_id), str(r.test), str(r.quant), str(r.reference),
                    f"{r.speedup:.2f}x", _fmt(r.memory_saved_mib)] for r in speed.itertuples()])
    if sustained:
        tabs[SUSTAINED_TITLE] = sustained
        figs += figures.sustained_figures(runs, fig_dir)
        found.append(SUSTAINED_CAPTION)
    profiles = profile_table(runs)
    if profiles:
        tabs[PROFILE_TITLE] = profiles
        figs += figures.profile_figures(runs, fig_dir)
        found.append(PROFILE_CAPTION)
    pngs = [p for p in figs if p.endswith(".png")]
    warns = warnings_of(runs)
    verdict_md, verdict_html = report_section(runs, targets)
    # Markdown
    md = ["# slmbench report", ""] + verdict_md + ["", "## Environment and method", ""]
    md += [f"- {x}" for x in method_lines(runs)]
    md += ["", "## Findings", ""] + [f"- {x}" for x in found]
    for title, rows in tabs.items():
        md += ["", f"## {title}", "", _md_table(rows)]
    if warns:
        md += ["", "## Warnings", ""] + [f"- {w}" for w in warns]
    md += ["", "## Figures", ""] + [f"![{os.path.basename(p)}](figures/{os.path.basename(p)})"
                                     for p in pngs]
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md) + "\n")
    # HTML, self-contained
    imgs = []
    for p in pngs:
        with open(p, "rb") as fh:
            data = base64.b64encode(fh.read()).decode()
        imgs.append(f'<figure><img alt="{html.escape(os.path.basename(p))}" '
                    f'src="data:image/png;base64,{data}"></figure>')
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>slmbench report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid"
             " #ccc;padding:3px 6px;text-align:right}th{background:#eee}img{max-width:100%}"
             ".warn{color:#a40}</style></head><body><h1>slmbench report</h1>",
             verdict_html,
             "<h2>Environment and method</h2><ul>"
             + "".join(f"<li>{html.escape(x)}</li>" for x in method_lines(runs)) + "</ul>",
             "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in found)
             + "</ul>"]
    for title, rows in tabs.items():
        parts.append(f"<h2>{html.escape(title)}</h2>{_html_table(rows)}")
    if warns:
        parts.append("<h2>Warnings</h2><ul class='warn'>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warns) + "</ul>")
    parts.append("<h2>Figures</h2>" + "".join(imgs) + "</body></html>")
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return {"markdown": md_path, "html": html_path, "figures": fig_dir}
