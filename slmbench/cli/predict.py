"""`slmbench predict`: speed and memory of a GGUF model on this device, before downloading it."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """\
Predict a model's decode speed (tokens/s and ms per token at depth), prefill speed, time to
first token, end-to-end latency of a prompt + generation, and peak memory on this device,
from the device probe (`slmbench probe`, stored) and the model's tensor table - without
running it, and for a catalog model without downloading it.

MODEL is
  a local GGUF file          its header (exact: every tensor's type and size)
  a catalog id[:QUANT]       the header of a file already in the HF cache; else the catalog's
                             facts (offline, approximate: every weight of the label's main
                             type); else - or with --header - the header read as byte ranges
                             from the hub (a few MB, not the file)
  shape:KEY=V,...            a shape: n_embd, n_layer, n_head, n_vocab (required), n_head_kv,
                             n_ff or n_params, head_dim, quant (default Q4_K_M)

Each prediction prints with its expected error band, measured by benchmarks/predict.py on
models the probe never saw (docs/prediction.md), and beside the folk rule "decode = model
bytes / bandwidth" for comparison. --against RUN_DIR puts measured configs next to their
predictions and flags those off by more than the band (a measurement or build problem?).
A note follows a prediction where the model leaves what the probe measured: weights and KV
about the size where the caches ended (with its decode if they hold it and if not), a weight
type not probed, layers with more norms than a llama layer that are not Gemma-3's (the probe
measured those; prefill may be slower), a prompt that leaves llama.cpp's flash-attention
tiles part-empty.

examples:
  slmbench probe -t 2                                   # once per device and build
  slmbench predict qwen2.5-0.5b:Q4_K_M smollm2-360m -t 2 -p 512 -n 128
  slmbench predict model-Q4_0.gguf -d 2048 --json
  slmbench predict shape:n_embd=2048,n_layer=24,n_head=16,n_head_kv=4,n_ff=5632,n_vocab=32000
  slmbench predict --against results/run-20261129-101500-1234 -t 2
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="GGUF file, catalog id[:QUANT] or shape:KEY=V,...")
    p.add_argument("-p", "--n-prompt", type=int, default=512, metavar="N",
                   help="prompt tokens (default 512)")
    p.add_argument("-n", "--n-gen", type=int, default=128, metavar="M",
                   help="generated tokens (default 128)")
    p.add_argument("-d", "--n-depth", type=int, default=0, metavar="D",
                   help="tokens already in the KV cache (default 0)")
    p.add_argument("-t", "--threads", type=int, default=None, metavar="T",
                   help="threads (default: slmbench's default; the probe must cover it)")
    p.add_argument("--probe", metavar="FILE", help="a probe file instead of the stored one")
    p.add_argument("--catalog", metavar="PATH", help="catalog file (default models.yaml)")
    p.add_argument("--header", action="store_true",
                   help="read a catalog model's GGUF header from the hub even when the "
                        "catalog has its facts (exact tensor types)")
    p.add_argument("--offline", action="store_true", help="never contact the hub")
    p.add_argument("--against", nargs="+", metavar="RUN_DIR",
                   help="measured runs to put next to their predictions")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from slmbench.errors import ConfigError

    for name in ("n_prompt", "n_gen", "n_depth"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 0")
    if not args.models and not args.against:
        raise ConfigError("name a MODEL (GGUF file, catalog id or shape:...) or --against "
                          "RUN_DIR")
    if args.against:
        return _against(args)
    from slmbench.api import predict_models
    from slmbench.catalog import load_catalog
    from slmbench.predict import format_predictions

    catalog = None
    if any(not (m.startswith("shape:") or m.endswith(".gguf")) for m in args.models):
        catalog = load_catalog(args.catalog)
    preds = predict_models(args.models, threads=args.threads, n_prompt=args.n_prompt,
                           n_gen=args.n_gen, n_depth=args.n_depth, probe=args.probe,
                           catalog=catalog, header=args.header,
                           offline=True if args.offline else None)
    if args.json:
        print(json.dumps([asdict(p) for p in preds], indent=1))
    else:
        print(format_predictions(preds))
    return 0


def _against(args: argparse.Namespace) -> int:
    from slmbench.api import run_paths
    from slmbench.predict import (against_records, format_against, noisy_warnings,
                                  predictable_records, resolve_probe)
    from slmbench.results import read_run

    runs = [read_run(p) for p in run_paths(args.against)]
    threads = sorted({r.settings.n_threads for run in runs for r in run.records if r.settings})
    if args.threads:
        threads = [args.threads]
    probe = resolve_probe(args.probe, threads)
    records, left = predictable_records(runs, probe)
    rows = against_records(records, probe)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_against(rows))
    out = sys.stderr if args.json else sys.stdout
    for why in left:
        print(f"note: {why}", file=out)
    for warning in noisy_warnings(probe, threads):  # a flag may then be the probe's fault
        print(f"WARNING: {warning}", file=out)
    return 0
