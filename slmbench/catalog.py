"""The model catalog (models.yaml): where each SLM's GGUF files live, and facts about it.

Facts (parameters, vocabulary, training tokens, shape) come from model cards and the SLM
survey's table, with a `source` per model; unknown facts are explicit nulls, never guesses.
Loading validates the whole file and reports every problem at once, each with its model id
and field, because a catalog is edited by hand.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmbench.errors import SlmbenchError

QUANT_NAMES: tuple[str, ...] = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M",
    "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL",
    "IQ3_M", "IQ3_XS", "IQ2_M", "IQ2_XS", "TQ1_0", "TQ2_0",
)
# Nominal bits per weight of llama.cpp's quantization types (llama-quantize's table, 7B models);
# a real file's bits/weight differs a little (mixed tensor types): `slmbench inspect` measures it.
QUANT_BITS: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.67,
    "Q5_K_S": 5.52, "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.83, "Q4_K_S": 4.58, "Q4_0": 4.5,
    "Q4_1": 5.0, "Q3_K_L": 4.27, "Q3_K_M": 3.89, "Q3_K_S": 3.5, "Q2_K": 3.35, "IQ4_XS": 4.25,
    "IQ4_NL": 4.5, "IQ3_M": 3.66, "IQ3_XS": 3.3, "IQ2_M": 2.7, "IQ2_XS": 2.31, "TQ1_0": 1.69,
    "TQ2_0": 2.06,
}
FACT_TYPES: dict[str, tuple[type, ...]] = {
    "parameters": (int,), "vocab_size": (int,), "training_tokens": (int,),
    "context_length": (int,), "release_date": (str,), "layers": (int,), "hidden_size": (int,),
    "attention_heads": (int,), "kv_heads": (int,), "attention_type": (str,),
    "activation": (str,), "norm": (str,),
}
MODEL_KEYS = {"id", "family", "repo_id", "revision", "files", "sha256", "path", "paths",
              "facts", "source", "notes"}
TOP_KEYS = {"models", "version"}
ATTENTION_TYPES = {"MHA", "GQA", "MQA", "MLA"}


@dataclass
class ModelEntry:
    id: str
    family: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def quants(self) -> list[str]:
        return list(dict.fromkeys([*self.files, *self.paths]))


@dataclass
class Catalog:
    path: str
    models: list[ModelEntry]

    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    def get(self, model_id: str) -> ModelEntry:
        for m in self.models:
            if m.id == model_id:
                return m
        close = difflib.get_close_matches(model_id, self.ids(), n=3, cutoff=0.4)
        rest = [i for i in self.ids() if i not in close]
        raise SlmbenchError(f"unknown model '{model_id}' in {self.path}; known: "
                            f"{', '.join(close + rest)}")

    def resolve(self, spec: str) -> tuple[ModelEntry, str | None]:
        """'id' or 'id:QUANT' -> (entry, quant or None)."""
        model_id, _, quant = spec.partition(":")
        entry = self.get(model_id.strip())
        if not quant:
            return entry, None
        q = quant.strip().upper()
        if q not in entry.quants():
            raise SlmbenchError(f"{entry.id} has no quantization {q}; available: "
                                f"{', '.join(entry.quants()) or 'none'}")
        return entry, q


def default_catalog_path() -> str:
    env = os.environ.get("SLMBENCH_CATALOG")
    if env:
        return env
    repo_copy = Path(__file__).resolve().parent.parent / "models.yaml"
    if repo_copy.exists():
        return str(repo_copy)
    return str(Path(__file__).resolve().parent / "data" / "models.yaml")


def _check_type(value: Any, types: tuple[type, ...]) -> bool:
    if value is None:
        return True
    if bool in (type(value),) and bool not in types:
        return False
    return isinstance(value, types)


def _parse_entry(i: int, raw: Any, base: Path, problems: list[str], where: str
                 ) -> ModelEntry | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: models[{i}] must be a mapping, got {type(raw).__name__}")
        return None
    mid = raw.get("id")
    label = f"{where}: model '{mid}'" if isinstance(mid, str) else f"{where}: models[{i}]"
    if not isinstance(mid, str) or not mid:
        problems.append(f"{label}: field 'id' is missing or not a string")
        mid = f"#{i}"
    for key in raw:
        if key not in MODEL_KEYS:
            problems.append(f"{label}: unknown field '{key}' (known: {', '.join(sorted(MODEL_KEYS))})")
    entry = ModelEntry(id=str(mid))
    for key in ("family", "repo_id", "revision", "source"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{label}: field '{key}' must be a string, got {value!r}")
        else:
            setattr(entry, key, value)
    for key in ("files", "sha256", "paths"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"{label}: field '{key}' must map quantization -> value")
            continue
        for quant, v in value.items():
            q = str(quant).upper()
            if q not in QUANT_NAMES and not (key == "paths" and q == "LOCAL"):
                problems.append(f"{label}: {key}: unknown quantization '{quant}' (known: "
                                f"{', '.join(QUANT_NAMES)})")
            if not isinstance(v, str):
                problems.append(f"{label}: {key}.{quant} must be a string, got {v!r}")
                continue
            if key == "sha256" and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
                problems.append(f"{label}: sha256.{quant} is not 64 hex digits")
            if key == "paths":
                v = str((base / os.path.expanduser(v)).resolve())
            getattr(entry, key)[q] = v
    path = raw.get("path")
    if path is not None:
        if not isinstance(path, str):
            problems.append(f"{label}: field 'path' must be a string")
        else:
            entry.paths.setdefault("LOCAL", str((base / os.path.expanduser(path)).resolve()))
    if not entry.repo_id and not entry.paths:
        problems.append(f"{label}: needs 'repo_id' (Hugging Face) or 'path'/'paths' (local GGUF)")
    if entry.repo_id and not entry.files:
        problems.append(f"{label}: 'repo_id' given but no 'files' (quantization -> file name)")
    for q in entry.sha256:
        if q not in entry.files:
            problems.append(f"{label}: sha256.{q} given but files has no {q}")
    facts = raw.get("facts") or {}
    if not isinstance(facts, dict):
        problems.append(f"{label}: field 'facts' must be a mapping")
        facts = {}
    for key, value in facts.items():
        if key not in FACT_TYPES:
            problems.append(f"{label}: facts: unknown fact '{key}' (known: "
                            f"{', '.join(FACT_TYPES)})")
        elif not _check_type(value, FACT_TYPES[key]):
            problems.append(f"{label}: facts.{key} must be "
                            f"{'/'.join(t.__name__ for t in FACT_TYPES[key])} or null, got "
                            f"{value!r}")
    att = facts.get("attention_type")
    if isinstance(att, str) and att not in ATTENTION_TYPES:
        problems.append(f"{label}: facts.attention_type must be one of "
                        f"{', '.join(sorted(ATTENTION_TYPES))}")
    entry.facts = {k: facts.get(k) for k in FACT_TYPES}
    return entry


def load_catalog(path: str | None = None) -> Catalog:
    """Load and validate a catalog; every problem is reported in one message."""
    import yaml

    path = path or default_catalog_path()
    p = Path(path)
    if not p.exists():
        raise SlmbenchError(f"{path}: model catalog not found (set SLMBENCH_CATALOG or pass "
                            "--catalog)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SlmbenchError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})"
                            ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise SlmbenchError(f"{path}: expected a top-level 'models:' list")
    problems: list[str] = []
    for key in raw:
        if key not in TOP_KEYS:
            problems.append(f"{path}: unknown top-level key '{key}'")
    models: list[ModelEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw["models"]):
        entry = _parse_entry(i, item, p.resolve().parent, problems, str(path))
        if entry is None:
            continue
        if entry.id in seen:
            problems.append(f"{path}: model '{entry.id}': duplicate id")
        seen.add(entry.id)
        models.append(entry)
    if problems:
        raise SlmbenchError(f"{len(problems)} problem(s) in the catalog: " + "; ".join(problems))
    return Catalog(path=str(path), models=models)


def facts_frame(catalog: Catalog):
    """One row per model id with its facts (for the analyzer)."""
    import pandas as pd

    rows = [{"model_id": m.id, "family": m.family, **m.facts} for m in catalog.models]
    return pd.DataFrame(rows).set_index("model_id")
