"""Benchmark suites: a YAML file (plus command-line overrides) expanded into model configs.

A suite names models and the settings to sweep.  :func:`expand` turns it into the cross product
models x quants x threads x n_gpu_layers x cache types x flash attention; every :class:`Config`
carries the whole :class:`~slmbench.measure.TestPlan` (all prompt / generation lengths and
depths), because one model load serves every length.  Every problem in a suite file is reported
at once, in one line naming the file and the key, so a long sweep never dies on a typo late.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from slmbench import config
from slmbench.config import (FIELD, FIELDS, PROFILE_DEFAULTS, QUALITY_DEFAULTS, Settings,
                             TestPlan, config_id, default_threads)
from slmbench.errors import ConfigError, SlmbenchError
from slmbench.gguf_info import model_id_from_file

SUITES_DIR = Path(__file__).resolve().parent / "suites"
DEFAULT_SUITE = "quick"

MODEL_KEYS = {"id", "path", "synthetic", "name", "quants", "quality"}
SYNTH_KEYS = {"n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_vocab", "n_ctx", "seed",
              "arch"}


@dataclass
class ModelSpec:
    """One entry of ``models``: a catalog id, a local GGUF file or a synthetic shape."""

    kind: str  # 'catalog' | 'file' | 'synthetic'
    id: str  # catalog id, file stem, or synthetic name
    quants: list[str] | None = None  # None: the suite's `quants` (catalog/synthetic)
    path: str | None = None  # 'file': absolute path
    synthetic: dict[str, Any] | None = None  # 'synthetic': SynthSpec fields
    pinned: bool = False  # written as id:QUANT - command-line --quants leave it alone
    where: str = ""  # 'models[3]' (or the command-line flag), for error messages
    quality: Any = None  # per-model `quality:` (False, or a dict over the suite's); None = suite's

    def to_dict(self) -> Any:
        if self.kind == "file":
            out: dict[str, Any] = {"path": self.path, "name": self.id}
        elif self.pinned and self.quants and self.quality is None:
            return f"{self.id}:{self.quants[0]}"
        elif self.pinned and self.quants:
            out = {"id": f"{self.id}:{self.quants[0]}"}
        else:
            out = {"id": self.id} if self.kind == "catalog" else {
                "synthetic": dict(self.synthetic or {}), "name": self.id}
            if self.quants is not None:
                out["quants"] = list(self.quants)
        if self.quality is not None:
            out["quality"] = self.quality
        return out


@dataclass
class Suite:
    """A validated suite: every list normalised, paths absolute."""

    name: str
    source: str  # file it came from, or '<built-in>'
    models: list[ModelSpec]
    values: dict[str, Any] = field(default_factory=dict)  # every config.FIELDS key but models

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`parse_suite` reads back to the same suite (the manifest copy)."""
        out = {"name": self.name}
        out.update({k: v for k, v in self.values.items() if k != "name" and v not in (None, [])})
        out["models"] = [m.to_dict() for m in self.models]
        return out


@dataclass
class ModelRef:
    """The model of one config: where its file is (or how to get it)."""

    kind: str
    model_id: str
    quant: str | None
    path: str | None = None
    synthetic: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.model_id}:{self.quant or '?'}"


@dataclass
class Config:
    """One model load: a model, its settings and every test it runs."""

    index: int
    model: ModelRef
    settings: Settings
    plan: TestPlan
    record_id: str
    cooldown_s: float = 0.0
    max_temp_c: float | None = None
    timeout_s: float = 3600.0
    kind: str = "bench"  # 'bench' (timing + memory), 'quality' (perplexity / KL), 'sustained'
    #             or 'profile'
    quality: dict[str, Any] | None = None  # kind 'quality': QUALITY_DEFAULTS keys + n_threads
    reference: ModelRef | None = None  # kind 'quality': the KL reference file, if any
    sustained: dict[str, Any] | None = None  # kind 'sustained': SUSTAINED_DEFAULTS keys
    profile: dict[str, Any] | None = None  # kind 'profile': PROFILE_DEFAULTS keys

    @property
    def label(self) -> str:
        s = self.settings
        if self.kind == "quality":
            vs = f" vs {self.reference_label}" if self.reference else ""
            return f"{self.model.key} quality{vs}"
        if self.kind == "sustained":
            sus = self.sustained or {}
            return (f"{self.model.key} t{s.n_threads} sustained {sus.get('workload')} "
                    f"{sus.get('duration'):g}s")
        if self.kind == "profile":
            return f"{self.model.key} t{s.n_threads} profile"
        bits = [self.model.key, f"t{s.n_threads}"]
        if s.n_gpu_layers:
            bits.append(f"ngl{s.n_gpu_layers}")
        if (s.type_k, s.type_v) != ("f16", "f16"):
            bits.append(f"kv {s.type_k}/{s.type_v}")
        if s.flash_attn != "auto":
            bits.append(f"fa {s.flash_attn}")
        return " ".join(bits)

    @property
    def reference_label(self) -> str | None:
        """The KL reference of a quality config: its quant, or its file's model id."""
        ref = self.reference
        return (ref.quant or ref.model_id) if ref else None

    def job(self, path: str, device: str | None, reference_path: str | None = None) -> Job:
        """What the worker process needs to measure this config."""
        return Job(index=self.index, record_id=self.record_id, kind=self.kind, path=path,
                   model_id=self.model.model_id, quant=self.model.quant, device=device,
                   settings=self.settings, plan=self.plan, cooldown_s=self.cooldown_s,
                   max_temp_c=self.max_temp_c, quality=self.quality,
                   reference_path=reference_path, sustained=self.sustained,
                   profile=self.profile)

    def worker_payload(self, path: str, device: str | None,
                       reference_path: str | None = None) -> dict[str, Any]:
        """The job as JSON-able data: what crosses into the worker process."""
        from slmbench.schema import to_dict

        return to_dict(self.job(path, device, reference_path))


@dataclass
class Job:
    """One config as a worker measures it (``worker.execute``); crosses the process boundary
    as a dict (``to_dict`` / ``schema.from_dict``)."""

    index: int
    record_id: str
    kind: str  # 'bench' | 'quality' | 'sustained' | 'profile'
    path: str  # the local model file
    model_id: str | None
    quant: str | None
    device: str | None
    settings: Settings
    plan: TestPlan
    cooldown_s: float = 0.0
    max_temp_c: float | None = None
    quality: dict[str, Any] | None = None  # kind 'quality': QUALITY_DEFAULTS keys + n_threads
    reference_path: str | None = None  # kind 'quality': the KL reference file
    sustained: dict[str, Any] | None = None  # kind 'sustained': SUSTAINED_DEFAULTS keys
    windows_path: str | None = None  # kind 'sustained': the file each window is fsynced to
    windows_file: str | None = None  # ... as the record names it (relative to the run)
    profile: dict[str, Any] | None = None  # kind 'profile': PROFILE_DEFAULTS keys


# --------------------------------------------------------------------------- loading

def resolve_suite_path(name: str | None) -> Path:
    """A path, or the name of a shipped suite (``quick``, ``survey``, ``demo``)."""
    name = name or DEFAULT_SUITE
    p = Path(name)
    if p.exists():
        return p
    shipped = SUITES_DIR / (name if name.endswith((".yaml", ".yml")) else name + ".yaml")
    if shipped.exists() and p.parent == Path("."):
        return shipped
    known = ", ".join(sorted(x.stem for x in SUITES_DIR.glob("*.yaml")))
    raise ConfigError(f"{name}: no such suite file (shipped suites: {known})")


def read_yaml(path: str | Path, what: str) -> Any:
    """The data of a YAML file; a one-line ConfigError naming the file (and the line of a
    syntax error) when it cannot be read - ``what`` says what the file is ("the suite")."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem})") from None


def read_suite_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = read_yaml(path, "the suite")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite must be a YAML mapping of keys (models:, n_prompt:, "
                          f"...), not a {type(data).__name__}")
    return data


def load_suite(name: str | None = None, overrides: dict[str, Any] | None = None,
               catalog: Any = None) -> Suite:
    """Read a suite file (or a shipped suite by name), apply overrides, validate it."""
    path = resolve_suite_path(name)
    raw = read_suite_file(path)
    return parse_suite(raw, source=str(path), overrides=overrides, catalog=catalog,
                       base_dir=path.resolve().parent)


def parse_suite(raw: dict[str, Any], *, source: str = "<built-in>",
                overrides: dict[str, Any] | None = None, catalog: Any = None,
                base_dir: str | Path | None = None) -> Suite:
    """Validate suite data; every problem is collected and raised as one SlmbenchError.

    ``overrides`` are suite keys from the command line; they replace the file's values (and
    --quants replaces per-model quant lists too, except for models pinned as ``id:QUANT``).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = dict(raw)
    data.update(overrides)
    problems: list[str] = []

    def where(key: str) -> str:
        return config.where_on_command_line(key) if key in overrides else key

    for key in data:
        if key not in FIELD:
            close = difflib.get_close_matches(str(key), FIELD, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown key '{key}'{hint}")
    values: dict[str, Any] = {}
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for key in ("quality", "profile"):  # --quality turns on what the file configures
        if overrides.get(key) is True and isinstance(raw.get(key), dict):
            data[key] = raw[key]
    for f in FIELDS:
        key = f.key
        if key == "models":
            continue
        if key not in data or data[key] is None:
            values[key] = config.default(key)
            continue
        if key == "quality":
            values[key] = parse_quality(data[key], where(key), base, problems)
            continue
        if key == "targets":
            values[key] = parse_targets(data[key], where(key),
                                        Path.cwd() if key in overrides else base, problems)
            continue
        if key == "sustained":
            values[key] = parse_sustained(data[key], where(key), problems)
            continue
        if key == "profile":
            values[key] = parse_profile(data[key], where(key), problems)
            continue
        value, err = config.coerce(f.kind, data[key])
        if err:
            problems.append(f"{where(key)}: {err}")
        values[key] = value
    wanted = config.targets_workloads(config.parse_targets(values.get("targets"))[0])
    if wanted and isinstance(values.get("workloads"), list):  # targets add their workloads
        have = {config.workload_shape(w) for w in values["workloads"]}
        values["workloads"] = values["workloads"] + [
            w for w in wanted if config.workload_shape(w) not in have]
    problems += config.check(values, where)
    models: list[ModelSpec] = []
    if "models" not in data or not data["models"]:
        problems.append("models: the suite lists no models (add `models: [smollm2-135m]` or "
                        "pass --models)")
    else:
        entries = data["models"]
        if isinstance(entries, str):
            entries = [x.strip() for x in entries.split(",") if x.strip()]
        if not isinstance(entries, list):
            problems.append(f"{where('models')}: expected a list of model entries")
            entries = []
        model_base = Path.cwd() if "models" in overrides else base
        for i, entry in enumerate(entries):
            spec = _parse_model(entry, f"{where('models')}[{i}]", model_base, problems)
            if spec is not None:
                spec.where = f"{where('models')}[{i}]"
                models.append(spec)
    if "quants" in overrides:
        for m in models:
            if m.kind != "file" and not m.pinned:
                m.quants = None
    if overrides.get("quality") is False:
        for m in models:
            m.quality = None  # --no-quality: no quality config at all
    _check_quants(models, values, problems, catalog)
    _check_target_needs(models, values, where, problems)
    name = values.pop("name") or (Path(source).stem if source not in ("<built-in>", "")
                                  else "suite")
    if problems:  # source "" (the command line of `bench`): the problems name the flags
        raise ConfigError((f"{source}: " if source else "") + "; ".join(problems))
    return Suite(name=name, source=source, models=models, values=values)


def _parse_model(entry: Any, where: str, base: Path, problems: list[str]) -> ModelSpec | None:
    if isinstance(entry, str):
        text = entry.strip()
        if text.startswith("synthetic:"):
            problems.append(f"{where}: write a synthetic model as a mapping "
                            "(- synthetic: {{n_embd: 256, n_layer: 2}})")
            return None
        if _looks_like_path(text):
            return _file_spec(text, None, where, base, problems)
        ident, _, quant = text.partition(":")
        if not ident:
            problems.append(f"{where}: empty model id")
            return None
        return ModelSpec("catalog", ident, [quant.upper()] if quant else None, pinned=bool(quant))
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a catalog id, a .gguf path or a mapping, got {entry!r}")
        return None
    unknown = set(entry) - MODEL_KEYS
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                        f"(known: {', '.join(sorted(MODEL_KEYS))})")
    sources = [k for k in ("id", "path", "synthetic") if k in entry]
    if len(sources) != 1:
        problems.append(f"{where}: give exactly one of id, path or synthetic")
        return None
    quants = entry.get("quants")
    if quants is not None:
        quants, err = config.coerce("strs", quants)
        if err:
            problems.append(f"{where}.quants: {err}")
            quants = None
        else:
            quants = [q.upper() for q in quants]
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        problems.append(f"{where}.name: expected text")
        name = None
    quality = (parse_quality(entry["quality"], f"{where}.quality", base, problems)
               if "quality" in entry else None)
    spec = _parse_model_source(entry, quants, name, where, base, problems)
    if spec is not None:
        spec.quality = quality
    return spec


def _parse_model_source(entry: dict, quants: list[str] | None, name: str | None, where: str,
                        base: Path, problems: list[str]) -> ModelSpec | None:
    if "path" in entry:
        if quants is not None:
            problems.append(f"{where}.quants: a local file has one quantization; list one entry "
                            "per file instead")
        return _file_spec(entry["path"], name, where, base, problems)
    if "id" in entry:
        if not isinstance(entry["id"], str) or not entry["id"].strip():
            problems.append(f"{where}.id: expected a catalog id")
            return None
        ident, _, quant = entry["id"].strip().partition(":")
        if quant:
            if quants is not None:
                problems.append(f"{where}: give the quantization in id ({entry['id']}) or in "
                                "quants, not both")
            return ModelSpec("catalog", ident, [quant.upper()], pinned=True)
        return ModelSpec("catalog", ident, quants, pinned=False)
    shape = entry["synthetic"]
    if not isinstance(shape, dict):
        problems.append(f"{where}.synthetic: expected a mapping of shape fields "
                        f"({', '.join(sorted(SYNTH_KEYS))})")
        return None
    bad = [k for k in shape if k not in SYNTH_KEYS]
    if bad:
        problems.append(f"{where}.synthetic: unknown field(s) {', '.join(map(str, bad))} "
                        f"(known: {', '.join(sorted(SYNTH_KEYS))})")
        return None
    from slmbench.synth import ARCHITECTURES, SynthSpec

    if not all(isinstance(v, int) and not isinstance(v, bool)
               for k, v in shape.items() if k != "arch"):
        problems.append(f"{where}.synthetic: every field but arch must be an integer")
        return None
    if "arch" in shape and shape["arch"] not in ARCHITECTURES:
        problems.append(f"{where}.synthetic.arch: {shape['arch']!r} is not one of "
                        f"{', '.join(ARCHITECTURES)}")
        return None

    try:
        SynthSpec(**shape).validate()
    except SlmbenchError as exc:
        problems.append(f"{where}.synthetic: {exc}")
        return None
    if name is None:
        full = asdict(SynthSpec(**shape))
        name = f"syn-e{full['n_embd']}-l{full['n_layer']}-v{full['n_vocab']}"
        if full["arch"] != "llama":
            name = f"{name}-{full['arch']}"
    return ModelSpec("synthetic", name, quants, synthetic=dict(shape))


def parse_quality(value: Any, where: str, base: Path, problems: list[str]) -> Any:
    """`quality:` as written: True / False, or a mapping of QUALITY_DEFAULTS keys (validated,
    paths made absolute).  True is stored as {} (every default)."""
    if isinstance(value, bool):
        return {} if value else False
    if not isinstance(value, dict):
        problems.append(f"{where}: expected true, false or a mapping of "
                        f"{', '.join(QUALITY_DEFAULTS)}, got {value!r}")
        return False
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key not in QUALITY_DEFAULTS:
            close = difflib.get_close_matches(str(key), QUALITY_DEFAULTS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: unknown key '{key}'{hint} (known: "
                            f"{', '.join(QUALITY_DEFAULTS)})")
        elif v is None:
            out[key] = None
        elif key in ("n_ctx", "n_batch", "chunks"):
            low = {"n_ctx": 8, "n_batch": 1, "chunks": 0}[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                problems.append(f"{where}.{key}: expected an integer >= {low}, got {v!r}")
            else:
                out[key] = v
        elif not isinstance(v, str) or not v.strip():
            problems.append(f"{where}.{key}: expected text, got {v!r}")
        elif key == "corpus" or _looks_like_path(v):
            p = Path(os.path.expanduser(v.strip()))
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                problems.append(f"{where}.{key}: no such file {v!r}")
            else:
                out[key] = str(p.resolve())
        else:
            out[key] = v.strip().upper()  # a quantization of the same model
    return out


def parse_targets(value: Any, where: str, base: Path, problems: list[str]) -> Any:
    """`targets:` as written: a YAML file (path relative to the suite, or to the working
    directory for --targets) or a mapping; returned as the checked mapping (what the manifest
    keeps), None when it has problems (they are added)."""
    if isinstance(value, list) and len(value) == 1:  # --targets FILE arrives as a list
        value = value[0]
    if isinstance(value, str):
        p = Path(os.path.expanduser(value.strip()))
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            problems.append(f"{where}: no such targets file {value!r}")
            return None
        try:
            value = read_targets_file(p)
        except ConfigError as exc:
            problems.append(str(exc))
            return None
        where = str(p)
    _targets, found = config.parse_targets(value, where)
    problems += found
    if found:
        return None
    if isinstance(value, dict) and isinstance(value.get("targets"), dict) \
            and not set(value) & set(config.TARGET_METRIC):
        value = value["targets"]
    return value


def read_targets_file(path: str | Path) -> Any:
    """The data of a targets YAML file (one-line ConfigError when unreadable)."""
    return read_yaml(path, "the targets")


def _check_target_needs(models: list[ModelSpec], values: dict[str, Any],
                        where: Callable[[str], str], problems: list[str]) -> None:
    """Targets on quality or sustained metrics need those tests in the suite: say so before a
    long run rather than fail the gate at its end."""
    targets, _ = config.parse_targets(values.get("targets"))
    qualities = [effective_quality(values.get("quality"), m.quality) for m in models]
    for t in targets:
        need = config.TARGET_METRIC[t.metric].needs
        if need == "quality" and not any(q is not None for q in qualities):
            problems.append(f"{where('targets')}: {t.metric} needs quality tests (add "
                            "`quality: true` to the suite, or --quality)")
        elif need == "reference" and not any(q and q.get("reference") for q in qualities):
            problems.append(f"{where('targets')}: {t.metric} needs quality tests with a KL "
                            "reference (e.g. `quality: {reference: F16}`)")
        elif need == "sustained" and not values.get("sustained"):
            problems.append(f"{where('targets')}: {t.metric} needs a sustained test (suite "
                            "key `sustained:`)")


def parse_sustained(value: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    """`sustained:` as written: true (every default), false, or a mapping of
    SUSTAINED_DEFAULTS keys; returned checked and normalised (durations in seconds), or None."""
    from slmbench.config import SUSTAINED_DEFAULTS
    from slmbench.sustained import spec_from_values

    if value is False or value is None:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected true, false or a mapping of "
                        f"{', '.join(SUSTAINED_DEFAULTS)}, got {value!r}")
        return None
    unknown = [k for k in value if k not in SUSTAINED_DEFAULTS]
    for key in unknown:
        close = difflib.get_close_matches(str(key), SUSTAINED_DEFAULTS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"{where}: unknown key '{key}'{hint} (known: "
                        f"{', '.join(SUSTAINED_DEFAULTS)})")
    try:
        return spec_from_values(value).to_values()
    except SlmbenchError as exc:
        problems.append(f"{where}.{exc}")
        return None


def parse_profile(value: Any, where: str, problems: list[str]) -> Any:
    """`profile:` as written: True / False, or a mapping of PROFILE_DEFAULTS keys; stored as
    the full mapping (defaults filled in), or False."""
    if isinstance(value, bool):
        return dict(PROFILE_DEFAULTS) if value else False
    if not isinstance(value, dict):
        problems.append(f"{where}: expected true, false or a mapping of "
                        f"{', '.join(PROFILE_DEFAULTS)}, got {value!r}")
        return False
    out = dict(PROFILE_DEFAULTS)
    for key, v in value.items():
        low = 1 if key == "repetitions" else 0
        if key not in PROFILE_DEFAULTS:
            close = difflib.get_close_matches(str(key), PROFILE_DEFAULTS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: unknown key '{key}'{hint} (known: "
                            f"{', '.join(PROFILE_DEFAULTS)})")
        elif not isinstance(v, int) or isinstance(v, bool) or v < low:
            problems.append(f"{where}.{key}: expected an integer >= {low}, got {v!r}")
        else:
            out[key] = v
    if not out["n_prompt"] and not out["n_gen"]:
        problems.append(f"{where}: nothing to profile (n_prompt and n_gen are both 0)")
    return out


def effective_quality(suite_value: Any, model_value: Any) -> dict[str, Any] | None:
    """The quality settings of one model entry (suite-wide ones, then the model's), or None."""
    if model_value is False or (model_value is None and not isinstance(suite_value, dict)):
        return None
    out = dict(QUALITY_DEFAULTS)
    if isinstance(suite_value, dict):
        out.update(suite_value)
    if isinstance(model_value, dict):
        out.update(model_value)
    return out


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".gguf") or "/" in text or os.sep in text


def _file_spec(path: Any, name: str | None, where: str, base: Path,
               problems: list[str]) -> ModelSpec | None:
    if not isinstance(path, str) or not path.strip():
        problems.append(f"{where}.path: expected a file path")
        return None
    p = Path(os.path.expanduser(path.strip()))
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        problems.append(f"{where}: no such model file {path!r}")
        return None
    path = str(p.resolve())
    return ModelSpec("file", name or model_id_from_file(path, file_quant(path)), None, path=path)


def _check_quants(models: list[ModelSpec], values: dict[str, Any], problems: list[str],
                  catalog: Any) -> None:
    suite_quants = [q.upper() for q in values.get("quants") or [] if isinstance(q, str)]
    values["quants"] = suite_quants
    cat = catalog
    for m in models:
        if m.kind == "file":  # a suite-wide quant reference does not apply to a local file
            ref = m.quality.get("reference") if isinstance(m.quality, dict) else None
            if ref and not os.path.isabs(ref):
                problems.append(f"{m.where} ({m.id}): quality reference '{ref}' names a quant, "
                                "but a local file has no siblings: give the reference as a path")
            continue
        available = synth_quants()
        if m.kind == "catalog":
            if cat is None:
                try:
                    cat = _load_catalog()
                except SlmbenchError as exc:
                    problems.append(f"{m.where} ({m.id}): {exc}")
                    return
            entry = catalog_entry(cat, m.id)
            if entry is None:
                close = difflib.get_close_matches(m.id, _catalog_ids(cat), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                problems.append(f"{m.where}: unknown model id '{m.id}' ({hint}see "
                                "`slmbench models`)")
                continue
            available = [q.upper() for q in entry.quants()]
        quants = m.quants if m.quants is not None else suite_quants
        if not quants:
            problems.append(f"{m.where} ({m.id}): no quantization (set `quants:` or write "
                            f"{m.id}:Q4_K_M)")
        for q in quants:
            if q not in available:
                problems.append(f"{m.where} ({m.id}): unknown quant '{q}' (available: "
                                f"{', '.join(available) or 'none'})")
        q = effective_quality(values.get("quality"), m.quality)
        ref = (q or {}).get("reference")
        if ref and not os.path.isabs(ref) and ref not in available:
            problems.append(f"{m.where} ({m.id}): quality reference '{ref}' is not a quant of "
                            f"this model (available: {', '.join(available) or 'none'})")


def synth_quants() -> list[str]:
    """Quantizations llama.cpp can write for a synthetic F16 model."""
    try:
        from gguf import LlamaFileType
    except ImportError:  # pragma: no cover - gguf is a dependency
        return ["F16", "Q8_0", "Q4_K_M"]
    names = [m.split("_", 1)[1] for m in LlamaFileType.__members__ if m != "GUESSED"]
    return sorted(set(names))


def _load_catalog() -> Any:
    try:
        from slmbench.catalog import load_catalog
    except ImportError as exc:
        raise ConfigError(f"the model catalog is not available ({exc}); use local .gguf paths") \
            from None
    return load_catalog()


def catalog_entry(cat: Any, model_id: str) -> Any:
    """The catalog entry for ``model_id`` or None (whatever the catalog raises for unknowns)."""
    try:
        return cat.get(model_id)
    except (KeyError, LookupError, SlmbenchError):
        return None


def _catalog_ids(cat: Any) -> list[str]:
    for attr in ("ids", "entries", "models"):
        v = getattr(cat, attr, None)
        if callable(v):
            v = v()
        if isinstance(v, dict):
            return list(v)
        if isinstance(v, (list, tuple)):
            return [getattr(x, "id", x) for x in v]
    return []


# --------------------------------------------------------------------------- expansion

def expand(suite: Suite) -> list[Config]:
    """The configs of a suite, model-major, duplicates (same record_id) dropped."""
    v = suite.values
    plan = TestPlan.from_values(v)
    refs: list[ModelRef] = []
    quality_refs: list[tuple[ModelRef, dict[str, Any]]] = []
    for m in suite.models:
        if m.kind == "file":
            new = [ModelRef("file", m.id, file_quant(m.path), path=m.path)]
        else:
            new = [ModelRef(m.kind, m.id, quant, synthetic=m.synthetic)
                   for quant in (m.quants if m.quants is not None else v["quants"])]
        refs += new
        q = effective_quality(v.get("quality"), m.quality)
        if q is not None:
            quality_refs += [(r, q) for r in new]
    configs: list[Config] = []
    seen: set[str] = set()
    points = itertools.product(refs, *(v[key] for key in config.SWEPT)) if plan.tests() else ()
    for ref, *point in points:
        settings = config.settings_for(v, **dict(zip(config.SWEPT, point)))
        rid = config_id(ref.key, settings, plan)
        if rid in seen:
            continue
        seen.add(rid)
        configs.append(Config(index=len(configs), model=ref, settings=settings, plan=plan,
                              record_id=rid, cooldown_s=v["cooldown_s"],
                              max_temp_c=v["max_temp_c"], timeout_s=v["timeout_s"]))
    # quality after all timing: one config per model file, whatever the settings sweep
    threads = v["threads"][0] or default_threads()
    for ref, q in quality_refs:
        cfg = quality_config(len(configs), ref, q, threads, v["timeout_s"])
        if cfg.record_id not in seen:
            seen.add(cfg.record_id)
            configs.append(cfg)
    # sustained last: one per model file, at the first point of the settings sweep
    if v.get("sustained"):
        settings = config.settings_for(v, **{key: v[key][0] for key in config.SWEPT})
        for ref in refs:
            cfg = sustained_config(len(configs), ref, v["sustained"], settings, v["timeout_s"])
            if cfg.record_id not in seen:
                seen.add(cfg.record_id)
                configs.append(cfg)
    # profiles last: one per model file, at the first value of every swept setting
    if v.get("profile"):
        first = {key: v[key][0] for key in config.SWEPT}
        for ref in refs:
            cfg = profile_config(len(configs), ref, config.settings_for(v, **first),
                                 v["profile"], v["timeout_s"])
            if cfg.record_id not in seen:
                seen.add(cfg.record_id)
                configs.append(cfg)
    return configs


def sustained_config(index: int, ref: ModelRef, values: dict[str, Any], settings: Settings,
                     timeout_s: float) -> Config:
    """The sustained config of one model file (slmbench.sustained).  Its timeout adds the
    duration and the cooling wait to the suite's: a 2 h sustained run is not a hang."""
    from slmbench.sustained import spec_from_values

    spec = spec_from_values(values)
    plan = TestPlan([spec.n_prompt] if spec.n_prompt else [],
                    [spec.n_gen] if spec.n_gen else [], [0], False)
    wait = spec.start_cool_timeout_s if spec.start_cool_c is not None else 0.0
    return Config(index=index, model=ref, settings=settings, plan=plan,
                  record_id=config_id(f"{ref.key}:{spec.key()}", settings, plan),
                  timeout_s=timeout_s + spec.duration_s + wait, kind="sustained",
                  sustained=spec.to_values())
def profile_config(index: int, ref: ModelRef, settings: Settings, prof: dict[str, Any],
                   timeout_s: float) -> Config:
    """The profile config of one model file (slmbench.profile): its settings are a timing
    config's, its plan the profile's tests, its record id its own."""
    from slmbench.profile import profile_plan, profile_record_id

    settings.repetitions = prof["repetitions"]
    p, g, d = prof["n_prompt"], prof["n_gen"], prof["n_depth"]
    return Config(index=index, model=ref, settings=settings, plan=profile_plan(p, g, d),
                  record_id=profile_record_id(ref.key, settings, p, g, d), timeout_s=timeout_s,
                  kind="profile", profile=dict(prof))


def quality_config(index: int, ref: ModelRef, q: dict[str, Any], n_threads: int,
                   timeout_s: float) -> Config:
    """The quality config of one model file.  Its settings are the ones `slmbench quality`
    records (window, batch; threads do not change the numbers), so results of both compare."""
    from slmbench.quality import quality_settings

    reference = None
    ref_name = q.get("reference")
    if ref_name and os.path.isabs(ref_name):
        quant = file_quant(ref_name)
        reference = ModelRef("file", model_id_from_file(ref_name, quant), quant, path=ref_name)
    elif ref_name and ref_name != ref.quant and ref.kind != "file":
        reference = ModelRef(ref.kind, ref.model_id, ref_name, synthetic=ref.synthetic)
    settings = quality_settings(q["n_ctx"], q["n_batch"])
    key = ":".join([ref.key, "quality", q.get("corpus") or "bundled",
                    reference.key if reference else "-", str(q.get("chunks") or 0)])
    plan = TestPlan([], [], [0], False)  # no timed tests
    return Config(index=index, model=ref, settings=settings, plan=plan,
                  record_id=config_id(key, settings, plan), timeout_s=timeout_s, kind="quality",
                  quality={**q, "n_threads": n_threads}, reference=reference)


def file_quant(path: str | None) -> str | None:
    """The GGUF file type, or None for an unreadable file (the runner then fails it)."""
    try:
        return model_header(path or "").file_type
    except SlmbenchError:
        return None


def model_header(path: str) -> Any:
    """read_gguf, once per file version (the runner asks for the same files many times)."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (os.path.abspath(path), -1, -1)
    return _read_header(key)


@functools.lru_cache(maxsize=256)
def _read_header_cached(key: tuple) -> Any:
    from slmbench.gguf_info import read_gguf

    try:
        return read_gguf(key[0])
    except SlmbenchError as exc:
        return exc


def _read_header(key: tuple) -> Any:
    got = _read_header_cached(key)
    if isinstance(got, SlmbenchError):
        raise got
    return got


def synthetic_file(cache_dir: str | Path, name: str, shape: dict[str, int]) -> str:
    """Where the F16 file of a synthetic model lives: named by its shape, so it is reused."""
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:8]
    return str(Path(cache_dir) / f"{name}-{digest}.gguf")
