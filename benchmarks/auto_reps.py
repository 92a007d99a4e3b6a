"""Time to a trustworthy number: `-r auto` against fixed repetition counts.

The same synthetic configs are measured with -r 5, -r 10 and -r auto (--target-ci), each
config in its own worker, interleaved config by config so machine load hits every mode alike.
Reported per mode: total measuring time (load + every timed sample, from the records), the
achieved 95% CI half-width of the mean per test (median and worst over tests), and for auto
how many tests reached the target and how many repetitions they took.

    python benchmarks/auto_reps.py                       # 3 shapes x Q8_0, pp128 + tg32
    python benchmarks/auto_reps.py --target-ci 1 --rounds 2

On a quiet machine auto should finish sooner than -r 10 at an equal or better CI; on a noisy
one it says (stop reason max_repetitions / max_time) that the target was not reached.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import slmbench
from slmbench.suite import synthetic_file

SHAPES = {
    "ar-e512-l4": {"n_embd": 512, "n_layer": 4, "n_head": 8, "n_head_kv": 4, "n_ff": 1536,
                   "n_vocab": 8192},
    "ar-e768-l6": {"n_embd": 768, "n_layer": 6, "n_head": 12, "n_head_kv": 4, "n_ff": 2048,
                   "n_vocab": 8192},
    "ar-e1024-l8": {"n_embd": 1024, "n_layer": 8, "n_head": 16, "n_head_kv": 4,
                    "n_ff": 2816, "n_vocab": 16384},
}


def model_files(cache: str, quant: str) -> list[str]:
    from slmbench.synth import SynthSpec, quant_path, write_synthetic
    from slmbench.llama_backend import quantize

    os.makedirs(cache, exist_ok=True)
    out = []
    for name, shape in SHAPES.items():
        base = synthetic_file(cache, name, shape)
        if not os.path.exists(base):
            write_synthetic(base, SynthSpec(name=name, **shape))
        target = base if quant == "F16" else quant_path(base, quant)
        if not os.path.exists(target):
            quantize(base, target, quant)
        out.append(target)
    return out


def measured_s(rec) -> float:
    return (rec.load.load_ms + rec.load.ctx_ms) / 1e3 + sum(
        sum(t.samples_ns) / 1e9 for t in rec.tests)


def ci_half_pct(t) -> float:
    return 100.0 * (t.ms.ci95_high - t.ms.mean) / t.ms.mean if t.ms and t.ms.n > 1 else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-ci", type=float, default=2.0, help="auto's target, %% (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quant", default="Q8_0")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/slmbench/auto-reps"))
    args = ap.parse_args()
    files = model_files(args.cache_dir, args.quant)
    modes = {"-r 5": {"repetitions": 5}, "-r 10": {"repetitions": 10},
             f"-r auto ({args.target_ci:g}%)": {"repetitions": "auto",
                                               "target_ci": args.target_ci}}
    time_s = {m: 0.0 for m in modes}
    cis: dict[str, list[float]] = {m: [] for m in modes}
    reps: dict[str, list[int]] = {m: [] for m in modes}
    reached: dict[str, list[bool]] = {m: [] for m in modes}
    for rnd in range(args.rounds):
        for path in files:
            for mode, kw in modes.items():
                (rec,) = slmbench.bench([path], n_prompt=[128], n_gen=[32], ttft=False,
                                        threads=args.threads, warmup=1, **kw)
                if rec.status != "ok":
                    print(f"{mode} {os.path.basename(path)}: {rec.reason}", file=sys.stderr)
                    continue
                time_s[mode] += measured_s(rec)
                for t in rec.tests:
                    cis[mode].append(ci_half_pct(t))
                    reps[mode].append(t.ms.n)
                    reached[mode].append(t.stop_reason in ("target", "fixed")
                                         and ci_half_pct(t) <= args.target_ci)
                print(f"round {rnd + 1} {os.path.basename(path)} {mode}: "
                      + ", ".join(f"{t.name} n={t.ms.n} ±{ci_half_pct(t):.2f}% ({t.stop_reason})"
                                  for t in rec.tests), file=sys.stderr)
    print(f"\n{'mode':<18} {'measuring s':>11} {'CI median':>10} {'CI worst':>9} "
          f"{'reps median':>11} {'tests within target':>20}")
    for mode in modes:
        if not cis[mode]:
            continue
        print(f"{mode:<18} {time_s[mode]:>11.2f} {statistics.median(cis[mode]):>9.2f}% "
              f"{max(cis[mode]):>8.2f}% {statistics.median(reps[mode]):>11.0f} "
              f"{sum(reached[mode]):>9d}/{len(reached[mode])}")
    print(f"\nload: {os.getloadavg()[0]:.2f} (1-min average; > the cores = a noisy machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
