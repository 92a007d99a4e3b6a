"""`slmbench history`: the trend of each config across runs."""

from __future__ import annotations

import argparse
import json

from slmbench.cli.options import add_threshold_alpha, threshold_alpha

DESCRIPTION = """\
Order runs by llama-cpp-python / llama.cpp version (env.json: versions.llama_cpp_python and
llama_cpp.build / build_number; runs without a version go last, by date) or by start date,
then print every config, test and metric per run: the median of the raw samples with its
spread (stdev) and n. A step between consecutive runs of a config is marked when
`slmbench compare` would call it a change (significant and beyond --threshold; SLOWER / WORSE
in capitals when it is for the worse). --plot writes one trend figure per test and metric.

metrics (--metric): the names of `slmbench compare --help`, e.g. decode, ttft, prefill,
decode_p90, kv_mib, memory, quality.

examples:
  slmbench history results/run-*
  slmbench history results/run-* --metric decode,ttft --plot figures/
  slmbench history results/run-* --by date --json > trend.json
  slmbench history hf://datasets/my-team/slm-results --by version   # a team's shared runs
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="two or more run directories, or hf://datasets/ORG/NAME[/runs/...]")
    p.add_argument("--by", choices=("version", "date"), default="version",
                   help="order of the runs (default version)")
    p.add_argument("--metric", metavar="M[,M...]",
                   help="only these metrics or groups, e.g. decode,ttft,memory")
    add_threshold_alpha(p, "step", "a step")
    p.add_argument("--plot", metavar="DIR", help="write a trend figure per metric (PNG + SVG) here")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from slmbench.api import run_paths
    from slmbench.compare import parse_metrics
    from slmbench.history import history, plot, render
    from slmbench.results import read_runs
    from slmbench.schema import to_dict

    threshold, alpha = threshold_alpha(args)
    metrics = parse_metrics(args.metric.split(",")) if args.metric is not None else None
    res = history(read_runs(run_paths(args.runs)), args.by, threshold, alpha,
                  sorted(metrics) if metrics is not None else None)
    paths = plot(res, args.plot) if args.plot else []
    if args.json:
        data = to_dict(res)
        data["figures"] = paths
        print(json.dumps(data, indent=1))
    else:
        print(render(res))
        for path in paths:
            print(f"wrote {path}")
    return 0
