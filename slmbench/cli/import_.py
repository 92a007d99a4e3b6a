"""`slmbench import llama-bench FILE`: llama-bench output as a slmbench run."""

from __future__ import annotations

import argparse

HELP = "import llama-bench output as a slmbench run"
DESCRIPTION = """\
Turn llama.cpp's `llama-bench -o json|jsonl|csv` output into a run directory, so a phone or a
board that only runs llama.cpp's binary can be analysed, reported and compared like any run.
json and jsonl keep every raw sample; csv only has avg/stddev (compare then cannot test it).

On an Android phone (Termux, or adb shell with a llama-bench built for arm64):
  llama-bench -m model.gguf -p 50 -n 50 -r 5 -o json > phone.json
  slmbench import llama-bench phone.json --device pixel-8 -o results/pixel-8-q4km

examples:
  slmbench import llama-bench out.json
  slmbench import llama-bench out.csv --format csv -o results/board-run
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=("llama-bench",), help="what produced the file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", metavar="RUN_DIR",
                   help="run directory to write (default results/imported-<time>)")
    p.add_argument("--format", choices=("json", "jsonl", "csv"), help="default: detected")
    p.add_argument("--device", metavar="LABEL", help="device label (default from cpu_info)")


def run(args: argparse.Namespace) -> int:
    from slmbench.importers import (default_out_dir, import_llama_bench, n_tests,
                                    write_imported_run)

    records, env, manifest = import_llama_bench(args.file, args.format, args.device)
    manifest["command"] = f"slmbench import llama-bench {args.file}"
    out = write_imported_run(records, env, manifest, args.out or default_out_dir())
    print(f"imported {len(records)} configs, {n_tests(records)} tests "
          f"({manifest['format']}) into {out}")
    for rec in records:
        tests = ", ".join(t.name for t in rec.tests)
        print(f"  {rec.model_id}:{rec.quant} t{rec.settings.n_threads}: {tests}")
    return 0
