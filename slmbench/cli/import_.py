"""`slmbench import llama-bench FILE`: llama-bench output as a slmbench run."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Turn llama.cpp's `llama-bench -o json|jsonl|csv` output into a run directory, so a phone or a
board that only runs llama.cpp's own binary is analysed, reported and compared like any run.

  json, jsonl  every raw sample (samples_ns) is kept: statistics and compare work fully
  csv          only avg/stddev per test (kept, with n = 0): compare cannot test these rows
  md, sql      not importable (no samples); rerun llama-bench with -o json

One config (record) per model file and settings, one test per llama-bench row:
pp32, tg16@d512 (depth), pp512+tg128 (llama-bench -pg). Unknown columns are kept in the
record's extra and named in a warning; a missing column is an error naming the row.

On an Android phone (llama-bench built for arm64 with the NDK; see docs/import.md):
  adb shell 'cd /data/local/tmp/llama && LD_LIBRARY_PATH=lib ./bin/llama-bench \\
      -m model-Q4_K_M.gguf -p 64,256 -n 32 -r 5 -o jsonl > phone.jsonl 2> lb.log'
  adb pull /data/local/tmp/llama/phone.jsonl
  slmbench import llama-bench phone.jsonl --device pixel-8 -o results/pixel-8
  slmbench report results/pixel-8

examples:
  slmbench import llama-bench out.json
  slmbench import llama-bench out.csv -o results/board-run
  slmbench import llama-bench out.jsonl --json      # summary as JSON
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=("llama-bench",), help="what produced the file")
    p.add_argument("file", metavar="FILE", help="llama-bench output (-o json, jsonl or csv)")
    p.add_argument("-o", "--out", metavar="RUN_DIR",
                   help="run directory to write (default results/imported-<date>-<time>-<pid>);"
                        " must not hold a run yet")
    p.add_argument("--format", choices=("json", "jsonl", "csv"),
                   help="input format (default: detected from the content)")
    p.add_argument("--device", metavar="LABEL",
                   help="device label, e.g. pixel-8 (default llama-bench-<cpu_info>); runs "
                        "are compared only when their device labels match")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from slmbench.importers import (default_out_dir, import_llama_bench, n_tests, summary_rows,
                                    write_imported_run)

    records, env, manifest = import_llama_bench(args.file, args.format, args.device)
    argv = ["slmbench", "import", "llama-bench", args.file]
    for flag, value in (("-o", args.out), ("--format", args.format), ("--device", args.device)):
        if value:
            argv += [flag, value]
    manifest.command = argv
    out = write_imported_run(records, env, manifest, args.out or default_out_dir())
    rows = summary_rows(records)
    if args.json:
        print(json.dumps({"run_dir": out, "format": manifest.format,
                          "device": env.device_label, "configs": len(records),
                          "tests": n_tests(records), "records": rows}, indent=2))
        return 0
    print(f"imported {len(records)} configs, {n_tests(records)} tests from llama-bench "
          f"{manifest.format} (device {env.device_label}, llama.cpp "
          f"{env.llama_cpp.build_commit})")
    for row in rows:
        tests = ", ".join(f"{name} {t['mean_ts']:.1f} t/s" if t["mean_ts"] is not None else name
                          for name, t in row["tests"].items())
        print(f"  {row['model_id']}:{row['quant']} t{row['n_threads']}: {tests}")
    record_warnings = sorted({w for rec in records for w in rec.warnings})
    for w in record_warnings:
        print(f"  warning: {w}")
    noisy = sum(1 for rec in records for t in rec.tests if t.warnings)
    if noisy:
        print(f"  warning: {noisy} of {n_tests(records)} tests carry a warning (e.g. CV > 5%: "
              f"noisy machine); see `slmbench analyze {out}`")
    print(f"run directory: {out}")
    return 0
