"""Import llama-bench output (``-o json | jsonl | csv``) as a slmbench run.

A phone or board that can only run llama.cpp's own binary (over adb, in Termux) still produces
numbers worth analysing; once imported they are records like any other, so analyze, report and
compare work on them.  json and jsonl carry every raw sample (``samples_ns``); csv only carries
avg/stddev, which is kept as a summary with ``n = 0`` and said in the record's warnings.

Nothing is guessed silently: columns this module does not know are kept in ``Record.extra`` and
named in one warning; missing or malformed required columns are a :class:`SlmbenchError` naming
the file, the row (or line) and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import asdict
from typing import Any

from slmbench.errors import ResultsFormatError
from slmbench.gguf_info import model_id_from_file
from slmbench.results import append_record, new_run_id, write_json_atomic
from slmbench.schema import (CPUInfo, DeviceProfile, EnvInfo, LlamaInfo, Manifest, ModelFacts,
                             Record, Settings, Stats, TestResult, utc_now)
from slmbench.stats import noise_warning, summarize

SOURCE = "llama-bench"
REQUIRED = ("model_filename", "n_prompt", "n_gen")
# Mapped onto the schema (model facts, settings, tests, env).
MAPPED = {
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename",
    "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k",
    "type_v", "n_gpu_layers", "flash_attn", "load_mode", "use_mmap", "use_direct_io", "n_prompt",
    "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns",
    "samples_ts", "n_threads_batch",
}
# llama-bench settings the schema has no field for (current and older llama-bench versions).
# They decide what a number means, so rows that differ in them become separate records, and
# their values are kept in Record.extra["llama_bench_settings"].
UNMAPPED_SETTINGS = (
    "cpu_mask", "cpu_strict", "poll", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload",
    "devices", "tensor_split", "tensor_buft_overrides", "lazy_mode", "embeddings",
    "no_op_offload", "no_host", "repack", "fit_target", "fit_min_ctx", "f16_kv", "mul_mat_q",
)
# Backend flags of old llama-bench versions (cuda, metal ...): known, kept in extra, no warning.
OLD_BACKEND_FLAGS = ("cuda", "vulkan", "kompute", "metal", "sycl", "rpc", "gpu_blas", "blas",
                     "opencl")
KNOWN = MAPPED | set(UNMAPPED_SETTINGS) | set(OLD_BACKEND_FLAGS)
# Mapped settings whose raw values, with UNMAPPED_SETTINGS, tell one config from another.
SETTING_FIELDS = ("n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers",
                  "flash_attn", "load_mode", "use_mmap", "use_direct_io")
# One run directory is one device and one llama.cpp build: these must not vary between rows.
RUN_FIELDS = ("build_commit", "cpu_info", "gpu_info", "backends")

# llama.cpp's file type descriptions (llama_ftype_name in src/llama-model-loader.cpp) -> the
# labels gguf_info uses (gguf.LlamaFileType without MOSTLY_/ALL_).
FTYPE_DESCRIPTIONS = {
    "all F32": "F32", "F16": "F16", "BF16": "BF16", "Q1_0": "Q1_0", "Q2_0": "Q2_0",
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q8_0": "Q8_0",
    "MXFP4 MoE": "MXFP4_MOE", "NVFP4": "NVFP4",
    "Q2_K - Medium": "Q2_K", "Q2_K - Small": "Q2_K_S",
    "Q3_K - Small": "Q3_K_S", "Q3_K - Medium": "Q3_K_M", "Q3_K - Large": "Q3_K_L",
    "Q4_K - Small": "Q4_K_S", "Q4_K - Medium": "Q4_K_M",
    "Q5_K - Small": "Q5_K_S", "Q5_K - Medium": "Q5_K_M", "Q6_K": "Q6_K",
    "TQ1_0 - 1.69 bpw ternary": "TQ1_0", "TQ2_0 - 2.06 bpw ternary": "TQ2_0",
    "IQ2_XXS - 2.0625 bpw": "IQ2_XXS", "IQ2_XS - 2.3125 bpw": "IQ2_XS",
    "IQ2_S - 2.5 bpw": "IQ2_S", "IQ2_M - 2.7 bpw": "IQ2_M", "IQ3_XS - 3.3 bpw": "IQ3_XS",
    "IQ3_XXS - 3.0625 bpw": "IQ3_XXS", "IQ1_S - 1.5625 bpw": "IQ1_S",
    "IQ1_M - 1.75 bpw": "IQ1_M", "IQ4_NL - 4.5 bpw": "IQ4_NL", "IQ4_XS - 4.25 bpw": "IQ4_XS",
    "IQ3_S - 3.4375 bpw": "IQ3_S", "IQ3_S mix - 3.66 bpw": "IQ3_M",
}
_FLASH_ATTN = {"-1": "auto", "auto": "auto", "0": "off", "false": "off", "off": "off",
               "disabled": "off", "no": "off", "1": "on", "true": "on", "on": "on",
               "enabled": "on", "yes": "on"}
_ANDROID_PATHS = ("/data/", "/sdcard/", "/storage/", "/mnt/sdcard", "com.termux")
CSV_WARNING = ("imported from llama-bench csv: no raw samples, only avg and stddev (n = 0 in "
               "the summaries); compare needs json or jsonl")


# --------------------------------------------------------------------------- reading

def detect_format(text: str, path: str) -> str:
    """json (an array), jsonl (one object per line) or csv (header row), from the content."""
    body = text.lstrip("\ufeff \t\r\n")
    first_line = body.split("\n", 1)[0]
    if body.startswith("["):
        return "json"
    if body.startswith("{"):
        return "jsonl"
    if body.startswith("|"):
        raise ResultsFormatError(
            f"{path}: llama-bench markdown output has no raw samples and cannot "
            "be imported; rerun llama-bench with -o json (or jsonl, csv)")
    if body.upper().startswith("CREATE TABLE") or body.upper().startswith("INSERT INTO"):
        raise ResultsFormatError(f"{path}: llama-bench sql output is not importable; rerun "
                                 "llama-bench with -o json (or jsonl, csv)")
    if "model_filename" in first_line and "," in first_line:
        return "csv"
    raise ResultsFormatError(f"{path}: not llama-bench output (expected the output of llama-bench "
                             "-o json, jsonl or csv)")


def read_rows(path: str, fmt: str | None = None) -> tuple[list[tuple[str, Any]], str]:
    """[(where, row)] with ``where`` = 'FILE: row N' / 'FILE: line N', and the format."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except IsADirectoryError:
        raise ResultsFormatError(
            f"{path}: is a directory; give the file llama-bench wrote") from None
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{path}: not a text file; expected llama-bench -o json output"
                                 ) from None
    if not text.strip():
        raise ResultsFormatError(f"{path}: empty file; expected llama-bench -o json output")
    fmt = fmt or detect_format(text, path)
    rows: list[tuple[str, Any]] = []
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsFormatError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg}); a "
                                     "llama-bench run that was cut short leaves an unclosed array"
                                     ) from None
        if not isinstance(data, list):
            raise ResultsFormatError(f"{path}: expected a JSON array of llama-bench results "
                                     "(llama-bench -o json); for one object per line use --format "
                                     "jsonl")
        rows = [(f"{path}: row {i}", r) for i, r in enumerate(data, 1)]
    elif fmt == "jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path}: line {lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ResultsFormatError(
                    f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "model_filename" not in reader.fieldnames:
            raise ResultsFormatError(
                f"{path}: line 1: the csv header has no 'model_filename' column;"
                " expected llama-bench -o csv output")
        for i, row in enumerate(reader, 1):
            if None in row:  # more values than header columns
                raise ResultsFormatError(f"{path}: row {i} (line {reader.line_num}): more values "
                                         "than header columns")
            rows.append((f"{path}: row {i} (line {reader.line_num})", row))
    else:
        raise ResultsFormatError(f"unknown format {fmt!r} (json, jsonl or csv)")
    if not rows:
        raise ResultsFormatError(f"{path}: no results in the file (did llama-bench fail?)")
    for where, row in rows:
        if not isinstance(row, dict):
            raise ResultsFormatError(f"{where}: expected an object with llama-bench fields")
    return rows, fmt


# --------------------------------------------------------------------------- values

def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _int(row: dict, col: str, where: str, default: int | None = None) -> int | None:
    value = row.get(col)
    if _blank(value):
        return default
    if isinstance(value, bool):
        return int(value)
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number):
        raise ResultsFormatError(f"{where}: column '{col}': expected an integer, got {value!r}")
    return int(number)


def _float(row: dict, col: str, where: str) -> float | None:
    value = row.get(col)
    if _blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ResultsFormatError(f"{where}: column '{col}': expected a number, got {value!r}"
                                 ) from None
    return number if math.isfinite(number) else None


def _bool(value: Any) -> bool | None:
    if _blank(value):
        return None
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return None


def _samples(row: dict, where: str) -> list[int] | None:
    """samples_ns as a list of positive ints (json/jsonl list, or a string in a csv cell)."""
    value = row.get("samples_ns")
    if _blank(value):
        return None
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;\[\]]+", value) if p]
    elif isinstance(value, list):
        parts = value
    else:
        raise ResultsFormatError(
            f"{where}: column 'samples_ns': expected a list of nanoseconds, got "
            f"{value!r}")
    out = []
    for p in parts:
        try:
            ns = int(p) if not isinstance(p, float) or p.is_integer() else None
        except (TypeError, ValueError):
            ns = None
        if ns is None or ns <= 0:
            raise ResultsFormatError(
                f"{where}: column 'samples_ns': {p!r} is not a positive number "
                "of nanoseconds")
        out.append(ns)
    return out or None


def flash_attn_label(value: Any) -> str:
    """llama-bench's flash_attn in any of its forms (-1/0/1, true/false, 'auto') -> auto|on|off."""
    if _blank(value):
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    return _FLASH_ATTN.get(text, text)


def load_mode_label(row: dict) -> str:
    """load_mode (current llama-bench) or use_mmap / use_direct_io (older ones)."""
    if not _blank(row.get("load_mode")):
        return str(row["load_mode"]).strip()
    if _bool(row.get("use_direct_io")):
        return "dio"
    mmap = _bool(row.get("use_mmap"))
    if mmap is None:
        return "auto"
    return "mmap" if mmap else "none"


def parse_model_type(model_type: str | None) -> tuple[str | None, str | None]:
    """llama-bench's model_type = '<arch> <size> <file type>' -> (arch, file type label).

    'llama ?B Q4_K - Medium' -> ('llama', 'Q4_K_M'); the size part may contain spaces
    ('17Bx16E (Scout)'), so the file type is matched at the end against llama.cpp's table.
    """
    if _blank(model_type):
        return None, None
    text = " ".join(str(model_type).split())
    arch = text.split(" ", 1)[0]
    rest = text[len(arch):].strip().replace("(guessed) ", "")
    for desc in sorted(FTYPE_DESCRIPTIONS, key=len, reverse=True):
        if rest == desc or rest.endswith(" " + desc):
            return arch, FTYPE_DESCRIPTIONS[desc]
    return arch, None


def catalog_match(catalog: Any, file_name: str) -> tuple[str, str] | None:
    """(catalog id, quant) when ``file_name`` is one of the catalog's files, so an imported run
    compares with a slmbench run of the same catalog model."""
    if catalog is None:
        return None
    for entry in getattr(catalog, "models", []):
        for quant, name in (getattr(entry, "files", None) or {}).items():
            if os.path.basename(str(name)) == file_name:
                return entry.id, quant
    return None


def _default_catalog() -> Any:
    try:
        from slmbench.catalog import load_catalog

        return load_catalog()
    except Exception:  # noqa: BLE001 - the catalog only refines model ids; never fatal here
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def device_kind(first: dict) -> str:
    """Best guess of the device kind from llama-bench's own fields (overridable by --device)."""
    path = str(first.get("model_filename") or "")
    gpu = str(first.get("gpu_info") or "")
    backends = str(first.get("backends") or "")
    if any(p in path for p in _ANDROID_PATHS):
        return "android"
    if re.search(r"orin|tegra|xavier", gpu, re.I):
        return "jetson"
    if "CUDA" in backends and gpu:
        return "cuda"
    return "gpu" if gpu else "cpu"


# --------------------------------------------------------------------------- mapping

def _test_from_row(row: dict, where: str) -> tuple[TestResult, bool]:
    n_prompt = _int(row, "n_prompt", where)
    n_gen = _int(row, "n_gen", where)
    n_depth = _int(row, "n_depth", where, 0)
    if n_prompt < 0 or n_gen < 0 or n_depth < 0 or n_prompt + n_gen == 0:
        raise ResultsFormatError(f"{where}: columns 'n_prompt'={n_prompt} and 'n_gen'={n_gen}: "
                                 "expected one of them > 0 and none negative")
    if n_prompt and n_gen:
        kind, base = "pg", f"pp{n_prompt}+tg{n_gen}"
    elif n_prompt:
        kind, base = "pp", f"pp{n_prompt}"
    else:
        kind, base = "tg", f"tg{n_gen}"
    name = f"{base}@d{n_depth}" if n_depth else base
    t = TestResult(test=kind, name=name, n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth)
    tokens = n_prompt + n_gen
    samples = _samples(row, where)
    avg_ns, sd_ns = _float(row, "avg_ns", where), _float(row, "stddev_ns", where)
    avg_ts, sd_ts = _float(row, "avg_ts", where), _float(row, "stddev_ts", where)
    if samples:
        t.samples_ns = samples
        # recomputed from the ns (the file prints samples_ts with 6 significant digits only)
        t.samples_ts = [1e9 * tokens / ns for ns in samples]
        t.ms = summarize([ns / 1e6 for ns in samples])
        t.ts = summarize(t.samples_ts)
        if avg_ts is not None and not math.isclose(t.ts.mean, avg_ts, rel_tol=1e-4,
                                                    abs_tol=1e-5):
            t.warnings.append(f"{name}: avg_ts {avg_ts:g} in the file differs from the mean of "
                              f"its samples {t.ts.mean:g} (edited file?); the samples are used")
        noisy = noise_warning(f"{name} t/s", t.ts)
        if noisy:
            t.warnings.append(noisy)
        return t, True
    if avg_ns is None:
        raise ResultsFormatError(f"{where}: columns 'samples_ns' and 'avg_ns' are both missing or "
                                 "empty; one is needed (llama-bench writes avg_ns in every format, "
                                 "samples_ns in json and jsonl)")
    if avg_ts is None and avg_ns > 0:
        avg_ts = 1e9 * tokens / avg_ns  # only when the file lacks it: not llama-bench's avg_ts

    def summary(mean: float | None, sd: float | None) -> Stats | None:
        if mean is None:
            return None
        return Stats(n=0, mean=mean, median=None, stdev=sd,
                     cv_pct=100.0 * sd / mean if sd is not None and mean else None,
                     ci95_low=None, ci95_high=None, min=None, max=None)

    t.ms = summary(avg_ns / 1e6, sd_ns / 1e6 if sd_ns is not None else None)
    t.ts = summary(avg_ts, sd_ts)
    return t, False


def _settings(row: dict, where: str, n_samples: int) -> Settings:
    threads = _int(row, "n_threads", where, 0)
    ngl = _int(row, "n_gpu_layers", where, 0)
    if ngl < 0:  # llama.cpp: negative = all layers; without a GPU nothing can be offloaded
        ngl = 999 if not _blank(row.get("gpu_info")) else 0
    return Settings(
        n_threads=threads,
        n_threads_batch=_int(row, "n_threads_batch", where, threads),
        n_batch=_int(row, "n_batch", where, 2048), n_ubatch=_int(row, "n_ubatch", where, 512),
        n_ctx=0, n_gpu_layers=ngl, flash_attn=flash_attn_label(row.get("flash_attn")),
        type_k=str(row.get("type_k") or "f16").strip().lower(),
        type_v=str(row.get("type_v") or "f16").strip().lower(),
        load_mode=load_mode_label(row), repetitions=n_samples, warmup=1)


def _facts(row: dict, where: str) -> ModelFacts:
    arch, file_type = parse_model_type(row.get("model_type"))
    size = _int(row, "model_size", where)
    n_params = _int(row, "model_n_params", where)
    path = str(row["model_filename"])
    return ModelFacts(
        path=path, file_name=os.path.basename(path.replace("\\", "/")), file_size_bytes=None,
        model_size_bytes=size, n_params=n_params,
        bits_per_weight=round(8.0 * size / n_params, 4) if size and n_params else None,
        file_type=file_type, architecture=arch, name=None, n_vocab=None, n_layer=None,
        n_embd=None, n_head=None, n_head_kv=None, n_embd_head_k=None, n_embd_head_v=None,
        n_ff=None, n_ctx_train=None, sliding_window=None, n_swa_layers=None,
        kv_bytes_per_token_f16=None, kv_bytes_per_token_q8_0=None, tensor_types={})


def _key_value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value.strip()


def import_llama_bench(path: str, fmt: str | None = None, device: str | None = None, *,
                       catalog: Any = "default") -> tuple[list[Record], EnvInfo, Manifest]:
    """Read llama-bench output -> (records, env, manifest); nothing is written.

    One record per (model file, settings); one TestResult per row.  ``catalog`` (a
    slmbench.catalog.Catalog, None, or "default") turns catalog file names into catalog ids.
    """
    rows, fmt = read_rows(path, fmt)
    if catalog == "default":
        catalog = _default_catalog()
    first_where, first = rows[0]
    unknown: list[str] = []
    records: dict[tuple, Record] = {}
    for where, row in rows:
        for col in REQUIRED:
            if _blank(row.get(col)):
                raise ResultsFormatError(f"{where}: column '{col}' is missing or empty")
        for col in RUN_FIELDS:
            if _key_value(row.get(col, "")) != _key_value(first.get(col, "")):
                raise ResultsFormatError(
                    f"{where}: column '{col}' is {row.get(col)!r} but {first.get(col)!r} in "
                    f"{first_where.split(': ', 1)[1]}; one run is one device and one llama.cpp "
                    "build: split the file and import each part")
        unknown += [c for c in row if c not in KNOWN and c not in unknown]
        test, has_samples = _test_from_row(row, where)
        settings = _settings(row, where, len(test.samples_ns))
        lb_settings = {c: row[c] for c in UNMAPPED_SETTINGS if c in row}
        key = (str(row["model_filename"]), _key_value(row.get("model_type", "")),
               tuple(_key_value(row.get(c, "")) for c in SETTING_FIELDS),
               tuple(_key_value(v) for v in lb_settings.values()))
        rec = records.get(key)
        if rec is None:
            facts = _facts(row, where)
            found = catalog_match(catalog, facts.file_name)
            model_id, quant = found or (model_id_from_file(facts.path, facts.file_type),
                                        facts.file_type)
            rec = Record(
                record_id="", run_id=None, status="ok", model_id=model_id, quant=quant,
                device=None, started_at=row.get("test_time"), model=facts, settings=settings,
                source=SOURCE,
                extra={**{c: row.get(c) for c in ("build_commit", "build_number", "cpu_info",
                                                   "gpu_info", "backends") if c in row},
                       "llama_bench_settings": {**lb_settings,
                                                "n_gpu_layers": row.get("n_gpu_layers"),
                                                "flash_attn": row.get("flash_attn")},
                       "test_time": {}})
            if found:
                rec.extra["model_id_from"] = "catalog"
            records[key] = rec
        if not has_samples and CSV_WARNING not in rec.warnings:
            rec.warnings.append(CSV_WARNING)
        names = {t.name for t in rec.tests}
        if test.name in names:  # the same test twice in one config (e.g. llama-bench -p 32,32)
            k = 2
            while f"{test.name}#{k}" in names:
                k += 1
            rec.warnings.append(f"test {test.name} appears more than once; kept as "
                                f"{test.name}#{k}")
            test.name = f"{test.name}#{k}"
        rec.tests.append(test)
        rec.settings.repetitions = max(rec.settings.repetitions, len(test.samples_ns))
        rec.extra["test_time"][test.name] = row.get("test_time")
        extra_cols = {c: row[c] for c in row if c not in KNOWN}
        if extra_cols:
            bucket = rec.extra.setdefault("unknown_fields", {})
            for c, v in extra_cols.items():
                bucket.setdefault(c, {})[test.name] = v
        rec.finished_at = row.get("test_time") or rec.finished_at
    out = list(records.values())
    if unknown:
        for rec in out:
            rec.warnings.append(f"llama-bench fields this importer does not know, kept as is in "
                                f"extra.unknown_fields: {', '.join(unknown)}")
    kind = device_kind(first)
    label = device or f"{SOURCE}-{_slug(str(first.get('cpu_info') or 'device')) or 'device'}"
    for rec in out:
        rec.device = label
        payload = {"model": rec.model.path, "settings": asdict(rec.settings),
                   "llama_bench": rec.extra["llama_bench_settings"],
                   "tests": [t.name for t in rec.tests], "build": rec.extra.get("build_commit")}
        rec.record_id = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str)
                                       .encode()).hexdigest()[:16]
    backends = [b.strip() for b in str(first.get("backends") or "").split(",") if b.strip()]
    info = first.get("cpu_info") or None
    env = EnvInfo(
        source=SOURCE, gpu=first.get("gpu_info") or None, cpu=CPUInfo(model=info),
        device=DeviceProfile(kind=kind, label=label, model=info, cpu_model=info,
                             gpu=first.get("gpu_info") or None, imported=True),
        llama_cpp=LlamaInfo(build_commit=first.get("build_commit"),
                            build_number=first.get("build_number"), backends=backends))
    times = [r.get("test_time") for _, r in rows if r.get("test_time")]
    manifest = Manifest(source=SOURCE, imported_from=os.path.abspath(path), format=fmt,
                        imported_at=utc_now(), started_at=min(times) if times else None,
                        finished_at=max(times) if times else None, status="finished",
                        n_rows=len(rows))
    return out, env, manifest


def write_imported_run(records: list[Record], env: EnvInfo, manifest: Manifest,
                       out_dir: str) -> str:
    """Write a normal run directory (results.jsonl, env.json, manifest.json); never overwrite."""
    if os.path.exists(os.path.join(out_dir, "results.jsonl")):
        raise ResultsFormatError(f"{out_dir}: already holds a run; choose another -o directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ResultsFormatError(f"{out_dir}: cannot create the run directory ({exc.strerror})"
                                 ) from None
    run_id = os.path.basename(os.path.normpath(out_dir))
    write_json_atomic(os.path.join(out_dir, "env.json"), env)
    manifest.run_id = run_id
    write_json_atomic(os.path.join(out_dir, "manifest.json"), manifest)
    for rec in records:
        rec.run_id = run_id
        append_record(out_dir, rec)
    return out_dir


def default_out_dir(results: str = "results") -> str:
    return os.path.join(results, new_run_id("imported"))


def n_tests(records: list[Record]) -> int:
    return sum(len(r.tests) for r in records)


def summary_rows(records: list[Record]) -> list[dict]:
    """One line per config for the CLI: tests with their mean t/s (samples' mean or avg_ts)."""
    out = []
    for rec in records:
        s = rec.settings
        out.append({
            "model_id": rec.model_id, "quant": rec.quant, "n_threads": s.n_threads,
            "n_gpu_layers": s.n_gpu_layers, "type_k": s.type_k, "type_v": s.type_v,
            "tests": {t.name: {"mean_ts": t.ts.mean if t.ts else None,
                               "n": len(t.samples_ns)} for t in rec.tests},
            "warnings": list(rec.warnings) + [w for t in rec.tests for w in t.warnings],
        })
    return out
