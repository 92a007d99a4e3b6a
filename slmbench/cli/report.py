"""`slmbench report`: report.md + a self-contained report.html."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write report.md and report.html (figures embedded, no external files or URLs) for one or more
runs: at the top the Verdict (per device and workload the config to ship and the pass/fail table
of the targets: --targets FILE, or the targets the runs' suites carry; see `slmbench recommend`),
then environment and method, results with their spread, memory breakdown, quantization
speedups, findings as sentences computed from the statistics, warnings (noisy, throttled), and
figures (latency vs parameters, memory breakdown, KV share vs context, quantization speedup,
per-token decode latency, correlations). Several runs or devices appear side by side; a fleet
directory (`slmbench run --hosts`) stands for the runs of all its hosts.

A CSV table (columns: docs/analysis.md) reports like a run: --from-csv FILE.

examples:
  slmbench report results/run-a -o report/
  slmbench report results/laptop results/jetson -o compare-devices/
  slmbench report --from-csv published.csv -o published-report/
  slmbench report hf://datasets/my-team/slm-results -o team-report/   # shared runs
  slmbench report results/fleet-20261122-153012-4242 -o fleet-report/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run directories, or hf://datasets/ORG/NAME[/runs/...] (see pull)")
    p.add_argument("-o", "--out", default="report", metavar="DIR")
    p.add_argument("--from-csv", metavar="FILE",
                   help="report a CSV table (columns: docs/analysis.md) instead of, or beside, "
                        "run directories")
    p.add_argument("--catalog", metavar="PATH",
                   help="catalog whose facts are joined to the rows by model_id")
    p.add_argument("--gguf", action="append", default=[], metavar="FILE",
                   help="a GGUF file whose header facts fill the rows of its model id; "
                        "repeatable")
    p.add_argument("--targets", metavar="FILE",
                   help="targets YAML for the Verdict section (default: the runs' suites'; "
                        "docs/recommend.md)")


def run(args: argparse.Namespace) -> int:
    from slmbench.api import run_paths
    from slmbench.catalog import load_catalog
    from slmbench.report import write_report

    paths = write_report(run_paths(args.runs) if args.runs else [], args.out,
                         load_catalog(args.catalog) if args.catalog else None,
                         from_csv=args.from_csv, gguf=args.gguf, targets=args.targets)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0
