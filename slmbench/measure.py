"""The measurement engine: prefill, TTFT, decode and load of one GGUF model, the llama-bench way.

What is timed matches llama.cpp's llama-bench (README, "What one measurement means"):
random token ids from the vocabulary (BOS first when the vocabulary adds one), the KV memory
cleared before every repetition, the depth fill done untimed, prefill = ``llama_decode`` per
``n_batch`` chunk and one ``llama_synchronize``; decode = one token per ``llama_decode`` +
``llama_synchronize``.  All batches and token buffers are built before the clock starts, so the
timed loops only call into llama.cpp and read the clock.  One model load and one context serve
every test of a config (llama-bench creates a context per test; timings do not depend on the
context size because llama.cpp attends over the used, padded cells only).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import time
from typing import Any, Callable

from slmbench import config
from slmbench.config import FLASH_ATTN, LOAD_MODES, Settings, TestPlan, config_id, test_name
from slmbench.errors import MeasurementError, ModelLoadError
from slmbench.gguf_info import GGUFInfo, model_id_from_file, read_gguf
from slmbench.llama_backend import (attach_threadpool, free_threadpool, llama, log_mark,
                                     log_since)
from slmbench.memory import RSSSampler, breakdown, hwm_mib, parse_buffers, rss_mib
from slmbench.schema import utc_now
from slmbench.schema import (LoadResult, PerfCounters, Record, SensorSummary, TestResult,
                             from_dict)
from slmbench.sensors import OtherCPU, busy_warning
from slmbench.stats import drift_pct, noise_warning, percentile, summarize

Progress = Callable[[str], None]


def validate(path: str, settings: Settings, plan: TestPlan) -> None:
    """One-line errors for settings that cannot work, before anything is loaded."""
    config.validate(settings, plan)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such model file")


def _ggml_type(name: str) -> int:
    lc = llama()
    return int(getattr(lc, f"GGML_TYPE_{name.upper()}"))


class Session:
    """A loaded model and one context, plus pre-built inputs: everything a timed loop needs."""

    def __init__(self, path: str, settings: Settings, n_ctx: int, info: GGUFInfo, *,
                 cb_eval: Any = None, share: "Session | None" = None):
        """``cb_eval``: a ``ggml_backend_sched_eval_callback`` for the context (slmbench.profile;
        kept alive as long as the context).  ``share``: a second context on that session's
        loaded model and thread pool (same settings), which stay owned by ``share``."""
        self.lc = lc = llama()
        self.settings = settings
        self.info = info
        self.model = None
        self.ctx = None
        self.sampler = None
        self.threadpool = None
        self._owns_model = share is None
        self._cb_eval = cb_eval  # a freed ctypes callback crashes the context that calls it
        self._state_cache: dict[int, str] = {}  # depth -> KV snapshot file
        self._snap_dir: str | None = None
        self.malloc_pinned = self._pin_malloc_layout()
        mark = log_mark()
        self.rss_before_load = rss_mib()
        if share is not None:
            self.model, self.load_ms = share.model, 0.0
        else:
            mparams = lc.llama_model_default_params()
            mparams.n_gpu_layers = int(settings.n_gpu_layers)
            mparams.load_mode = LOAD_MODES[settings.load_mode]
            t0 = time.perf_counter_ns()
            self.model = lc.llama_model_load_from_file(os.fsencode(path), mparams)
            self.load_ms = (time.perf_counter_ns() - t0) / 1e6
        if not self.model:
            raise ModelLoadError(f"{path}: llama.cpp could not load the model: "
                                f"{_last_error(log_since(mark))}")
        self.rss_after_load = rss_mib()
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = int(n_ctx)
        cparams.n_batch = int(settings.n_batch)
        cparams.n_ubatch = int(settings.n_ubatch)
        cparams.n_seq_max = 1
        cparams.n_threads = int(settings.n_threads)
        cparams.n_threads_batch = int(settings.n_threads_batch)
        cparams.type_k = _ggml_type(settings.type_k)
        cparams.type_v = _ggml_type(settings.type_v)
        cparams.flash_attn_type = FLASH_ATTN[settings.flash_attn]
        cparams.swa_full = bool(settings.swa_full)
        cparams.no_perf = False
        if cb_eval is not None:
            cparams.cb_eval = cb_eval
            cparams.cb_eval_user_data = None
        t0 = time.perf_counter_ns()
        self.ctx = lc.llama_init_from_model(self.model, cparams)
        self.ctx_ms = (time.perf_counter_ns() - t0) / 1e6
        if not self.ctx:
            self.close()
            raise ModelLoadError(f"{path}: llama.cpp could not create a context with these settings"
                                f": {_last_error(log_since(mark))}")
        self.rss_after_ctx = rss_mib()
        # a persistent thread pool like llama-bench's (one pool; llama-bench uses one thread
        # count for both), instead of a throwaway pool per graph
        if share is not None:  # one pool: an idle second pool would spin beside this one
            if share.threadpool:
                attach_threadpool(self.ctx, settings.n_threads, pool=share.threadpool)
        elif settings.n_threads == settings.n_threads_batch:
            self.threadpool = attach_threadpool(self.ctx, settings.n_threads)
        self.log_lines = log_since(mark)
        self.n_ctx = int(lc.llama_n_ctx(self.ctx))
        self.mem = lc.llama_get_memory(self.ctx)
        vocab = lc.llama_model_get_vocab(self.model)
        self.vocab = vocab
        self.n_vocab = int(lc.llama_vocab_n_tokens(vocab))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(vocab))
        self.bos = int(lc.llama_vocab_bos(vocab))
        self.sampler = lc.llama_sampler_init_greedy()

    # glibc's M_MMAP_THRESHOLD (malloc.h) and its starting value
    _M_MMAP_THRESHOLD = -3
    _MMAP_THRESHOLD = 128 * 1024

    @classmethod
    def _pin_malloc_layout(cls) -> bool:
        """Give llama.cpp's large buffers the same place in every process (glibc only).

        glibc raises its mmap threshold (up to 32 MiB) each time a large mapped block is freed;
        after that, buffers llama.cpp allocates with malloc/new -- the CPU backend's work buffer,
        the KV cache, the graph buffers -- come from the heap at an offset that depends on
        everything the process allocated before: the Python start-up, argv, the environment, a
        warm-up.  The work buffer's offset within a 64-byte cache line alone moves
        Gemma-3-270M Q4_0 pp64@d2048 by 5 % (1 thread) to 20 % (2 threads); see docs/fidelity.md.
        A fixed threshold (which also turns the adjustment off) maps every buffer >= 128 KiB
        afresh: page start + 16 bytes for malloc, + 64 for 64-byte-aligned allocations, in every
        process.  SLMBENCH_MALLOC=dynamic keeps glibc's default.  Returns True when pinned.
        """
        if os.environ.get("SLMBENCH_MALLOC", "").lower() == "dynamic":
            return False
        try:
            libc = ctypes.CDLL(None)
            if not hasattr(libc, "gnu_get_libc_version"):  # musl, macOS: another allocator
                return False
            return bool(libc.mallopt(cls._M_MMAP_THRESHOLD, cls._MMAP_THRESHOLD))
        except (OSError, AttributeError):
            return False

    def close(self) -> None:
        lc = self.lc
        if self.sampler:
            lc.llama_sampler_free(self.sampler)
            self.sampler = None
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.threadpool:
            free_threadpool(self.threadpool)
            self.threadpool = None
        if self.model and self._owns_model:
            lc.llama_model_free(self.model)
        self.model = None
        if self._snap_dir is not None:
            shutil.rmtree(self._snap_dir, ignore_errors=True)
            self._snap_dir = None
            self._state_cache.clear()

    # ------------------------------------------------------------------ inputs (untimed)

    def random_tokens(self, n: int, rng: Any, bos_first: bool = True) -> Any:
        arr = (ctypes.c_int32 * max(n, 1))()
        if n:
            values = rng.integers(0, self.n_vocab, size=n, dtype="int64")
            for i, v in enumerate(values.tolist()):
                arr[i] = v
            if bos_first and self.add_bos:
                arr[0] = self.bos
        return arr

    def text_tokens(self, n: int, text: str) -> Any:
        """The first n tokens of ``text`` (repeated as needed) as a token array."""
        lc = self.lc
        data = text.encode("utf-8")
        while True:
            cap = len(data) + 16
            buf = (ctypes.c_int32 * cap)()
            got = lc.llama_tokenize(self.vocab, data, len(data), buf, cap, True, False)
            if got < 0:
                raise MeasurementError("tokenizer failed on the text prompt")
            if got >= n:
                arr = (ctypes.c_int32 * max(n, 1))()
                ctypes.memmove(arr, buf, 4 * n)
                return arr
            data = data + b"\n" + text.encode("utf-8")

    def batches(self, tokens: Any, n: int, chunk: int) -> list[Any]:
        """llama_batch views over ``tokens`` in chunks of ``chunk`` (no copies).

        The returned list keeps ``tokens`` alive: the batches only hold raw pointers into it.
        """
        lc = self.lc
        out = _BatchList()
        out.keepalive = tokens
        base = ctypes.addressof(tokens)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            ptr = ctypes.cast(base + 4 * start, ctypes.POINTER(ctypes.c_int32))
            out.append(lc.llama_batch_get_one(ptr, size))
        return out

    # ------------------------------------------------------------------ state

    def clear(self) -> None:
        self.lc.llama_memory_clear(self.mem, False)

    def fill_depth(self, depth: int, rng: Any) -> None:
        """Untimed: put ``depth`` tokens in the KV cache (restored from a snapshot after once)."""
        lc = self.lc
        if depth <= 0:
            return
        # the snapshot lives in a file, not in this process: a copy of the KV cache in memory
        # would be counted in the peak RSS (it doubled the KV cache of a run at depth); the
        # file is read back through one tensor-sized buffer
        snap = self._state_cache.get(depth)
        if snap is not None:
            n_tok = ctypes.c_size_t(0)
            if lc.llama_state_seq_load_file(self.ctx, os.fsencode(snap), 0,
                                            (ctypes.c_int32 * 1)(), 1, ctypes.byref(n_tok)):
                return
            self.clear()
        toks = self.random_tokens(depth, rng)
        self.run_batches(self.batches(toks, depth, self.settings.n_batch))
        if self._snap_dir is None:
            self._snap_dir = tempfile.mkdtemp(prefix="slmbench-kv-")
        path = os.path.join(self._snap_dir, f"depth-{depth}.bin")
        if lc.llama_state_seq_save_file(self.ctx, os.fsencode(path), 0,
                                        (ctypes.c_int32 * 1)(), 0):
            self._state_cache[depth] = path  # else: filled again next time

    def run_batches(self, batches: list[Any]) -> None:
        decode = self.lc.llama_decode
        ctx = self.ctx
        for b in batches:
            rc = decode(ctx, b)
            if rc != 0:
                raise MeasurementError(f"llama_decode failed with code {rc} (context full or "
                                    "out of memory?)")
        self.lc.llama_synchronize(ctx)

    def perf(self) -> PerfCounters:
        d = self.lc.llama_perf_context(self.ctx)
        return PerfCounters(t_p_eval_ms=round(d.t_p_eval_ms, 4), n_p_eval=int(d.n_p_eval),
                            t_eval_ms=round(d.t_eval_ms, 4), n_eval=int(d.n_eval))

    # ------------------------------------------------------------------ timed loops

    def time_prefill(self, batches: list[Any]) -> int:
        decode, sync, ctx = self.lc.llama_decode, self.lc.llama_synchronize, self.ctx
        t0 = time.perf_counter_ns()
        for b in batches:
            if decode(ctx, b) != 0:
                raise MeasurementError("llama_decode failed during prefill")
        sync(ctx)
        return time.perf_counter_ns() - t0

    def time_ttft(self, batches: list[Any]) -> int:
        decode, ctx = self.lc.llama_decode, self.ctx
        sample, smpl = self.lc.llama_sampler_sample, self.sampler
        t0 = time.perf_counter_ns()
        for b in batches:
            if decode(ctx, b) != 0:
                raise MeasurementError("llama_decode failed during prefill")
        sample(smpl, ctx, -1)  # greedy pick of the first token (reads the logits: synchronises)
        return time.perf_counter_ns() - t0

    def time_decode(self, batches: list[Any], out_ns: list[int]) -> int:
        decode, sync, ctx = self.lc.llama_decode, self.lc.llama_synchronize, self.ctx
        clock = time.perf_counter_ns
        t0 = prev = clock()
        for b in batches:
            if decode(ctx, b) != 0:
                raise MeasurementError("llama_decode failed during generation (context full?)")
            sync(ctx)
            now = clock()
            out_ns.append(now - prev)
            prev = now
        return prev - t0


class _BatchList(list):
    """A list of llama_batch structs that owns the token buffer they point into."""

    keepalive: Any = None


def _last_error(lines: list[str]) -> str:
    errs = [line.strip() for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return (errs[-1] if errs else (lines[-1].strip() if lines else "no details in llama.cpp log"))[:300]


DEFAULT_TEXT = (
    "The quick brown fox jumps over the lazy dog. Small language models run on phones, "
    "laptops and embedded boards, where memory and energy are scarce and every token counts. "
)


def _run_test(sess: Session, kind: str, n_prompt: int, n_gen: int, n_depth: int,
              settings: Settings, rng: Any, text: str | None,
              progress: Progress | None, sensor: Any | None,
              rss: RSSSampler) -> TestResult:
    name = test_name(kind, n_prompt, n_gen, n_depth)
    res = TestResult(test=kind, name=name, n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth)

    def make_tokens(n: int, bos_first: bool = True) -> Any:
        if settings.prompt == "text" and text:
            return sess.text_tokens(n, text)
        return sess.random_tokens(n, rng, bos_first)

    reps = settings.repetitions
    token_ns_all: list[list[int]] = []
    if sensor is not None:
        sensor.sample_now()  # a sample exactly at the window's edge
    t_window0 = time.monotonic()
    others = OtherCPU()
    # warm-up: a full prompt pass for prompt tests, one generated token for decode tests
    for _ in range(settings.warmup):
        sess.clear()
        if kind in ("pp", "ttft"):
            sess.run_batches(sess.batches(make_tokens(n_prompt), n_prompt, settings.n_batch))
        else:
            sess.run_batches(sess.batches(make_tokens(1), 1, 1))
    t_first = time.monotonic()
    rep = 0
    while True:
        if progress:
            progress(f"{name} {rep + 1}/{reps if not settings.auto else 'auto'}")
        sess.clear()
        sess.fill_depth(n_depth, rng)
        if kind == "tg":
            toks = sess.random_tokens(n_gen, rng, bos_first=True)
            batches = sess.batches(toks, n_gen, 1)
        else:
            toks = make_tokens(n_prompt)
            batches = sess.batches(toks, n_prompt, settings.n_batch)
        sess.lc.llama_perf_context_reset(sess.ctx)
        per_token: list[int] = []
        with rss.paused():
            if kind == "pp":
                ns = sess.time_prefill(batches)
            elif kind == "ttft":
                ns = sess.time_ttft(batches)
            else:
                ns = sess.time_decode(batches, per_token)
        if kind == "tg":
            token_ns_all.append(per_token)
        res.perf.append(sess.perf())
        res.samples_ns.append(int(ns))
        n_timed = n_prompt if kind in ("pp", "ttft") else n_gen
        res.samples_ts.append(1e9 * n_timed / ns if ns > 0 else float("nan"))
        rep += 1
        res.stop_reason = _stop_reason(settings, res.samples_ns, time.monotonic() - t_first)
        if res.stop_reason:
            break
    t_window1 = time.monotonic()
    reps = len(res.samples_ns)
    res.ms = summarize([ns / 1e6 for ns in res.samples_ns])
    res.ts = summarize(res.samples_ts)
    if token_ns_all:
        res.token_ms = [[round(x / 1e6, 5) for x in rep] for rep in token_ns_all]
        pooled = [x for rep in res.token_ms for x in rep]
        res.token_ms_median = round(percentile(pooled, 50), 5)
        res.token_ms_p90 = round(percentile(pooled, 90), 5)
        res.token_ms_p99 = round(percentile(pooled, 99), 5)
        res.drift_pct = drift_pct(res.token_ms)
    res.other_cpu_cores = others.cores()
    threads = settings.n_threads if kind == "tg" else settings.n_threads_batch
    for warn in (noise_warning(name, res.ms),
                 busy_warning(name, res.other_cpu_cores, threads or settings.n_threads)):
        if warn:
            res.warnings.append(warn)
    if settings.auto and res.ms and res.ms.n >= 2:
        res.ci_half_pct = round(100.0 * (res.ms.ci95_high - res.ms.mean) / res.ms.mean, 3)
        if res.stop_reason != "target":
            res.warnings.append(
                f"{name}: 95% CI of the mean ±{res.ci_half_pct:.1f}% after {res.ms.n} "
                f"repetitions, target ±{settings.target_ci_pct:g}% not reached "
                f"({res.stop_reason.replace('_', ' ')}): noisy machine?")
    if sensor is not None:
        sensor.sample_now()
        try:
            res.sensors = from_dict(SensorSummary, sensor.summary(
                t_window0, t_window1,
                n_prefill_tokens=(n_prompt * reps if kind != "tg" else 0),
                n_decode_tokens=(n_gen * reps if kind == "tg" else 0),
                token_ms=res.token_ms, busy_s=sum(res.samples_ns) / 1e9))
            if res.sensors and res.sensors.throttled:
                reasons = ", ".join(res.sensors.throttle_reasons)
                res.warnings.append(f"{name}: throttling detected ({reasons})")
        except Exception as exc:  # noqa: BLE001 - a sensor problem never loses a measurement
            res.sensors = SensorSummary(error=f"{exc.__class__.__name__}: {exc}")
    return res


def _stop_reason(settings: Settings, samples_ns: list[int], elapsed_s: float) -> str | None:
    """Why the repetitions of a test stop now, or None to go on.

    A fixed count stops at ``repetitions`` ("fixed").  ``-r auto`` stops once at least
    ``repetitions`` (3) samples put the 95 % Student-t CI half-width of the mean within
    ``target_ci_pct`` % of the mean ("target"), else at ``max_repetitions`` or after
    ``max_test_s`` seconds ("max_repetitions" / "max_time").
    """
    n = len(samples_ns)
    if not settings.auto:
        return "fixed" if n >= settings.repetitions else None
    if n >= settings.repetitions:
        stats = summarize(samples_ns)
        if stats and stats.mean > 0 and \
                100.0 * (stats.ci95_high - stats.mean) / stats.mean <= settings.target_ci_pct:
            return "target"
    if settings.max_repetitions is not None and n >= settings.max_repetitions:
        return "max_repetitions"
    if settings.max_test_s is not None and elapsed_s >= settings.max_test_s:
        return "max_time"
    return None


def _start_sensors() -> Any | None:
    """One sensor sampler per config (tegrastats etc. start once); None when disabled."""
    if os.environ.get("SLMBENCH_NO_SENSORS"):
        return None
    try:
        from slmbench.sensors import SensorSampler

        return SensorSampler().start()
    except Exception:  # noqa: BLE001 - no sensors never stops a measurement
        return None


def measure_model(path: str, settings: Settings, plan: TestPlan, *, model_id: str | None = None,
                  quant: str | None = None, device: str | None = None,
                  progress: Progress | None = None, text: str | None = None,
                  cooldown_s: float = 0.0, max_temp_c: float | None = None) -> Record:
    """Load ``path`` once, run every test of ``plan`` with ``settings``; return a Record.

    Raises SlmbenchError for bad input; the caller (runner/worker) turns that into a failed
    record.  ``settings`` with 0 threads are resolved to the physical core count first.
    """
    import numpy as np

    path = os.fspath(path)
    settings = config.resolved(settings)
    validate(path, settings, plan)
    info = read_gguf(path)
    quant = quant or info.file_type
    model_id = model_id or model_id_from_file(path, quant)
    record = Record(record_id=config_id(f"{model_id}:{quant}", settings, plan), run_id=None,
                    model_id=model_id, quant=quant, device=device, started_at=utc_now(),
                    model=info.to_facts(), settings=settings)
    n_ctx = settings.n_ctx or plan.n_ctx_needed()
    rss_sampler = RSSSampler(hz=float(os.environ.get("SLMBENCH_RSS_HZ", "200"))).start()
    sess = None
    sensors = None
    try:
        if progress:
            progress("loading")
        sess = Session(path, settings, n_ctx, info)
        record.load = LoadResult(load_ms=round(sess.load_ms, 3), ctx_ms=round(sess.ctx_ms, 3),
                                 rss_before_load_mib=round(sess.rss_before_load, 2),
                                 rss_after_load_mib=round(sess.rss_after_load, 2),
                                 rss_after_ctx_mib=round(sess.rss_after_ctx, 2))
        rng = np.random.default_rng(settings.seed)
        prompt_text = text if text is not None else DEFAULT_TEXT
        sensors = _start_sensors()
        for i, (kind, p, g, d) in enumerate(plan.tests()):
            if i and cooldown_s > 0:
                time.sleep(cooldown_s)
            if max_temp_c is not None:
                _wait_for_temperature(max_temp_c, progress)
            record.tests.append(_run_test(sess, kind, p, g, d, settings, rng, prompt_text,
                                          progress, sensors, rss_sampler))
    finally:
        rss_sampler.stop()
        if sensors is not None:
            sensors.stop()
        if sess is not None:
            buffers = parse_buffers(sess.log_lines)
            record.memory = breakdown(
                buffers, n_ctx=sess.n_ctx, peak_rss_mib=rss_sampler.peak_mib, hwm=hwm_mib(),
                info=info, type_k=settings.type_k, type_v=settings.type_v,
                swa_full=settings.swa_full, n_ubatch=settings.n_ubatch,
                rss_hz=rss_sampler.achieved_hz,
                available_drop_mib=rss_sampler.available_drop_mib,
                unified_memory=_unified_memory(), rss_before_load_mib=sess.rss_before_load)
            sess.close()
    record.finished_at = utc_now()
    for t in record.tests:
        record.warnings.extend(t.warnings)
    return record


def _unified_memory() -> bool:
    """True on devices whose GPU shares system RAM (Jetson): RSS alone misses GPU buffers."""
    try:
        from slmbench.devices import device_profile

        return bool(device_profile().get("unified_memory"))
    except Exception:  # noqa: BLE001
        return False


def _wait_for_temperature(max_temp_c: float, progress: Progress | None,
                          timeout_s: float = 600.0) -> None:
    """Block until the hottest CPU sensor is below ``max_temp_c`` (no-op without sensors)."""
    try:
        import psutil

        read = getattr(psutil, "sensors_temperatures", None)
        if read is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            temps = [t.current for entries in (read() or {}).values() for t in entries
                     if t.current is not None]
            if not temps or max(temps) < max_temp_c:
                return
            if progress:
                progress(f"cooling: {max(temps):.0f} C > {max_temp_c:.0f} C")
            time.sleep(2.0)
    except Exception:  # noqa: BLE001 - waiting is best effort
        return
