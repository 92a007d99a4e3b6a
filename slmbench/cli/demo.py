"""`slmbench demo`: offline end-to-end demo on synthetic models."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """\
Run the whole pipeline on this machine without a download: a family of random-weight llama
models (three sizes, two vocabulary sizes, each in Q8_0 and Q4_K_M; see suites/demo.yaml) is
synthesized into a cache directory (reused next time), measured by the same runner as
`slmbench run` (one worker process per model, results.jsonl), and summarised: prefill and
decode tokens/s with their spread, time to first token, peak memory, KV-cache share, and what
the numbers show about model size, quantization and vocabulary size. If the report module is
installed, a report is written next to the results.

Random weights cost what trained weights cost in time and memory, so the speeds are real;
only the generated text would be nonsense. Takes under a minute on two cores (--quick: less).

examples:
  slmbench demo
  slmbench demo --quick --results /tmp/results
  slmbench demo --json > demo.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", metavar="DIR",
                   help="results directory (default ./results)")
    p.add_argument("--quick", action="store_true",
                   help="shorter tests: 1 prompt length, 8 generated tokens, 2 repetitions, "
                        "1 thread")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the synthetic models live (default $SLMBENCH_CACHE/demo, "
                        "~/.cache/slmbench/demo)")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from slmbench.demo import run_demo
    from slmbench.runner import summary_rows, summary_table

    demo = run_demo(args.results, quick=args.quick, cache_dir=args.cache_dir, argv=sys.argv,
                    report=not args.no_report)
    result = demo.run
    if args.json:
        json.dump({"run_id": result.run_id, "run_dir": str(result.run_dir),
                   "status": result.status, "counts": result.counts,
                   "seconds": round(demo.seconds, 1), "findings": demo.findings,
                   "analysis": demo.analysis, "recommendation": demo.recommendation,
                   "report": demo.report, "configs": summary_rows(result)}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return result.exit_code
    print(summary_table(result))
    print()
    for line in demo.findings:
        print(f"- {line}")
    if demo.analysis:
        print(f"\nstatistics (slmbench analyze {result.run_dir}):")
        for line in demo.analysis:
            print(f"- {line}")
    elif demo.analysis_note and result.status == "finished":
        print(f"\nno statistics: {demo.analysis_note}")
    print(f"\ndemo finished in {demo.seconds:.0f} s; results in {result.run_dir}/results.jsonl")
    if demo.report:
        print(f"report: {demo.report}")
    elif demo.report_note and result.status == "finished":
        print(f"no report: {demo.report_note}")
    print("next: `slmbench run` measures real models (downloads SmolLM2-135M)")
    if demo.recommendation:
        print(f"\nrecommendation (slmbench recommend {result.run_dir}): {demo.recommendation}")
    return result.exit_code
