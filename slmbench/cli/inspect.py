"""`slmbench inspect`: what a GGUF file holds, read from its header only."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Read a GGUF file's header with the `gguf` package - no weights loaded, no llama.cpp context -
and report the architecture, parameter count (from tensor shapes, equal to llama.cpp's
llama_model_n_params), file size, bits per weight, file type (e.g. Q4_K_M) and the per-tensor
type mix, vocabulary, layers, embedding size, heads, KV heads, head dims, FFN size, training
context, sliding window, and the analytic KV-cache bytes per token for f16 and q8_0 caches.

examples:
  slmbench inspect model.gguf
  slmbench inspect model.gguf --json | jq .n_params
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE.gguf")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from slmbench.display import human_count
    from slmbench.gguf_info import kv_cache_bytes, read_gguf
    from slmbench.schema import to_dict

    infos = [read_gguf(f) for f in args.files]
    if args.json:
        out = []
        for info in infos:
            d = to_dict(info.to_facts())
            d["n_head_kv_layers"] = info.n_head_kv_layers
            d["swa_layers"] = info.swa_layers
            out.append(d)
        print(json.dumps(out[0] if len(out) == 1 else out, indent=1))
        return 0
    for info in infos:
        f = info.to_facts()
        mix = ", ".join(f"{k} x{v}" for k, v in f.tensor_types.items())
        swa = (f"{f.sliding_window} tokens on {f.n_swa_layers}/{f.n_layer} layers"
               if f.sliding_window else "none")
        kv_ctx = kv_cache_bytes(info, f.n_ctx_train or 2048)["total_bytes"] / 2**20
        rows = [
            ("file", f"{f.path} ({f.file_size_bytes:,} bytes)"),
            ("architecture", f"{f.architecture}  name: {f.name or '-'}"),
            ("parameters", f"{f.n_params:,} ({human_count(f.n_params)})"),
            ("file type", f"{f.file_type}  {f.bits_per_weight:.3f} bits/weight "
                          f"({f.model_size_bytes:,} tensor bytes)"),
            ("tensor types", mix),
            ("vocabulary", f"{f.n_vocab:,}"),
            ("layers", str(f.n_layer)),
            ("embedding", str(f.n_embd)),
            ("heads", f"{f.n_head} query / {f.n_head_kv} KV "
                      f"(head dim K {f.n_embd_head_k}, V {f.n_embd_head_v})"),
            ("feed-forward", str(f.n_ff)),
            ("training context", f"{f.n_ctx_train:,}"),
            ("sliding window", swa),
            ("KV bytes/token", f"f16 {f.kv_bytes_per_token_f16:,}  q8_0 "
                               f"{f.kv_bytes_per_token_q8_0:,.0f}"),
            ("KV at train ctx", f"{kv_ctx:,.1f} MiB (f16, n_ctx {f.n_ctx_train:,})"),
        ]
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
        print()
    return 0
