"""A small memory-bandwidth probe, saved in env.json, for the decode roofline.

Decode reads every weight once per token, so weights bytes x tokens/s is the bandwidth decode
achieves; dividing by what this machine can stream says how close decode is to its roofline.
"""

from __future__ import annotations

import time


def probe_bandwidth(size_mib: int = 128, repeats: int = 5) -> dict:
    """Median read (sum over a large array) and copy bandwidth in GB/s, single-threaded numpy.

    128 MiB is several times the last-level cache of the devices slmbench targets (Jetson Orin
    4 MiB, phones <= 16 MiB, laptops <= 36 MiB) and half the first-touch cost of 256 MiB, which
    dominates the probe on a VM (0.55 s per 256 MiB here against 17 ms per read pass).
    """
    import numpy as np

    n = size_mib * 2**20 // 8
    a = np.ones(n, dtype=np.float64)
    b = np.empty_like(a)
    reads, copies = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        t1 = time.perf_counter()
        np.copyto(b, a)
        t2 = time.perf_counter()
        reads.append(a.nbytes / (t1 - t0) / 1e9)
        copies.append(2 * a.nbytes / (t2 - t1) / 1e9)  # a copy reads and writes every byte
    reads.sort()
    copies.sort()
    return {"read_gbs": round(reads[len(reads) // 2], 2),
            "copy_gbs": round(copies[len(copies) // 2], 2),
            "method": f"numpy, 1 thread, {size_mib} MiB array, median of {repeats}"}
