"""The model catalog (models.yaml): where each SLM's GGUF files live, and facts about it.

Facts (parameters, vocabulary, training tokens, shape) come from model cards and the SLM
survey's table, with a ``source`` per model; unknown facts are explicit nulls, never guesses.
A catalog is edited by hand, so loading validates the whole file and reports every problem
in one message, each as ``file:line: model 'id': field: what is wrong``.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmbench.errors import ConfigError
from slmbench.gguf_info import shard_names, split_parts

# Quantization labels as llama.cpp's llama-quantize names them (upper case).
QUANT_NAMES: tuple[str, ...] = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M",
    "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL",
    "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M",
    "IQ1_S", "TQ2_0", "TQ1_0",
)
# Nominal bits per weight, for ordering and rough size estimates only (a real file mixes tensor
# types; `slmbench inspect` measures it).  Sources, all llama.cpp: k-quant mixes from the
# "Llama 2 7B" bits-per-weight table of the llama-quantize README; legacy types from their block
# layout (Q4_0 = 18 bytes per 32 weights, ...); i-quants and ternary types from llama-quantize's
# own type list (QUANT_OPTIONS in tools/quantize/quantize.cpp).
QUANT_BITS: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.68,
    "Q5_K_S": 5.52, "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.84, "Q4_K_S": 4.58, "Q4_0": 4.5,
    "Q4_1": 5.0, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5, "Q2_K": 3.35, "IQ4_XS": 4.25,
    "IQ4_NL": 4.5, "IQ3_M": 3.66, "IQ3_S": 3.44, "IQ3_XS": 3.3, "IQ3_XXS": 3.06, "IQ2_M": 2.7,
    "IQ2_S": 2.5, "IQ2_XS": 2.31, "IQ2_XXS": 2.06, "IQ1_M": 1.75, "IQ1_S": 1.56, "TQ2_0": 2.06,
    "TQ1_0": 1.69,
}
LOCAL = "LOCAL"  # the paths key of a single `path:` file (no quant label)

INT_FACTS = ("parameters", "vocab_size", "training_tokens", "context_length", "layers",
             "hidden_size", "attention_heads", "kv_heads")
FACT_KEYS: tuple[str, ...] = ("parameters", "vocab_size", "training_tokens", "context_length",
                              "release_date", "layers", "hidden_size", "attention_heads",
                              "kv_heads", "attention_type", "activation", "norm")
ATTENTION_TYPES = ("MHA", "GQA", "MQA", "MLA")
MODEL_KEYS = ("id", "family", "repo_id", "revision", "files", "sha256", "path", "paths",
              "facts", "source", "notes")
TOP_KEYS = ("version", "models")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_SHA_RE = re.compile(r"[0-9a-fA-F]{64}")
_DATE_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_SUFFIX = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


@dataclass
class ModelEntry:
    id: str
    family: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)    # quant -> file name in repo_id
    #   (for a split model: its first shard, the file llama.cpp is given)
    shards: dict[str, list[str]] = field(default_factory=dict)  # quant -> every shard (split only)
    sha256: dict[str, str] = field(default_factory=dict)   # quant -> hex digest (one file)
    shard_sha256: dict[str, list[str]] = field(default_factory=dict)  # quant -> digest per shard
    paths: dict[str, str] = field(default_factory=dict)    # quant (or LOCAL) -> absolute path
    facts: dict[str, Any] = field(default_factory=dict)    # every key of FACT_KEYS
    source: str | None = None

    def quants(self) -> list[str]:
        """Available quantization labels: hub files first, then local paths, as written."""
        return list(dict.fromkeys([*self.files, *self.paths]))

    def file_names(self, quant: str) -> list[str]:
        """Every file of ``quant`` in repo_id: one name, or each shard of a split model."""
        return self.shards.get(quant) or [self.files[quant]]

    def digests(self, quant: str) -> list[str | None]:
        """The expected sha256 of each of ``file_names(quant)`` (None where none is known)."""
        if quant in self.shard_sha256:
            return list(self.shard_sha256[quant])
        return [self.sha256.get(quant)] + [None] * (len(self.file_names(quant)) - 1)


@dataclass
class Catalog:
    path: str
    models: list[ModelEntry]

    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    def get(self, model_id: str) -> ModelEntry:
        """The entry for ``model_id`` (exact, else a unique case-insensitive match)."""
        model_id = model_id.strip()
        for m in self.models:
            if m.id == model_id:
                return m
        folded = [m for m in self.models if m.id.casefold() == model_id.casefold()]
        if len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(model_id, self.ids(), n=5, cutoff=0.3)
        rest = [i for i in self.ids() if i not in close]
        raise ConfigError(f"unknown model '{model_id}' in the catalog {self.path}; known: "
                          f"{', '.join(close + rest) or 'none'} (closest first; see "
                          "`slmbench models`)")

    def resolve(self, spec: str) -> tuple[ModelEntry, str | None]:
        """``'id'`` or ``'id:QUANT'`` -> (entry, upper-case quant or None)."""
        model_id, _, quant = spec.strip().partition(":")
        entry = self.get(model_id)
        quant = quant.strip().upper()
        if not quant:
            return entry, None
        if quant not in entry.quants():
            what = "" if quant in QUANT_NAMES or quant == LOCAL else " (not a llama.cpp type)"
            raise ConfigError(f"model '{entry.id}' has no quantization '{quant}'{what} in "
                              f"{self.path}; available: {', '.join(entry.quants()) or 'none'}"
                              f" (write {entry.id}:QUANT)")
        return entry, quant


def default_catalog_path() -> str:
    """$SLMBENCH_CATALOG, else models.yaml at the repository root, else the packaged copy."""
    env = os.environ.get("SLMBENCH_CATALOG")
    if env:
        return env
    repo_copy = Path(__file__).resolve().parent.parent / "models.yaml"
    if repo_copy.is_file():
        return str(repo_copy)
    return str(Path(__file__).resolve().parent / "data" / "models.yaml")


# --------------------------------------------------------------------------- YAML with lines

class _Map(dict):
    """A YAML mapping that remembers its line and each key's line (1-based) for messages."""

    line: int = 0
    key_lines: dict


def _parse_yaml(text: str, path: str, check: "_Checker") -> Any:
    """Parse ``text``; repeated keys go to ``check`` (PyYAML would silently keep the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any) -> _Map:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:  # explicit keys only: '<<' merges may override
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                check.add(line, "", f"key '{key}' repeated (first at line {seen[key]}); "
                          "YAML would keep only the last one")
            elif isinstance(key, str | int | float | bool):
                seen[key] = line
        loader.flatten_mapping(node)
        out = _Map()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | type(None)):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark)
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    loader = Loader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        ctx = getattr(exc, "context", None)
        raise ConfigError(f"{path}:{where}invalid YAML: {what}" + (f" ({ctx})" if ctx else "")
                          + " - fix the syntax (indentation, ':' after keys, closing brackets)"
                          ) from None
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- validation

class _Checker:
    """Collects (line, message) problems for one catalog file."""

    def __init__(self, name: str, base: Path):
        self.name, self.base = name, base
        self.problems: list[tuple[int, str]] = []

    def add(self, line: int, who: str, what: str) -> None:
        self.problems.append((line, f"{self.name}:{line}: {who}{what}"))

    @staticmethod
    def line_of(m: Any, key: Any = None, default: int = 0) -> int:
        if isinstance(m, _Map):
            return m.key_lines.get(key, m.line) if key is not None else m.line
        return default

    def unknown_keys(self, m: dict, known: tuple[str, ...], who: str, prefix: str = "") -> None:
        for key in m:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.add(self.line_of(m, key), who, f"unknown field '{prefix}{key}'{hint}; "
                         f"known: {', '.join(known)}")

    def quant_map(self, raw: Any, key: str, who: str, line: int,
                  lists: bool = False) -> dict[str, tuple[Any, int]]:
        """A quant -> string mapping with normalized (upper-case) labels; with ``lists`` a
        value may also be a list of strings (the shards of a split file, or their digests)."""
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(line, who, f"{key}: must map quantization -> value (e.g. {key}: "
                     f"{{Q4_K_M: ...}}), got {type(value).__name__}")
            return {}
        out: dict[str, tuple[str, int]] = {}
        for quant, v in value.items():
            qline = self.line_of(value, quant, line)
            q = str(quant).strip().upper()
            if q not in QUANT_NAMES and not (key == "paths" and q == LOCAL):
                close = difflib.get_close_matches(q, QUANT_NAMES, n=1, cutoff=0.75)
                hint = (f"did you mean '{close[0]}'?" if close else
                        f"llama.cpp types: {', '.join(QUANT_NAMES)}")
                self.add(qline, who, f"{key}.{quant}: unknown quantization '{quant}' ({hint})")
                continue
            if q in out:
                self.add(qline, who, f"{key}.{quant}: quantization {q} listed twice")
                continue
            if lists and isinstance(v, list) and v and all(
                    isinstance(x, str) and x.strip() for x in v):
                out[q] = ([x.strip() for x in v], qline)
                continue
            if not isinstance(v, str) or not v.strip():
                self.add(qline, who, f"{key}.{quant}: must be a non-empty string"
                         + (" or a list of them (one per shard)" if lists else "")
                         + f", got {v!r}")
                continue
            out[q] = (v.strip(), qline)
        return out

    def shards(self, q: str, value: Any, who: str, line: int) -> list[str] | None:
        """The file names of ``files.<q>``: one file, or every shard of a split model (a list,
        or the first shard's name, whose -00001-of-0000N pattern names the rest)."""
        names = value if isinstance(value, list) else [value]
        bad = [n for n in names if not n.lower().endswith(".gguf")]
        if bad:
            self.add(line, who, f"files.{q}: {bad[0]!r} is not a .gguf file name")
            return None
        if isinstance(value, str):
            parts = split_parts(value)
            if parts and parts[1] != 1:
                self.add(line, who, f"files.{q}: {value!r} is shard {parts[1]} of {parts[2]}; "
                         f"name the first one ({shard_names(value)[0]}), the rest follow from "
                         "it")
                return None
            return shard_names(value)
        if len(names) == 1:
            return names
        what = (f"files.{q}: a list names the shards of one split model, in order, as "
                "llama.cpp names them")
        parts = split_parts(names[0])
        if parts is None or parts[1] != 1:
            self.add(line, who, f"{what}; {names[0]!r} does not end in "
                     f"-00001-of-{len(names):05d}.gguf")
            return None
        expected = shard_names(names[0])
        if names != expected:
            self.add(line, who, f"{what}: " + ", ".join(expected[:3])
                     + (", ..." if len(expected) > 3 else "")
                     + (f" (got {len(names)} names)" if len(names) != len(expected) else
                        f" (got {', '.join(names)})"))
            return None
        return names

    def fact(self, key: str, value: Any, who: str, line: int) -> Any:
        if value is None:
            return None
        if key in INT_FACTS:
            if isinstance(value, int) and not isinstance(value, bool):
                if value > 0:
                    return value
                self.add(line, who, f"facts.{key}: must be positive, got {value}")
                return None
            hint = _int_hint(value)
            self.add(line, who, f"facts.{key}: must be an integer or null, got {value!r}"
                     + (f" (write {hint})" if hint else ""))
            return None
        if key == "release_date":
            if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
                return value.strip()
            self.add(line, who, f"facts.release_date: must be 'YYYY-MM' (quoted), got {value!r}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(line, who, f"facts.{key}: must be a string or null, got {value!r}")
            return None
        if key == "attention_type" and value not in ATTENTION_TYPES:
            self.add(line, who, "facts.attention_type: must be one of "
                     f"{', '.join(ATTENTION_TYPES)}, got {value!r}")
            return None
        return value.strip()

    def model(self, i: int, raw: Any, list_line: int) -> ModelEntry | None:
        if not isinstance(raw, dict):
            self.add(self.line_of(raw, default=list_line), f"models[{i}]: ",
                     f"expected a mapping (id, family, repo_id, files, facts, source), "
                     f"got {type(raw).__name__} {raw!r}")
            return None
        line = self.line_of(raw)
        mid = raw.get("id")
        if isinstance(mid, str) and _ID_RE.fullmatch(mid.strip()):
            mid = mid.strip()
            who = f"model '{mid}': "
        else:
            who = f"models[{i}]: "
            self.add(self.line_of(raw, "id"), who, "id: " + (
                "missing (give a short id such as smollm2-135m)" if mid is None else
                f"{mid!r} is not a valid id (letters, digits, '.', '_', '+', '-'; no ':' or "
                "spaces)"))
            mid = None
        self.unknown_keys(raw, MODEL_KEYS, who)
        entry = ModelEntry(id=mid or f"models[{i}]")
        for key in ("family", "repo_id", "revision", "source", "notes"):
            value = raw.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                self.add(self.line_of(raw, key), who, f"{key}: must be a non-empty string, "
                         f"got {value!r}")
            elif value is not None and key != "notes":
                setattr(entry, key, value.strip())
        if entry.repo_id and not _REPO_RE.fullmatch(entry.repo_id):
            self.add(self.line_of(raw, "repo_id"), who,
                     f"repo_id: {entry.repo_id!r} is not a Hugging Face repository id "
                     "(owner/name, e.g. Qwen/Qwen2.5-1.5B-Instruct-GGUF)")
        files = self.quant_map(raw, "files", who, self.line_of(raw, "files"), lists=True)
        for q, (value, qline) in files.items():
            names = self.shards(q, value, who, qline)
            if names:
                entry.files[q] = names[0]
                if len(names) > 1:
                    entry.shards[q] = names
        paths = self.quant_map(raw, "paths", who, self.line_of(raw, "paths"))
        for q, (p, _) in paths.items():
            entry.paths[q] = self.resolve_path(p)
        path = raw.get("path")
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                self.add(self.line_of(raw, "path"), who,
                         f"path: must be a file path, got {path!r}")
            elif LOCAL in entry.paths:
                self.add(self.line_of(raw, "path"), who, "path: given twice (also paths.local)")
            else:
                entry.paths[LOCAL] = self.resolve_path(path)
        for q, (digest, qline) in self.quant_map(raw, "sha256", who, self.line_of(raw, "sha256"),
                                                 lists=True).items():
            digests = digest if isinstance(digest, list) else [digest]
            n_files = len(entry.file_names(q)) if q in entry.files else 1
            bad = [d for d in digests if not _SHA_RE.fullmatch(d)]
            if bad:
                self.add(qline, who, f"sha256.{q}: {bad[0]!r} is not 64 hex digits (a SHA-256 "
                         "digest, as `sha256sum` prints it)")
            elif q not in entry.files and q not in entry.paths:
                self.add(qline, who, f"sha256.{q}: no file for {q} (add files.{q} or drop it)")
            elif len(digests) != n_files:
                self.add(qline, who, f"sha256.{q}: {len(digests)} digest"
                         f"{'s' if len(digests) != 1 else ''} for {n_files} file"
                         f"{'s' if n_files != 1 else ''} - give one per shard, in shard order"
                         if n_files > 1 else f"sha256.{q}: one digest for one file, got a list")
            elif isinstance(digest, list):
                entry.shard_sha256[q] = [d.lower() for d in digests]
            else:
                entry.sha256[q] = digest.lower()
        if entry.repo_id and not files and raw.get("files") is None:
            self.add(self.line_of(raw, "repo_id"), who, "files: missing - repo_id needs "
                     "files: {QUANT: file name in the repository}")
        if files and not entry.repo_id and raw.get("repo_id") is None:
            self.add(self.line_of(raw, "files"), who, "repo_id: missing - files are names in a "
                     "Hugging Face repository; give repo_id, or use path/paths for local files")
        if not entry.repo_id and not entry.paths and raw.get("repo_id") is None \
                and raw.get("path") is None and raw.get("paths") is None:
            self.add(line, who, "repo_id/path: missing - give repo_id + files (Hugging Face) or "
                     "path / paths (local GGUF files)")
        if entry.revision is not None and not entry.repo_id:
            self.add(self.line_of(raw, "revision"), who, "revision: only makes sense with repo_id")
        self.facts(raw, entry, who)
        return entry

    def facts(self, raw: dict, entry: ModelEntry, who: str) -> None:
        facts = raw.get("facts")
        fline = self.line_of(raw, "facts")
        if facts is None:
            facts = {}
        elif not isinstance(facts, dict):
            self.add(fline, who, f"facts: must be a mapping, got {type(facts).__name__}")
            facts = {}
        self.unknown_keys(facts, FACT_KEYS, who, "facts.")
        entry.facts = {k: self.fact(k, facts.get(k), who, self.line_of(facts, k, fline))
                       for k in FACT_KEYS}
        f = entry.facts
        heads, kv, att = f["attention_heads"], f["kv_heads"], f["attention_type"]
        if heads and kv:
            expected = "MHA" if kv == heads else "MQA" if kv == 1 else "GQA"
            if kv > heads or heads % kv:
                self.add(self.line_of(facts, "kv_heads", fline), who,
                         f"facts.kv_heads: {kv} does not divide attention_heads {heads}")
            elif att in ("MHA", "GQA", "MQA") and att != expected:
                self.add(self.line_of(facts, "attention_type", fline), who,
                         f"facts.attention_type: {att} contradicts {heads} heads / {kv} KV heads "
                         f"(that is {expected})")
        if any(v is not None for v in f.values()) and not entry.source:
            self.add(fline, who, "source: missing - facts need a source (model card URL or "
                     "paper)")

    def resolve_path(self, p: str) -> str:
        return str((self.base / os.path.expanduser(p.strip())).resolve())


def _int_hint(value: Any) -> str | None:
    """What to write instead of e.g. '1.5B', 2e12 (a string to YAML) or 2.0e+12."""
    if isinstance(value, float) and value.is_integer() and value > 0:
        return str(int(value))
    if isinstance(value, str):
        s = value.strip().replace(",", "").replace("_", "").upper()
        try:
            if s and s[-1] in _SUFFIX:
                return str(int(round(float(s[:-1]) * _SUFFIX[s[-1]])))
            number = float(s)
        except ValueError:
            return None
        if number.is_integer() and number > 0:
            return str(int(number))
    return None


def load_catalog(path: str | None = None) -> Catalog:
    """Load and validate a catalog; every problem is reported together in one message."""
    from_env = path is None and bool(os.environ.get("SLMBENCH_CATALOG"))
    path = str(path or default_catalog_path())
    p = Path(os.path.expanduser(path))
    origin = " (from $SLMBENCH_CATALOG)" if from_env else ""
    if not p.exists():
        raise ConfigError(f"{path}: model catalog not found{origin}; pass --catalog PATH or set "
                          "SLMBENCH_CATALOG to a models.yaml")
    if not p.is_file():
        raise ConfigError(f"{path}: the model catalog must be a YAML file, not a directory")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the model catalog ({exc.__class__.__name__}: "
                          f"{exc})") from None
    name = p.name
    check = _Checker(name, p.resolve().parent)
    raw = _parse_yaml(text, path, check)
    if not isinstance(raw, dict) or "models" not in raw:
        raise ConfigError(f"{path}: expected a mapping with a top-level 'models:' list "
                          f"(see the header of the shipped models.yaml), got "
                          f"{'an empty file' if raw is None else type(raw).__name__}")
    check.unknown_keys(raw, TOP_KEYS, "top level: ")
    if raw.get("version", 1) != 1:
        check.add(check.line_of(raw, "version"), "top level: ",
                  f"version: {raw['version']!r} is not supported (this slmbench reads version 1)")
    models_raw = raw["models"]
    models: list[ModelEntry] = []
    if not isinstance(models_raw, list):
        check.add(check.line_of(raw, "models"), "top level: ",
                  f"models: must be a list of model entries, got {type(models_raw).__name__}")
        models_raw = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(models_raw):
        entry = check.model(i, item, check.line_of(raw, "models"))
        if entry is None:
            continue
        line = check.line_of(item)
        if entry.id in first_line:
            check.add(line, f"model '{entry.id}': ", f"id: duplicate id (first at line "
                      f"{first_line[entry.id]}); ids must be unique")
        else:
            first_line[entry.id] = line
        models.append(entry)
    if check.problems:
        items = [msg for _, msg in sorted(check.problems, key=lambda x: x[0])]
        n = len(items)
        raise ConfigError(f"{n} problem{'s' if n > 1 else ''} in the model catalog {path}: "
                          + "; ".join(items))
    return Catalog(path=path, models=models)


def facts_frame(catalog: Catalog):
    """One row per model id (the index) with family and facts, integer facts as Int64."""
    import pandas as pd

    rows = [{"model_id": m.id, "family": m.family, **{k: m.facts.get(k) for k in FACT_KEYS}}
            for m in catalog.models]
    df = pd.DataFrame(rows, columns=["model_id", "family", *FACT_KEYS]).set_index("model_id")
    for key in INT_FACTS:
        df[key] = df[key].astype("Int64")
    return df
