"""`slmbench download`: fetch catalog models into the Hugging Face cache."""

from __future__ import annotations

import argparse
import sys

from slmbench.errors import SlmbenchError

DESCRIPTION = """\
Download GGUF files of catalog models (models.yaml) into the standard Hugging Face cache
(HF_HOME, default ~/.cache/huggingface), at the catalog's pinned revision, checking sha256 when
the catalog has one. Prints the local path of each file.

  MODEL            the default quantization (Q4_K_M when offered, else Q8_0, else the first)
  MODEL:QUANT      a given quantization, e.g. smollm2-135m:Q8_0

environment: HF_TOKEN for gated repositories (accept the licence on the model page first),
HF_HUB_OFFLINE=1 (or --offline) to only use files already cached, HF_ENDPOINT for a mirror.

examples:
  slmbench download smollm2-135m
  slmbench download qwen2.5-0.5b:Q8_0 qwen2.5-0.5b:Q4_K_M
  HF_HUB_OFFLINE=1 slmbench download smollm2-135m     # prints the cached path, no network
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL[:QUANT]")
    p.add_argument("--catalog", metavar="PATH", help="catalog file (default models.yaml)")
    p.add_argument("--offline", action="store_true", help="only use the local cache")
    p.add_argument("--cache-dir", metavar="DIR", help="cache directory (default: HF cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from slmbench.catalog import load_catalog
    from slmbench.hub import fetch_model

    catalog = load_catalog(args.catalog)
    failures = 0
    for spec in args.models:
        try:
            entry, quant = catalog.resolve(spec)
            path = fetch_model(entry, quant, offline=True if args.offline else None,
                               cache_dir=args.cache_dir, progress=not args.no_progress)
            print(path)
        except SlmbenchError as exc:
            failures += 1
            print(f"slmbench download: error: {spec}: {exc}", file=sys.stderr)
    if len(args.models) > 1:
        print(f"{len(args.models) - failures} downloaded, {failures} failed", file=sys.stderr)
    return 2 if failures else 0
