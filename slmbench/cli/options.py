"""Options that several sub-commands share, defined once (not a sub-command itself)."""

from __future__ import annotations

import argparse


def add_json_md(p: argparse.ArgumentParser, md_help: str) -> None:
    """--json or --md (mutually exclusive): machine-readable output or Markdown."""
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    fmt.add_argument("--md", action="store_true", help=md_help)


def add_threshold_alpha(p: argparse.ArgumentParser, change: str, tests: str) -> None:
    """--threshold and --alpha of `slmbench compare` and `slmbench history`.

    Their defaults are slmbench.compare.THRESHOLD and ALPHA; ``change`` and ``tests`` name
    what they judge in the help ("relative change", "the tests").
    """
    from slmbench.compare import ALPHA, THRESHOLD

    p.add_argument("--threshold", default=f"{THRESHOLD:.0%}",
                   help=f"smallest {change} that matters, 5%% or 0.05 (default %(default)s)")
    p.add_argument("--alpha", type=float, default=ALPHA,
                   help=f"significance level of {tests} (default %(default)s)")


def threshold_alpha(args: argparse.Namespace) -> tuple[float, float]:
    """The parsed --threshold (a fraction) and the checked --alpha."""
    from slmbench.compare import check_alpha, parse_threshold

    return parse_threshold(args.threshold), check_alpha(args.alpha)
