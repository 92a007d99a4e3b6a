"""`slmbench synth`: write a random-weight model of any shape and quantize it."""

from __future__ import annotations

import argparse
import time

DESCRIPTION = """\
Write a random-weight llama- or gemma3-architecture GGUF (F16) with a valid tokenizer of the
requested vocabulary size, loadable by llama.cpp, then quantize it with llama.cpp's own
quantizer.
Random weights cost exactly what trained weights cost in time and memory: benchmark an
architecture before downloading it.  Quantized files are written next to OUT as
OUT-<QUANT>.gguf.  K-quants (Q4_K_M, ...) need dimensions that are multiples of 256;
llama.cpp falls back to other types for tensors that are not.

examples:
  slmbench synth tiny.gguf                                  # 2 layers, 256 wide, 8k vocab
  slmbench synth qwen-like.gguf --n-embd 896 --n-layer 24 --n-head 14 --n-head-kv 2 \\
      --n-ff 4864 --n-vocab 151936 --quant Q8_0,Q4_K_M
  slmbench synth gemma-like.gguf --arch gemma3 --n-embd 1024 --n-layer 6 --n-head 4 \\
      --n-head-kv 1 --n-ff 2048                             # Gemma-3's layers, head dim 256
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench.synth import ARCHITECTURES, SynthSpec

    d = SynthSpec()
    p.add_argument("out", metavar="OUT.gguf", help="path of the F16 model to write")
    for name, help_text in (("n_embd", "hidden size"), ("n_layer", "transformer blocks"),
                            ("n_head", "attention heads"), ("n_head_kv", "KV heads (GQA)"),
                            ("n_ff", "feed-forward size"), ("n_vocab", "vocabulary size"),
                            ("n_ctx", "training context length")):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name),
                       help=f"{help_text} (default {getattr(d, name)})")
    p.add_argument("--arch", default=d.arch, choices=ARCHITECTURES,
                   help="llama: 2 norms per layer, SiLU; gemma3: Gemma-3's layers (q/k and "
                        "post norms, GELU, tied output, sliding-window attention) "
                        f"(default {d.arch})")
    p.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    p.add_argument("--quant", default="", metavar="Q[,Q...]",
                   help="also write these quantizations, e.g. Q8_0,Q4_K_M,Q4_0")


def run(args: argparse.Namespace) -> int:
    from slmbench.gguf_info import read_gguf
    from slmbench.synth import SynthSpec, synthesize

    spec = SynthSpec(n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
                     n_head_kv=args.n_head_kv, n_ff=args.n_ff, n_vocab=args.n_vocab,
                     n_ctx=args.n_ctx, seed=args.seed, arch=args.arch)
    t0 = time.perf_counter()
    out = synthesize(args.out, spec, [q for q in args.quant.split(",") if q.strip()])
    elapsed = time.perf_counter() - t0
    for quant, path in out.items():
        info = read_gguf(path)
        print(f"{quant:8s} {path}  {info.n_params:,} params  {info.file_size_bytes / 2**20:.1f} MiB"
              f"  {info.bits_per_weight:.2f} bits/weight")
    print(f"written in {elapsed:.2f} s")
    return 0
