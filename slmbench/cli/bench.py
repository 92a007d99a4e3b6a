"""`slmbench bench`: measure GGUF files directly, llama-bench style."""

from __future__ import annotations

import argparse
import json
import os
import sys

DESCRIPTION = """\
Measure one or more GGUF files with llama.cpp, the way llama-bench does:

  pp N      prefill: evaluate N random prompt tokens into an empty KV cache (ms, tokens/s)
  ttftN     time to first token: prefill of N tokens + greedy pick of the first token
  tgM       decode: generate M tokens one by one (latency of every token kept: p50/p90/p99)
  @dD       the same after D tokens already in the context (depth; untimed fill)

Each test runs --warmup untimed runs, then -r timed repetitions; every raw sample is kept and
summarised as mean, median, stdev, CV and a 95% confidence interval (Student t). A CV above 5%
prints a warning: the machine was noisy; so do other processes using 0.25 cores or more beyond
the cores a test's threads leave free (a busy machine: slower, however steady). Memory:
llama.cpp's own buffers (weights, KV cache, compute, output) beside the process's resident
memory (sampled at >= 100 Hz + kernel high-water mark), the KV share and its projection to the
training context.

Comma-separated lists of -t, -ngl, --cache-type and -fa are swept like llama-bench does (every
combination); every file x combination is measured in its own worker process, so each gets
clean memory accounting and a crash costs only that config. Options are the same as
`slmbench run`'s and mean the same (docs/runner.md).

examples:
  slmbench bench model.gguf                          # pp512, tg128, like llama-bench
  slmbench bench model.gguf -p 64,256 -n 32 -d 0,1024 -t 2 -r 5
  slmbench bench model.gguf -t 1,2 --cache-type f16,q8_0        # 4 configs
  slmbench bench a.gguf b.gguf --cache-type q8_0 --n-ctx 2048 --json > out.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench import config

    p.add_argument("files", nargs="+", metavar="FILE.gguf", help="GGUF model files")
    config.add_arguments(p, "bench")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print JSON records instead of tables")
    o.add_argument("--verbose", action="store_true", help="also print llama.cpp's log")


def run(args: argparse.Namespace) -> int:
    from slmbench import api, config
    from slmbench.display import format_record
    from slmbench.llama_backend import LOG_ENV
    from slmbench.schema import to_dict

    suite = api.bench_suite(args.files, config.overrides_from_args(args),
                            from_command_line=True)
    if args.verbose:
        os.environ[LOG_ENV] = "1"  # the workers copy llama.cpp's log to their stderr
    tty = sys.stderr.isatty()

    def progress(cfg, msg: str) -> None:
        sys.stderr.write(f"\r\033[K{os.path.basename(cfg.model.path or '')}: {msg}")
        sys.stderr.flush()

    def done(rec) -> None:
        if tty:
            sys.stderr.write("\r\033[K")
        if not args.json:
            print(format_record(rec))
            print()

    records = api.measure_suite(suite, progress=progress if tty else None, on_record=done,
                                verbose=args.verbose)
    if args.json:
        json.dump([to_dict(r) for r in records], sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0 if all(r.status == "ok" for r in records) else 1
