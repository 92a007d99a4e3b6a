"""Random-weight llama- or gemma3-architecture GGUF models of any shape.

Random weights cost exactly what trained weights cost in time and memory, so a synthetic model is
both the test fixture of the whole project and a user feature: benchmark an architecture before
downloading it.  The tokenizer is a valid SentencePiece-style ("llama") vocabulary of the requested
size with byte fallback, so any text tokenizes.
"""

from __future__ import annotations

import itertools
import os
import string
from dataclasses import dataclass
from pathlib import Path

from slmbench.errors import ConfigError

N_SPECIAL = 3  # <unk> <s> </s>
MIN_VOCAB = N_SPECIAL + 256  # plus one byte-fallback token per byte value
# llama: attn_norm and ffn_norm, SiLU FFN, separate output matrix. gemma3 (Gemma-3's layers,
# as llama.cpp builds them): also q/k norms and post-attention / post-FFN norms (6 norm
# tensors per layer), GELU FFN, embeddings scaled by sqrt(n_embd), the output tied to the
# embedding, 5 of every 6 layers with sliding-window attention
ARCHITECTURES = ("llama", "gemma3")
GEMMA3_WINDOW = 512  # Gemma-3-270M's sliding window


@dataclass
class SynthSpec:
    n_embd: int = 256
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 768
    n_vocab: int = 8192
    n_ctx: int = 2048
    seed: int = 0
    name: str = "synthetic"
    arch: str = "llama"

    def validate(self) -> None:
        problems = []
        if self.arch not in ARCHITECTURES:
            problems.append(f"--arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}")
        for fld in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_vocab", "n_ctx"):
            if int(getattr(self, fld)) <= 0:
                problems.append(f"--{fld.replace('_', '-')} must be > 0")
        if self.n_head > 0 and self.n_embd % self.n_head:
            problems.append(f"--n-embd {self.n_embd} must be a multiple of --n-head {self.n_head}")
        if self.n_head_kv > 0 and self.n_head % self.n_head_kv:
            problems.append(f"--n-head {self.n_head} must be a multiple of --n-head-kv "
                            f"{self.n_head_kv}")
        if self.n_head > 0 and (self.n_embd // self.n_head) % 2:
            problems.append("head size (n_embd / n_head) must be even for RoPE")
        if self.n_vocab < MIN_VOCAB:
            problems.append(f"--n-vocab must be >= {MIN_VOCAB} (3 control + 256 byte tokens)")
        if problems:
            raise ConfigError("bad synthetic model shape: " + "; ".join(problems))


def _vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style vocabulary: control tokens, 256 byte tokens, then unique pieces."""
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    letters = string.ascii_lowercase

    def pieces():
        yield "\u2581"  # the SentencePiece space marker alone
        for length in itertools.count(1):
            for combo in itertools.product(letters, repeat=length):
                word = "".join(combo)
                yield "\u2581" + word
                yield word

    for piece in itertools.islice(pieces(), n_vocab - len(tokens)):
        tokens.append(piece)
        types.append(TokenType.NORMAL)
    # shorter pieces get higher scores, so the tokenizer prefers them like a trained SPM would
    scores = [0.0] * (N_SPECIAL + 256) + [-float(i) for i in range(n_vocab - N_SPECIAL - 256)]
    return tokens, scores, [int(t) for t in types]


def write_synthetic(path: str, spec: SynthSpec, split_max_tensors: int = 0) -> str:
    """Write an F16 GGUF of ``spec.arch`` with N(0, 0.02) weights; returns the path.

    ``split_max_tensors`` > 0 writes a split model the way llama.cpp's converter and
    llama-gguf-split do (``x-00001-of-0000N.gguf`` ..., at most that many tensors per shard, all
    metadata in the first) and returns the first shard, the file llama.cpp is given."""
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType

    spec.validate()
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    head_dim = spec.n_embd // spec.n_head
    n_kv_embd = head_dim * spec.n_head_kv

    def weight(rows: int, cols: int) -> "np.ndarray":
        w = rng.standard_normal((rows, cols), dtype=np.float32)
        w *= 0.02
        return w.astype(np.float16)

    def norm(n: int = spec.n_embd) -> "np.ndarray":
        return np.ones(n, dtype=np.float32)

    gemma = spec.arch == "gemma3"
    writer = GGUFWriter(path, spec.arch, split_max_tensors=split_max_tensors)
    writer.add_name(spec.name)
    writer.add_context_length(spec.n_ctx)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6 if gemma else 1e-5)
    if gemma:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(GEMMA3_WINDOW)
    writer.add_vocab_size(spec.n_vocab)
    writer.add_file_type(int(LlamaFileType.MOSTLY_F16))
    tokens, scores, types = _vocab(spec.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    writer.add_tensor("token_embd.weight", weight(spec.n_vocab, spec.n_embd))
    for il in range(spec.n_layer):
        p = f"blk.{il}."
        writer.add_tensor(p + "attn_norm.weight", norm())
        writer.add_tensor(p + "attn_q.weight", weight(spec.n_embd, spec.n_embd))
        writer.add_tensor(p + "attn_k.weight", weight(n_kv_embd, spec.n_embd))
        writer.add_tensor(p + "attn_v.weight", weight(n_kv_embd, spec.n_embd))
        writer.add_tensor(p + "attn_output.weight", weight(spec.n_embd, spec.n_embd))
        if gemma:
            writer.add_tensor(p + "attn_q_norm.weight", norm(head_dim))
            writer.add_tensor(p + "attn_k_norm.weight", norm(head_dim))
            writer.add_tensor(p + "post_attention_norm.weight", norm())
            writer.add_tensor(p + "post_ffw_norm.weight", norm())
        writer.add_tensor(p + "ffn_norm.weight", norm())
        writer.add_tensor(p + "ffn_gate.weight", weight(spec.n_ff, spec.n_embd))
        writer.add_tensor(p + "ffn_up.weight", weight(spec.n_ff, spec.n_embd))
        writer.add_tensor(p + "ffn_down.weight", weight(spec.n_embd, spec.n_ff))
    writer.add_tensor("output_norm.weight", norm())
    if not gemma:  # gemma3's output is the embedding (tied)
        writer.add_tensor("output.weight", weight(spec.n_vocab, spec.n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    first = str(writer.format_shard_names(Path(path))[0])
    writer.close()
    return first


def quant_path(base: str, quant: str) -> str:
    """models/tiny.gguf + Q4_K_M -> models/tiny-Q4_K_M.gguf"""
    root, ext = os.path.splitext(base)
    return f"{root}-{quant.upper()}{ext or '.gguf'}"


def synthesize(path: str, spec: SynthSpec, quants: list[str] | tuple[str, ...] = (),
               n_threads: int = 0) -> dict[str, str]:
    """Write the F16 model and each requested quantization; returns {quant: path}."""
    from slmbench.llama_backend import quantize

    write_synthetic(path, spec)
    out = {"F16": path}
    for q in quants:
        q = q.strip().upper()
        if not q or q == "F16":
            continue
        out[q] = quantize(path, quant_path(path, q), q, n_threads) or quant_path(path, q)
    return out
