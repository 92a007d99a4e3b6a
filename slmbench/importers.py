"""Import llama-bench output (-o json | jsonl | csv) as a slmbench run.

A phone or board that can only run llama.cpp's own binary (over adb, in Termux) still produces
numbers worth analysing; once imported they are records like any other, so analyze, report and
compare work on them.  json and jsonl carry every raw sample (samples_ns / samples_ts); csv only
carries avg/stddev, which is kept as a summary with n = 0 and said in the record's warnings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

from slmbench.errors import SlmbenchError
from slmbench.results import append_record, new_run_id, utc_now, write_json_atomic
from slmbench.schema import ModelFacts, Record, Settings, Stats, TestResult
from slmbench.stats import summarize

REQUIRED = ("model_filename", "n_prompt", "n_gen")
KNOWN = {
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename",
    "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads",
    "cpu_mask", "cpu_strict", "poll", "type_k", "type_v", "n_gpu_layers", "n_cpu_moe",
    "split_mode", "main_gpu", "no_kv_offload", "flash_attn", "devices", "tensor_split",
    "tensor_buft_overrides", "load_mode", "lazy_mode", "embeddings", "no_op_offload", "no_host",
    "repack", "fit_target", "fit_min_ctx", "n_prompt", "n_gen", "n_depth", "test_time",
    "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts", "use_mmap",
    "use_direct_io",
}
SETTING_FIELDS = ("n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers",
                  "flash_attn", "load_mode", "use_mmap")
# llama.cpp's file type descriptions (llama_model_ftype_name) -> quant labels
_FTYPE_SUFFIX = {" - Medium": "_M", " - Small": "_S", " - Large": "_L"}


def detect_format(text: str, path: str) -> str:
    head = text.lstrip()[:200]
    if head.startswith("["):
        return "json"
    if head.startswith("{"):
        return "jsonl"
    if head.startswith("|"):
        raise SlmbenchError(f"{path}: llama-bench markdown output has no raw samples and cannot "
                            "be imported; rerun llama-bench with -o json (or jsonl, csv)")
    if "model_filename" in head.splitlines()[0] if head else False:
        return "csv"
    raise SlmbenchError(f"{path}: not llama-bench output (expected -o json, jsonl or csv)")


def read_rows(path: str, fmt: str | None = None) -> tuple[list[dict], str]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SlmbenchError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SlmbenchError(f"{path}: not a text file; expected llama-bench -o json output")
    fmt = fmt or detect_format(text, path)
    try:
        if fmt == "json":
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise SlmbenchError(f"{path}: expected a JSON array of llama-bench results")
        elif fmt == "jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
        else:
            raise SlmbenchError(f"unknown format {fmt!r} (json, jsonl or csv)")
    except json.JSONDecodeError as exc:
        raise SlmbenchError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not rows:
        raise SlmbenchError(f"{path}: no results in the file")
    return rows, fmt


def _num(value: Any, kind: type = float) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip()
        if value.lower() in ("true", "false"):
            return kind(value.lower() == "true")
    return kind(float(value)) if kind is int else kind(value)


def _flash_attn(value: Any) -> str:
    text = str(value).strip().lower()
    return {"-1": "auto", "auto": "auto", "0": "off", "false": "off", "off": "off",
            "disabled": "off", "1": "on", "true": "on", "on": "on",
            "enabled": "on"}.get(text, text)


def parse_model_type(model_type: str | None) -> tuple[str | None, str | None]:
    """'llama ?B Q4_K - Medium' -> ('llama', 'Q4_K_M')."""
    if not model_type:
        return None, None
    parts = model_type.split(" ", 2)
    arch = parts[0] if parts else None
    desc = parts[2] if len(parts) == 3 else None
    if desc is None:
        return arch, None
    if desc.startswith("all "):
        desc = desc[4:]
    for suffix, label in _FTYPE_SUFFIX.items():
        if desc.endswith(suffix):
            desc = desc[: -len(suffix)] + label
    return arch, desc.replace(" ", "_").upper()


def model_id_from_file(filename: str, quant: str | None) -> str:
    stem = os.path.splitext(os.path.basename(filename))[0]
    if quant:
        stem = re.sub(rf"[-._]{re.escape(quant)}$", "", stem, flags=re.IGNORECASE)
    return stem


def _test_from_row(row: dict, where: str) -> tuple[TestResult, bool]:
    n_prompt, n_gen = _num(row["n_prompt"], int), _num(row["n_gen"], int)
    n_depth = _num(row.get("n_depth"), int) or 0
    if n_prompt and n_gen:
        kind, base = "pg", f"pp{n_prompt}+tg{n_gen}"
    elif n_prompt:
        kind, base = "pp", f"pp{n_prompt}"
    else:
        kind, base = "tg", f"tg{n_gen}"
    name = f"{base}@d{n_depth}" if n_depth else base
    t = TestResult(test=kind, name=name, n_prompt=n_prompt or 0, n_gen=n_gen or 0,
                   n_depth=n_depth)
    samples = row.get("samples_ns")
    if isinstance(samples, str):
        samples = [int(x) for x in re.findall(r"\d+", samples)]
    if samples:
        t.samples_ns = [int(x) for x in samples]
        tokens = (n_prompt or 0) + (n_gen or 0)
        t.samples_ts = [1e9 * tokens / ns for ns in t.samples_ns]
        t.ms = summarize([ns / 1e6 for ns in t.samples_ns])
        t.ts = summarize(t.samples_ts)
        return t, True
    avg_ns, sd_ns = _num(row.get("avg_ns")), _num(row.get("stddev_ns"))
    avg_ts, sd_ts = _num(row.get("avg_ts")), _num(row.get("stddev_ts"))
    if avg_ns is None and avg_ts is None:
        raise SlmbenchError(f"{where}: neither samples_ns nor avg_ns/avg_ts present")

    def summary(mean, sd):
        if mean is None:
            return None
        return Stats(n=0, mean=mean, median=None, stdev=sd,
                     cv_pct=100 * sd / mean if sd is not None and mean else None,
                     ci95_low=None, ci95_high=None, min=None, max=None)

    t.ms = summary(avg_ns / 1e6 if avg_ns is not None else None,
                   sd_ns / 1e6 if sd_ns is not None else None)
    t.ts = summary(avg_ts, sd_ts)
    return t, False


def import_llama_bench(path: str, fmt: str | None = None, device: str | None = None
                       ) -> tuple[list[Record], dict, dict]:
    rows, fmt = read_rows(path, fmt)
    unknown: set[str] = set()
    records: dict[tuple, Record] = {}
    first = rows[0]
    for i, row in enumerate(rows, 1):
        where = f"{path}: {'line' if fmt == 'jsonl' else 'row'} {i}"
        if not isinstance(row, dict):
            raise SlmbenchError(f"{where}: expected an object")
        for col in REQUIRED:
            if row.get(col) in (None, ""):
                raise SlmbenchError(f"{where}: missing column '{col}'")
        unknown |= set(row) - KNOWN
        try:
            test, has_samples = _test_from_row(row, where)
            settings = Settings(
                n_threads=_num(row.get("n_threads"), int) or 0,
                n_threads_batch=_num(row.get("n_threads"), int) or 0,
                n_batch=_num(row.get("n_batch"), int) or 2048,
                n_ubatch=_num(row.get("n_ubatch"), int) or 512, n_ctx=0,
                n_gpu_layers=_num(row.get("n_gpu_layers"), int) or 0,
                flash_attn=_flash_attn(row.get("flash_attn", "auto")),
                type_k=str(row.get("type_k") or "f16"), type_v=str(row.get("type_v") or "f16"),
                load_mode=str(row.get("load_mode") or "auto"),
                repetitions=len(test.samples_ns) or 0, warmup=1)
        except (ValueError, TypeError) as exc:
            raise SlmbenchError(f"{where}: bad value ({exc})") from None
        key = (row["model_filename"],) + tuple(str(row.get(k)) for k in SETTING_FIELDS)
        rec = records.get(key)
        if rec is None:
            arch, quant = parse_model_type(row.get("model_type"))
            n_params = _num(row.get("model_n_params"), int)
            size = _num(row.get("model_size"), int)
            facts = ModelFacts(
                path=row["model_filename"], file_name=os.path.basename(row["model_filename"]),
                file_size_bytes=None, model_size_bytes=size, n_params=n_params,
                bits_per_weight=round(8.0 * size / n_params, 4) if size and n_params else None,
                file_type=quant, architecture=arch, name=None, n_vocab=None, n_layer=None,
                n_embd=None, n_head=None, n_head_kv=None, n_embd_head_k=None,
                n_embd_head_v=None, n_ff=None, n_ctx_train=None)
            rec = Record(record_id=f"lb-{len(records):04d}", run_id=None, status="ok",
                         model_id=model_id_from_file(row["model_filename"], quant), quant=quant,
                         device=device, started_at=row.get("test_time"), model=facts,
                         settings=settings, source="llama-bench",
                         extra={k: row.get(k) for k in ("build_commit", "build_number",
                                                        "cpu_info", "gpu_info", "backends")})
            records[key] = rec
        if not has_samples and not any("no raw samples" in w for w in rec.warnings):
            rec.warnings.append("imported from llama-bench csv: no raw samples, only avg and "
                                "stddev (n = 0 in the summaries); compare needs json/jsonl")
        rec.tests.append(test)
        rec.finished_at = row.get("test_time")
    out = list(records.values())
    if unknown:
        for rec in out:
            rec.warnings.append(f"llama-bench fields not mapped, kept as is: "
                                f"{', '.join(sorted(unknown))}")
    label = device or "llama-bench-" + re.sub(r"[^a-z0-9]+", "-",
                                              str(first.get("cpu_info") or "device").lower()
                                              ).strip("-")[:40]
    for rec in out:
        rec.device = label
    env = {"source": "llama-bench", "device": {"kind": "imported", "label": label},
           "cpu": {"model": first.get("cpu_info")}, "gpu": first.get("gpu_info") or None,
           "llama_cpp": {"build_commit": first.get("build_commit"),
                         "build_number": first.get("build_number"),
                         "backends": first.get("backends")}}
    manifest = {"source": "llama-bench", "imported_from": os.path.abspath(path), "format": fmt,
                "imported_at": utc_now(), "started_at": first.get("test_time"),
                "status": "finished"}
    return out, env, manifest


def write_imported_run(records: list[Record], env: dict, manifest: dict, out_dir: str) -> str:
    if os.path.exists(os.path.join(out_dir, "results.jsonl")):
        raise SlmbenchError(f"{out_dir}: already holds a run; choose another -o directory")
    os.makedirs(out_dir, exist_ok=True)
    run_id = os.path.basename(os.path.normpath(out_dir))
    for rec in records:
        rec.run_id = run_id
        append_record(out_dir, rec)
    write_json_atomic(os.path.join(out_dir, "env.json"), env)
    write_json_atomic(os.path.join(out_dir, "manifest.json"), {**manifest, "run_id": run_id})
    return out_dir


def default_out_dir(results: str = "results") -> str:
    return os.path.join(results, new_run_id("imported"))


def n_tests(records: list[Record]) -> int:
    return sum(len(r.tests) for r in records)
