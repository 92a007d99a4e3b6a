"""A competing CPU load started halfway through a sustained run: the drop, when it is
reported, and what is retained (issue #15 acceptance, longer than the unit test).

    python benchmarks/sustain_competing.py [MODEL.gguf] [--duration 20s] [--window 1s]
                                           [--workload tg64] [-t 1] [--burners N] [--out DIR]

Default MODEL: a synthetic 4-layer, 512-wide llama (built once in ~/.cache/slmbench).  The run
is in this process (slmbench.sustained.measure_sustained); when the window that ends at half
the duration closes, N processes spinning `while True: pass` start (default 2 per core) and
run to the end.  Printed: the window table, the load's start, the reported first window below
90 % of burst and its distance from the load's start (in windows), retained %.  The figure
(speed and the load's start over time) goes to --out.  Exit code 0 when the drop is reported
within one window of the load's start and retained < 100 %.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

BURN = "while True:\n    pass\n"
SHAPE = {"n_embd": 512, "n_layer": 4, "n_head": 8, "n_head_kv": 4, "n_ff": 1536,
         "n_vocab": 8192}


def synthetic_model() -> str:
    from slmbench.suite import synthetic_file
    from slmbench.synth import SynthSpec, synthesize

    cache = os.path.join(os.path.expanduser("~"), ".cache", "slmbench", "synthetic")
    os.makedirs(cache, exist_ok=True)
    base = synthetic_file(cache, "sustain-e512-l4", SHAPE)
    q8 = base.replace(".gguf", "-Q8_0.gguf")
    if not os.path.exists(q8):
        synthesize(base, SynthSpec(name="sustain-e512-l4", **SHAPE), ["Q8_0"])
    return q8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--duration", default="20s")
    ap.add_argument("--window", default="1s")
    ap.add_argument("--workload", default="tg64")
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--burners", type=int, default=2 * (os.cpu_count() or 2))
    ap.add_argument("--out", default="sustain-competing")
    args = ap.parse_args()

    from slmbench.config import Settings
    from slmbench.figures import _save, fig_sustained
    from slmbench.sustained import format_sustained, make_spec, measure_sustained

    model = args.model or synthetic_model()
    spec = make_spec(args.duration, args.window, args.workload)
    half = spec.n_windows // 2
    burners: list[subprocess.Popen] = []

    def progress(msg: str) -> None:
        if msg.startswith(f"{half}/") and not burners:
            burners.extend(subprocess.Popen([sys.executable, "-c", BURN])
                           for _ in range(args.burners))

    load0 = os.getloadavg()
    try:
        rec = measure_sustained(model, Settings(n_threads=args.threads), spec,
                                progress=progress)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    test = rec.tests[0]
    res = test.sustained
    # the burners start when window half-1 closes: at the end of the first event past its
    # edge, so within a token (or a prefill) of t = half x window
    t_load = half * spec.window_s
    print(format_sustained(test))
    sp = res.decode if res.primary == "decode" else res.prefill
    print()
    print(f"load average before {load0[0]:.2f}; {args.burners} busy processes started when "
          f"window {half - 1} closed (t = {t_load:g} s)")
    if sp.below_90_s is None:
        print("the speed never fell below 90% of burst: no drop reported")
        ok = False
    else:
        off = (sp.below_90_s - t_load) / spec.window_s
        print(f"first window below 90% of burst starts at {sp.below_90_s:g} s: {off:+.1f} "
              f"window(s) from the load's start")
        ok = abs(off) <= 1.0 and sp.retained_pct < 100
    print(f"retained {sp.retained_pct:.1f}% ({sp.sustained_ts:,.1f} of {sp.burst_ts:,.1f} "
          f"tokens/s): {'PASS' if ok else 'FAIL'}")
    fig = fig_sustained(test, f"{os.path.basename(model)}: busy processes from {t_load:g} s",
                        marks=[(t_load, f"{args.burners} busy processes start")])
    print("figure:", _save(fig, args.out, "sustain-competing")[0])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
