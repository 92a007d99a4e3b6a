"""`slmbench pull`: download shared runs from a Hugging Face dataset repository."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Download runs of a dataset written by `slmbench push` into OUT/<device>/<run-id>/.
Files come through the Hugging Face cache (HF_HOME), so a second pull is local; each run is
copied into place only when complete, so an interrupted pull leaves no partial run. A local
run that differs from the dataset's is kept (a warning says so) unless --force.

  hf://datasets/ORG/NAME                    every run
  hf://datasets/ORG/NAME/runs/DEVICE        one device's runs
  hf://datasets/ORG/NAME/runs/DEVICE/RUN    one run (glob characters select: runs/*/run-2026*)
  hf://datasets/ORG/NAME@REVISION/...       at a branch, tag or commit

You often need no pull at all: analyze, report, compare and history take these hf:// paths
directly (downloaded into the cache first).

environment: HF_TOKEN for a private dataset, HF_HUB_OFFLINE=1 (or --offline) to use only
what is cached, HF_ENDPOINT for another hub.

examples:
  slmbench pull hf://datasets/my-team/slm-results -o results/
  slmbench pull hf://datasets/my-team/slm-results --runs 'jetson*/*'
  slmbench pull hf://datasets/my-team/slm-results --runs 'run-2026*' --offline
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="hf://datasets/ORG/NAME[/runs/...]")
    p.add_argument("--runs", metavar="GLOB",
                   help="only runs whose id (or DEVICE/RUN-ID, with a '/') matches")
    p.add_argument("-o", "--out", default="results", metavar="DIR",
                   help="where runs go, as DIR/<device>/<run-id>/ (default results)")
    p.add_argument("--force", action="store_true",
                   help="replace local runs that differ from the dataset's")
    p.add_argument("--offline", action="store_true",
                   help="only use the Hugging Face cache (like HF_HUB_OFFLINE=1)")


def run(args: argparse.Namespace) -> int:
    from slmbench.errors import warn
    from slmbench.sharing import pull

    pulled = pull(args.source, runs=args.runs, out=args.out, force=args.force,
                  offline=True if args.offline else None)
    for r in pulled:
        print(f"{r.status:<11s}{r.path}")
        if r.status == "kept":
            warn(f"{r.path} differs from {r.source}; kept yours (--force replaces it)")
    counts = {s: sum(r.status == s for r in pulled) for s in ("new", "updated", "up to date",
                                                              "kept")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n), file=sys.stderr)
    return 0
