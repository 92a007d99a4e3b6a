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
import datetime as _dt
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from slmbench.config import Settings  # noqa: F401 - part of the schema (Record.settings)
from slmbench.config import doc_field as _f
from slmbench.errors import ResultsFormatError

SCHEMA_VERSION = 4


def utc_now() -> str:
    """The schema's time stamps: ISO-8601 UTC to the second (``started_at``, ...)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
class SensorSummary:
    """What the sensors saw during one test's window (slmbench.sensors; null when unread)."""

    window_s: float | None = _f("length of the window: warm-up + timed repetitions", unit="s")
    n_samples: int | None = _f("sensor samples inside the window (all sources)")
    sample_interval_s: float | None = _f("median time between samples", unit="s")
    power_source: str | None = _f("source of avg_power_w / energy_j: a tegrastats/jtop rail, "
                                  "'rapl' (CPU package) or 'battery'")
    avg_power_w: float | None = _f("average power over the window", unit="W")
    energy_j: float | None = _f("energy over the window", unit="J")
    j_per_token: float | None = _f("energy per token, all tokens (timed work only)", unit="J")
    j_per_prefill_token: float | None = _f("energy per prompt token", unit="J")
    j_per_decode_token: float | None = _f("energy per generated token", unit="J")
    power_sources: dict[str, Any] = _f(
        "every readable power source: energy_j, covered_s, avg_power_w (and rail / zones)",
        factory=dict)
    temp_max_c: float | None = _f("hottest valid temperature in the window", unit="C")
    temp_max_sensor: str | None = _f("the sensor that read temp_max_c")
    temp_start_c: float | None = _f("hottest temperature at the window's start", unit="C")
    cpu_mhz_min: float | None = _f("slowest clock of the fastest core after 0.5 s", unit="MHz")
    cpu_mhz_max: float | None = _f("fastest clock of the fastest core after 0.5 s", unit="MHz")
    gpu_mhz_min: float | None = _f("slowest GPU clock", unit="MHz")
    gpu_mhz_max: float | None = _f("fastest GPU clock", unit="MHz")
    latency_drift_pct: float | None = _f("token latency drift (as TestResult.drift_pct)",
                                         unit="%")
    throttled: bool = _f("a throttle rule fired (clock drop, hot sensor, latency drift)", False)
    throttle_reasons: list[str] = _f("why, one sentence per rule that fired", factory=list)
    temp_threshold_c: float | None = _f("temperature treated as throttling", unit="C")
    error: str | None = _f("why the summary could not be computed (the measurement stands)")
    errors: list[str] = _f("sensors that failed while sampling", factory=list)


@dataclass
class QualityMetrics:
    """A quality test's numbers (llama-perplexity's method; slmbench.quality)."""

    nll: float | None = _f("mean negative log-likelihood per scored token", unit="nats")
    nll_sum: float | None = _f("total negative log-likelihood", unit="nats")
    ppl: float | None = _f("perplexity = exp(nll)")
    ppl_err: float | None = _f("standard error of the perplexity (llama-perplexity's)")
    bits_per_byte: float | None = _f("NLL in bits / UTF-8 bytes scored: comparable across "
                                     "tokenizers", unit="bits")
    n_tokens: int | None = _f("tokens scored (the second half of every window)")
    n_bytes: int | None = _f("UTF-8 bytes of the scored tokens", unit="bytes")
    n_windows: int | None = _f("windows of n_ctx tokens scored")
    n_ctx: int | None = _f("window size (llama-perplexity -c)")
    kl_mean: float | None = _f("with a reference: mean KL divergence reference -> model, per "
                               "token", unit="nats")
    kl_mean_err: float | None = _f("standard error of kl_mean", unit="nats")
    kl_median: float | None = _f("median per-token KL divergence", unit="nats")
    kl_p90: float | None = _f("90th percentile per-token KL divergence", unit="nats")
    kl_p99: float | None = _f("99th percentile per-token KL divergence", unit="nats")
    kl_max: float | None = _f("largest per-token KL divergence", unit="nats")
    top1_pct: float | None = _f("tokens whose most likely next token equals the reference's",
                                unit="%")
    top1_err: float | None = _f("standard error of top1_pct", unit="%")
    rms_dp_pct: float | None = _f("RMS of the change in the probability of the correct token",
                                  unit="%")
    ref_ppl: float | None = _f("the reference's perplexity on the same tokens")
    ref_ppl_err: float | None = _f("its standard error")
    delta_ppl: float | None = _f("ppl - ref_ppl")
    delta_ppl_err: float | None = _f("standard error of delta_ppl (paired: same tokens)")
    ppl_ratio: float | None = _f("ppl / ref_ppl")
    window_nll: list[float] | None = _f(
        "mean NLL per scored token of each window, in order (every window scores the same "
        "number of tokens): two records on the same corpus, n_ctx and tokens pair window by "
        "window (compare, recommend)", unit="nats")
    window_ref_nll: list[float] | None = _f("with a reference: its window_nll on the same "
                                            "windows", unit="nats")
    window_kl: list[float] | None = _f("with a reference: mean KL divergence of each window",
                                       unit="nats")


@dataclass
class SustainWindow:
    """One window of a sustained run (slmbench.sustained): the workload's speed, latency and
    the sensors in that stretch of time.  An event (a prefill, a generated token) belongs to
    the window its end falls in; speeds divide tokens by the time spent inside timed
    llama.cpp calls, like llama-bench's t/s."""

    index: int = _f("position; 0 is the burst window")
    t_start_s: float = _f("start, seconds after the workload started", unit="s")
    t_end_s: float = _f("end (nominal edge; the last window may be shorter)", unit="s")
    complete: bool = _f("the window ran to its end (false: the run stopped inside it; such a "
                        "window is kept but left out of the summary)", True)
    n_iterations: int = _f("workload iterations (prefill and/or generation) that ended here", 0)
    n_prefill_tokens: int = _f("prompt tokens of the prefills that ended here", 0)
    prefill_s: float = _f("time inside those prefills", 0.0, unit="s")
    prefill_ts: float | None = _f("n_prefill_tokens / prefill_s", unit="tokens/s")
    n_decode_tokens: int = _f("tokens generated one by one that ended here", 0)
    decode_s: float = _f("time inside those single-token decodes", 0.0, unit="s")
    decode_ts: float | None = _f("n_decode_tokens / decode_s", unit="tokens/s")
    ts: float | None = _f("the workload's speed: decode_ts for tg and chat, prefill_ts for pp",
                          unit="tokens/s")
    busy_pct: float | None = _f("share of the window spent inside timed llama.cpp calls "
                                "(the rest: clearing the KV cache, Python, window bookkeeping)",
                                unit="%")
    token_ms_p50: float | None = _f("median latency of the tokens generated here", unit="ms")
    token_ms_p90: float | None = _f("90th percentile latency of the tokens generated here",
                                    unit="ms")
    temp_c: float | None = _f("mean over the window's samples of the hottest valid sensor",
                              unit="C")
    temp_cpu_c: float | None = _f("same, CPU sensors only (names with cpu, core, pkg, package, "
                                  "soc, tj, tctl, tdie)", unit="C")
    temp_gpu_c: float | None = _f("same, GPU sensors only (names with gpu)", unit="C")
    cpu_mhz: float | None = _f("median clock of the fastest core over the window", unit="MHz")
    gpu_mhz: float | None = _f("median GPU clock (tegrastats / jtop)", unit="MHz")
    sensors: SensorSummary | None = _f("the window's full sensor summary (power, energy per "
                                       "token, throttle flags); null without sensors")


@dataclass
class SustainedSpeed:
    """One speed series of a sustained run (decode or prefill tokens/s per complete window),
    summarised."""

    metric: str = _f("'decode' or 'prefill'")
    n_windows: int = _f("complete windows with a speed", 0)
    burst_ts: float | None = _f("the first window's speed", unit="tokens/s")
    sustained_ts: float | None = _f("median speed of the sustained part: the last "
                                    "sustained_windows windows", unit="tokens/s")
    sustained_windows: int = _f("windows in the sustained part: the last 20 %, at least 3 "
                                "(all of them when there are fewer)", 0)
    retained_pct: float | None = _f("100 x sustained_ts / burst_ts", unit="%")
    below_90_s: float | None = _f("the drop: start of the first window slower than 90 % of "
                                  "the burst speed whose next window is slower too (a lone "
                                  "dip that recovers at once is noise); null = never", unit="s")
    below_90_window: int | None = _f("index of that window; null = never")
    n_below_90: int = _f("complete windows slower than 90 % of the burst speed, lone dips "
                         "included", 0)
    cv_pct: float | None = _f("window-to-window coefficient of variation of the speed",
                              unit="%")
    min_ts: float | None = _f("slowest window", unit="tokens/s")
    max_ts: float | None = _f("fastest window", unit="tokens/s")


@dataclass
class SustainedResult:
    """A sustained-performance test (`slmbench sustain`, suite key `sustained:`): one workload
    run back to back for a duration on one model load, measured window by window."""

    workload: str = _f("'tgN' (generate N tokens), 'ppN' (prefill N tokens) or 'chat:P/G' "
                       "(prefill P tokens, then generate G), each repeated on a cleared KV cache")
    n_prompt: int = _f("prompt tokens per iteration", 0)
    n_gen: int = _f("generated tokens per iteration", 0)
    duration_s: float = _f("duration asked for", 0.0, unit="s")
    window_s: float = _f("window length", 0.0, unit="s")
    elapsed_s: float | None = _f("workload start to stop", unit="s")
    stop_reason: str = _f("'duration' (ran its course), 'interrupted' (Ctrl-C / SIGTERM), "
                          "'killed' (no final record: recovered from the windows file) or "
                          "'error'", "duration")
    error: str | None = _f("what stopped it, for 'error'")
    n_iterations: int = _f("workload iterations completed", 0)
    start_cool_c: float | None = _f("asked to start below this temperature", unit="C")
    cool_wait_s: float | None = _f("seconds spent waiting to cool down", unit="s")
    start_temp_c: float | None = _f("hottest valid temperature right before the workload",
                                    unit="C")
    notes: list[str] = _f("e.g. no temperature sensor, still hot after the cooling timeout",
                          factory=list)
    primary: str = _f("the series the headline numbers use: 'decode' (tg, chat) or 'prefill' "
                      "(pp)", "decode")
    decode: SustainedSpeed | None = _f("decode tokens/s over the windows (tg, chat)")
    prefill: SustainedSpeed | None = _f("prefill tokens/s over the windows (pp, chat)")
    temp_first_c: float | None = _f("first window's temp_c", unit="C")
    temp_last_c: float | None = _f("last complete window's temp_c", unit="C")
    cpu_mhz_first: float | None = _f("first window's cpu_mhz", unit="MHz")
    cpu_mhz_last: float | None = _f("last complete window's cpu_mhz", unit="MHz")
    gpu_mhz_first: float | None = _f("first window's gpu_mhz", unit="MHz")
    gpu_mhz_last: float | None = _f("last complete window's gpu_mhz", unit="MHz")
    j_per_token_first: float | None = _f("energy per token in the first window", unit="J")
    j_per_token_last: float | None = _f("energy per token in the last complete window",
                                        unit="J")
    throttled_windows: int = _f("windows whose sensors flagged throttling", 0)
    windows_file: str | None = _f("the windows as written while running (one JSON line each, "
                                  "fsynced), relative to the run directory")
    windows: list[SustainWindow] = _f("every window, in order", factory=list)


@dataclass
class OperatorClassTime:
    """One operator class of a profile: its time per token, share and weight traffic."""

    op_class: str = _f("'matmul' (against weights), 'output' (the vocabulary projection), "
                       "'attention' (QK / KV matmuls, softmax, flash attention, recurrent "
                       "mixers), 'kv_copy', 'norm', 'rope', 'elementwise', 'embedding' "
                       "(GET_ROWS of the token embeddings), 'other', 'noise' (what nodes took "
                       "above their median evaluation: other processes, page faults, late "
                       "wake-ups) or 'unattributed' (inside llama_decode but outside every "
                       "graph node: graph build, inputs, outputs)")
    weight_type: str | None = _f("matmul / output: ggml type of the weights (Q4_K, Q8_0, F16 ...)")
    ms: float = _f("time per token: the sum of its nodes' median evaluation time x "
                   "evaluations, over all samples, per token", 0.0, unit="ms")
    pct: float = _f("share of the profiled total (the rows of a profile sum to 100)", 0.0,
                    unit="%")
    n_nodes: int = _f("timed graph nodes of this class per graph (a fused or grouped node "
                      "counts once)", 0)
    weight_bytes: float | None = _f("matmul / output / embedding: bytes of weights read per "
                                    "token (per graph for prefill, divided by its tokens)",
                                    unit="bytes")
    gbs: float | None = _f("weight bytes / time: the bandwidth these nodes achieved", unit="GB/s")

    @property
    def label(self) -> str:
        return f"{self.op_class} {self.weight_type}" if self.weight_type else self.op_class


@dataclass
class LayerTime:
    """One transformer block of a profile (layer = the ``-N`` suffix of llama.cpp's node names)."""

    layer: int | None = _f("block index; null for nodes outside the blocks (embedding, final "
                           "norm, output projection)")
    ms: float = _f("time per token", 0.0, unit="ms")
    pct: float = _f("share of the profiled total", 0.0, unit="%")
    classes: dict[str, float] = _f("time per token by class label ('matmul Q4_K', "
                                   "'attention' ...)", factory=dict, unit="ms")


@dataclass
class NodeTime:
    """One of the most expensive graph nodes of a profile."""

    name: str = _f("ggml tensor name (llama.cpp's, e.g. 'ffn_up-3', 'result_output')")
    op: str = _f("ggml_op_desc of the node ('MUL_MAT', 'GELU' ...); 'A+B' for a node group "
                 "computed together (RMS_NORM+MUL is fused by the CPU backend)")
    op_class: str = _f("its class label (OperatorClassTime.label)")
    layer: int | None = _f("block index, null outside the blocks")
    ms: float = _f("time per token", 0.0, unit="ms")
    pct: float = _f("share of the profiled total", 0.0, unit="%")
    shape: list[int] = _f("ne of the node's result (trailing 1s dropped)", factory=list)
    weight_type: str | None = _f("type of the weights it reads, if any")
    weight_bytes: int | None = _f("bytes of weights it reads per evaluation", unit="bytes")


@dataclass
class OperatorProfile:
    """Where the time of one phase goes, node by node inside llama.cpp's scheduler
    (slmbench.profile, docs/profile.md).

    Every graph node is timed between the scheduler's evaluation callbacks (views computed with
    the next node); the same test runs without the callback on a second context in the same
    process, interleaved, for the cost of observing.  Times are per token over all samples:
    profiled = nodes + callbacks + unattributed exactly, and nodes = the classes (each node's
    median evaluation x evaluations) + noise.
    """

    phase: str = _f("'prefill' (n_prompt tokens in one llama_decode per n_batch) or 'decode' "
                    "(one token per llama_decode)")
    n_tokens: int = _f("tokens per sample: n_prompt (prefill) or n_gen (decode)", 0)
    n_samples: int = _f("samples (repetitions) of each of the profiled and unprofiled runs", 0)
    profiled_ms: float = _f("wall time per token with the callback (llama_decode + sync)", 0.0,
                            unit="ms")
    unprofiled_ms: float = _f("wall time per token without it, same process and inputs", 0.0,
                              unit="ms")
    overhead_pct: float = _f("median profiled sample / median unprofiled sample - 1", 0.0,
                             unit="%")
    total_ms: float = _f("profiled total per token = profiled_ms - callback_ms: the "
                         "denominator of every share", 0.0, unit="ms")
    nodes_ms: float = _f("sum of the node times per token (every evaluation)", 0.0, unit="ms")
    noise_ms: float = _f("nodes_ms - the sum of the classes: what nodes took above their "
                         "median evaluation", 0.0, unit="ms")
    callback_ms: float = _f("time in the observer's own callbacks between nodes (Python), "
                            "measured, per token", 0.0, unit="ms")
    unattributed_ms: float = _f("total - nodes: llama_decode's work outside the graph nodes "
                                "(graph build, inputs, outputs)", 0.0, unit="ms")
    coverage_pct: float = _f("nodes / total: how much of the profiled time the nodes explain",
                             0.0, unit="%")
    dispatch_us: float | None = _f(
        "estimated extra cost per timed node of computing the graph in pieces (thread-pool "
        "wake-up, barrier, synchronise): (median profiled sample - its callbacks - median "
        "unprofiled sample) / timed nodes per sample", unit="us")
    n_graph_nodes: int = _f("nodes in one graph (views included)", 0)
    n_timed_nodes: int = _f("nodes timed per graph (views and fused norms go with the next)", 0)
    n_graphs: int = _f("graphs computed per sample (one per ubatch)", 0)
    classes: list[OperatorClassTime] = _f("time per operator class, unattributed included",
                                          factory=list)
    layers: list[LayerTime] = _f("time per block", factory=list)
    top_nodes: list[NodeTime] = _f("the most expensive nodes", factory=list)
    backends: dict[str, float] = _f("node time per token by backend buffer (CPU, CUDA0 ...)",
                                    factory=dict, unit="ms")
    profiled_samples_ns: list[int] = _f("wall time of each profiled sample", factory=list,
                                        unit="ns")
    unprofiled_samples_ns: list[int] = _f("wall time of each unprofiled sample", factory=list,
                                          unit="ns")
    bandwidth_gbs: float | None = _f("the bandwidth probe at bandwidth_threads, when known",
                                     unit="GB/s")
    bandwidth_threads: int | None = _f("thread count of that probe figure")
    llc_bytes: int | None = _f("the machine's last-level cache (from the probe): weights that "
                               "fit in it can be read faster than the probe's DRAM figure",
                               unit="bytes")
    notes: list[str] = _f("how to read this profile (GPU backends, fusions ...)", factory=list)


@dataclass
class TestResult:
    """One test (pp / tg / ttft) of one config: every raw sample and its summary."""

    __test__ = False  # not a pytest test class despite the name

    test: str = _f("'pp' (prefill), 'tg' (decode), 'ttft' (prefill + first greedy token), "
                   "'quality', 'sustained' or 'profile'")
    name: str = _f("label, e.g. 'pp64', 'tg32@d512', 'ttft64', 'sustained:tg128:600s/10s', "
                   "'profile-tg32'")
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
    stop_reason: str | None = _f(
        "why the repetitions stopped: 'fixed' (the count), or with -r auto 'target' (CI "
        "within target_ci_pct), 'max_repetitions' or 'max_time'")
    ci_half_pct: float | None = _f("-r auto: the 95% CI half-width of the mean wall time "
                                   "reached, as % of the mean", unit="%")
    other_cpu_cores: float | None = _f(
        "CPU other processes (and the hypervisor, as steal) used while the test ran, in "
        "cores' worth (1.0 = one core busy the whole time); 0.25 or more beyond the cores the "
        "test's threads left free adds a warning: the machine was busy and the test slower "
        "than the device can do. Null: unreadable, a "
        "window under 0.5 s, or a record older than schema 4", unit="cores")
    perf: list[PerfCounters] = _f("llama.cpp internal timers per repetition", factory=list)
    sensors: SensorSummary | None = _f(
        "sensor summary during the test (temperatures, clocks, power, energy per token, "
        "throttled flag); null when the machine has no sensor or sensors are off")
    metrics: QualityMetrics | None = _f("quality tests only: perplexity, bits per byte, KL")
    sustained: SustainedResult | None = _f(
        "sustained tests only: the windows and the burst / sustained / retained summary; "
        "samples_ts then holds the primary speed of every complete window")
    profile: OperatorProfile | None = _f("profile tests only: where the time goes, by operator "
                                         "class, block and node")
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
class MemoryEstimate:
    """The runner's memory prediction before a config is loaded (slmbench.memory)."""

    model_mib: float = _f("weights", unit="MiB")
    repacked_mib: float | None = _f(
        "weights the CPU backend holds a second time in a repacked layout (Q4_0, Q4_K, ... "
        "by architecture: slmbench.memory.REPACKED_TYPES; 0 with GPU layers; null in "
        "records before schema 3, whose total left them out)", unit="MiB")
    kv_mib: float = _f("analytic KV cache", unit="MiB")
    compute_mib: float = _f("compute buffer (generous)", unit="MiB")
    overhead_mib: float = _f("runtime, Python, logits", unit="MiB")
    total_mib: float = _f("the sum; more than the available RAM = the config is skipped",
                          unit="MiB")


@dataclass
class WorkerInfo:
    """The isolated process that measured a config."""

    exit_code: int | None = _f("its exit code (negative: killed by that signal)")
    wall_s: float | None = _f("start to exit", unit="s")
    start_ms: float | None = _f("start to ready (imports, llama.cpp initialisation)", unit="ms")
    start_method: str | None = _f("'fork' (from the pre-imported fork server) or 'spawn'")
    server_start_ms: float | None = _f("the config that started the fork server (once a "
                                       "sweep): how long that took", unit="ms")
    stderr_tail: list[str] = _f("its last stderr lines when it failed", factory=list)


@dataclass
class QualityInput:
    """What a quality record scored (slmbench.quality)."""

    corpus: str | None = _f("file name of the text")
    corpus_bytes: int | None = _f("its size", unit="bytes")
    corpus_sha256: str | None = _f("its SHA-256: records compare only on the same text")
    bundled: bool | None = _f("the bundled Pride and Prejudice excerpt")
    reference: str | None = _f("file name of the KL reference, if any")
    n_threads: int | None = _f("threads used (do not change the numbers)")


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
    config_index: int | None = _f("position of the config in its suite")
    model_source: str | None = _f("where the model came from: 'catalog' (downloaded), 'file' "
                                  "(local path) or 'synthetic'")
    reference_path: str | None = _f("quality configs: local path of the KL reference file")
    memory_estimate: MemoryEstimate | None = _f("the runner's prediction before loading")
    worker: WorkerInfo | None = _f("the worker process that measured the config")
    quality_input: QualityInput | None = _f("quality records: the corpus and the reference")
    traceback: str | None = _f("an internal error's traceback (a bug: please report it)")
    extra: dict[str, Any] = _f(
        "anything else worth keeping: an import's llama-bench columns (build_commit, "
        "llama_bench_settings, test_time, unknown_fields), keys a newer slmbench wrote",
        factory=dict)


# --------------------------------------------------------------------------- env.json

@dataclass
class OSInfo:
    """The operating system."""

    system: str | None = _f("platform.system(), e.g. Linux")
    release: str | None = _f("kernel release")
    version: str | None = _f("kernel build string")
    machine: str | None = _f("x86_64, aarch64 ...")


@dataclass
class CPUInfo:
    """The CPU when the run started."""

    model: str | None = _f("CPU name (/proc/cpuinfo)")
    physical_cores: int | None = _f("physical cores")
    logical_cores: int | None = _f("hardware threads")
    governor: str | None = _f("cpufreq scaling governor(s)")
    cur_mhz_min: float | None = _f("slowest core clock when the run started", unit="MHz")
    cur_mhz_max: float | None = _f("fastest core clock when the run started", unit="MHz")
    max_mhz: float | None = _f("maximum clock where known", unit="MHz")


@dataclass
class MemInfo:
    """RAM when the run started."""

    total_mib: float | None = _f("installed RAM", unit="MiB")
    available_mib: float | None = _f("available when the run started", unit="MiB")


@dataclass
class LlamaInfo:
    """llama.cpp as built into llama-cpp-python (or as an imported run names it)."""

    system_info: str | None = _f("llama_print_system_info(): features and backends")
    backends: list[str] = _f("backends named in it (CPU, CUDA ...)", factory=list)
    gpu_offload: bool | None = _f("llama_supports_gpu_offload()")
    build: str | int | None = _f("llama.cpp build number or commit, where known")
    build_commit: str | None = _f("llama.cpp commit (imported runs)")
    build_number: int | str | None = _f("llama.cpp build number (imported runs)")
    error: str | None = _f("why llama.cpp could not be asked")


@dataclass
class DeviceProfile:
    """The device (slmbench.devices.device_profile): plain CPU, Jetson, Android, CUDA PC, Mac."""

    kind: str = _f("'cpu', 'jetson', 'android', 'cuda' or 'mac'", "cpu")
    label: str | None = _f("short label used to group results, e.g. cpu-x86-64, "
                           "jetson-orin-nx-16gb")
    model: str | None = _f("board / phone / computer model")
    soc: str | None = _f("system on chip")
    os: str | None = _f("OS name and version")
    kernel: str | None = _f("kernel release")
    machine: str | None = _f("CPU architecture")
    platform: str | None = _f("platform.system()")
    cpu_model: str | None = _f("CPU name")
    unified_memory: bool = _f("the GPU shares the RAM (Jetson, Apple): memory is accounted "
                              "system-wide", False)
    gpu: Any = _f("the (first) GPU: name, memory, driver ... or a name")
    gpus: list[Any] | None = _f("every GPU when there are several")
    power_mode: str | None = _f("Jetson nvpmodel mode")
    jetpack: str | None = _f("Jetson JetPack version")
    l4t: str | None = _f("Jetson L4T release")
    imported: bool | None = _f("true for a device described by an imported llama-bench run")
    errors: list[str] = _f("what could not be read", factory=list)
    extra: dict[str, Any] = _f("other facts (Android properties, CUDA versions ...)",
                               factory=dict)


@dataclass
class BandwidthPoint:
    """The probe's read bandwidth at one thread count (slmbench.bandwidth)."""

    n_threads: int = _f("threads reading at once, each a disjoint slice of the array")
    read_gbs: float = _f("best pass of the faster kernel", unit="GB/s")
    kernel: str | None = _f("the kernel that gave read_gbs ('memchr' or 'numpy-max')")
    kernels_gbs: dict[str, float] = _f("best pass of every kernel tried", factory=dict,
                                       unit="GB/s")
    passes: int | None = _f("passes per kernel (fewer than asked once the time budget is spent)")


@dataclass
class Bandwidth:
    """Memory-bandwidth probe for the decode roofline (slmbench.bandwidth).

    Version-1 runs hold only ``read_gbs`` (numpy float64 sum, one thread, 128 MiB) and
    ``copy_gbs``; runs since hold a figure per thread count (``threads``) and the cache sizes.
    """

    read_gbs: float | None = _f("read bandwidth at the largest thread count probed (version-1 "
                                "runs: one thread)", unit="GB/s")
    copy_gbs: float | None = _f("copy bandwidth (bytes read + written; version-1 runs only)",
                                unit="GB/s")
    method: str | None = _f("how it was measured")
    threads: list[BandwidthPoint] = _f("read bandwidth per thread count of the run",
                                       factory=list)
    array_mib: float | None = _f("size of the array read", unit="MiB")
    kernels: list[str] = _f("read kernels tried", factory=list)
    cache_bytes: dict[str, int] = _f("cache sizes by level, e.g. {'L2': 2097152, 'L3': ...} "
                                     "(largest over CPUs, from sysfs)", factory=dict,
                                     unit="bytes")
    llc_bytes: int | None = _f("last-level cache size", unit="bytes")
    touch_ms: float | None = _f("time to allocate the array's pages once", unit="ms")
    probe_ms: float | None = _f("the whole probe's time", unit="ms")
    error: str | None = _f("why the probe failed")
    extra: dict[str, Any] = _f("further probe figures", factory=dict)

    def at_threads(self, n_threads: int | None) -> tuple[float | None, int | None]:
        """(read GB/s, thread count probed) for a record's thread count: the point at that
        count, else the nearest count probed; version-1 probes answer (read_gbs, 1)."""
        if self.threads:
            if not n_threads:
                point = self.threads[-1]
            else:
                point = min(self.threads, key=lambda p: (abs(p.n_threads - n_threads),
                                                         -p.n_threads))
            return point.read_gbs, point.n_threads
        return self.read_gbs, (1 if self.read_gbs else None)


@dataclass
class EnvInfo:
    """env.json: the machine a run was measured on, captured once per run (slmbench.envinfo)."""

    hostname: str | None = _f("host name")
    os: OSInfo | None = _f("operating system")
    cpu: CPUInfo | None = _f("CPU")
    memory: MemInfo | None = _f("RAM")
    versions: dict[str, str | None] = _f("python, slmbench, llama_cpp_python, huggingface_hub, "
                                         "gguf, numpy, pandas versions", factory=dict)
    llama_cpp: LlamaInfo | None = _f("llama.cpp's own view")
    python_executable: str | None = _f("the interpreter")
    device: DeviceProfile | None = _f("the device profile")
    bandwidth: Bandwidth | None = _f("the bandwidth probe (runs that measure speed)")
    gpu: Any = _f("imported runs: llama-bench's gpu_info")
    source: str | None = _f("'llama-bench' for an imported run")
    extra: dict[str, Any] = _f("keys this version does not know", factory=dict)

    @property
    def device_label(self) -> str | None:
        return self.device.label if self.device else None

    @property
    def bandwidth_gbs(self) -> float | None:
        return self.bandwidth.read_gbs if self.bandwidth else None


# --------------------------------------------------------------------------- manifest.json

@dataclass
class ConfigEntry:
    """One config of the run's suite."""

    index: int = _f("position in the suite")
    record_id: str = _f("the record it produces")
    model_id: str | None = _f("model")
    quant: str | None = _f("quantization")
    label: str | None = _f("what the progress line shows")


@dataclass
class Manifest:
    """manifest.json: what was run, when, by which command (slmbench.runner, importers)."""

    schema_version: int = _f("results schema version the run was written with",
                             SCHEMA_VERSION)
    run_id: str | None = _f("run directory name")
    status: str | None = _f("'running', 'finished' or 'interrupted'")
    started_at: str | None = _f("ISO-8601 UTC start")
    updated_at: str | None = _f("last write")
    finished_at: str | None = _f("ISO-8601 UTC end")
    command: list[str] = _f("the command line", factory=list)
    cwd: str | None = _f("its working directory")
    slmbench_version: str | None = _f("slmbench version")
    suite_file: str | None = _f("the suite file")
    suite_yaml: str | None = _f("the suite file as written (comments included)")
    suite: dict[str, Any] | None = _f("the suite as data, overrides applied (what --resume "
                                      "reads back)")
    n_configs: int | None = _f("configs in the suite")
    configs: list[ConfigEntry] = _f("every config", factory=list)
    resumes: list[dict[str, Any]] = _f("each --resume: at, command", factory=list)
    versions: dict[str, str | None] = _f("package versions (as env.json)", factory=dict)
    source: str | None = _f("imports: 'llama-bench'")
    imported_from: str | None = _f("imports: the file")
    format: str | None = _f("imports: json, jsonl or csv")
    imported_at: str | None = _f("imports: when")
    n_rows: int | None = _f("imports: rows read")
    extra: dict[str, Any] = _f("keys this version does not know", factory=dict)


# --------------------------------------------------------------------------- (de)serialisation

def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain JSON-able dict (NaN/inf become null; empty ``extra`` dropped)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "extra" and not value and not isinstance(obj, Record):
                continue
            out[f.name] = to_dict(value)
        return out
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    return json.dumps(to_dict(obj), **kwargs)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.lru_cache(maxsize=None)
def _collections(cls: type) -> frozenset[str]:
    """Fields with a default factory (lists, dicts): a null in the file means empty."""
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.default_factory is not dataclasses.MISSING)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a type hint names (``X``, ``X | None``), or None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union,
                                                                 types.UnionType) else ():
        if dataclasses.is_dataclass(arg):
            return arg
    return None


class FieldTypeError(TypeError):
    """A field of a results file whose value is not of the schema's type (from_dict with
    ``check``): ``keys`` is the path to it, names and list indices (``["tests", 0, "ms"]``,
    shown as ``tests[0].ms``)."""

    def __init__(self, keys: list[str | int], value: Any, expected: str):
        self.keys = keys
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        super().__init__(f"{where} is {shown}, expected {expected}")


# a scalar field's type -> the JSON values that are that type (a number may be written as an
# int or a float; bool is an int in Python and in older files)
_SCALARS: dict[Any, tuple[type, ...]] = {float: (int, float), int: (int, float), str: (str,),
                                         bool: (bool, int)}


def _optional(tp: Any) -> bool:
    return (typing.get_origin(tp) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(tp))


def _convert(tp: Any, value: Any, check: list[str | int] | None = None,
             nulls: bool = True) -> Any:
    """``value`` as type ``tp``; with ``check`` (the keys leading to it) a value that cannot
    be ``tp`` raises FieldTypeError - and with ``nulls`` False so does a null where ``tp`` is
    not optional - else it is kept as it is."""
    if value is None:
        if check is not None and not nulls and tp is not Any and not _optional(tp):
            raise FieldTypeError(check, None, "a value (not null)")
        return None
    cls = _dataclass_in(tp)
    if cls is not None:
        if isinstance(value, dict):
            return from_dict(cls, value, check, nulls)
        if check is not None:
            raise FieldTypeError(check, value, "an object")
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, check, nulls) if len(inner) == 1 else value
    if origin is list and args and isinstance(value, list):
        return [_convert(args[0], v, None if check is None else [*check, i], nulls)
                for i, v in enumerate(value)]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _convert(args[1], v, None if check is None else [*check, str(k)], nulls)
                for k, v in value.items()}
    if check is not None:
        want = (list if origin is list else dict if origin is dict else tp)
        if want in (list, dict) and not isinstance(value, want):
            raise FieldTypeError(check, value, "a list" if want is list else "an object")
        if want in _SCALARS and not isinstance(value, _SCALARS[want]):
            raise FieldTypeError(check, value, "a number" if want in (int, float) else
                                 want.__name__)
    return value


def from_dict(cls: type, data: dict[str, Any] | None, check: list[str | int] | None = None,
              nulls: bool = True) -> Any:
    """Plain dict -> dataclass tree, guided by the type hints.  Keys a class does not know go
    to its ``extra`` dict where it has one (nothing a newer writer added is lost), else are
    dropped.  With ``check`` (a list: the keys leading to ``data``, [] at the top) a value
    of the wrong type raises FieldTypeError naming its path; without, it is kept as it is.
    ``nulls`` False (with ``check``): a null where the type is not optional raises too - for
    files whose every figure is used in arithmetic (a device probe); results files keep
    nulls readable (importers write them for figures they do not know).  A null collection
    reads as empty either way."""
    if data is None:
        return None
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints or key.startswith("_"):
            unknown[key] = value
        elif value is not None or key not in _collections(cls):
            kwargs[key] = _convert(hints[key], value, None if check is None else [*check, key],
                                   nulls)
    obj = cls(**kwargs)
    if unknown and "extra" in hints:
        obj.extra = {**(obj.extra or {}), **unknown}
    return obj


def from_dict_lenient(cls: type, data: dict[str, Any], where: str) -> Any:
    """from_dict of a file's object where a field of the wrong type is dropped with a
    one-line warning naming the file and the field (what the rest says is kept)."""
    from slmbench.errors import warn

    data = json.loads(json.dumps(data))  # a copy to prune
    for _ in range(100):
        try:
            return from_dict(cls, data, [])
        except FieldTypeError as exc:
            warn(f"{where}: {exc}; ignored (the file was damaged or hand-edited)")
            holder: Any = data
            for key in exc.keys[:-1]:
                holder = holder[key]
            del holder[exc.keys[-1]]
    return from_dict(cls, data)


# --------------------------------------------------------------------------- versions

def _update_to_2(rec: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: the runner's bookkeeping moved from ``extra`` to typed fields
    (worker, memory_estimate, config_index, model_source, reference_path, quality_input,
    traceback); ``extra.path`` duplicated ``model.path`` and is dropped when that is set."""
    if not isinstance(rec.get("extra") or {}, dict):
        return rec  # damaged: from_dict names the field
    extra = dict(rec.get("extra") or {})
    for old, new in (("worker", "worker"), ("memory_estimate", "memory_estimate"),
                     ("config_index", "config_index"), ("model_source", "model_source"),
                     ("reference_path", "reference_path"), ("quality", "quality_input"),
                     ("traceback", "traceback")):
        if old in extra and new not in rec:
            rec[new] = extra.pop(old)
    model = rec.get("model")
    if extra.get("path") and isinstance(model, dict) and model.get("path") == extra["path"]:
        extra.pop("path")
    rec["extra"] = extra
    return rec


def _update_to_3(rec: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: ``memory_estimate.repacked_mib`` is new (the runner's estimate counts
    the repacked copies of weights); a version-2 estimate did not, so it stays null there and
    its total is what it was."""
    return rec


# version N -> the function that turns a version-N record into a version N+1 record
def _update_to_4(rec: dict[str, Any]) -> dict[str, Any]:
    """Version 3 -> 4: ``TestResult.other_cpu_cores`` is new (how busy the machine was);
    a version-3 test did not measure it, so it stays null."""
    return rec


_UPDATES = {1: _update_to_2, 2: _update_to_3, 3: _update_to_4}


def upgrade_record(data: dict[str, Any], where: str = "record") -> dict[str, Any]:
    """A record dict of any version this slmbench reads, migrated to SCHEMA_VERSION.

    A newer version is refused with a one-line error (asv's load_json(api_version) with
    update_to_N is the model): its meaning may have changed in ways this code cannot know.
    """
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ResultsFormatError(f"{where}: schema_version {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise ResultsFormatError(
            f"{where}: written by a newer slmbench (results schema {version}; this one reads "
            f"up to {SCHEMA_VERSION}); upgrade slmbench (pip install -U slmbench) to read it")
    while version < SCHEMA_VERSION:
        data = _UPDATES[version](dict(data))
        version += 1
        data["schema_version"] = version
    return data


def record_from_dict(data: dict[str, Any], where: str = "record") -> Record:
    """A Record from a dict of any version this slmbench reads; a field of the wrong type
    raises FieldTypeError (a TypeError) naming it."""
    return from_dict(Record, upgrade_record(data, where), [])


def record_from_json(line: str) -> Record:
    return record_from_dict(json.loads(line))


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
        "`quality_input` names the corpus (file, sha256), the reference file and the threads.",
        "",
        "## Versions",
        "",
        "Every record carries `schema_version`; `manifest.json` carries the version the run "
        "was written with. Readers migrate older records on load "
        "(`slmbench.schema.upgrade_record`) and refuse a newer version with a one-line error "
        "(upgrade slmbench to read it). Every field is checked against its type below as it "
        "is read: a record with a field of the wrong type (a hand-edited or damaged line) is "
        "skipped with one warning naming `file:line` and the field (`tests[0].ms.median is "
        "'fast', expected a number`), a malformed line likewise; a damaged field of `env.json` "
        "or `manifest.json` is dropped with one warning and the rest read.",
        "",
        "- **4**: `TestResult.other_cpu_cores`: the CPU other processes used while a test "
        "ran (a busy machine gets a warning; a test slowed by it looks steady); version-3 "
        "tests did not measure it (null there).",
        "- **3**: `MemoryEstimate.repacked_mib`: the runner's fits-in-RAM estimate counts the "
        "weights llama.cpp's CPU backend copies into a repacked layout (Q4_0 and Q4_K on "
        "x86 with AVX2; most 4-8-bit types on ARM), which stay resident next to the mapped "
        "file; version-2 estimates left them out (null there).",
        "- **2**: the runner's bookkeeping has typed fields instead of `extra` keys "
        "(`worker`, `memory_estimate`, `config_index`, `model_source`, `reference_path`, "
        "`quality_input` (was `extra.quality`), `traceback`); `TestResult.sensors` and "
        "`TestResult.metrics` are typed (`SensorSummary`, `QualityMetrics`); `env.json` and "
        "`manifest.json` are documented below (`EnvInfo`, `Manifest`); the bandwidth probe "
        "reads with each thread count of the run (`Bandwidth.threads`) over twice the "
        "last-level cache and records the cache sizes (version-1 `env.json` files, one "
        "thread and `read_gbs` only, still read).",
        "- **1**: the first version.",
        "",
    ]
    for cls in (Record, ModelFacts, Settings, LoadResult, Memory, Buffer, KVProjection,
                TestResult, Stats, PerfCounters, SensorSummary, QualityMetrics, SustainedResult,
                SustainedSpeed, SustainWindow, OperatorProfile, OperatorClassTime, LayerTime,
                NodeTime, MemoryEstimate,
                WorkerInfo, QualityInput, EnvInfo, OSInfo, CPUInfo, MemInfo, LlamaInfo,
                DeviceProfile, Bandwidth, BandwidthPoint, Manifest, ConfigEntry):
        out += [f"## {cls.__name__}", "", (cls.__doc__ or "").strip(), "",
                "| field | unit | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            unit = f.metadata.get("unit") or ""
            out.append(f"| `{f.name}` | {unit} | {f.metadata.get('doc', '')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown())
