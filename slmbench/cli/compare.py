"""`slmbench compare`: two runs, statistics on the raw samples, exit 1 on a regression."""

from __future__ import annotations

import argparse
import json

HELP = "compare two runs with statistics; exit 1 on a regression"
DESCRIPTION = """\
Compare a candidate run with a base run, config by config (matched by model, quantization,
device and settings) and test by test: prefill tok/s, TTFT, decode tok/s, p90 decode latency,
peak RSS and each memory part, and quality metrics when present.

For timed metrics: the change of the median, a bootstrap 95% confidence interval from the raw
samples, and a Mann-Whitney U p-value. A regression is significant (p < --alpha and the CI
excludes 0) AND beyond --threshold in the bad direction. Noisy data gives "too noisy to tell",
never a false alarm. Memory and quality are single values judged against the threshold.

exit codes: 0 no regression, 1 at least one regression (use it as a CI gate), 2 bad input.

examples:
  slmbench compare results/run-a results/run-b
  slmbench compare base/ cand/ --threshold 3% --alpha 0.05 --md >> $GITHUB_STEP_SUMMARY
  slmbench compare base/ cand/ --metric decode,peak_rss_mib --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE_RUN")
    p.add_argument("cand", metavar="CAND_RUN")
    p.add_argument("--threshold", default="5%", help="smallest change that matters (default 5%%)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--metric", default=None, metavar="M[,M...]",
                   help="only these metrics, e.g. prefill,decode,TTFT,kv_mib,memory,ppl")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    fmt.add_argument("--md", action="store_true", help="a Markdown table for a pull request")


def run(args: argparse.Namespace) -> int:
    from slmbench.compare import compare_runs, parse_threshold, render_markdown, render_text
    from slmbench.errors import SlmbenchError
    from slmbench.results import read_run
    from slmbench.schema import to_dict

    threshold = parse_threshold(args.threshold)
    if not 0 < args.alpha < 1:
        raise SlmbenchError(f"--alpha {args.alpha}: must be between 0 and 1")
    metrics = [m.strip() for m in args.metric.split(",")] if args.metric else None
    res = compare_runs(read_run(args.base), read_run(args.cand), threshold, args.alpha, metrics)
    if args.json:
        data = to_dict(res)
        data["regressions"] = len(res.regressions)
        print(json.dumps(data, indent=1))
    elif args.md:
        print(render_markdown(res))
    else:
        print(render_text(res))
    return 1 if res.regressions else 0
