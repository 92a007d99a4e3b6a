"""`slmbench recommend`: pass/fail per target, the recommendation per device and workload."""

from __future__ import annotations

import argparse
import json

from slmbench.cli.options import add_json_md

DESCRIPTION = """\
Which model in which quantization should ship on this device for this use? For every device
of the runs given, every config (model file x settings) is judged against the targets, each
with the measured value, its 95% CI and the margin:

  pass       the whole CI meets the limit        FAIL     the whole CI misses it
  uncertain  the limit lies inside the CI (not a pass: more repetitions would tell)
  missing    the metric was not measured (e.g. no quality record, workload not run)

The recommendation, per device and workload: among the configs passing every target, the best
quality (lowest bits per byte; lowest KL vs its reference when there is no bits per byte);
configs whose quality is not significantly worse (paired over the same windows) tie, and ties
go to the least peak memory, then the fastest. Also: the Pareto front of quality, speed and
memory; when nothing passes, the closest misses and what would have to change; a composite
score per config (geometric mean over the workloads of tokens per second end to end),
secondary to the verdicts, with devices side by side.

Workloads (--workload NAME[,NAME]): autocomplete 64/16, chat 512/128, summarize 2048/256,
rag 4096/128, or P/G. Their end-to-end latency is TTFT(P) + (G-1) x per-token decode at
depth P: the run needs the tests ttftP and tgG@dP (`slmbench run --workload chat`).

Targets (YAML, docs/recommend.md):
  ttft_ms: {chat: 1000}          # per workload: ttft_ms, decode_tps, e2e_s
  decode_tps: {chat: 10}
  e2e_s: {summarize: 20}
  peak_rss_mib: 2048             # per config: peak_rss_mib, bits_per_byte, kl_mean,
  kl_mean: 0.02                  # top1_pct, bits_per_byte_increase_pct, ppl_increase_pct,
  bits_per_byte_increase_pct: 3  # sustained_retained_pct

examples:
  slmbench recommend results/run-a --targets targets.yaml
  slmbench recommend results/laptop results/jetson --targets targets.yaml --workload chat
  slmbench recommend results/fleet-20261122-153012-4242 --md >> "$GITHUB_STEP_SUMMARY"
  slmbench recommend hf://datasets/team/slm-results --json > verdict.json

exit codes: 0 (a verdict was given, whatever it is), 2 bad input. For a CI gate use
`slmbench run --targets FILE` (exit 1 when a config misses a target).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run directories, fleet directories or hf://datasets/... paths")
    p.add_argument("--targets", metavar="FILE", help="targets YAML (docs/recommend.md)")
    p.add_argument("--workload", metavar="NAME[,NAME...]",
                   help="only these workloads (presets or P/G); default: those the targets "
                        "name, else every preset measured")
    add_json_md(p, "Markdown (the report's Verdict section)")


def run(args: argparse.Namespace) -> int:
    from slmbench import api
    from slmbench.verdict import render_markdown, render_text, to_json_dict

    res = api.recommend(args.runs, targets=args.targets, workloads=args.workload)
    if args.json:
        print(json.dumps(to_json_dict(res), indent=1))
    elif args.md:
        print(render_markdown(res))
    else:
        print(render_text(res))
    return 0
