"""`slmbench models`: the model catalog as a table or JSON."""

from __future__ import annotations

import argparse
import json

HELP = "list the model catalog (models.yaml)"
DESCRIPTION = """\
List the models of the catalog (models.yaml at the repository root, or --catalog PATH, or
$SLMBENCH_CATALOG): facts from the model cards and the SLM survey, and the quantizations
each model's GGUF repository (or local path) offers.

examples:
  slmbench models
  slmbench models --json | jq '.[].id'
  slmbench download smollm2-135m:Q4_K_M     # then fetch one
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--catalog", metavar="PATH", help="catalog file (default models.yaml)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from slmbench.catalog import load_catalog
    from slmbench.display import human_count, table

    cat = load_catalog(args.catalog)
    if args.json:
        print(json.dumps([asdict(m) for m in cat.models], indent=1))
        return 0
    rows = []
    for m in cat.models:
        f = m.facts
        rows.append([m.id, m.family or "-", human_count(f.get("parameters")),
                     f"{f['vocab_size']:,}" if f.get("vocab_size") else "?",
                     str(f.get("layers") or "?"), str(f.get("kv_heads") or "?"),
                     f.get("attention_type") or "?",
                     f"{f['context_length']:,}" if f.get("context_length") else "?",
                     human_count(f.get("training_tokens")),
                     ",".join(m.quants()), m.repo_id or "local"])
    print(table(rows, ["id", "family", "params", "vocab", "layers", "kv heads", "attention",
                       "ctx", "train tokens", "quants", "repo"]))
    print(f"\n{len(cat.models)} models in {cat.path}")
    return 0
