"""`slmbench quality`: perplexity, bits per byte, KL divergence vs a reference quant."""

from __future__ import annotations

import argparse
import json
import os
import sys

DESCRIPTION = """\
Judge what quantization costs in quality, the way llama.cpp's llama-perplexity does.

The text (Pride and Prejudice ch. 1-12 ships with slmbench; --corpus for your own UTF-8 file)
is tokenized once and cut into windows of --n-ctx tokens; each window starts from an empty
cache with BOS first, and only its second half is scored, so every scored token has at least
n_ctx/2 tokens of context. Reported per file:

  perplexity   exp(mean negative log-likelihood per token), ± its standard error
  bits/byte    total NLL in bits / UTF-8 bytes of the scored tokens' text: independent of
               the tokenizer, so models with different vocabularies compare (lower = better)

With --reference (an F16 or Q8_0 file of the SAME model; both files run side by side on the
same windows):

  KL mean/p99  KL(reference || model) of the next-token distributions, mean and 99th
               percentile over scored tokens (nats; 0 = identical, lower = better;
               the p99 shows the rare tokens where a quant goes badly wrong)
  top-1 %      how often both files rank the same token first
  Δ ppl        perplexity(model) - perplexity(reference)

Scoring a 270M model on the bundled text takes ~1.5 min on two cores (~5 min with a
reference: both files decode every window); --chunks N stops after N windows. --json prints the records, --results RUN_DIR
appends them to a run as `quality` tests, so analyze, report and compare use them.

examples:
  slmbench quality model-Q4_K_M.gguf
  slmbench quality model-Q4_K_M.gguf model-Q3_K_M.gguf --reference model-Q8_0.gguf
  slmbench quality model-Q4_0.gguf --reference model-F16.gguf --chunks 10 --json
  slmbench quality model.gguf --corpus wiki.test.raw --n-ctx 512 --results results/run-1
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench.config import QUALITY_DEFAULTS

    p.add_argument("files", nargs="+", metavar="FILE.gguf", help="model files to score")
    p.add_argument("--reference", metavar="FILE.gguf",
                   help="higher-precision file of the same model (F16, Q8_0) for KL divergence")
    p.add_argument("--corpus", metavar="PATH", help="UTF-8 text (default: the bundled corpus)")
    p.add_argument("-c", "--n-ctx", type=int, default=QUALITY_DEFAULTS["n_ctx"],
                   help="window size in tokens, as llama-perplexity -c (default %(default)s)")
    p.add_argument("-b", "--n-batch", type=int, default=QUALITY_DEFAULTS["n_batch"],
                   help="tokens per decode; lower it to save memory with big vocabularies "
                        "(slower; numbers change by float rounding at most; default %(default)s)")
    p.add_argument("-t", "--threads", type=int, default=0,
                   help="threads (default: physical cores)")
    p.add_argument("--chunks", "--max-windows", dest="chunks", type=int,
                   default=QUALITY_DEFAULTS["chunks"],
                   metavar="N", help="score only the first N windows (default: all)")
    p.add_argument("--results", metavar="RUN_DIR", help="append the quality records to this run")
    p.add_argument("--json", action="store_true", help="print the records as JSON")


def _progress():
    if not sys.stderr.isatty():
        return None

    def show(name: str, done: int, total: int, ppl: float) -> None:
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r{name}: window {done}/{total}  perplexity so far {ppl:.4f}{end}")
        sys.stderr.flush()
    return show


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None or value != value else format(value, fmt)


def run(args: argparse.Namespace) -> int:
    from slmbench import api
    from slmbench.display import table
    from slmbench.errors import warn
    from slmbench.schema import to_dict

    records = api.score_quality(args.files, reference=args.reference, corpus=args.corpus,
                          n_ctx=args.n_ctx, n_batch=args.n_batch, threads=args.threads,
                          chunks=args.chunks, results_dir=args.results, progress=_progress())
    rows = []
    ref_m = None
    for path, rec in zip(args.files, records):
        test = rec.tests[0]
        m = test.metrics
        ref_m = m if m.ref_ppl is not None else ref_m
        rows.append([os.path.basename(path), rec.quant or "?",
                     f"{m.ppl:.4f} ± {m.ppl_err:.4f}", f"{m.bits_per_byte:.4f}",
                     _f(m.kl_mean, ".5f"), _f(m.kl_p99, ".5f"), _f(m.top1_pct, ".2f"),
                     _f(m.delta_ppl, "+.4f"), str(m.n_tokens)])
        for w in test.warnings:
            warn(f"{os.path.basename(path)}: {w}")
    if args.json:
        print(json.dumps([to_dict(r) for r in records], indent=1))
        return 0
    print(table(rows, ["file", "quant", "perplexity", "bits/byte", "KL mean", "KL p99",
                       "top-1 %", "Δ ppl", "tokens"]))
    if ref_m is not None:
        print(f"reference {os.path.basename(args.reference)}: perplexity "
              f"{ref_m.ref_ppl:.4f} ± {ref_m.ref_ppl_err:.4f} on the same tokens")
    first = records[0].tests[0].metrics
    print(f"{first.n_windows} windows of {first.n_ctx} tokens, the second half of each "
          "scored (llama-perplexity's method); bits/byte = NLL in bits / UTF-8 bytes scored")
    return 0
