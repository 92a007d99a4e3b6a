"""What a measurement is configured by: one table of fields, and everything derived from it.

:data:`FIELDS` is the single home of every setting a user can give: its suite key (which is also
the ``argparse`` dest), its kind, its default, its help text and its command-line flags.  From
it come the :class:`Settings` and :class:`TestPlan` defaults, the suite keys and their
coercion, the ``bench`` / ``run`` flags and their ``--help`` (llama-bench's
``cmd_params_defaults`` serves its parser and its usage text the same way), the flags that
reproduce a set of overrides (for a remote run), and the one :func:`check` that validates
values, whether they came from a YAML suite, the command line or the Python API.

This module depends on nothing of slmbench but :mod:`slmbench.errors`; the results schema
imports :class:`Settings` from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from slmbench.errors import ConfigError

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
LOAD_MODES = {"auto": -1, "none": 0, "mmap": 1, "mlock": 2, "mmap+mlock": 3, "dio": 4}
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
PROMPTS = ("random", "text")


def doc_field(doc: str, default: Any = None, *, factory: Any = None,
              unit: str | None = None) -> Any:
    """A dataclass field with its documentation (and unit) attached as metadata."""
    meta = {"doc": doc, "unit": unit}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Field:
    """One user-facing setting.

    kind: ``int``, ``float``, ``ofloat`` (a number or null), ``bool``, ``str``, ``ints`` /
    ``strs`` (a value or a list: swept or listed), or ``special`` (parsed by the suite module:
    models, quality).  ``flags`` are the command-line spellings (none: suite only);
    ``commands`` the sub-commands that offer them.
    """

    key: str
    kind: str
    default: Any
    help: str
    flags: tuple[str, ...] = ()
    group: str = "tests"
    low: float | None = None
    choices: tuple[str, ...] | None = None
    commands: tuple[str, ...] = ("bench", "run")
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The flag named in messages (the long spelling)."""
        return self.flags[-1] if self.flags else self.key


TESTS, LLAMA, SWEEP, WHAT = "tests", "llama.cpp settings", "the sweep", "what to measure"
MEASURING = ("bench", "run", "profile")  # the llama.cpp settings every measuring command takes
AUTO_MIN_REPS = 3  # -r auto never stops before this many repetitions

FIELDS: tuple[Field, ...] = (
    Field("name", "str", None, "name of the suite (default: the file name)", commands=()),
    Field("description", "str", "", "what the suite is for", commands=()),
    Field("models", "special", None, "catalog ids (optionally id:QUANT) or local GGUF files",
          ("--models",), WHAT, commands=("run",), metavar="ID[:QUANT],PATH.gguf,..."),
    Field("quants", "strs", [], "quantizations, e.g. Q8_0,Q4_K_M", ("--quants",), WHAT,
          commands=("run",), metavar="Q[,Q...]"),
    Field("n_prompt", "ints", [512], "prompt lengths for prefill and TTFT tests",
          ("-p", "--n-prompt"), TESTS, low=0, metavar="N[,N...]"),
    Field("n_gen", "ints", [128], "generation lengths for decode tests (0 = none)",
          ("-n", "--n-gen"), TESTS, low=0, metavar="M[,M...]"),
    Field("n_depth", "ints", [0], "context depths: tokens already in the KV cache",
          ("-d", "--n-depth"), TESTS, low=0, metavar="D[,D...]"),
    Field("ttft", "bool", True, "time-to-first-token tests beside prefill", ("--no-ttft",),
          TESTS),
    Field("repetitions", "reps", 5,
          "timed repetitions per test, or 'auto': repeat until the 95%% CI of the mean is "
          "within --target-ci (at least 3; at most --max-reps / --max-time)",
          ("-r", "--repetitions"), TESTS, low=1, metavar="N|auto"),
    Field("target_ci", "float", 2.0,
          "-r auto: stop when the 95%% CI half-width of the mean time is within this %% of "
          "the mean", ("--target-ci",), TESTS, low=0, metavar="PCT"),
    Field("max_reps", "int", 30, "-r auto: at most this many repetitions per test",
          ("--max-reps",), TESTS, low=3),
    Field("max_time_s", "float", 60.0,
          "-r auto: no new repetition after this many seconds of a test",
          ("--max-time",), TESTS, low=0, metavar="S"),
    Field("warmup", "int", 1, "untimed warm-up runs per test", ("--warmup",), TESTS, low=0,
          commands=MEASURING),
    Field("prompt", "str", "random",
          "prompt tokens: random ids like llama-bench, or a real English text",
          ("--prompt",), TESTS, choices=PROMPTS),
    Field("seed", "int", 42, "seed of the random prompt tokens", ("--seed",), TESTS,
          commands=MEASURING),
    Field("threads", "ints", [0], "threads (0 = physical cores, like llama-bench)",
          ("-t", "--threads"), LLAMA, low=0, metavar="T[,T...]", commands=MEASURING),
    Field("threads_batch", "int", 0, "threads for prompt processing (0 = --threads)",
          ("--threads-batch",), LLAMA, low=0, commands=MEASURING),
    Field("n_gpu_layers", "ints", [0], "layers offloaded to the GPU (999 = all)",
          ("-ngl", "--n-gpu-layers"), LLAMA, low=0, metavar="L[,L...]",
          commands=MEASURING),
    Field("cache_type", "strs", None,
          "KV cache types, each TYPE (K and V) or K/V, e.g. f16,q8_0 (default f16)",
          ("--cache-type",), LLAMA, metavar="TYPE[,TYPE...]", commands=MEASURING),
    Field("type_k", "strs", None, "KV cache types for keys (crossed with -ctv)",
          ("-ctk", "--cache-type-k"), LLAMA, metavar="TYPE[,TYPE...]", commands=MEASURING),
    Field("type_v", "strs", None, "KV cache types for values", ("-ctv", "--cache-type-v"),
          LLAMA, metavar="TYPE[,TYPE...]", commands=MEASURING),
    Field("flash_attn", "strs", ["auto"], "flash attention", ("-fa", "--flash-attn"), LLAMA,
          choices=tuple(FLASH_ATTN), metavar="auto|on|off[,...]", commands=MEASURING),
    Field("n_ctx", "int", 0, "context size (0 = the longest test: prompt + gen + depth)",
          ("--n-ctx",), LLAMA, low=0, commands=MEASURING),
    Field("n_batch", "int", 2048, "logical batch size", ("-b", "--batch-size"), LLAMA, low=1,
          commands=MEASURING),
    Field("n_ubatch", "int", 512, "physical batch size", ("-ub", "--ubatch-size"), LLAMA,
          low=1, commands=MEASURING),
    Field("load_mode", "str", "auto", "how llama.cpp loads the weights", ("--load-mode",),
          LLAMA, choices=tuple(LOAD_MODES), commands=MEASURING),
    Field("swa_full", "bool", False,
          "full-size KV cache for sliding-window layers (off like llama-bench)",
          ("--swa-full",), LLAMA, commands=MEASURING),
    Field("cooldown_s", "float", 0.0, "seconds of rest between tests", ("--cooldown",), SWEEP,
          low=0, commands=("run",), metavar="S"),
    Field("max_temp_c", "ofloat", None,
          "wait before each test until the CPU is cooler than C degrees", ("--max-temp",),
          SWEEP, commands=("run",), metavar="C"),
    Field("timeout_s", "float", 3600.0, "seconds a config may take before its worker is killed",
          ("--timeout",), SWEEP, low=0, commands=("run",), metavar="S"),
    Field("quality", "special", None,
          "perplexity / bits per byte (and KL vs a reference) of every model file",
          ("--quality",), WHAT, commands=("run",)),
    Field("sustained", "special", None,
          "a sustained-performance config per model file: true, or a mapping of duration, "
          "window, workload (tgN, ppN, chat:P/G), start_cool, start_cool_timeout "
          "(`slmbench sustain` runs one)", group=WHAT, commands=()),
    Field("workloads", "strs", [],
          "workload presets (autocomplete, chat, summarize, rag) or P/G: adds the tests of "
          "their end-to-end latency (ttftP and tgG@dP)", ("--workload",), TESTS,
          metavar="NAME[,NAME...]"),
    Field("targets", "special", None,
          "pass/fail targets (a YAML file or mapping, docs/recommend.md): exit 1 when a "
          "config misses one", ("--targets",), WHAT, commands=("run",), metavar="FILE"),
    Field("profile", "special", None,
          "an operator-level profile (where the time goes) of every model file",
          ("--profile",), WHAT, commands=("run",)),
)
FIELD: dict[str, Field] = {f.key: f for f in FIELDS}
SWEPT = ("threads", "n_gpu_layers", "cache_type", "flash_attn")  # crossed into configs

# `quality:` (suite-wide or per model): perplexity / bits per byte / KL against a reference quant,
# one worker per model file, after the timing configs.  Keys and defaults (llama-perplexity's):
QUALITY_DEFAULTS: dict[str, Any] = {
    "n_ctx": 512,        # window in tokens (-c)
    "n_batch": 512,      # tokens per decode (-b)
    "chunks": 0,         # score only the first N windows; 0 = the whole corpus (--chunks)
    "corpus": None,      # UTF-8 text file; None = the bundled Pride and Prejudice excerpt
    "reference": None,   # quant of the same model (e.g. F16, Q8_0) or a .gguf path: adds KL
}

# `sustained:` (suite-wide): one sustained-performance config per model file, after the timing
# configs (`slmbench sustain` takes the same keys as flags).  Durations are seconds or text
# such as 90s, 10m, 1h, 1m30s; start_cool is a temperature in C (null: start at once).
SUSTAINED_DEFAULTS: dict[str, Any] = {
    "duration": "10m",           # how long the workload runs back to back
    "window": "10s",             # one record of speed, latency and sensors per window
    "workload": "tg128",         # tgN | ppN | chat:P/G (prefill P then generate G), repeated
    "start_cool": None,          # wait until the hottest sensor is below this (C) first
    "start_cool_timeout": "10m",  # ... for at most this long, then start anyway (noted)
}

# `profile:` (suite-wide) and `slmbench profile`: an operator-level profile of each model file
# (slmbench.profile), one config per file after the timing configs.  Keys and defaults:
PROFILE_DEFAULTS: dict[str, Any] = {
    "n_prompt": 256,     # prefill of this many tokens (0 = no prefill profile)
    "n_gen": 32,         # single-token decodes (0 = no decode profile)
    "n_depth": 0,        # tokens already in the KV cache (untimed fill)
    "repetitions": 3,    # samples with and without the callback, interleaved
}


# --------------------------------------------------------------------------- workloads, targets

@dataclass(frozen=True)
class Workload:
    """A named prompt / generation shape that stands for a real use (``--workload``).

    Its end-to-end latency is ``TTFT(P) + (G - 1) x per-token decode at depth P``: the first
    token comes with the prefill; each of the G - 1 others needs one decode with about P tokens
    in the KV cache, so the plan gets the tests ``ttftP`` and ``tgG@dP`` (docs/recommend.md).
    """

    name: str
    n_prompt: int
    n_gen: int
    help: str


WORKLOADS: tuple[Workload, ...] = (
    Workload("autocomplete", 64, 16,
             "code or text completion as you type: a short context, a few tokens, "
             "latency-bound"),
    Workload("chat", 512, 128,
             "one chat turn: system prompt, history and question in, a paragraph out"),
    Workload("summarize", 2048, 256,
             "summarise a document of a few pages into a few paragraphs"),
    Workload("rag", 4096, 128,
             "retrieval-augmented answer: retrieved passages in the prompt, a short answer"),
)
WORKLOAD: dict[str, Workload] = {w.name: w for w in WORKLOADS}


def workload_shape(name: Any) -> tuple[int, int] | None:
    """(P, G) of a preset name or a custom ``P/G`` (both >= 1); None when it is neither."""
    if not isinstance(name, str):
        return None
    text = name.strip().lower()
    if text in WORKLOAD:
        return WORKLOAD[text].n_prompt, WORKLOAD[text].n_gen
    p, sep, g = text.partition("/")
    if sep and p.strip().isdigit() and g.strip().isdigit() and int(p) >= 1 and int(g) >= 1:
        return int(p), int(g)
    return None


def workload_name(name: str) -> str:
    """The canonical spelling: a preset's name, or ``P/G`` without spaces."""
    text = name.strip().lower()
    if text in WORKLOAD:
        return text
    p, g = workload_shape(text) or (0, 0)
    return f"{p}/{g}"


def unknown_workload(name: Any) -> str:
    return (f"unknown workload {name!r} (known: {', '.join(WORKLOAD)}, or P/G such as "
            "1024/64)")


@dataclass(frozen=True)
class TargetMetric:
    """A metric a target can name (``targets:``), where it comes from in the results schema,
    and which side of the limit passes (``max``: the value must be <= the limit)."""

    key: str
    bound: str  # 'max' or 'min'
    unit: str
    per_workload: bool
    source: str  # the schema fields it is computed from
    needs: str | None = None  # 'quality', 'reference' or 'sustained': the tests it needs


TARGET_METRICS: tuple[TargetMetric, ...] = (
    TargetMetric("ttft_ms", "max", "ms", True,
                 "TestResult.ms of ttftP (mean, 95% CI)"),
    TargetMetric("decode_tps", "min", "tokens/s", True,
                 "TestResult.ts of tgG@dP (mean, 95% CI): decode at the workload's depth"),
    TargetMetric("e2e_s", "max", "s", True,
                 "TTFT(P) + (G - 1) x tgG@dP ms / G; CI from both tests' CIs"),
    TargetMetric("peak_rss_mib", "max", "MiB", False,
                 "Memory.peak_rss_mib of the timing record (at its context size)"),
    TargetMetric("bits_per_byte", "max", "bits", False,
                 "QualityMetrics.bits_per_byte; CI over windows (window_nll), else from ppl_err",
                 "quality"),
    TargetMetric("bits_per_byte_increase_pct", "max", "%", False,
                 "bits per byte vs the KL reference (or the model's highest-precision quant "
                 "scored): paired over windows", "quality"),
    TargetMetric("ppl_increase_pct", "max", "%", False,
                 "perplexity vs the same reference: 100 x (exp(mean NLL difference) - 1), paired",
                 "quality"),
    TargetMetric("kl_mean", "max", "nats", False,
                 "QualityMetrics.kl_mean; CI over windows (window_kl), else from kl_mean_err",
                 "reference"),
    TargetMetric("top1_pct", "min", "%", False,
                 "QualityMetrics.top1_pct; CI from top1_err", "reference"),
    TargetMetric("sustained_retained_pct", "min", "%", False,
                 "TestResult.sustained: retained_pct of its primary series (no CI)",
                 "sustained"),
)
TARGET_METRIC: dict[str, TargetMetric] = {m.key: m for m in TARGET_METRICS}


@dataclass(frozen=True)
class Target:
    """One target: a metric, its limit, and the workload it applies to (None: the config)."""

    metric: str
    limit: float
    workload: str | None = None

    @property
    def name(self) -> str:
        return f"{self.metric}[{self.workload}]" if self.workload else self.metric

    @property
    def bound(self) -> str:
        return TARGET_METRIC[self.metric].bound

    @property
    def unit(self) -> str:
        return TARGET_METRIC[self.metric].unit

    def text(self) -> str:
        """'ttft_ms[chat] <= 1000 ms'."""
        op = "<=" if self.bound == "max" else ">="
        unit = {"%": "%"}.get(self.unit, f" {self.unit}")
        return f"{self.name} {op} {self.limit:g}{unit}"


def parse_targets(raw: Any, where: str = "targets") -> tuple[list[Target], list[str]]:
    """A targets mapping as written -> (targets, problems).  ``raw`` maps a metric to a limit
    (``peak_rss_mib: 2048``) or, for per-workload metrics, a workload to a limit
    (``ttft_ms: {chat: 1000}``); a mapping with a ``targets:`` key (a suite file) is read
    through it."""
    problems: list[str] = []
    out: list[Target] = []
    if isinstance(raw, dict) and isinstance(raw.get("targets"), dict) \
            and not set(raw) & set(TARGET_METRIC):
        raw = raw["targets"]
    if raw is None:
        return [], []
    if not isinstance(raw, dict):
        return [], [f"{where}: expected a mapping of metric: limit (e.g. ttft_ms: {{chat: "
                     f"1000}}, peak_rss_mib: 2048), got {raw!r}"]

    def number(value: Any, at: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            problems.append(f"{at}: expected a number, got {value!r}")
            return None
        if value < 0:
            problems.append(f"{at}: must be >= 0")
            return None
        return float(value)

    for key, value in raw.items():
        m = TARGET_METRIC.get(key)
        if m is None:
            problems.append(f"{where}: unknown metric {key!r} (known: "
                            f"{', '.join(TARGET_METRIC)})")
            continue
        if m.per_workload:
            if not isinstance(value, dict) or not value:
                problems.append(f"{where}.{key}: name the workload, e.g. {key}: {{chat: "
                                f"{value if isinstance(value, (int, float)) else 1}}}")
                continue
            for wl, limit in value.items():
                if workload_shape(wl) is None:
                    problems.append(f"{where}.{key}: {unknown_workload(wl)}")
                    continue
                x = number(limit, f"{where}.{key}.{wl}")
                if x is not None:
                    out.append(Target(key, x, workload_name(wl)))
        elif isinstance(value, dict):
            problems.append(f"{where}.{key}: one limit for the whole config (e.g. {key}: "
                            f"10), not per workload")
        else:
            x = number(value, f"{where}.{key}")
            if x is not None:
                out.append(Target(key, x))
    return out, problems


def targets_workloads(targets: list[Target]) -> list[str]:
    """The workloads the targets name, in order."""
    return list(dict.fromkeys(t.workload for t in targets if t.workload))


def default(key: str) -> Any:
    """The default of a field (a fresh list for list fields)."""
    value = FIELD[key].default
    return list(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- Settings, TestPlan

@dataclass
class Settings:
    """Everything that decides what a measurement means (the config key hashes these)."""

    n_threads: int = doc_field("threads for single-token decode", default("threads")[0])
    n_threads_batch: int = doc_field("threads for prompt (batch) evaluation",
                                     default("threads_batch"))
    n_batch: int = doc_field("logical batch size (llama-bench default 2048)",
                             default("n_batch"))
    n_ubatch: int = doc_field("physical batch size (llama-bench default 512)",
                              default("n_ubatch"))
    n_ctx: int = doc_field("requested context size; 0 = n_prompt + n_gen + n_depth like "
                           "llama-bench", default("n_ctx"))
    n_gpu_layers: int = doc_field("layers offloaded to the GPU (0 = CPU only, 999 = all)",
                                  default("n_gpu_layers")[0])
    flash_attn: str = doc_field("'auto', 'on' or 'off'", default("flash_attn")[0])
    type_k: str = doc_field("KV cache type for keys (f16, q8_0, q4_0, ...)", "f16")
    type_v: str = doc_field("KV cache type for values", "f16")
    load_mode: str = doc_field("llama.cpp model load mode: auto, none, mmap, mlock, "
                               "mmap+mlock, dio (llama-bench default auto)", default("load_mode"))
    swa_full: bool = doc_field("full-size cache for sliding-window layers (false like "
                               "llama-bench and llama-cli: SWA layers keep n_swa + n_ubatch "
                               "cells)", default("swa_full"))
    prompt: str = doc_field("'random' (token ids from the vocabulary, like llama-bench) or "
                            "'text'", default("prompt"))
    seed: int = doc_field("seed of the random prompt tokens", default("seed"))
    repetitions: int = doc_field("timed repetitions per test (with target_ci_pct: the minimum)",
                                 default("repetitions"))
    warmup: int = doc_field("untimed warm-up runs per test", default("warmup"))
    target_ci_pct: float | None = doc_field(
        "-r auto: repeat until the 95% CI half-width of the mean wall time is within this % "
        "of the mean (null: a fixed count)")
    max_repetitions: int | None = doc_field("-r auto: at most this many repetitions")
    max_test_s: float | None = doc_field("-r auto: no new repetition after this many seconds "
                                         "of a test", unit="s")

    @property
    def auto(self) -> bool:
        return self.target_ci_pct is not None


@dataclass
class TestPlan:
    """Which tests one config runs: every length at every depth, plus the exact tests of the
    workloads (``ttftP`` and ``tgG@dP`` per [P, G]; not crossed with the lists)."""

    __test__ = False  # not a pytest test class despite the name

    n_prompt: list[int] = field(default_factory=lambda: default("n_prompt"))
    n_gen: list[int] = field(default_factory=lambda: default("n_gen"))
    n_depth: list[int] = field(default_factory=lambda: default("n_depth"))
    ttft: bool = default("ttft")
    workloads: list[list[int]] | None = None  # [[P, G], ...]; None (not []) keeps old ids

    def tests(self) -> list[tuple[str, int, int, int]]:
        """(kind, n_prompt, n_gen, n_depth) in run order."""
        out = []
        for d in self.n_depth or [0]:
            for p in self.n_prompt:
                if p > 0:
                    out.append(("pp", p, 0, d))
                    if self.ttft:
                        out.append(("ttft", p, 1, d))
            for g in self.n_gen:
                if g > 0:
                    out.append(("tg", 0, g, d))
        for p, g in self.workloads or []:
            for test in (("ttft", p, 1, 0), ("tg", 0, g, p)):
                if test not in out:
                    out.append(test)
        return out

    def n_ctx_needed(self) -> int:
        return max((p + g + d for _, p, g, d in self.tests()), default=1)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "TestPlan":
        """The plan of a suite's (checked) values: zero lengths dropped."""
        return cls(n_prompt=[x for x in values["n_prompt"] if x > 0],
                   n_gen=[x for x in values["n_gen"] if x > 0],
                   n_depth=list(values["n_depth"]), ttft=bool(values["ttft"]),
                   workloads=workload_pairs(values.get("workloads")))


def workload_pairs(names: Any) -> list[list[int]] | None:
    """[[P, G], ...] of workload names (duplicates dropped, unknown names skipped: check()
    reports them); None for none, so a plan without workloads keeps its config id."""
    pairs: list[list[int]] = []
    for name in names or []:
        shape = workload_shape(name)
        if shape is not None and list(shape) not in pairs:
            pairs.append(list(shape))
    return pairs or None


def test_name(kind: str, n_prompt: int, n_gen: int, n_depth: int) -> str:
    base = {"pp": f"pp{n_prompt}", "ttft": f"ttft{n_prompt}", "tg": f"tg{n_gen}"}[kind]
    return f"{base}@d{n_depth}" if n_depth else base


def cache_root() -> str:
    """slmbench's own cache (synthetic and demo models, device probes and their models):
    $SLMBENCH_CACHE, else $XDG_CACHE_HOME/slmbench, else ~/.cache/slmbench.  Hub downloads
    live in huggingface_hub's cache (HF_HOME) instead."""
    return os.environ.get("SLMBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "slmbench")


def default_threads() -> int:
    """Physical cores, like llama-bench's default."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except Exception:  # noqa: BLE001
        return os.cpu_count() or 1


def resolved(settings: Settings) -> Settings:
    """A copy with 0 threads resolved: physical cores, batch threads = threads."""
    s = Settings(**asdict(settings))
    s.n_threads = s.n_threads or default_threads()
    s.n_threads_batch = s.n_threads_batch or s.n_threads
    return s


def config_id(model_key: str, settings: Settings, plan: TestPlan) -> str:
    """Stable hash of what decides a measurement: the resume key of a config.  Unset (null)
    settings are left out, so adding an optional setting keeps the ids of existing configs."""
    values = {k: v for k, v in asdict(settings).items() if v is not None}
    tests = {k: v for k, v in asdict(plan).items() if v is not None}
    payload = json.dumps({"model": model_key, "settings": values, "plan": tests},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def settings_for(values: dict[str, Any], *, threads: int, n_gpu_layers: int, cache_type: str,
                 flash_attn: str) -> Settings:
    """The Settings of one point of a sweep (one value of each SWEPT key) over checked suite
    values."""
    type_k, _, type_v = cache_type.partition("/")
    n_threads = threads or default_threads()
    return Settings(n_threads=n_threads, n_threads_batch=values["threads_batch"] or n_threads,
                    n_batch=values["n_batch"], n_ubatch=values["n_ubatch"], n_ctx=values["n_ctx"],
                    n_gpu_layers=n_gpu_layers, flash_attn=flash_attn, type_k=type_k,
                    type_v=type_v or type_k, load_mode=values["load_mode"],
                    swa_full=values["swa_full"], prompt=values["prompt"], seed=values["seed"],
                    warmup=values["warmup"], **repetitions_of(values))


def repetitions_of(values: dict[str, Any]) -> dict[str, Any]:
    """The Settings fields of ``repetitions`` (a count, or 'auto' with its limits)."""
    if values["repetitions"] == "auto":
        return {"repetitions": AUTO_MIN_REPS, "target_ci_pct": float(values["target_ci"]),
                "max_repetitions": int(values["max_reps"]),
                "max_test_s": float(values["max_time_s"])}
    return {"repetitions": values["repetitions"]}


def values_of(settings: Settings, plan: TestPlan) -> dict[str, Any]:
    """Settings and a plan as suite values (what :func:`check` validates)."""
    return {"n_prompt": list(plan.n_prompt), "n_gen": list(plan.n_gen),
            "n_depth": list(plan.n_depth), "ttft": plan.ttft,
            "workloads": [f"{p}/{g}" for p, g in plan.workloads or []],
            "repetitions": "auto" if settings.auto else settings.repetitions,
            "target_ci": settings.target_ci_pct, "max_reps": settings.max_repetitions,
            "max_time_s": settings.max_test_s, "warmup": settings.warmup,
            "prompt": settings.prompt, "seed": settings.seed, "threads": [settings.n_threads],
            "threads_batch": settings.n_threads_batch, "n_gpu_layers": [settings.n_gpu_layers],
            "cache_type": [f"{settings.type_k}/{settings.type_v}"],
            "type_k": None, "type_v": None, "flash_attn": [settings.flash_attn],
            "n_ctx": settings.n_ctx, "n_batch": settings.n_batch,
            "n_ubatch": settings.n_ubatch, "load_mode": settings.load_mode,
            "swa_full": settings.swa_full}


# --------------------------------------------------------------------------- coercion, checks

def coerce(kind: str, value: Any) -> tuple[Any, str | None]:
    """A value as written (YAML, a flag, an API argument) -> (canonical form, problem or None).

    Lists may be written as a YAML list, one value or a comma-separated string.
    """
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if kind == "int":
        return (value, None) if is_int(value) else (value, f"expected an integer, got {value!r}")
    if kind == "reps":
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto", None
        if isinstance(value, str) and value.strip().isdigit():
            return int(value), None
        return (value, None) if is_int(value) else (
            value, f"expected a number of repetitions or 'auto', got {value!r}")
    if kind in ("float", "ofloat"):
        if isinstance(value, str) and value.strip().endswith("%"):  # --target-ci 1%
            value = value.strip()[:-1]
            try:
                value = float(value)
            except ValueError:
                pass
        if is_int(value) or isinstance(value, float):
            return float(value), None
        return value, f"expected a number, got {value!r}"
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (
            value, f"expected true or false, got {value!r}")
    if kind == "str":
        return (value, None) if isinstance(value, str) else (value, f"expected text, got {value!r}")
    if kind == "ints":
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, str):
            items = [x.strip() for x in value.split(",") if x.strip()]
            try:
                items = [int(x) for x in items]
            except ValueError:
                return value, f"expected an integer or a list of integers, got {value!r}"
        if not items or not all(is_int(x) for x in items):
            return value, f"expected an integer or a list of integers, got {value!r}"
        return list(items), None
    if kind == "strs":
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, str):
            items = [x.strip() for x in value.split(",") if x.strip()]
        # YAML 1.1 reads bare on/off as booleans: flash_attn: on
        items = [({True: "on", False: "off"}[x] if isinstance(x, bool) else x) for x in items]
        if not items or not all(isinstance(x, str) for x in items):
            return value, f"expected a name or a list of names, got {value!r}"
        return list(items), None
    raise AssertionError(kind)


def check(values: dict[str, Any], where: Callable[[str], str] = lambda k: k) -> list[str]:
    """Every problem of a set of (coerced) field values, one message each, naming the key.

    Normalises the KV cache types in place: ``cache_type`` becomes the list of ``K`` or
    ``K/V`` entries to sweep, ``type_k`` / ``type_v`` are consumed.
    """
    problems: list[str] = []
    for key, value in values.items():
        f = FIELD.get(key)
        if f is None or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if f.low is not None and any(isinstance(x, (int, float)) and not isinstance(x, bool)
                                     and x < f.low for x in items):
            problems.append(f"{where(key)}: must be >= {f.low:g}")
        if f.choices and key != "flash_attn":
            bad = [x for x in items if isinstance(x, str) and x not in f.choices]
            if bad:
                problems.append(f"{where(key)}: '{bad[0]}' is not one of {', '.join(f.choices)}")
    for x in values.get("flash_attn") or []:
        if isinstance(x, str) and x not in FLASH_ATTN:
            problems.append(f"{where('flash_attn')}: '{x}' is not one of {', '.join(FLASH_ATTN)}")
    for key in ("timeout_s", "target_ci"):
        if values.get(key) == 0:
            problems.append(f"{where(key)}: must be > 0")

    def ints(key: str) -> list[int]:
        v = values.get(key)
        return v if isinstance(v, list) and all(isinstance(x, int) for x in v) else []

    named = values.get("workloads") if isinstance(values.get("workloads"), list) else []
    for name in named:
        if workload_shape(name) is None:
            problems.append(f"{where('workloads')}: {unknown_workload(name)}")
    pairs = workload_pairs(named)
    if ints("n_prompt") and ints("n_gen") and not any(ints("n_prompt") + ints("n_gen")) \
            and not pairs and not values.get("sustained"):  # sustained configs only
        problems.append(f"{where('n_prompt')}: nothing to measure (all prompt and generation "
                        "lengths are 0): give a prompt length (-p) or a generation length (-n)")
    n_ctx = values.get("n_ctx")
    if isinstance(n_ctx, int) and n_ctx > 0 and (ints("n_prompt") + ints("n_gen") or pairs):
        need = TestPlan(ints("n_prompt"), ints("n_gen"), ints("n_depth") or [0],
                        bool(values.get("ttft", True)), pairs).n_ctx_needed()
        if n_ctx < need:
            problems.append(f"{where('n_ctx')}: {n_ctx} is smaller than prompt + generation + "
                            f"depth = {need}; raise it or shorten the tests")
    # cache types: cache_type entries are TYPE or K/V; type_k/type_v lists are crossed
    ct, tk, tv = values.pop("cache_type", None), values.pop("type_k", None), \
        values.pop("type_v", None)
    pairs: list[list[str]] = []
    if ct is not None and (tk is not None or tv is not None):
        problems.append(f"{where('cache_type')}: give either cache_type or type_k/type_v, not both")
    if isinstance(ct, list):
        for x in ct:
            if isinstance(x, str):
                k, _, v = x.lower().partition("/")
                pairs.append([k, v or k])
    else:
        ks = [x.lower() for x in tk] if isinstance(tk, list) else ["f16"]
        vs = [x.lower() for x in tv] if isinstance(tv, list) else ["f16"]
        pairs = [[k, v] for k in ks for v in vs]
    for k, v in pairs:
        for t in (k, v):
            if t not in CACHE_TYPES:
                problems.append(f"{where('cache_type')}: unknown KV cache type '{t}' "
                                f"(known: {', '.join(CACHE_TYPES)})")
    values["cache_type"] = [k if k == v else f"{k}/{v}" for k, v in pairs]
    return problems


def validate(settings: Settings, plan: TestPlan) -> None:
    """The same checks as a suite's, for Settings and a plan built in code (one-line error)."""
    problems = check(values_of(settings, plan))
    if not plan.tests() and not any(p.startswith("n_prompt") for p in problems):
        problems.append("nothing to measure: give a prompt length (-p) or a generation "
                        "length (-n)")
    if problems:
        raise ConfigError("bad settings: " + "; ".join(problems))


# --------------------------------------------------------------------------- command line

def _flag_type(f: Field) -> Callable[[str], Any]:
    kind = "float" if f.kind == "ofloat" else f.kind

    def parse(text: str) -> Any:
        value: Any = text
        if kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        elif kind == "float":
            try:
                value = float(text.strip().removesuffix("%"))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        value, err = coerce(kind, value)
        if err:
            raise argparse.ArgumentTypeError(err)
        return value
    return parse


def _default_text(f: Field) -> str:
    if f.key in ("quality", "profile"):
        return ""
    d = f.default
    if d is None or d == [] or d == "":
        return ""
    text = ",".join(map(str, d)) if isinstance(d, list) else str(d).lower() \
        if isinstance(d, bool) else f"{d:g}" if isinstance(d, float) else str(d)
    return f" (default {text})"


def add_arguments(parser: argparse.ArgumentParser, command: str, *,
                  defaults_from: str = "built-in") -> None:
    """The flags of ``command`` from :data:`FIELDS`, grouped; every dest is the suite key and
    every default None (= not given: the suite's value, or the built-in default, applies)."""
    groups: dict[str, Any] = {}
    for f in FIELDS:
        if command not in f.commands or not f.flags:
            continue
        title = f.group if command != "run" or f.group == SWEEP else f"{f.group} " \
            f"(override the suite{'; lists are swept' if f.group == LLAMA else ''})"
        g = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        help_text = f.help + _default_text(f)
        if f.key == "ttft":
            g.add_argument("--no-ttft", dest="ttft", action="store_false", default=None,
                           help="skip the time-to-first-token tests")
        elif f.key == "quality":
            q = g.add_mutually_exclusive_group()
            q.add_argument("--quality", dest="quality", action="store_true", default=None,
                           help="also score every model file's perplexity / bits per byte (the "
                                "suite's `quality:` settings, or the defaults: bundled text, "
                                "n_ctx 512)")
            q.add_argument("--no-quality", dest="quality", action="store_false",
                           help="skip the suite's quality tests")
        elif f.key == "profile":
            q = g.add_mutually_exclusive_group()
            q.add_argument("--profile", dest="profile", action="store_true", default=None,
                           help="also profile every model file operator by operator (the "
                                "suite's `profile:` settings, or the defaults: -p "
                                f"{PROFILE_DEFAULTS['n_prompt']} -n {PROFILE_DEFAULTS['n_gen']})")
            q.add_argument("--no-profile", dest="profile", action="store_false",
                           help="skip the suite's profiles")
        elif f.kind == "bool":
            g.add_argument(*f.flags, dest=f.key, action="store_true", default=None,
                           help=help_text)
        elif f.key == "targets":
            g.add_argument(*f.flags, dest=f.key, default=None, help=help_text,
                           metavar=f.metavar)
        else:
            kind = {"special": "strs", "reps": "str"}.get(f.kind, f.kind)
            g.add_argument(*f.flags, dest=f.key, default=None, help=help_text,
                           type=_flag_type(Field(f.key, kind, None, "")),
                           metavar=f.metavar or ("|".join(f.choices) if f.choices else
                                                 "N" if f.kind == "int" else None))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The suite keys given on the command line (those not given are left out)."""
    return {f.key: getattr(args, f.key) for f in FIELDS
            if getattr(args, f.key, None) is not None}


def override_argv(overrides: dict[str, Any]) -> list[str]:
    """The flags that reproduce ``overrides`` (for a remote run)."""
    out: list[str] = []
    for key, value in overrides.items():
        f = FIELD[key]
        if key == "targets":
            continue  # judged where the results arrive (a local file need not exist there)
        if key == "ttft":
            out += [] if value else ["--no-ttft"]
        elif key in ("quality", "profile"):
            out.append(f"--{key}" if value else f"--no-{key}")
        elif f.kind == "bool":
            out += [f.flag] if value else []
        else:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            out += [f.flag, text]
    return out


def where_on_command_line(key: str) -> str:
    """How an override is named in messages: ``command line --threads``."""
    f = FIELD.get(key)
    return f"command line {f.flag if f else key}"


# --------------------------------------------------------------------------- documentation

_KIND_TEXT = {"int": "int", "ints": "int or list", "float": "number", "ofloat": "number",
              "bool": "bool", "str": "text", "strs": "name or list", "reps": "int or `auto`",
              "special": "see below"}


def settings_markdown() -> str:
    """docs/settings.md: every suite key and flag, generated from FIELDS (``python -m
    slmbench.config > docs/settings.md``), so the table cannot drift from the code."""
    out = ["# Settings: suite keys and command-line flags",
           "",
           "Generated from `slmbench/config.py` by `python -m slmbench.config`; do not edit by "
           "hand. One table serves suite files, `slmbench run` / `slmbench bench` flags, "
           "their `--help` and the Python API (`slmbench.bench(paths, **keys)`).",
           "",
           "Lists are written as YAML lists or comma-separated on the command line; the list "
           f"keys {', '.join(f'`{k}`' for k in SWEPT)} are swept (every combination is a "
           "config), `n_prompt`, `n_gen` and `n_depth` are the tests every config runs. A flag "
           "replaces the suite's value.",
           "",
           "| key | flags | type | default | commands | meaning |",
           "|---|---|---|---|---|---|"]
    for f in FIELDS:
        d = f.default
        shown = "" if d is None or d == [] or d == "" else (
            ",".join(map(str, d)) if isinstance(d, list) else str(d).lower()
            if isinstance(d, bool) else f"{d:g}" if isinstance(d, float) else str(d))
        flags = ", ".join(f"`{x}`" for x in f.flags)
        if f.key == "ttft":
            flags = "`--no-ttft`"
        elif f.key in ("quality", "profile"):
            flags = f"`--{f.key}`, `--no-{f.key}`"
        out.append(f"| `{f.key}` | {flags} | {_KIND_TEXT[f.kind]} | {shown} | "
                   f"{', '.join(f.commands) or 'suite'} | {f.help.replace('%%', '%')} |")
    out += ["", "`models` and `quality` are described in [runner.md](runner.md), `sustained` in "
            "[sustain.md](sustain.md), `profile` in [profile.md](profile.md).", "",
            "## Workload presets (`workloads:`, `--workload`)", "",
            "Each adds the tests of its end-to-end latency, TTFT(P) + (G - 1) x per-token "
            "decode at depth P: `ttftP` and `tgG@dP` (exactly these, not crossed with the "
            "lists above). A custom shape is written `P/G`, e.g. `1024/64`. Rules and "
            "formulas: [recommend.md](recommend.md).", "",
            "| name | prompt P | generation G | tests | stands for |", "|---|---|---|---|---|"]
    for w in WORKLOADS:
        out.append(f"| `{w.name}` | {w.n_prompt} | {w.n_gen} | `ttft{w.n_prompt}`, "
                   f"`tg{w.n_gen}@d{w.n_prompt}` | {w.help} |")
    out += ["", "## Target metrics (`targets:`, `--targets FILE`)", "",
            "A metric maps to one limit, or (per-workload metrics) a workload to a limit: "
            "`ttft_ms: {chat: 1000}`, `peak_rss_mib: 2048`. `max`: the value must be at or "
            "below the limit; `min`: at or above.", "",
            "| metric | bound | unit | per workload | computed from | needs |",
            "|---|---|---|---|---|---|"]
    for m in TARGET_METRICS:
        out.append(f"| `{m.key}` | {m.bound} | {m.unit} | {'yes' if m.per_workload else ''} "
                   f"| {m.source} | {m.needs or ''} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(settings_markdown(), end="")
