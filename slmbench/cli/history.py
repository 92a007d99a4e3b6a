"""`slmbench history`: the trend of each config across runs."""

from __future__ import annotations

import argparse
import json

HELP = "trend of a config across many runs / versions"
DESCRIPTION = """\
Order runs by llama-cpp-python / llama.cpp version (from env.json) or by date, print the
median (± stdev) of every config, test and metric per run, and mark step changes between
consecutive runs with the same statistics as `slmbench compare`.

examples:
  slmbench history results/run-*
  slmbench history results/run-* --by date --metric decode --plot figures/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--by", choices=("version", "date"), default="version")
    p.add_argument("--metric", metavar="M[,M...]", help="e.g. prefill,decode,TTFT,memory")
    p.add_argument("--threshold", default="5%", help="smallest step that matters (default 5%%)")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--plot", metavar="DIR", help="write a trend figure per metric here")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from slmbench.compare import parse_threshold
    from slmbench.history import history, plot, render
    from slmbench.results import read_runs
    from slmbench.schema import to_dict

    metrics = [m.strip() for m in args.metric.split(",")] if args.metric else None
    series = history(read_runs(args.runs), args.by, parse_threshold(args.threshold), args.alpha,
                     metrics)
    if args.json:
        print(json.dumps(to_dict(series), indent=1))
    else:
        print(render(series))
    if args.plot:
        for path in plot(series, args.plot):
            print(f"wrote {path}")
    return 0
