"""report.md and a self-contained report.html (figures embedded) from runs or a CSV table.

The page opens with a short summary (fastest config, best quality per MiB) and the findings
with their numbers, then the tables (sorted by model, click a header to re-sort), warnings and
figures.  No external file or URL: it opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import os
from typing import Any, Iterable

from slmbench.analysis import correlation_table, load_csv, load_table, quant_speedups
from slmbench.errors import SlmbenchError
from slmbench.findings import OVER_LIMIT_PCT, analyze, headlines, human_ctx
from slmbench.results import Run, read_run


def _fmt(x: Any, digits: int = 2) -> str:
    try:
        if x is None or x != x:
            return "-"
        return f"{float(x):,.{digits}f}"
    except (TypeError, ValueError):
        return str(x)


def _casefold(col: Any) -> Any:
    """Sort text columns without regard to case (gpt2 beside GPT-...)."""
    return col.astype(str).str.casefold() if col.dtype == object or str(col.dtype) in (
        "str", "string") else col


def _pct(share: Any, ctx: Any = None) -> str:
    if share is None or share != share:
        return "n/a"
    return f"{100 * share:.1f}%" + (f" @ {human_ctx(ctx)}" if ctx is not None else "")


def _ctx(value: Any, basis: Any) -> str:
    """A projected crossing: 'n/a' when the projection is unknown, '> 1M' when not reached."""
    if not isinstance(basis, str):
        return "n/a"
    return "> 1M" if value is None or value != value else f"{int(value):,}"


def tables(df) -> dict[str, list[list[str]]]:
    """The key tables as rows of strings, each sorted by model."""
    res = [["model", "quant", "device", "test", "ms (median)", "ms per token", "95% CI", "CV",
            "tokens/s ± sd", "n"]]
    timed = df[df["test"].isin(["pp", "tg", "ttft"])]
    for _, r in timed.sort_values(["model_id", "quant", "device", "test", "name"],
                                  key=_casefold).iterrows():
        ci = (f"[{_fmt(r.get('ms_ci95_low'), 3)}, {_fmt(r.get('ms_ci95_high'), 3)}]"
              if r.get("ms_ci95_low") == r.get("ms_ci95_low") else "-")
        res.append([str(r["model_id"]), str(r["quant"]), str(r.get("device")), str(r["name"]),
                    _fmt(r.get("ms_median"), 3),
                    _fmt(r.get("latency_ms"), 3) if r["test"] == "tg" else "-", ci,
                    f"{_fmt(r.get('ms_cv_pct'), 1)}%" if r.get("ms_cv_pct") ==
                    r.get("ms_cv_pct") else "-",
                    f"{_fmt(r.get('ts_mean'), 1)} ± {_fmt(r.get('ts_stdev'), 1)}"
                    if r.get("ts_mean") == r.get("ts_mean") else "-",
                    _fmt(r.get("n_samples"), 0)])
    mem = [["model", "quant", "device", "n_ctx", "weights", "KV", "compute", "other",
            "peak RSS", "KV share", "KV @ 32k", "KV @ train ctx", "KV > 50% at",
            "KV > 80% at"]]
    measured = df[df["model_mib"].notna() | df["kv_mib"].notna() | df["peak_rss_mib"].notna()]
    keys = ["model_id", "quant", "device", "n_ctx"]
    per = measured.groupby(keys, dropna=False).first(numeric_only=True)
    basis = measured.groupby(keys, dropna=False)["kv_basis"].first()
    for key, r in per.iterrows():
        model, quant, device, n_ctx = key
        b = basis.get(key)
        mem.append([str(model), str(quant), str(device), _fmt(n_ctx, 0),
                    _fmt(r.get("model_mib")), _fmt(r.get("kv_mib")), _fmt(r.get("compute_mib")),
                    _fmt(r.get("other_mib")), _fmt(r.get("peak_rss_mib"), 1),
                    _pct(r.get("kv_share")), _pct(r.get("kv_share_32k")),
                    _pct(r.get("kv_share_train_ctx"), r.get("n_ctx_train"))
                    if r.get("kv_share_train_ctx") == r.get("kv_share_train_ctx") else "n/a",
                    _ctx(r.get("ctx_kv_share_50"), b), _ctx(r.get("ctx_kv_share_80"), b)])
    out = {"Results (every raw sample summarised)": res}
    side = devices_side_by_side(timed)
    if side:
        out["Devices side by side (tokens/s, mean ± sd)"] = side
    if len(mem) > 1:
        out["Memory"] = mem
    if df["q_ppl"].notna().any():
        qual = [["model", "quant", "test", "perplexity", "bits/byte", "KL mean", "top-1 %",
                 "tokens"]]
        for _, r in df[df["test"] == "quality"].sort_values(["model_id", "quant"]).iterrows():
            err = r.get("q_ppl_err")
            qual.append([str(r["model_id"]), str(r["quant"]), str(r["name"]),
                         _fmt(r.get("q_ppl"), 4) + (f" ± {_fmt(err, 4)}" if err == err and
                                                     err is not None else ""),
                         _fmt(r.get("q_bits_per_byte"), 4), _fmt(r.get("q_kl_mean"), 5),
                         _fmt(r.get("q_top1_pct"), 2), _fmt(r.get("q_n_tokens"), 0)])
        out["Quality"] = qual
    roof_rows = df[df["decode_gbs"].notna() & df["probe_gbs"].notna()]
    if len(roof_rows):
        roof = [["model", "quant", "device", "test", "threads", "weights MiB", "decode GB/s",
                 "probe GB/s (threads)", "of probe"]]
        for _, r in roof_rows.sort_values(["model_id", "quant", "n_threads"]).iterrows():
            weights = r["model_size_bytes"] / 2**20
            share = f"{r['roofline_pct']:.0f}%"
            if r.get("cache_resident"):  # weights within the last-level cache
                llc = f"the {r['llc_bytes'] / 2**20:,.0f} MiB last-level cache"
                share = (f"cache-resident (weights fit in {llc})" if r["roofline_pct"] > 100
                         else f"{share} (weights fit in {llc})")
            elif r["roofline_pct"] > OVER_LIMIT_PCT:
                share = f"{share} - probe not the limit (Findings)"
            roof.append([str(r["model_id"]), str(r["quant"]), str(r.get("device")),
                         str(r["name"]), _fmt(r.get("n_threads"), 0), _fmt(weights, 1),
                         _fmt(r["decode_gbs"]),
                         f"{_fmt(r['probe_gbs'])} ({_fmt(r.get('probe_threads'), 0)})", share])
        out["Decode roofline (weights bytes x tokens/s vs the bandwidth probed at the same "
            "thread count)"] = roof
    return out


CAPTIONS = {  # a sentence under a table's heading; more join below
    "Memory": "MiB at n_ctx. KV share = KV / (weights + KV + compute + other), projected to "
              "32k and the training context with the rest held fixed; 'n/a' = unknown, "
              "'> 1M' = not reached within 1M tokens (docs/analysis.md).",
}


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


def speedup_table(speed) -> list[list[str]] | None:
    if speed.empty:
        return None
    rows = [["model", "device", "threads", "test", "quant", "vs", "speedup",
             "weights saved MiB"]]
    for r in speed.sort_values(["model_id", "device", "n_threads", "kind", "test",
                                "quant"]).itertuples():
        rows.append([str(r.model_id), str(r.device), _fmt(r.n_threads, 0), str(r.test),
                     str(r.quant), str(r.reference),
                     f"{r.speedup:.2f}x" + ("*" if getattr(r, "noisy", False) else ""),
                     _fmt(r.memory_saved_mib)])
    return rows


def correlation_rows(corr, top: int | None = 30) -> list[list[str]] | None:
    if corr is None or corr.empty:
        return None
    strong = corr.reindex(corr["spearman_rho"].abs().sort_values(ascending=False).index)
    if top:
        strong = strong.head(top)
    rows = [["group", "test", "quant", "device", "metric", "fact", "pearson r", "p", "spearman",
             "p", "n"]]
    for r in strong.itertuples():
        rows.append([r.group, r.test, str(r.quant), str(r.device), r.metric, r.fact,
                     f"{r.pearson_r:+.2f}", f"{r.pearson_p:.2g}", f"{r.spearman_rho:+.2f}",
                     f"{r.spearman_p:.2g}", str(r.n) + (" weak" if r.weak else "")])
    return rows


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th title='click to sort'>{html.escape(c)}</th>" for c in rows[0])
    body = []
    last = None
    for r in rows[1:]:
        cls = " class='newgroup'" if last is not None and r[0] != last else ""
        last = r[0]
        body.append(f"<tr{cls}>" + "".join(
            f"<td class='text'>{html.escape(c)}</td>" if len(c) > 40 else  # prose wraps
            f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    return (f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


# a click on a header sorts the table by that column (numbers as numbers), again = reverse
_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var up = th.getAttribute('data-dir') !== 'up';
    th.parentNode.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', up ? 'up' : 'down');
    var key = function (r) {
      var t = r.cells[th.cellIndex].textContent.replace(/,/g, '');
      var n = parseFloat(t);
      return isNaN(n) ? t : n;
    };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
      return up ? c : -c;
    });
    rows.forEach(function (r) { r.classList.remove('newgroup'); body.appendChild(r); });
  });
});
"""

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1280px;margin:1.5em auto;padding:0 1em;"
        "color:#222;line-height:1.4}h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px "
        "solid #ddd;padding-bottom:.2em}.summary{background:#f4f7fb;border:1px solid #d8e2ee;"
        "border-radius:6px;padding:.6em 1.2em}.summary li{margin:.25em 0}.scroll{overflow-x:auto}"
        "table{border-collapse:collapse;font-size:12.5px;margin:.6em 0}td,th{border:1px solid "
        "#ccc;padding:3px 6px;text-align:right;white-space:nowrap}td:first-child,th:first-child"
        "{text-align:left}th{background:#eee;cursor:pointer;position:sticky;top:0}"
        "th[data-dir=up]::after{content:' \\25B2'}th[data-dir=down]::after{content:' \\25BC'}"
        "tr.newgroup td{border-top:2px solid #999}img{max-width:100%;border:1px solid #eee;"
        "margin:.4em 0}figure{margin:1em 0}.warn{color:#a40}.muted{color:#666;font-size:90%}"
        ".findings li{margin:.35em 0}h3{margin:1em 0 .3em;font-size:1.05em}"
        "td.text{white-space:normal;text-align:left;min-width:16em}")


# how the findings are grouped under headings, in this order
TOPICS = [("Latency and size", ("latency", "latency-spread")),
          ("Memory", ("memory", "memory-split")),
          ("KV cache at long context", ("kv",)),
          ("Quantization", ("quantization",)),
          ("Decode roofline", ("roofline",)),
          ("Cautions", ("confounder",)),
          ("Notes", ("note",))]
def grouped_findings(result: dict) -> list[tuple[str, list[str]]]:
    groups = []
    for title, topics in TOPICS:
        texts = [f["text"] for f in result["findings"] if f["topic"] in topics]
        if texts:
            groups.append((title, texts))
    return groups


def method_lines(runs: list[Run], csv: str | None = None, df: Any = None) -> list[str]:
    out = []
    if csv:
        n_models = df["model_id"].nunique() if df is not None else "?"
        out.append(f"table {os.path.basename(csv)}: {len(df) if df is not None else '?'} rows, "
                   f"{n_models} model{'' if n_models == 1 else 's'}; how each number was "
                   "measured is the table's own "
                   "business (columns: docs/analysis.md)")
    for run in runs:
        env = run.env
        cpu = env.cpu.model if env.cpu else None
        dev = env.device_label
        ver = env.versions.get("llama_cpp_python")
        rec = next((r for r in run.records if r.settings), None)
        s = rec.settings if rec else None
        method = (f"{s.repetitions} repetitions after {s.warmup} warm-up, {s.n_threads} threads, "
                  f"{s.prompt} prompt tokens") if s else "settings unknown"
        bw = env.bandwidth
        probe = ""
        if bw and bw.threads:
            probe = "; bandwidth probe " + ", ".join(
                f"{p.read_gbs:.1f} GB/s at {p.n_threads} thread{'s' if p.n_threads > 1 else ''}"
                for p in bw.threads) + (f" over {bw.array_mib:.0f} MiB" if bw.array_mib else "")
        elif bw and bw.read_gbs:
            probe = f"; bandwidth probe {bw.read_gbs:.1f} GB/s (one thread, version-1 probe)"
        out.append(f"run {run.run_id}: device {dev or '?'}, CPU {cpu or '?'}, "
                   f"llama-cpp-python {ver or '?'}; {method}{probe}")
    if runs:
        out.append("Spread: every test keeps its raw samples; tables show the median, the 95% "
                   "confidence interval of the mean (Student t) and the coefficient of "
                   "variation.")
    out.append("Statistics across models compare one device and quantization at a time; "
               "n < 8 is weak evidence, n < 3 gives none. What each statistic means and when "
               "not to trust it: docs/analysis.md.")
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
CAPTIONS.update({SUSTAINED_TITLE: SUSTAINED_CAPTION, PROFILE_TITLE: PROFILE_CAPTION})


def profile_table(runs: list[Run]) -> list[list[str]] | None:
    """One row per profile test of the runs; None when there is none."""
    from slmbench.profile import table_rows

    rows = table_rows([r for run in runs for r in run.records])
    return rows if len(rows) > 1 else None


def warnings_of(runs: list[Run]) -> list[str]:
    return [f"{r.model_id} {r.quant}: {w}" for run in runs for r in run.records
            for w in r.warnings]


def write_report(run_dirs: Iterable[Any] | None, out_dir: str, catalog: Any = None, *,
                 from_csv: str | None = None, gguf: Iterable[str] | None = None,
                 targets: Any = None) -> dict[str, str]:
    """Write report.md, report.html and figures/ for runs or a CSV table (or both: the CSV's
    rows join the runs').  ``targets`` (a file, a mapping; default: the runs' suites') judge
    the configs in the Verdict section at the top (slmbench.verdict)."""
    import pandas as pd

    from slmbench import figures
    from slmbench.verdict import report_section

    runs = [x if isinstance(x, Run) else read_run(x) for x in (run_dirs or [])]
    if not runs and not from_csv:
        raise SlmbenchError("give run directories or --from-csv FILE")
    sustained = sustained_table(runs)
    profiles = profile_table(runs)
    frames = []
    try:
        if runs:
            frames.append(load_table(runs, catalog, gguf))
    except SlmbenchError:
        # a run of sustained or profile records alone (or a killed one) still has its
        # windows and operators to show
        if not (sustained or profiles):
            raise
    if from_csv:
        frames.append(load_csv(from_csv, catalog, gguf))
    df = (None if not frames else frames[0] if len(frames) == 1
          else pd.concat(frames, ignore_index=True))
    os.makedirs(out_dir, exist_ok=True)
    fig_dir = os.path.join(out_dir, "figures")
    figs: list[str] = []
    tabs: dict[str, list[list[str]]] = {}
    summary: list[str] = []
    heads: list[str] = []
    grouped: list[tuple[str, list[str]]] = []
    if df is not None:
        speed = quant_speedups(df)
        corr = correlation_table(df)
        result = analyze(df)
        figs += figures.write_all(df, fig_dir, runs, speed, corr)
        summary = result["summary"]
        heads = headlines(result)
        grouped = grouped_findings(result)
        tabs = tables(df)
        st = speedup_table(speed)
        if st:
            tabs["Quantization speedup"] = st
        cr = correlation_rows(corr)
        if cr:
            tabs[f"Strongest correlations ({len(cr) - 1} of {len(corr)}; "
                 "all in analyze --json)"] = cr
    if sustained:
        tabs[SUSTAINED_TITLE] = sustained
        figs += figures.sustained_figures(runs, fig_dir)
    if profiles:
        tabs[PROFILE_TITLE] = profiles
        figs += figures.profile_figures(runs, fig_dir)
    pngs = [p for p in figs if p.endswith(".png")]
    warns = warnings_of(runs)
    methods = method_lines(runs, from_csv, df)
    verdict_md, verdict_html = report_section(runs, targets) if runs else ([], "")
    # Markdown
    md = ["# slmbench report", ""] + verdict_md
    if summary or heads:
        md += ["", "## Summary", ""]
        md += [f"- **{x}**" for x in summary] + [f"- {x}" for x in heads]
    if grouped:
        md += ["", "## Findings"]
    for title, texts in grouped:
        md += ["", f"### {title}", ""] + [f"- {x}" for x in texts]
    md += ["", "## Environment and method", ""] + [f"- {x}" for x in methods]
    for title, rows in tabs.items():
        md += ["", f"## {title}", ""] + ([CAPTIONS[title], ""] if title in CAPTIONS else [])
        md += [_md_table(rows)]
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
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>slmbench report</title>"
             "<meta name='viewport' content='width=device-width'>"
             f"<style>{_CSS}</style></head><body><h1>slmbench report</h1>", verdict_html]
    if summary or heads:
        parts.append("<div class='summary'><ul>"
                     + "".join(f"<li><b>{html.escape(x)}</b></li>" for x in summary)
                     + "".join(f"<li>{html.escape(x)}</li>" for x in heads) + "</ul></div>")
    if grouped:
        parts.append("<h2>Findings</h2>" + "".join(
            f"<h3>{html.escape(title)}</h3><ul class='findings'>"
            + "".join(f"<li>{html.escape(x)}</li>" for x in texts) + "</ul>"
            for title, texts in grouped))
    parts.append("<h2>Environment and method</h2><ul class='muted'>"
                 + "".join(f"<li>{html.escape(x)}</li>" for x in methods) + "</ul>")
    for title, rows in tabs.items():
        caption = (f"<p class='muted'>{html.escape(CAPTIONS[title])}</p>"
                   if title in CAPTIONS else "")
        parts.append(f"<h2>{html.escape(title)}</h2>{caption}{_html_table(rows)}")
    if warns:
        parts.append("<h2>Warnings</h2><ul class='warn'>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warns) + "</ul>")
    parts.append("<h2>Figures</h2>" + "".join(imgs))
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return {"markdown": md_path, "html": html_path, "figures": fig_dir}
