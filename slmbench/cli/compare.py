"""`slmbench compare`: two runs, statistics on the raw samples, exit 1 on a regression."""

from __future__ import annotations

import argparse
import json

from slmbench.cli.options import add_json_md, add_threshold_alpha, threshold_alpha

DESCRIPTION = """\
Compare a candidate run with a base run, config by config (matched by model, quantization,
device and settings; repetitions and warm-up may differ) and test by test (by name, e.g. pp64,
tg32): prefill tok/s, TTFT, decode tok/s, p90 per-token decode latency, peak RSS and each
memory part, and quality metrics (ppl, bits_per_byte, kl_mean, kl_p99, top1_pct) when present.

Timed metrics: the change of the median, a bootstrap 95% CI of that change from the raw
samples and a two-sided Mann-Whitney U p-value. A regression ("SLOWER") is significant
(p < --alpha, confirmed by a Welch t-test on log values, and the CI excludes 0) AND beyond
--threshold in the bad direction. A comparison that cannot tell (under 3 samples a side, a CI
wider than 2 x threshold, or a change beyond the threshold that is not significant) says
"too noisy to tell", with a footnote saying why, and is never a regression. Measure with at
least 5 repetitions: with 3 + 3 no p-value can get below 0.1.
Memory is judged without samples: "WORSE" = growth beyond the threshold and at least 1 MiB.
Quality metrics are single values: "WORSE" beyond the threshold. A config that is ok in the
base run and failed in the candidate is a regression too.

Fleet directories (`slmbench run --hosts`): each host's run is compared with the run of the
same device label on the other side (a fleet directory or a single run); a device found on
one side only is named in a warning. Exit 1 if any device has a regression.

exit codes: 0 no regression, 1 at least one regression (a CI gate), 2 bad input.

metrics (--metric, comma-separated): prefill, ttft, decode, decode_p90, peak_rss_mib,
model_mib, kv_mib, compute_mib, output_mib, other_mib, ppl, bits_per_byte, kl_mean, kl_p99,
top1_pct; groups: timed, memory, quality; a part of a name selects all it names
(decode = decode + decode_p90, kl = kl_mean + kl_p99).

examples:
  slmbench compare results/run-a results/run-b
  slmbench compare base/ cand/ --threshold 3% --alpha 0.05
  slmbench compare base/ cand/ --md --changes-only >> "$GITHUB_STEP_SUMMARY"
  slmbench compare base/ cand/ --metric decode,memory --json > compare.json
  slmbench compare hf://datasets/team/slm-results/runs/cpu-x86_64/nightly-41 results/run-x
  slmbench compare results/fleet-a results/fleet-b       # device by device
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE_RUN",
                   help="run directory of the reference (a fleet directory: device by "
                        "device; or an hf://datasets/... run)")
    p.add_argument("cand", metavar="CAND_RUN",
                   help="run directory of the candidate (a fleet directory, or hf://...)")
    add_threshold_alpha(p, "relative change", "the tests")
    p.add_argument("--metric", default=None, metavar="M[,M...]",
                   help="only these metrics or groups, e.g. decode,ttft,kv_mib,memory,quality")
    p.add_argument("--changes-only", action="store_true",
                   help="table rows only for metrics whose verdict is not 'same' (the summary "
                        "still counts all)")
    add_json_md(p, "a Markdown table to paste into a PR")


def run(args: argparse.Namespace) -> int:
    from slmbench.compare import (compare_runs, parse_metrics, render_markdown, render_text,
                                  to_json_dict)
    from slmbench.fleet import run_pairs
    from slmbench.results import read_run
    from slmbench.sharing import resolve_run_path

    threshold, alpha = threshold_alpha(args)
    metrics = parse_metrics(args.metric.split(",")) if args.metric is not None else None
    # two runs, or fleet directories: host by host, matched by device label
    pairs = run_pairs(resolve_run_path(args.base), resolve_run_path(args.cand))
    results = [(device, base, cand,
                compare_runs(read_run(base), read_run(cand), threshold, alpha,
                             sorted(metrics) if metrics is not None else None))
               for device, base, cand in pairs]
    if args.json and pairs[0][0] is None:
        print(json.dumps(to_json_dict(results[0][3]), indent=1))
    elif args.json:
        print(json.dumps({"devices": [{"device": d, "base": b, "cand": c, **to_json_dict(r)}
                                      for d, b, c, r in results]}, indent=1))
    else:
        for i, (device, base, cand, res) in enumerate(results):
            if device is not None:
                print(("\n" if i else "") + ("## " if args.md else "")
                      + f"device {device}: {base} -> {cand}\n")
            print(render_markdown(res, args.changes_only) if args.md
                  else render_text(res, args.changes_only))
    return 1 if any(res.regressions for *_, res in results) else 0
