"""`slmbench analyze`: the key tables and statistics of one or more runs, in the terminal."""

from __future__ import annotations

import argparse

HELP = "tables and statistics over one or more runs"
DESCRIPTION = """\
Load run directories (or a CSV with the documented columns) into one table joined with the
catalog's and the GGUF files' facts, and print: results with spread, the memory breakdown,
log-log fits of latency vs parameters, correlations (Pearson and Spearman, p, n; none below
n = 3, "weak" below n = 8), partial correlations net of model size, and quantization speedups.
A fleet directory (`slmbench run --hosts`) stands for the runs of all its hosts.

examples:
  slmbench analyze results/run-*
  slmbench analyze results/run-a --csv table.csv
  slmbench analyze --from-csv published.csv
  slmbench analyze hf://datasets/my-team/slm-results/runs/jetson-orin-nx   # shared runs
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run directories, or hf://datasets/ORG/NAME[/runs/...] (see pull)")
    p.add_argument("--from-csv", metavar="FILE", help="analyse a CSV instead of run directories")
    p.add_argument("--csv", metavar="OUT", help="also write the tidy table as CSV")
    p.add_argument("--catalog", metavar="PATH", help="catalog for model facts")


def run(args: argparse.Namespace) -> int:
    from slmbench.api import run_paths
    from slmbench.analysis import (correlation_table, findings, load_csv, load_table,
                                   quant_speedups)
    from slmbench.catalog import load_catalog
    from slmbench.display import table
    from slmbench.errors import SlmbenchError
    from slmbench.report import tables

    if args.from_csv:
        df = load_csv(args.from_csv)
    elif args.runs:
        df = load_table(run_paths(args.runs),
                        load_catalog(args.catalog) if args.catalog else None)
    else:
        raise SlmbenchError("give run directories or --from-csv FILE")
    if args.csv:
        df.drop(columns=["samples_ms"], errors="ignore").to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if "ms_median" in df and "model_mib" in df:
        for title, rows in tables(df).items():
            print(f"\n{title}\n" + table(rows[1:], rows[0]))
    print("\nFindings")
    for line in findings(df) or ["not enough models for fits (need 3 or more per quant)"]:
        print(f"- {line}")
    corr = correlation_table(df)
    if not corr.empty:
        strong = corr.reindex(corr["spearman_rho"].abs().sort_values(ascending=False).index)
        rows = [[r.test, str(r.quant), r.metric, r.fact, f"{r.pearson_r:+.2f}",
                 f"{r.pearson_p:.3g}", f"{r.spearman_rho:+.2f}", f"{r.spearman_p:.3g}",
                 str(r.n) + (" weak" if r.weak else "")] for r in strong.head(20).itertuples()]
        print("\nStrongest correlations\n" + table(
            rows, ["test", "quant", "metric", "fact", "pearson r", "p", "spearman", "p", "n"]))
    speed = quant_speedups(df)
    if not speed.empty:
        rows = [[r.model_id, r.test, r.quant, r.reference, f"{r.speedup:.2f}x",
                 f"{r.memory_saved_mib:.1f}"] for r in speed.itertuples()]
        print("\nQuantization speedup\n" + table(
            rows, ["model", "test", "quant", "vs", "speedup", "weights saved MiB"]))
    return 0
