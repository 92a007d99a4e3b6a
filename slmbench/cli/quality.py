"""`slmbench quality`: perplexity, bits per byte, KL divergence vs a reference quant."""

from __future__ import annotations

import argparse
import json
import os

HELP = "perplexity, bits per byte and KL divergence vs a reference quant"
DESCRIPTION = """\
Judge quantization quality the way llama.cpp's developers do. On a text (a public-domain corpus
ships with slmbench; --corpus for your own), in windows of --n-ctx tokens scored on their second
half like llama-perplexity: mean negative log-likelihood, perplexity (± its standard error) and
bits per byte (tokenizer-independent: models with different vocabularies compare). With
--reference (an F16 or Q8_0 file of the same model): KL(reference || model) of the next-token
distributions (mean, median, 99th percentile), top-1 agreement and the perplexity difference.

With --results RUN_DIR the results are appended as `quality` tests, so analyze, report and
compare (which flags quality regressions) use them.

examples:
  slmbench quality model-Q4_K_M.gguf
  slmbench quality model-Q4_K_M.gguf model-Q3_K_M.gguf --reference model-F16.gguf --n-ctx 512
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE.gguf")
    p.add_argument("--reference", metavar="FILE.gguf", help="higher-precision file of the model")
    p.add_argument("--corpus", metavar="PATH", help="UTF-8 text (default: the bundled corpus)")
    p.add_argument("--n-ctx", type=int, default=512, help="window size in tokens (default 512)")
    p.add_argument("-t", "--threads", type=int, default=0, help="threads (default: all)")
    p.add_argument("--max-windows", type=int, default=0, help="stop after N windows")
    p.add_argument("--results", metavar="RUN_DIR", help="append quality records to this run")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from slmbench.display import table
    from slmbench.quality import measure_quality, quality_record
    from slmbench.results import append_record
    from slmbench.schema import to_dict

    rows, out = [], []
    for path in args.files:
        test = measure_quality(path, reference=args.reference, corpus=args.corpus,
                               n_ctx=args.n_ctx, n_threads=args.threads,
                               max_windows=args.max_windows)
        rec = quality_record(path, test)
        if args.results:
            os.makedirs(args.results, exist_ok=True)
            append_record(args.results, rec)
        out.append(to_dict(rec))
        m = test.metrics
        rows.append([os.path.basename(path), rec.quant, f"{m['ppl']:.4f} ± {m['ppl_err']:.4f}",
                     f"{m['bits_per_byte']:.4f}", f"{m.get('kl_mean', float('nan')):.5f}",
                     f"{m.get('kl_p99', float('nan')):.5f}", f"{m.get('top1_pct', float('nan')):.2f}",
                     f"{m.get('delta_ppl', float('nan')):+.4f}", str(m["n_tokens"])])
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(table(rows, ["file", "quant", "perplexity", "bits/byte", "KL mean", "KL p99",
                           "top-1 %", "Δ ppl", "tokens"]))
    return 0
