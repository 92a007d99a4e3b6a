"""`slmbench models`: the model catalog as a table or JSON."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
List the models of the catalog: models.yaml at the repository root (or --catalog PATH, or
$SLMBENCH_CATALOG).  Each row is one model: its facts from the model card / SLM survey and the
quantizations its GGUF repository (or local path) offers.  Any `id` or `id:QUANT` shown here
can be given to `slmbench download`, `slmbench run --models` or a suite file.

columns:
  params        parameter count (135M, 1.54B); vocab = vocabulary size
  layers, kv heads, attention
                transformer blocks; KV heads (they size the KV cache); MHA / GQA / MQA
  ctx           context length the model was trained for; train tokens = pre-training tokens
  quants        quantization labels with a file (LOCAL = a local `path:` file)
  repo          the Hugging Face repository, or "local"
  "-" means the fact is unknown (null in the catalog).

examples:
  slmbench models
  slmbench models --json | jq -r '.[].id'
  slmbench models --catalog my-models.yaml     # check and list your own catalog
  slmbench download smollm2-135m:Q4_K_M        # then fetch one

A catalog with mistakes is not listed: every problem is reported with its line, model id and
field.  docs/catalog.md explains the format and how to add a model or a local GGUF file.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the entries as a JSON list (every field, facts, quants)")
    p.add_argument("--catalog", metavar="PATH",
                   help="catalog file (default: $SLMBENCH_CATALOG, else models.yaml)")


def human(n: int | float | None) -> str:
    """135M, 1.54B, 2T: three significant digits, '-' for unknown."""
    if n is None:
        return "-"
    units = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
    for i, (div, suffix) in enumerate(units):
        if n >= div:
            v = n / div
            if v >= 999.5 and i > 0:  # 999.9M reads better as 1B
                v, suffix = n / units[i - 1][0], units[i - 1][1]
            return f"{v:.3g}{suffix}"
    return str(int(n))


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from slmbench.catalog import load_catalog
    from slmbench.display import table

    cat = load_catalog(args.catalog)
    if args.json:
        print(json.dumps([{**asdict(m), "quants": m.quants()} for m in cat.models], indent=2))
        return 0

    def num(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    rows = []
    for m in cat.models:
        f = m.facts
        where = m.repo_id or "local"
        if m.repo_id and m.paths:
            where += " + local"
        rows.append([m.id, m.family or "-", human(f.get("parameters")), num(f.get("vocab_size")),
                     num(f.get("layers")), num(f.get("kv_heads")), f.get("attention_type") or "-",
                     num(f.get("context_length")), human(f.get("training_tokens")),
                     ",".join(m.quants()), where])
    print(table(rows, ["id", "family", "params", "vocab", "layers", "kv heads", "attention",
                       "ctx", "train tokens", "quants", "repo"]))
    print(f"\n{len(cat.models)} models in {cat.path}")
    return 0
