"""Memory accounting: llama.cpp's buffers, process RSS, the KV share and its projection.

Two views are kept apart on purpose.  llama.cpp's log says what it *reserved* per buffer
(model weights, KV cache, compute scratch, output); the kernel says what is *resident*.  A compute
buffer sized for a full batch (Gemma-3-270M: 262k vocabulary x 512 batch x 4 bytes = 516 MiB) is
not resident until such a batch runs, so both numbers are reported.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from typing import Any, Callable, Iterator

from slmbench.config import Settings, TestPlan
from slmbench.gguf_info import GGUFInfo, kv_cache_bytes, multiplied_bytes, pad_ctx
from slmbench.schema import Buffer, KVProjection, Memory

MIB = 1024 * 1024

# "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB"
# "llama_kv_cache:        CPU KV buffer size =     7.50 MiB"
# "llama_context:        CPU  output buffer size =     0.98 MiB"
# "sched_reserve:        CPU compute buffer size =   515.75 MiB"
_BUFFER_RE = re.compile(
    r"^\s*(?P<func>[\w:]+):\s+(?P<device>\S+)\s+(?P<kind>model|KV|compute|output)\s+buffer size\s*="
    r"\s*(?P<size>[\d.]+)\s*MiB")


def parse_buffers(lines: list[str]) -> list[Buffer]:
    """Every 'X buffer size = N MiB' allocation line llama.cpp logged, in order."""
    out = []
    for line in lines:
        m = _BUFFER_RE.match(line)
        if m:
            out.append(Buffer(kind=m["kind"].lower(), device=m["device"], mib=float(m["size"])))
    return out


def sum_kind(buffers: list[Buffer], kind: str) -> float:
    return round(sum(b.mib for b in buffers if b.kind == kind), 4)


# --------------------------------------------------------------------------- RSS

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mib() -> float:
    """Resident set size of this process now."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / MIB
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / MIB


def _proc_field_mib(path: str, key: str) -> float | None:
    """A 'Key:   1234 kB' line of a /proc file, in MiB; None where it does not exist."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def hwm_mib() -> float | None:
    """Kernel high-water mark of resident memory (VmHWM), Linux only."""
    return _proc_field_mib("/proc/self/status", "VmHWM:")


def mem_available_mib() -> float | None:
    """System-wide MemAvailable (Linux); None elsewhere."""
    return _proc_field_mib("/proc/meminfo", "MemAvailable:")


class RSSSampler:
    """Samples this process's RSS in a thread at >= 100 Hz and keeps the peak.

    Reads /proc/self/statm with one pread per sample.  The thread is *paused* inside timed
    regions (``with sampler.paused():``): on a 2-core machine whose cores both run llama.cpp
    threads, a 200 Hz wake-up preempts a compute thread and every ggml barrier waits for it,
    which measured 4-5 % off decode speed of a 100M model (in-process A/B, 30 alternations; a
    sampler in a separate process cost the same, so it is the CPU, not the GIL).  Nothing is
    lost: each timed region is bracketed by samples, llama.cpp's buffers are persistent (what
    a timed region touched is still resident at its end), the warm-up runs the same graph while
    sampled, and the kernel's VmHWM covers any transient.
    """

    def __init__(self, hz: float = 200.0):
        self.interval = 1.0 / hz
        self.peak_mib = 0.0
        self.n_samples = 0
        self._stop = threading.Event()
        self._active = threading.Event()
        self._active.set()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._t1 = 0.0
        self._paused_s = 0.0
        self._fd: int | None = None
        self.available_start_mib: float | None = None
        self.available_min_mib: float | None = None

    def _read(self) -> float:
        if self._fd is not None:
            return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE / MIB
        return rss_mib()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._active.is_set():
                self._active.wait()  # asleep for the whole timed region
                continue
            value = self._read()
            if value > self.peak_mib:
                self.peak_mib = value
            if self.n_samples % 10 == 0:  # the system-wide figure changes slowly: ~20 Hz
                self._note_available()
            self.n_samples += 1
            self._stop.wait(self.interval)

    def _note_available(self) -> None:
        avail = mem_available_mib()
        if avail is not None:
            if self.available_start_mib is None:
                self.available_start_mib = avail
            self.available_min_mib = min(self.available_min_mib or avail, avail)

    @property
    def available_drop_mib(self) -> float | None:
        if self.available_start_mib is None or self.available_min_mib is None:
            return None
        return max(0.0, self.available_start_mib - self.available_min_mib)

    def sample_now(self) -> float:
        value = self._read()
        self.peak_mib = max(self.peak_mib, value)
        return value

    def start(self) -> "RSSSampler":
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None
        self._t0 = time.monotonic()
        self._note_available()
        self._thread = threading.Thread(target=self._run, name="slmbench-rss", daemon=True)
        self._thread.start()
        return self

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop sampling for the duration (a timed region), with a sample at either edge."""
        self.sample_now()
        self._active.clear()
        t0 = time.monotonic()
        try:
            yield
        finally:
            self._paused_s += time.monotonic() - t0
            self._active.set()
            self.sample_now()

    def stop(self) -> None:
        self._stop.set()
        self._active.set()
        if self._thread:
            self._thread.join()
        self._t1 = time.monotonic()
        self.sample_now()
        self._note_available()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def achieved_hz(self) -> float:
        """Samples per second of the time the sampler was not paused."""
        span = self._t1 - self._t0 - self._paused_s
        return self.n_samples / span if span > 0 else 0.0

    def __enter__(self) -> "RSSSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------- breakdown

def kv_share_crossing(kv_mib: Callable[[int], float], fixed_mib: float, share: float,
                      limit: int = 1 << 20) -> int | None:
    """Smallest context (padded to 256 tokens) where kv / (kv + fixed) >= ``share``.

    ``kv_mib(ctx)`` is the KV cache in MiB at a context of ``ctx`` tokens, ``fixed_mib`` the
    rest (held constant). None when the share is not reached by ``limit`` tokens.
    """
    def ok(c: int) -> bool:
        kv = kv_mib(c)
        return kv / (kv + fixed_mib) >= share if kv + fixed_mib > 0 else False
    if not ok(limit):
        return None
    lo, hi = 1, limit  # KV grows monotonically with context: bisect on the padded context
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return pad_ctx(lo)


def kv_projection(info: GGUFInfo, fixed_mib: float, type_k: str, type_v: str, *,
                  swa_full: bool, n_ubatch: int) -> KVProjection:
    """KV share at the training context, and the contexts where KV passes 50 % and 80 %.

    ``fixed_mib`` (weights + compute + other) is held constant: compute grows a little with
    context, so the shares are slight over-estimates at very long contexts.
    """
    def kv_mib(ctx: int) -> float:
        return kv_cache_bytes(info, ctx, type_k, type_v, swa_full=swa_full,
                              n_ubatch=n_ubatch)["total_bytes"] / MIB

    train = int(info.n_ctx_train or 0)
    kv_train = kv_mib(train) if train else 0.0
    share_train = kv_train / (kv_train + fixed_mib) if train and kv_train + fixed_mib else 0.0
    return KVProjection(n_ctx_train=train, kv_mib_at_train_ctx=round(kv_train, 3),
                        kv_share_at_train_ctx=round(share_train, 4),
                        ctx_kv_share_50=kv_share_crossing(kv_mib, fixed_mib, 0.5),
                        ctx_kv_share_80=kv_share_crossing(kv_mib, fixed_mib, 0.8))


def breakdown(buffers: list[Buffer], *, n_ctx: int, peak_rss_mib: float, hwm: float | None,
              info: GGUFInfo | None, type_k: str, type_v: str, swa_full: bool, n_ubatch: int,
              rss_hz: float | None, available_drop_mib: float | None = None,
              unified_memory: bool = False, rss_before_load_mib: float = 0.0) -> Memory:
    """Weights / KV / compute / output from the buffers, "other" from resident memory.

    On unified-memory devices (Jetson) GPU buffers live outside the process RSS, so the
    resident figure is the system-wide MemAvailable drop plus what the process held before
    loading; ``accounting`` says which basis was used.
    """
    model = sum_kind(buffers, "model")
    kv = sum_kind(buffers, "kv")
    compute = sum_kind(buffers, "compute")
    output = sum_kind(buffers, "output")
    accounted = model + kv + compute + output
    resident_peak = max(peak_rss_mib, hwm or 0.0)
    accounting = "process"
    if unified_memory and available_drop_mib is not None:
        resident_peak = max(resident_peak, rss_before_load_mib + available_drop_mib)
        accounting = "system"
    other = max(0.0, resident_peak - accounted)
    not_resident = max(0.0, accounted - resident_peak)
    total = model + kv + compute + other
    mem = Memory(n_ctx=n_ctx, buffers=buffers, model_mib=model, kv_mib=kv, compute_mib=compute,
                 output_mib=output, peak_rss_mib=round(peak_rss_mib, 2),
                 hwm_rss_mib=round(hwm, 2) if hwm is not None else None,
                 other_mib=round(other, 2), reserved_not_resident_mib=round(not_resident, 2),
                 kv_share=round(kv / total, 5) if total > 0 else 0.0,
                 rss_sample_hz=round(rss_hz, 1) if rss_hz else None,
                 mem_available_drop_mib=(round(available_drop_mib, 2)
                                         if available_drop_mib is not None else None),
                 accounting=accounting)
    if info is not None:
        analytic = kv_cache_bytes(info, n_ctx, type_k, type_v, swa_full=swa_full,
                                  n_ubatch=n_ubatch, pad=False)["total_bytes"] / MIB
        mem.kv_analytic_mib = round(analytic, 4)
        if kv > 0:
            mem.kv_analytic_error_pct = round(100.0 * (analytic - kv) / kv, 3)
        mem.projection = kv_projection(info, model + compute + other, type_k, type_v,
                                       swa_full=swa_full, n_ubatch=n_ubatch)
    return mem


# Weight types llama.cpp's CPU backend copies into a repacked layout (its CPU_REPACK buffer)
# when the CPU has the instructions for them, per architecture (ggml-cpu/repack.cpp of the
# llama.cpp in llama-cpp-python 0.3.x: AVX2 / AVX-512 on x86; NEON with dot product or int8
# matmul on ARM).  The mapped file stays resident too, so these weights count twice.  A
# generous list (a CPU without the instructions repacks less): it decides skips.  The probe
# measures the real shares of a device (slmbench.predict.repack_shares).
REPACKED_TYPES = {
    "x86_64": ("Q4_0", "Q4_K", "Q2_K", "IQ4_NL", "MXFP4"),
    "aarch64": ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0"),
    "riscv64": ("Q4_0", "Q4_K", "Q2_K", "IQ4_NL", "Q8_0"),
}
_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def repack_rule(machine: str | None = None) -> dict[str, float]:
    """{weight type: 1.0} for the types the CPU backend repacks on this (or ``machine``'s)
    architecture, from REPACKED_TYPES."""
    import platform

    m = (machine or platform.machine()).lower()
    return {t: 1.0 for t in REPACKED_TYPES.get(_MACHINE_ALIASES.get(m, m), ())}


def repacked_mib(info: GGUFInfo, shares: dict[str, float]) -> float:
    """MiB of the multiplied weights the CPU backend holds a second time in a repacked layout,
    given the share it repacks of each weight type."""
    return sum(v * shares.get(k, 0.0) for k, v in multiplied_bytes(info).items()) / MIB


def estimate_memory(info: GGUFInfo, settings: Settings,
                    plan: TestPlan | None = None) -> dict[str, float]:
    """Predict what a config will need before loading it (for the runner's fits-in-RAM check).

    weights = tensor bytes; repacked = the copies the CPU backend makes of some weight types
    (repack_rule; none when layers are offloaded to a GPU); KV = analytic; compute ~ 4-byte
    activations for one micro-batch:
    logits (vocab x ubatch) + attention scores (heads x ctx x ubatch) + FFN/hidden scratch;
    overhead = runtime and Python (~150 MiB).  Deliberately generous: it only decides skips.
    """
    n_ctx = settings.n_ctx or (plan.n_ctx_needed() if plan is not None else 0)
    n_ctx = pad_ctx(max(n_ctx, 1))
    ubatch = settings.n_ubatch
    if plan is not None:
        ubatch = min(ubatch, max(max(plan.n_prompt or [1]), 1))
    kv = kv_cache_bytes(info, n_ctx, settings.type_k, settings.type_v,
                        swa_full=settings.swa_full, n_ubatch=ubatch)["total_bytes"]
    compute = 4 * ubatch * (info.n_vocab + info.n_head * n_ctx + 4 * info.n_embd
                            + 2 * (info.n_ff or 4 * info.n_embd))
    repacked = 0.0 if settings.n_gpu_layers else repacked_mib(info, repack_rule())
    est = {"model_mib": info.model_size_bytes / MIB, "repacked_mib": repacked, "kv_mib": kv / MIB,
           "compute_mib": compute / MIB, "overhead_mib": 150.0}
    est["total_mib"] = sum(est.values())
    return {k: round(v, 1) for k, v in est.items()}


def estimate_quality_memory(info: GGUFInfo, settings: Settings,
                            reference: GGUFInfo | None = None) -> dict[str, float]:
    """Like estimate_memory, for a quality evaluation: one window of ``settings.n_ctx`` tokens
    in the model and, side by side, in the reference; plus the logits both hand to numpy
    (float32, ``n_batch`` rows x vocabulary each)."""
    plan = TestPlan([settings.n_ctx], [], [0], False)
    est = estimate_memory(info, settings, plan)
    del est["total_mib"]
    if reference is not None:
        ref = estimate_memory(reference, settings, plan)
        for k in ("model_mib", "repacked_mib", "kv_mib", "compute_mib"):
            est[k] += ref[k]
    est["overhead_mib"] += 2 * 4 * settings.n_batch * info.n_vocab / MIB
    est["total_mib"] = sum(est.values())
    return {k: round(v, 1) for k, v in est.items()}
