"""The results schema: the one place that defines what runner, analyzer and comparer exchange.

A run directory ``results/<run-id>/`` holds ``results.jsonl`` (one :class:`Record` per line),
``env.json`` (an :class:`slmbench.envinfo` dict) and ``manifest.json``.  Every field below carries
its unit in its name where it has one (``_ms``, ``_ns``, ``_mib``, ``_bytes``, ``_pct``, ``_ts`` =
tokens per second) and a doc string in its metadata; ``docs/results-schema.md`` is generated from
this module (``python -m slmbench.schema``), so the two cannot drift.

Change it deliberately: bump :data:`SCHEMA_VERSION` when a field changes meaning or unit, and
keep readers accepting the older versions.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from slmbench.config import Settings, TestPlan  # noqa: F401 - part of the schema
from slmbench.config import doc_field as _f

SCHEMA_VERSION = 1


@dataclass
class Stats:
    """Summary of repeated samples of one quantity (one value per repetition)."""

    n: int = _f("number of samples")
    mean: float = _f("arithmetic mean")
    median: float = _f("median")
    stdev: float = _f("sample standard deviation (n - 1 in the denominator, like llama-bench)")
    cv_pct: float = _f("coefficient of variation = stdev / mean", unit="%")
    ci95_low: float = _f("lower end of the 95% confidence interval of the mean (Student t)")
    ci95_high: float = _f("upper end of the 95% confidence interval of the mean (Student t)")
    min: float = _f("smallest sample")
    max: float = _f("largest sample")


@dataclass
class PerfCounters:
    """llama.cpp's own timers (``llama_perf_context``) for one repetition.

    llama.cpp counts a decode of exactly one token as "eval" and a larger batch as "prompt eval".
    """

    t_p_eval_ms: float = _f("llama.cpp prompt-eval time", unit="ms")
    n_p_eval: int = _f("tokens llama.cpp counted as prompt eval")
    t_eval_ms: float = _f("llama.cpp eval time (single-token decodes)", unit="ms")
    n_eval: int = _f("single-token decodes llama.cpp counted")


@dataclass
class TestResult:
    """One test (pp / tg / ttft) of one config: every raw sample and its summary."""

    __test__ = False  # not a pytest test class despite the name

    test: str = _f("'pp' (prefill), 'tg' (decode) or 'ttft' (prefill + first greedy token)")
    name: str = _f("label, e.g. 'pp64', 'tg32@d512', 'ttft64'")
    n_prompt: int = _f("prompt tokens evaluated in the timed region (pp, ttft)", 0)
    n_gen: int = _f("tokens generated one by one in the timed region (tg; 1 for ttft)", 0)
    n_depth: int = _f("tokens already in the KV cache before the timed region (untimed fill)", 0)
    samples_ns: list[int] = _f("wall time of each repetition", factory=list, unit="ns")
    samples_ts: list[float] = _f(
        "tokens/s of each repetition = 1e9 * (n_prompt + n_gen) / ns (llama-bench's t/s)",
        factory=list, unit="tokens/s")
    ms: Stats | None = _f("summary of the per-repetition wall time", unit="ms")
    ts: Stats | None = _f(
        "summary of per-repetition tokens/s; ts.mean equals llama-bench's avg_ts", unit="tokens/s")
    token_ms: list[list[float]] | None = _f(
        "tg only: latency of every generated token, one list per repetition", unit="ms")
    token_ms_median: float | None = _f("tg: median per-token latency over all tokens", unit="ms")
    token_ms_p90: float | None = _f("tg: 90th percentile per-token latency", unit="ms")
    token_ms_p99: float | None = _f("tg: 99th percentile per-token latency", unit="ms")
    drift_pct: float | None = _f(
        "tg: median latency of the last quarter of tokens vs the first quarter, over all "
        "repetitions (positive = slowing down, e.g. thermal throttling)", unit="%")
    perf: list[PerfCounters] = _f("llama.cpp internal timers per repetition", factory=list)
    sensors: dict[str, Any] | None = _f(
        "sensor summary during the test (temperatures, clocks, power, energy per token, "
        "throttled flag); see slmbench.sensors")
    metrics: dict[str, float] | None = _f(
        "quality tests only: ppl, nll, bits_per_byte, kl_mean, kl_p99, top1_pct, delta_ppl ...")
    warnings: list[str] = _f("e.g. 'CV 7.2% > 5%: noisy machine'", factory=list)


@dataclass
class ModelFacts:
    """Facts about the GGUF file, read from its header (see slmbench.gguf_info)."""

    path: str = _f("path of the GGUF file measured")
    file_name: str = _f("base name of the file")
    file_size_bytes: int = _f("size of the file", unit="bytes")
    model_size_bytes: int = _f("bytes of all tensors (llama-bench's model_size)", unit="bytes")
    n_params: int = _f("parameters = elements of all tensors (llama_model_n_params)")
    bits_per_weight: float = _f("8 * model_size_bytes / n_params", unit="bits")
    file_type: str = _f("llama.cpp file type, e.g. Q4_K_M, Q8_0, F16")
    architecture: str = _f("general.architecture, e.g. llama, gemma3, qwen2")
    name: str | None = _f("general.name")
    n_vocab: int = _f("vocabulary size")
    n_layer: int = _f("transformer blocks")
    n_embd: int = _f("hidden size")
    n_head: int = _f("attention heads")
    n_head_kv: int = _f("KV heads (max over layers when they differ)")
    n_embd_head_k: int = _f("key head dimension")
    n_embd_head_v: int = _f("value head dimension")
    n_ff: int | None = _f("feed-forward size (max over layers)")
    n_ctx_train: int = _f("training context length")
    sliding_window: int | None = _f("sliding-window size of SWA layers, null when none")
    n_swa_layers: int = _f("layers that use the sliding window", 0)
    kv_bytes_per_token_f16: int = _f("analytic KV cache bytes per token of context, f16 cache",
                                     unit="bytes")
    kv_bytes_per_token_q8_0: float = _f("analytic KV cache bytes per token, q8_0 cache",
                                        unit="bytes")
    tensor_types: dict[str, int] = _f("tensor count per ggml type, e.g. {'Q4_K': 120}",
                                      factory=dict)


@dataclass
class LoadResult:
    load_ms: float = _f("llama_model_load_from_file wall time", unit="ms")
    ctx_ms: float = _f("llama_init_from_model (context creation) wall time", unit="ms")
    rss_before_load_mib: float = _f("resident memory of the process before loading", unit="MiB")
    rss_after_load_mib: float = _f("resident memory after the model load", unit="MiB")
    rss_after_ctx_mib: float = _f("resident memory after context creation", unit="MiB")


@dataclass
class Buffer:
    """One llama.cpp allocation, as logged by llama.cpp (reserved size, not resident size)."""

    kind: str = _f("'model', 'kv', 'compute' or 'output'")
    device: str = _f("llama.cpp buffer type, e.g. CPU, CPU_Mapped, CUDA0, CUDA_Host")
    mib: float = _f("size", unit="MiB")


@dataclass
class KVProjection:
    """Analytic KV share projected to longer contexts (weights + compute + other held fixed)."""

    n_ctx_train: int = _f("the model's training context")
    kv_mib_at_train_ctx: float = _f("analytic KV at the training context", unit="MiB")
    kv_share_at_train_ctx: float = _f("KV / total memory at the training context (0-1)")
    ctx_kv_share_50: int | None = _f("smallest context where KV passes 50% of memory (null if "
                                     "not reached within 1M tokens)")
    ctx_kv_share_80: int | None = _f("smallest context where KV passes 80% of memory")


@dataclass
class Memory:
    """Memory breakdown at the configured context: llama.cpp's buffers and process RSS."""

    n_ctx: int = _f("actual context size of the llama.cpp context (llama_n_ctx)")
    buffers: list[Buffer] = _f("every buffer llama.cpp logged", factory=list)
    model_mib: float = _f("sum of model (weights) buffers", unit="MiB")
    kv_mib: float = _f("sum of KV cache buffers (all caches)", unit="MiB")
    compute_mib: float = _f("sum of compute buffers (reserved)", unit="MiB")
    output_mib: float = _f("sum of output (logits) buffers", unit="MiB")
    peak_rss_mib: float = _f(
        "highest resident memory seen by the >=100 Hz sampler (paused inside timed regions, "
        "which are bracketed by samples; see hwm_rss_mib)", unit="MiB")
    hwm_rss_mib: float | None = _f("kernel high-water mark of resident memory (VmHWM)",
                                   unit="MiB")
    other_mib: float = _f(
        "max(0, max(peak_rss, hwm_rss) - model - kv - compute - output): runtime, "
        "libraries, Python", unit="MiB")
    reserved_not_resident_mib: float = _f(
        "max(0, buffers - peak resident): reserved buffer pages never touched (e.g. a compute "
        "buffer sized for a full batch that never ran)", unit="MiB")
    kv_share: float = _f("kv / (model + kv + compute + other), 0-1")
    kv_analytic_mib: float | None = _f("KV size from GGUF facts for this n_ctx and cache types",
                                       unit="MiB")
    kv_analytic_error_pct: float | None = _f("(analytic - reported) / reported", unit="%")
    projection: KVProjection | None = _f("KV share projected to the training context")
    rss_sample_hz: float | None = _f(
        "achieved sampling rate of the RSS sampler while not paused", unit="Hz")
    mem_available_drop_mib: float | None = _f(
        "system-wide: MemAvailable before the model load minus its minimum during the "
        "config (/proc/meminfo); includes other processes' activity", unit="MiB")
    accounting: str = _f(
        "'process' (RSS: CPU devices) or 'system' (unified-memory devices such as Jetson, "
        "where GPU buffers are not in the process RSS: other_mib is then based on "
        "mem_available_drop_mib)", "process")


@dataclass
class Record:
    """One measured (or failed, or skipped) model config: a line of results.jsonl."""

    schema_version: int = _f("version of this schema", SCHEMA_VERSION)
    record_id: str = _f("stable hash of (model file, settings, tests): the resume key")
    run_id: str | None = _f("run directory name")
    status: str = _f("'ok', 'failed' or 'skipped'", "ok")
    reason: str | None = _f("why it failed or was skipped (one line)")
    model_id: str | None = _f(
        "catalog id, or for a local file its name without the quant (and split) suffix: "
        "x-Q4_K_M.gguf -> x, so the quantizations of one model group together")
    quant: str | None = _f("quantization label (catalog key or GGUF file type)")
    device: str | None = _f("device label from env.json (e.g. 'cpu', 'jetson-orin-nx', 'android')")
    started_at: str | None = _f("ISO-8601 UTC time the config started")
    finished_at: str | None = _f("ISO-8601 UTC time the config finished")
    model: ModelFacts | None = _f("facts of the GGUF file")
    settings: Settings | None = _f("the settings measured")
    load: LoadResult | None = _f("load timings and RSS")
    memory: Memory | None = _f("memory breakdown and KV share")
    tests: list[TestResult] = _f("every test of this config", factory=list)
    warnings: list[str] = _f("config-level warnings", factory=list)
    source: str = _f("'slmbench' or 'llama-bench' (imported)", "slmbench")
    extra: dict[str, Any] = _f("anything else worth keeping (e.g. llama-bench build_commit)",
                               factory=dict)


# --------------------------------------------------------------------------- (de)serialisation

def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain JSON-able dict (NaN/inf become null)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    return json.dumps(to_dict(obj), **kwargs)


_NESTED = {
    ("TestResult", "ms"): Stats, ("TestResult", "ts"): Stats,
    ("Memory", "projection"): KVProjection,
    ("Record", "model"): ModelFacts, ("Record", "settings"): Settings,
    ("Record", "load"): LoadResult, ("Record", "memory"): Memory,
}
_NESTED_LISTS = {
    ("TestResult", "perf"): PerfCounters, ("Memory", "buffers"): Buffer,
    ("Record", "tests"): TestResult,
}


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Plain dict -> dataclass tree; unknown keys go to ``extra`` on Record, else are dropped."""
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            unknown[key] = value
            continue
        sub = _NESTED.get((cls.__name__, key))
        sub_list = _NESTED_LISTS.get((cls.__name__, key))
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif sub_list is not None and isinstance(value, list):
            value = [from_dict(sub_list, v) if isinstance(v, dict) else v for v in value]
        kwargs[key] = value
    obj = cls(**kwargs)
    if unknown and cls is Record:
        obj.extra = {**obj.extra, **unknown}
    return obj


def record_from_json(line: str) -> Record:
    return from_dict(Record, json.loads(line))


# --------------------------------------------------------------------------- documentation

def schema_markdown() -> str:
    """Markdown documentation of every record type (written to docs/results-schema.md)."""
    out = [
        "# Results schema (version %d)" % SCHEMA_VERSION,
        "",
        "Generated from `slmbench/schema.py` by `python -m slmbench.schema`; do not edit by hand.",
        "A run directory `results/<run-id>/` holds `results.jsonl` (one `Record` per line, "
        "appended and fsynced as each config finishes), `env.json` and `manifest.json`.",
        "",
        "Two kinds of record share this schema. A **timing** record has `load`, `memory` and "
        "pp / ttft / tg tests. A **quality** record (from `slmbench quality --results` or a "
        "suite's `quality:` key) has one test `quality@<n_ctx>` whose `metrics` hold "
        "perplexity, bits per byte and the KL statistics; its `settings` carry only what "
        "changes those numbers (`n_ctx`, `n_batch`, `n_ubatch`, `prompt: text`), and "
        "`extra.quality` names the corpus (file, sha256), the reference file and the threads.",
        "",
    ]
    for cls in (Record, ModelFacts, Settings, LoadResult, Memory, Buffer, KVProjection,
                TestResult, Stats, PerfCounters):
        out += [f"## {cls.__name__}", "", (cls.__doc__ or "").strip(), "",
                "| field | unit | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            unit = f.metadata.get("unit") or ""
            out.append(f"| `{f.name}` | {unit} | {f.metadata.get('doc', '')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown())
