"""A small memory-bandwidth probe, saved in env.json, for the decode roofline.

Decode reads every weight once per token, so weights bytes x tokens/s is the bandwidth decode
achieves; dividing by what this machine can stream says how close decode is to its roofline.
"""

from __future__ import annotations

import time


def probe_bandwidth(size_mib: int = 256, repeats: int = 5) -> dict:
    """Median read (sum over a large array) and copy bandwidth in GB/s, single-threaded numpy."""
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
