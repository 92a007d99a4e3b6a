"""The memory-bandwidth probe saved in env.json, for the decode roofline.

Decode reads every weight once per token, so weights bytes x tokens/s is the bandwidth decode
achieves; dividing by what this machine can stream *with the same number of threads* says how
close decode is to its roofline.

How the probe reads memory, and why:

- **Threads.** Decode runs on all of the run's threads, and one core cannot saturate the memory
  controller of most CPUs (here: ~10 GB/s on one thread, ~35 GB/s on two).  The probe reads
  with each thread count the run uses, each thread a disjoint slice, released together by a
  barrier; the figure is bytes / wall time of the slowest thread.  Python threads suffice
  because both kernels drop the GIL: ctypes drops it around every foreign call, numpy inside
  reductions over plain numbers (checked: a Python loop in another thread kept spinning at
  72-93 % of its solo rate while either kernel read 1 GiB, on a loaded 2-core machine).
- **Kernels.** A float64 ``sum`` can be compute-bound (pairwise summation: one published case
  read 7.8 GB/s with ``sum`` against 28.3 GB/s with ``max`` on the same buffer).  The probe
  runs two kernels that do almost no work per byte, glibc's ``memchr`` (vectorised, searching
  for a byte that is not there) and numpy's integer ``max``, and keeps the faster per thread
  count; both are recorded.
- **Size.** Twice the last-level cache, at least 256 MiB and at most 1 GiB (and at most an
  eighth of the available RAM), so a pass streams from DRAM, not from the cache.  Touching the
  pages costs more than reading them on a VM (~0.25 s per 520 MiB here with MAP_POPULATE), so
  the pages are allocated once and every pass reuses them; the whole probe takes about a
  second.
- **Best of repeats**, as STREAM reports: other processes only ever make a pass slower.

The cache sizes (sysfs) are recorded too: a model whose weights fit in the last-level cache
is marked cache-resident by the analyzer instead of being given a percentage above 100 %.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import mmap
import os
import threading
import time
from typing import Any, Callable, Iterable

MIB = 2**20
MIN_MIB, MAX_MIB = 256, 1024
KERNELS = ("memchr", "numpy-max")


def cache_sizes(root: str = "/sys/devices/system/cpu") -> dict[str, int]:
    """Cache sizes in bytes by level and type, e.g. {'L1d': 49152, 'L2': 2097152, 'L3': ...}.

    The largest size of each cache over all CPUs (a phone's cpu0 is a little core), from
    ``cpuN/cache/index*/{level,type,size}``; empty where sysfs does not say.
    """
    out: dict[str, int] = {}
    try:
        cpus = [d for d in os.listdir(root) if d.startswith("cpu") and d[3:].isdigit()]
    except OSError:
        return out
    for cpu in cpus:
        base = os.path.join(root, cpu, "cache")
        try:
            indexes = [d for d in os.listdir(base) if d.startswith("index")]
        except OSError:
            continue
        for idx in indexes:
            try:
                with open(os.path.join(base, idx, "level"), encoding="ascii") as fh:
                    level = fh.read().strip()
                with open(os.path.join(base, idx, "type"), encoding="ascii") as fh:
                    kind = fh.read().strip()
                with open(os.path.join(base, idx, "size"), encoding="ascii") as fh:
                    size = _size_bytes(fh.read().strip())
            except (OSError, ValueError):
                continue
            suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
            key = f"L{level}{suffix}"
            out[key] = max(out.get(key, 0), size)
    return dict(sorted(out.items()))


def _size_bytes(text: str) -> int:
    """'48K' -> 49152, '260M' -> 272629760, '1024' -> 1024."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def last_level_cache(caches: dict[str, int]) -> int | None:
    """The size of the highest-level data or unified cache, None when unknown."""
    keys = [k for k in caches if not k.endswith("i")]
    return caches[max(keys, key=lambda k: int(k[1:].rstrip("d")))] if keys else None


def probe_size_mib(llc_bytes: int | None, available_mib: float | None = None) -> int:
    """Twice the last-level cache, within 256 MiB .. 1 GiB and an eighth of the free RAM."""
    size = max(MIN_MIB, -(-2 * (llc_bytes or 0) // MIB))
    size = min(size, MAX_MIB)
    if available_mib:
        size = min(size, max(32, int(available_mib // 8)))
    return int(size)


def _kernels() -> dict[str, Callable[[Any], None]]:
    """name -> read function over a uint8 numpy view (each releases the GIL)."""
    out: dict[str, Callable[[Any], None]] = {}
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        try:
            libc = ctypes.CDLL(libc_name)
            memchr = libc.memchr
            memchr.restype = ctypes.c_void_p
            memchr.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
            # the buffer holds zeros: searching for 1 reads every byte and finds nothing
            out["memchr"] = lambda view: memchr(view.ctypes.data, 1, view.nbytes)
        except (OSError, AttributeError):
            pass
    out["numpy-max"] = lambda view: view.view("int64").max()
    return out


def _zeroed_pages(nbytes: int) -> mmap.mmap:
    """An anonymous mapping whose every page is really allocated (zeros).

    An untouched page would read as the kernel's one shared zero page, from the cache.
    MAP_POPULATE has the kernel allocate them all at once (writable private mappings get
    their own pages): 230-250 ms for 520 MiB on this project's VM against 360-430 ms for
    writing every page from Python; elsewhere the pages are written once.
    """
    flags = getattr(mmap, "MAP_POPULATE", 0)
    if flags:
        try:
            return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
        except (OSError, ValueError):
            pass
    buf = mmap.mmap(-1, nbytes)
    import numpy as np

    np.frombuffer(buf, dtype=np.uint8).fill(0)
    return buf


def _read_pass(chunks: list, kernel: Callable[[Any], None]) -> float:
    """Seconds for all threads to read their chunk once, started together."""
    if len(chunks) == 1:
        t0 = time.perf_counter()
        kernel(chunks[0])
        return time.perf_counter() - t0
    start = threading.Barrier(len(chunks) + 1)
    threads = []

    def work(view: Any) -> None:
        start.wait()
        kernel(view)

    for view in chunks:
        threads.append(threading.Thread(target=work, args=(view,), daemon=True))
        threads[-1].start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def probe_bandwidth(threads: Iterable[int] = (1,), *, size_mib: int | None = None,
                    repeats: int = 3, budget_s: float = 1.5) -> dict[str, Any]:
    """Read bandwidth in GB/s per thread count (an env.json ``bandwidth`` dict).

    Each thread count gets ``repeats`` passes of every kernel (fewer once ``budget_s`` is
    spent, never fewer than one); the figure of a thread count is the best pass of its faster
    kernel.  ``read_gbs`` is the figure at the largest thread count.
    """
    import numpy as np

    t_start = time.perf_counter()
    counts = sorted({max(1, int(n)) for n in threads}) or [1]
    caches = cache_sizes()
    llc = last_level_cache(caches)
    if size_mib is None:
        try:
            import psutil

            available = psutil.virtual_memory().available / MIB
        except Exception:  # noqa: BLE001 - only a cap
            available = None
        size_mib = probe_size_mib(llc, available)
    nbytes = size_mib * MIB
    t0 = time.perf_counter()
    buf = _zeroed_pages(nbytes)
    try:
        a = np.frombuffer(buf, dtype=np.uint8)
        touch_ms = 1000 * (time.perf_counter() - t0)
        kernels = _kernels()
        points = []
        for n in counts:
            chunk = (nbytes // n) // 4096 * 4096  # page-aligned slices, int64-aligned
            chunks = [a[i * chunk:(i + 1) * chunk] for i in range(n)]
            read = n * chunk
            best: dict[str, float] = {}
            passes = 0
            for rep in range(repeats):
                if rep and time.perf_counter() - t_start > budget_s:
                    break
                passes += 1
                for name, kernel in kernels.items():
                    gbs = read / _read_pass(chunks, kernel) / 1e9
                    best[name] = max(best.get(name, 0.0), gbs)
            winner = max(best, key=best.get)
            points.append({"n_threads": n, "read_gbs": round(best[winner], 2), "kernel": winner,
                           "kernels_gbs": {k: round(v, 2) for k, v in best.items()},
                           "passes": passes})
        del a, chunks
    finally:
        try:
            buf.close()
        except BufferError:  # a view still alive: the mapping goes with the object
            pass
    return {
        "read_gbs": points[-1]["read_gbs"],
        "method": (f"read {size_mib} MiB with {', '.join(str(n) for n in counts)} thread(s), "
                   f"kernels {' and '.join(kernels)} (faster kept), best of up to {repeats} "
                   "passes"),
        "threads": points,
        "array_mib": size_mib,
        "kernels": list(kernels),
        "cache_bytes": caches,
        "llc_bytes": llc,
        "touch_ms": round(touch_ms, 1),
        "probe_ms": round(1000 * (time.perf_counter() - t_start), 1),
    }


CURVE_MIB = (4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 128, 192, 256)


def cache_curve(n_threads: int = 1, sizes_mib: Iterable[int] = CURVE_MIB, *,
                min_read_mib: int = 1024, repeats: int = 3) -> list[list[float]]:
    """[[MiB, GB/s], ...]: the read bandwidth of a working set of each size read over and
    over by ``n_threads`` threads (disjoint slices) - fast while it stays in the caches, the
    DRAM figure once it does not.  Where it drops is the cache a workload really gets (on a
    VM a share of what sysfs reports: 260 MiB L3 reported, the drop at 56-64 MiB here).
    Each size: the best of ``repeats`` timings, each of enough passes to read
    ``min_read_mib``."""
    import numpy as np

    sizes = sorted({int(s) for s in sizes_mib})
    n = max(1, int(n_threads))
    buf = _zeroed_pages(sizes[-1] * MIB)
    kernel = _kernels().get("memchr") or _kernels()["numpy-max"]
    out = []
    try:
        a = np.frombuffer(buf, dtype=np.uint8)
        for mib in sizes:
            chunk = (mib * MIB // n) // 4096 * 4096
            chunks = [a[i * chunk:(i + 1) * chunk] for i in range(n)]
            passes = max(2, -(-min_read_mib // mib))
            _read_pass(chunks, kernel)  # into the caches
            best = 0.0
            for _ in range(repeats):
                secs = sum(_read_pass(chunks, kernel) for _ in range(passes))
                best = max(best, passes * n * chunk / secs / 1e9)
            out.append([float(mib), round(best, 2)])
        del a, chunks
    finally:
        try:
            buf.close()
        except BufferError:
            pass
    return out


def miss_share(curve: list[list[float]], nbytes: float) -> float:
    """0..1: how far a working set of ``nbytes`` read over and over is from the cache speed
    toward the DRAM speed, in time per byte (0 = every byte from the caches, 1 = as from
    DRAM), from a cache_curve; log-linear between its sizes, 0 below and 1 above them."""
    if not curve:
        return 1.0
    fast = 1.0 / max(g for m, g in curve if m <= curve[-1][0] / 4)  # (threads start late
    # on the smallest sizes: the best of the first quarter is the cache figure)
    slow = 1.0 / curve[-1][1]
    if slow <= fast:
        return 1.0

    def share(gbs: float) -> float:
        return min(1.0, max(0.0, (1.0 / gbs - fast) / (slow - fast)))

    mib = nbytes / MIB
    if mib <= curve[0][0]:
        return share(curve[0][1])
    for (m0, g0), (m1, g1) in zip(curve, curve[1:]):
        if mib <= m1:
            f = math.log(mib / m0) / math.log(m1 / m0)
            return share(g0) + (share(g1) - share(g0)) * f
    return 1.0
