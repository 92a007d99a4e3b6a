"""`slmbench analyze`: the key tables and statistics of one or more runs, in the terminal."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Load run directories (or a CSV table: the columns are in docs/analysis.md) into one table
joined with the catalog's and the GGUF files' facts, and print: results with spread, the
memory breakdown and its KV projection to 32k and the training context, the findings with
their numbers (latency and memory vs parameters with fits, the spread around the size trend
in prefill vs decode, the vocabulary effect net of size, KV share at 32k by attention type,
each model's quantization study, the decode roofline, correlations confounded by attention
type), the strongest correlations (Pearson and Spearman, p, n; none below n = 3, "weak"
below n = 8) and quantization speedups. A fleet directory (`slmbench run --hosts`) stands
for the runs of all its hosts.

examples:
  slmbench analyze results/run-*
  slmbench analyze results/run-a --csv table.csv
  slmbench analyze --from-csv published.csv --catalog models.yaml
  slmbench analyze --from-csv published.csv --json > stats.json
  slmbench analyze results/run-a --stats-csv stats.csv --top 0
  slmbench analyze hf://datasets/my-team/slm-results/runs/jetson-orin-nx   # shared runs
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run directories, or hf://datasets/ORG/NAME[/runs/...] (see pull)")
    p.add_argument("--from-csv", metavar="FILE",
                   help="analyse a CSV table (columns: docs/analysis.md) instead of, or beside, "
                        "run directories")
    p.add_argument("--csv", metavar="OUT", help="also write the tidy table as CSV")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write every statistic (fits, spread, partial correlations, memory "
                        "split, KV projection, quantization study, roofline, confounders, all "
                        "correlations, findings) as JSON to FILE, or alone to stdout")
    p.add_argument("--stats-csv", metavar="FILE",
                   help="write every statistic as one long CSV table (a row per statistic)")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="correlations to print, strongest first (0: all; default 20)")
    p.add_argument("--catalog", metavar="PATH",
                   help="catalog whose facts are joined to the rows by model_id")
    p.add_argument("--gguf", action="append", default=[], metavar="FILE",
                   help="a GGUF file whose header facts fill the rows of its model id (the "
                        "file name without the quant); repeatable")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import pandas as pd

    from slmbench.analysis import load_csv, load_table
    from slmbench.api import run_paths
    from slmbench.catalog import load_catalog
    from slmbench.display import table
    from slmbench.errors import SlmbenchError
    from slmbench.findings import analyze, stats_rows
    from slmbench.report import correlation_rows, speedup_table, tables
    from slmbench.results import read_run

    catalog = load_catalog(args.catalog) if args.catalog else None
    runs = [read_run(p) for p in run_paths(args.runs)] if args.runs else []
    frames = []
    if runs:
        frames.append(load_table(runs, catalog, args.gguf))
    if args.from_csv:
        frames.append(load_csv(args.from_csv, catalog, args.gguf))
    if not frames:
        raise SlmbenchError("give run directories or --from-csv FILE")
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    result = analyze(df)
    versus: list[list[str]] = []
    if runs:  # predicted vs measured, when this machine holds a probe of their device
        from slmbench.predict import against_runs, against_table

        rows, why = against_runs(runs)
        result["predicted_vs_measured"] = {"rows": rows, "note": why}
        versus = against_table(rows) if rows else []
    quiet = args.json == "-"  # stdout is the JSON alone
    note = sys.stderr if quiet else sys.stdout
    if args.csv:
        df.drop(columns=["samples_ms"], errors="ignore").to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=note)
    if args.stats_csv:
        pd.DataFrame(stats_rows(result)).to_csv(args.stats_csv, index=False)
        print(f"wrote {args.stats_csv}", file=note)
    if args.json:
        text = json.dumps(result, indent=1, ensure_ascii=False)
        if quiet:
            print(text)
            return 0
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"wrote {args.json}")
    for title, rows in tables(df).items():
        print(f"\n{title}\n" + table(rows[1:], rows[0]))
    speed = speedup_table(pd.DataFrame([r for s in result["quant_study"]
                                        for r in s["speedups"]]))
    if speed:
        print("\nQuantization speedup\n" + table(speed[1:], speed[0]))
    if result["summary"]:
        print("\nSummary")
        for line in result["summary"]:
            print(f"- {line}")
    if versus:
        print("\nPredicted vs measured (slmbench predict; OFF = beyond the expected band)\n"
              + table(versus[1:], versus[0]))
    print("\nFindings")
    for f in result["findings"]:
        print(f"- {f['text']}")
    corr = pd.DataFrame(result["correlations"])
    rows = correlation_rows(corr, args.top or None)
    if rows:
        shown = len(rows) - 1
        more = (f" ({shown} of {len(corr)}; --top 0 prints all, --json / --stats-csv hold "
                "every one)" if shown < len(corr) else "")
        print(f"\nStrongest correlations{more}\n" + table(rows[1:], rows[0]))
    return 0
