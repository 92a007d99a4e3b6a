"""Predict before you download: decode, prefill and memory of a GGUF model on this device.

A **device probe** (``slmbench probe``, 1.5-2 minutes per thread count) measures, through
llama.cpp itself, what a model's cost is made of on this machine, at each thread count:

- the read bandwidth (slmbench.bandwidth) - for the baseline and the report, not the model;
- per weight type (F16, Q8_0, Q6_K, Q5_K, Q5_0, Q4_K, Q4_0, Q3_K): a synthetic model whose every
  weight tensor has that type (quantized ``--pure`` by llama.cpp's quantizer) is decoded and
  prefilled, and decoded at four sizes from cache size to beyond the caches; with tiny models
  beside them (2 and 12 layers, a big and a small vocabulary, deep KV caches at head dims 64
  to 256, MHA beyond the L2 caches, a KV cache read after weights beyond the caches)
  one least-squares fit per phase gives
  - decode: seconds per byte of weights of each type for a matrix-vector product (the inverse
    of its effective GB/s), a fixed cost per token and per layer (the dispatch of every
    operator of a block), seconds per byte of KV cache read at depth (and beyond the L2
    caches) and per attention score of each head-dimension class;
  - prefill: seconds per FLOP of each type for a matrix-matrix product at a 128-token batch,
    a fixed cost per token and per token x layer, and seconds per attention FLOP of each
    head-dimension class;
  - memory: the share of each type's weights the CPU backend holds a second time,
    repacked (from llama.cpp's buffers), then peak RSS - mapped weights - repacked - KV
    against the activations of the largest micro-batch (hidden, FFN, attention scores), the
    vocabulary and a constant (the runtime).

**Prediction** for any model whose tensor table is known (a local GGUF, a header read as byte
ranges from the hub, or a shape from catalog facts):

    decode per token  = sum over matmul weights  bytes / B[type]  + o_tok + n_layer o_layer
                        + KV bytes attended at depth d x a_kv (+ beyond L2 x a_spill)
                        + scores x a_score[head dim]
                        (these three at least the KV bytes at the hit curve's mix of a_kv
                        and a_kv_dram: the KV from DRAM where scores are cheap)
    prefill of N      = sum over block weights  2 N elements / F[type]  + output matmul (one
                        token: llama.cpp computes logits for the last token only)
                        + N (p_tok + n_layer p_layer) + attention FLOPs x a_att[head dim]
    peak memory       = mapped weights + repacked copies + KV (llama.cpp's allocation
                        rules, exact) + the fitted rest

The probe calibrates these few numbers per device and thread count on its own synthetic models
only; benchmarks/predict.py validates them on models the probe never saw (docs/prediction.md).
A probe is stored under ``~/.cache/slmbench/probes/`` keyed by CPU, llama.cpp build and thread
count, and reused until one of them changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from slmbench.errors import ConfigError, ModelLoadError, SlmbenchError
from slmbench.gguf_info import (GGUFInfo, TensorInfo, _layer_kv_bytes, bytes_for, ggml_type_size,
                                is_matmul_weight, is_multiplied, kv_cache_bytes,
                                multiplied_bytes)
from slmbench.memory import repacked_mib
from slmbench.stats import CV_WARN_PCT, percentile

MIB = 1024 * 1024
PROBE_VERSION = 17  # 2: repacked weights (memory 'repack:TYPE'); 3: head dims 80/96/160, caches;
# 4: per-type decode models beyond the caches (big-*); 5: and at 2.5x cache size (mid-*);
# 6: the MHA model's KV beyond the caches (kv-mha64, 6 layers), sizes as bytes read per token;
# 7: the KV read from DRAM after weights beyond the caches (kv-gqa128); 8: prefill's cost per
# token-layer that grows with the width (replaced in 11; the same measurements); 9: the
# head-dim-256 model with 4 query heads (with 2, prefill attention did not speed up at 2 threads);
# 10: prefill of the mid-* models too (prefill's FLOP cost grows with the model's size);
# 11: a cost per matmul output row instead of the width term, a Gemma-3 probe model (fitted
# with the rest: its extra work came out 0); 12: the Gemma-3 model and its llama twin, their
# difference the Gemma-3 layers' extra work (GEMMA3_MODEL, GEMMA3_TWIN); 13: prefill's FLOP
# cost grows with the model's layer count instead of its size (the same measurements); 14:
# decode's cost per matmul row and per layer of weights streamed from DRAM (stream-*); 15: every
# timed model measured in PROBE_ROUNDS rounds (once more where they disagree), their median fitted;
# 16: the quickest round fitted (taken back: docs/prediction.md); 17: the MHA model at depth
# (kv-mha64) timed in Q8_0 instead of F16 (TIMED_AS)
# Q5_0 and Q8_0 are also what a K-quant falls back to for rows not a multiple of 256 (Gemma-3's
# 640-wide tensors in a Q4_K_M file are mostly Q5_0 and Q8_0)
PROBE_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "Q3_K")
# the llama-quantize label whose --pure quantization gives every weight this type
PURE_LABEL = {"F16": "F16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K": "Q5_K_M", "Q5_0": "Q5_0",
              "Q4_K": "Q4_K_M", "Q4_0": "Q4_0", "Q3_K": "Q3_K_M"}
# the main weight type of a quantization label (for shapes from catalog facts: no header)
LABEL_TYPE = {"F16": "F16", "BF16": "BF16", "F32": "F32", "Q8_0": "Q8_0", "Q6_K": "Q6_K",
              "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
              "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_0": "Q4_0", "Q4_1": "Q4_1",
              "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q3_K_L": "Q3_K", "Q2_K": "Q2_K",
              "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL"}
TINY_PREFIX = "tiny"  # probe models whose weights fit in the caches
SMALL = "@cache"     # suffix of their weight types in a fit
CACHED_PREFIX = "small-"  # the per-type probe models of cache size (~10-40 MB)
CACHED = "@small"    # suffix of their weight types in a fit
WIDE_PREFIX = "wide-"  # the per-type probe models where this VM's caches end (~65-300 MB)
MID_PREFIX = "mid-"  # the per-type probe models 2.5x the small ones (~25-90 MB, 10 layers)
MID = "@mid"         # suffix of their weight types in the decode fit
BIG_PREFIX = "big-"  # the per-type probe models beyond the caches (~150-850 MB; decode only)
BIG = "@big"         # suffix of their weight types in the decode fit
# the per-type decode models by size, smallest first: (file prefix, suffix of their weight
# types in the decode fit); a model's cost per byte is log-linear in size between two of them
SIZE_LADDER = ((CACHED_PREFIX, CACHED), (MID_PREFIX, MID), (WIDE_PREFIX, ""), (BIG_PREFIX, BIG))
# the big models' prefill would add nothing (the wide ones are beyond the caches already) and
# cost ~1 s per type; the mid ones are the small shape with the caches holding less of it
# the streaming models (decode only, STREAM_TYPE): beyond the caches like the big ones, with
# more matmul rows (a 262k vocabulary) or more layers (40) per byte than they have
STREAM_PREFIX = "stream-"
STREAM_MODELS = (STREAM_PREFIX + "rows", STREAM_PREFIX + "layers")
STREAM_TYPE = "Q8_0"
DECODE_ONLY_PREFIXES = (BIG_PREFIX, STREAM_PREFIX)
KV_PREFIX = "kv-"  # probe models of a KV cache beyond the caches (MHA, depth 2048)
KV_WEIGHTS = "@kv"   # suffix of their weight types in the decode fit: a rate of their own
KV_DRAM_MODEL = KV_PREFIX + "gqa128"  # its depth cost alone gives PhaseFit.kv_dram_s (no fit)
KV_MHA_MODEL = KV_PREFIX + "mha64"
# probe models timed as a pure quantization of the file written (under their own name): the
# MHA model at depth in Q8_0 since version 17. With its F16 weights (60 MB, streamed at ~32
# GB/s, the read bandwidth at 1 thread) its depth cost swung 3.9-5.9 ms per token between
# measurements seconds apart on the Zen-5 VM (DRAM shared with other tenants), in Q8_0 3.8-4.3
# ms: compute-bound like the quantized models it serves (20-22 ns per attention score at head
# dim 64, as tiny-l12's and a held-out 12-layer MHA shape's in Q4_0 and Q8_0), where the F16
# copy's slow moments put the MHA shape at depth 2048 13-26 % too slow
TIMED_AS = {KV_MHA_MODEL: "Q8_0"}
GEMMA3_MODEL = "tiny-g3"  # Gemma-3 layers: their work besides a llama layer's (prefill only)
GEMMA3_TWIN = "tiny-g3-llama"  # the same shape in llama layers: the difference is that work
MEMORY_ONLY_PREFIX = "mem-"  # probe models whose timings the fits do not use
PROBE_PROMPT = 128   # prefill batch of the probe's pp test
PROBE_GEN = 16
PROBE_REPETITIONS = 3  # the median of 3 moved 0.2-0.3 % (P90 1.4-2.7 %) from that of 5
PROBE_MAX_CV = CV_WARN_PCT  # a probe measurement this noisy is taken again (twice at most)
PROBE_ROUNDS = 2  # every timed probe model is measured in this many rounds, one after the other,
PROBE_ROUNDS_AGREE_PCT = 5.0  # and once more where two rounds' medians differ by more than this
# a probe where more than this share of the timed models' first two rounds disagreed was taken
# on a noisy machine (probe_noise): on the Zen-5 VM 28-36 % on the days its predictions held,
# 57-87 % on a day two measurements of the same config agreed for 59 % of decode configs
PROBE_NOISY_SHARE = 0.5
PROBE_DEPTH = 2048
PER_TYPE_MODELS = ("big", "wide", "mid", "small")  # quantized --pure to every probed type
# also at PROBE_DEPTH: attention per head dimension (HEAD_CLASSES) and KV bytes (MHA)
DEEP_MODELS = ("tiny-l12", KV_MHA_MODEL, KV_DRAM_MODEL, "tiny-hd64", "tiny-hd80", "tiny-hd96",
               "tiny-hd128", "tiny-hd160", "tiny-hd256")
# the expected error band: the P90 absolute error of benchmarks/predict.py's probe-only
# validation on this project's 2-vCPU VM (88 held-out decode / prefill configs, 44 memory;
# docs/prediction.md): decode 11-17 % on quiet days, 18-24 % on the three runs of probe
# version 7 (models near the edge of a cache whose share moves on a shared VM), 46 % on probe
# version 10's run (a day when two passes agreed 78 %: outside this band), 9-11 % on 11's and
# 12's; prefill 12-16 % up to probe version 9 (Gemma-3-270M's 16-18 %: its layers' work
# besides the matmuls, measured since version 12), 9-14 % on 10-12's runs; decode 16.8 % on
# 12's with 3 repetitions (22.6 % from a probe taken after the measurements), 22.5 % on 13's
# (its prefill 6.9 %); on a Zen-5 VM decode 24.3 % with probe 13, 15.9 and 14.4 % with 14
# (prefill 10.3-14.2 %); memory's P90 was
# 1.5-2.5 %, the band allows for settings the validation did not vary (micro-batch, cache
# types)
BAND_PCT = {"decode": 25.0, "prefill": 20.0, "memory": 5.0}


# --------------------------------------------------------------------------- the probe's shapes

def probe_specs() -> dict[str, Any]:
    """name -> SynthSpec of every probe model (the same on every device); each is named
    probe-<name> in its file."""
    from slmbench.synth import SynthSpec

    def deep(n_embd: int, n_head: int, n_head_kv: int, n_ff: int = 256,
             n_layer: int = 8) -> Any:
        return SynthSpec(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv,
                         n_ff=n_ff, n_vocab=1024, n_ctx=4096)

    tiny = dict(n_embd=256, n_head=4, n_head_kv=4, n_ff=512, n_ctx=4096)
    specs = {
        "tiny-l2": SynthSpec(n_layer=2, n_vocab=1024, **tiny),
        "tiny-l12": SynthSpec(n_layer=12, n_vocab=1024, **tiny),
        "tiny-v32k": SynthSpec(n_layer=2, n_vocab=32768, **tiny),
        # attention at depth: GQA at every head dim of HEAD_CLASSES (llama.cpp's CPU flash
        # attention costs per score ~10x more at 64, 80, 96 and 160 than at 128 here: its
        # vector loops leave what is not a multiple of their step to scalar code); MHA at 64
        # with each layer's KV beyond the L2 caches (8 MiB per layer at PROBE_DEPTH, beyond 1
        # or 2 cores' 2 MiB here) and the whole KV with the weights beyond the L3 share too
        # (6 layers: 48 MiB of KV + 32 MB of weights, timed in Q8_0: TIMED_AS; with 2 layers,
        # 16 MiB, the KV stayed in L3 at 2 threads and the spill cost came out 3x too low)
        "tiny-hd64": deep(512, 8, 2, n_ff=512),
        KV_MHA_MODEL: deep(1024, 16, 16, n_layer=6),
        # the KV cache read after weights beyond the caches evicted it: the tiny-hd128 shape
        # (cheap scores: memory-bound) with a 262k-entry output projection, 256 MiB of F16
        # read per token (beyond the L3 share at 1 and 2 threads) and cheap to prefill (one
        # output row); 32 layers, 34 MB of KV at depth 2048, so that the KV's time stands
        # out of the output's (~30 ms per token at 1 thread; with 8 layers the difference
        # was 1.7 ms, within the noise of two such timings)
        KV_DRAM_MODEL: SynthSpec(n_embd=512, n_layer=32, n_head=4, n_head_kv=1, n_ff=512,
                                 n_vocab=262144, n_ctx=4096),
        "tiny-hd80": deep(320, 4, 1),
        "tiny-hd96": deep(384, 4, 1),
        "tiny-hd160": deep(640, 4, 1),
        "tiny-hd128": deep(512, 4, 1, n_ff=512),
        # 4 query heads like the others (Gemma-3-270M's attention): with 2 heads x 128 tokens
        # at 2 threads llama.cpp's flash-attention chunks held 32 rows, under its 64-row tile
        # (attention_tile_note), and prefill attention at depth cost as much as at 1 thread
        # (100 ms; Gemma came out 11-23 % slow there). 3 layers, FFN 256: 25 MB like its
        # siblings - 8 layers with FFN 512 (71 MB) put weights and KV past the cache edge at
        # 1 thread, and its depth cost (6.2 ms per token, 3x the scores' 40 ns) was the
        # weights falling out of the caches
        "tiny-hd256": deep(1024, 4, 1, n_layer=3),
        # Gemma-3's layers (GELU, Q/K and post norms: extra_layer_elements) and the same shape
        # in llama layers, prefill only: their difference is that work, with nothing else
        # fitted (inside the fit, 3-4 % of a 14 MB Gemma-3 model's prefill came out 0 against
        # its 6 % RMS). Narrow with a wide FFN (GELU), so that the work is ~10 % of it
        GEMMA3_MODEL: SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=1, n_ff=4096,
                                n_vocab=1024, n_ctx=4096, arch="gemma3"),
        GEMMA3_TWIN: SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=1, n_ff=4096,
                               n_vocab=1024, n_ctx=4096),
        # memory only (no timing): a real SLM's vocabulary (Gemma 3's 262k entries) in a
        # model of 64 MiB - the tokenizer's tables cost memory per entry
        MEMORY_ONLY_PREFIX + "v256k": SynthSpec(n_embd=64, n_layer=1, n_head=1, n_head_kv=1,
                                                n_ff=64, n_vocab=262144, n_ctx=4096),
        # ~155M parameters (64-310 MB): where the caches end on this VM - its decode cost per
        # byte moves with how much cache the VM gets (1 thread: DRAM-like; 2: cache-like)
        "wide": SynthSpec(n_embd=1024, n_layer=8, n_head=16, n_head_kv=4, n_ff=4096,
                          n_vocab=16384, n_ctx=4096),
        # the wide shape 3x deeper (~430M parameters, 165-860 MB): weights beyond any cache,
        # like the real SLMs predicted; decode only (prefill is compute-bound: wide serves)
        "big": SynthSpec(n_embd=1024, n_layer=24, n_head=16, n_head_kv=4, n_ff=4096,
                         n_vocab=16384, n_ctx=4096),
        # decode only, in STREAM_TYPE (stream_costs): weights streamed from DRAM cost more
        # than their bytes - per matmul output row (llama.cpp hands a matrix-vector product
        # to its threads in chunks of 64 rows) and per layer. llama-bench tg32 at 2 threads
        # on a Zen-5 VM, Q8_0 beyond its 32 MiB L3: ~180 MB as 640 x 32 layers 6.3 ms, as
        # 1280 x 8 layers 4.8 ms; a 262k-row output projection of 640 (178 MB) 6.5 ms, the
        # same bytes as 65k rows of 2560 4.5 ms (~9 ns per row, ~28 us per layer; at 1
        # thread ~1 ns and ~36 us). Both beyond any L3 share this VM saw (~180-210 MB)
        STREAM_PREFIX + "rows": SynthSpec(n_embd=640, n_layer=2, n_head=10, n_head_kv=2,
                                          n_ff=2048, n_vocab=262144, n_ctx=4096),
        STREAM_PREFIX + "layers": SynthSpec(n_embd=640, n_layer=40, n_head=10, n_head_kv=2,
                                            n_ff=2048, n_vocab=4096, n_ctx=4096),
        # ~19M parameters (10-38 MB): the same types where the weights stay in the caches
        "small": SynthSpec(n_embd=512, n_layer=4, n_head=8, n_head_kv=2, n_ff=2048,
                           n_vocab=4096, n_ctx=4096),
        # the small shape with 10 layers (~45M parameters, 25-90 MB): how far the cache speed
        # holds (a held-out 36-61 MB model decoded at the small models' speed, 1.5x faster
        # than log-size interpolation from small to wide said); decode only
        "mid": SynthSpec(n_embd=512, n_layer=10, n_head=8, n_head_kv=2, n_ff=2048,
                         n_vocab=4096, n_ctx=4096),
    }
    for name, spec in specs.items():
        spec.name = f"probe-{name}"
    return specs


# --------------------------------------------------------------------------- stored probe

@dataclass
class PhaseFit:
    """One phase's fitted costs at one thread count (seconds per unit)."""

    per_type: dict[str, float] = field(default_factory=dict)  # decode: s/byte; prefill: s/FLOP
    per_token_s: float = 0.0
    per_layer_s: float = 0.0
    # prefill: s per matmul output row per token (token_rows: each block weight's rows x the
    # tokens) - a matmul's cost besides its FLOPs, per output element: its share of a FLOP's
    # cost falls as the rows get longer (at 4 layers, Q8_0, 1 thread: 85 GFLOP/s 512 wide, 92
    # at 1024, 94 at 1536). It replaced probe versions 8-10's cost per token-layer x width,
    # which with a size term came out 16-27 ns where `slmbench profile` puts
    # the norms, RoPE and adds at ~6, and made 1280-1536-wide models 11-21 % slow
    per_row_s: float = 0.0
    # prefill: the share by which a FLOP costs more per e-fold of the model's layer count
    # beyond PREFILL_LAYER_REF, up to layer_cap[type] (the type's probe model with the most
    # layers; flat beyond it). llama-bench, Q8_0, 1 thread, pp128, matmul GFLOP/s: 2 layers
    # 102 / 123 / 124 / 129 at 512 / 1024 / 1536 / 2048 wide (11-140 MiB), 7 layers 78 / 83 /
    # 89 at 512 / 1024 / 2048 (31-448 MiB), 24 layers of 512 71 (96 MiB): the count of layers,
    # not the model's size (probe versions 10-12 grew it with the size: 1536-2048-wide models
    # of 2-4 layers came out 20-60 % slow) nor its width. The mid-* models (the small shape,
    # 10 layers against 4) pin it
    layer_slope: float = 0.0
    layer_cap: dict[str, float] = field(default_factory=dict)
    # prefill: s per element of a Gemma-3 layer's work besides a llama layer's
    # (extra_layer_elements: GELU, Q/K and post norms): GEMMA3_MODEL's prefill minus its
    # llama twin's (probe version 12; 0 before: a note says such a prefill may be slower)
    per_extra_s: float = 0.0
    per_kv_s: float = 0.0      # decode: s per KV byte read (prefill: 0)
    per_spill_s: float = 0.0   # decode: s per KV byte of a layer beyond the L2 caches
    # decode: s per KV byte when the KV comes from DRAM (weights beyond the caches evicted it
    # since the last token) and its reads, not the scores' compute, bound the attention
    # (KV_DRAM_MODEL; 0: not probed)
    kv_dram_s: float = 0.0
    l2_bytes: float = 0.0      # decode: one core's L2 (sysfs; 0 = unknown, no spill term)
    # decode: weights streamed from DRAM cost more than their bytes, s per matmul output row
    # and per layer (stream_costs); the big probe models' rates hold them at the big models'
    # rows and layers per byte, so a model pays the difference (stream_ref[type]: the big
    # model's, s per byte) by the share of its reads the caches do not serve (0: not probed)
    stream_row_s: float = 0.0
    stream_layer_s: float = 0.0
    stream_ref: dict[str, float] = field(default_factory=dict)
    # per type, per rung of its ladder (as sizes): what the rung's rows and layers cost from
    # DRAM beyond the big model's, s per byte - where cache_hits puts the rung's all-DRAM cost
    stream_extra: dict[str, list[float]] = field(default_factory=dict)
    # attention by head-dimension class (HEAD_CLASSES: "64" ... "256"): decode s per score
    # (query head x cell x layer), prefill s per attention FLOP - llama.cpp's CPU flash
    # attention (the default 'auto') costs per score ~10x more at head dim 64 than at 128 here
    attention: dict[str, float] = field(default_factory=dict)
    # decode: the weight bytes a token reads (read_bytes) of each type's probe models up
    # SIZE_LADDER: between them the per-byte cost moves (log-linear) from one model's to the next's
    sizes: dict[str, list[float]] = field(default_factory=dict)
    # decode: [[bytes read per token, share of them read at cache speed], ...] pooled over
    # every type's ladder (cache_hits): where the caches end is a matter of size, not of type
    hits: list[list[float]] = field(default_factory=list)
    # decode: [[MiB, GB/s], ...] read bandwidth by working-set size at this thread count
    # (slmbench.bandwidth.cache_curve) at the probe: where the caches ended then (a model
    # about that size gets a note, cache_edge_note)
    cache_curve: list[list[float]] = field(default_factory=list)
    rms_rel_err: float | None = None  # of the fit on the probe's own measurements
    n_obs: int = 0

    def attention_rate(self, cls: str) -> float:
        """Seconds per unit of attention at head-dimension class ``cls`` (the nearest class the
        probe measured when it did not measure this one)."""
        if cls in self.attention:
            return self.attention[cls]
        if not self.attention:
            return 0.0
        near = min(self.attention, key=lambda c: abs(math.log2(int(c) / int(cls))))
        return self.attention[near]

    def rate(self, qtype: str, model_bytes: float | None = None,
             hit: float | None = None) -> tuple[float, str]:
        """(seconds per unit of ``qtype``, the type whose figure serves): a type the probe did
        not measure borrows the probed type of the nearest bits per weight.  With
        ``model_bytes`` (a decode: the weight bytes it reads per token, read_bytes), a model no
        bigger than the small probe model of the type gets its cache-resident cost, one as big
        as the big one (beyond the caches) the big one's, log-linear in size between two
        neighbouring probe models (SIZE_LADDER: small, mid, wide, big); without, the wide one's
        (prefill's output row).  ``hit`` (0..1) overrides the share of reads at cache speed
        the probe's curve gives the size (1: the caches hold the model, 0: they do not)."""
        if qtype in self.per_type:
            used = qtype
        else:
            real = [t for t in self.per_type if "@" not in t]
            if not real:
                raise ConfigError("the probe holds no matmul costs; run `slmbench probe "
                                  "--force`")
            bpw = _bits(qtype)
            used = min(real, key=lambda t: (abs(_bits(t) - bpw), t))
        wide = self.per_type[used]
        if model_bytes is None or used + CACHED not in self.per_type or used not in self.sizes:
            return wide, used
        if self.hits and used + BIG in self.per_type:
            # the type's cache speed and DRAM speed (big model), mixed by the share of reads
            # the caches served at this size on the probe's whole ladder
            cached, dram = self.cache_rate(used), self.per_type[used + BIG]
            share = self.hit_share(model_bytes, hit)
            return cached + (dram - cached) * (1.0 - share), used
        rates = [self.per_type[used + suffix] for _, suffix in SIZE_LADDER
                 if used + suffix in self.per_type]
        # log-linear in size: placing the model by the cache curve the probe measured did
        # worse in validation (the cache a shared VM gets moves between ~60 and ~190 MiB
        # within minutes; docs/prediction.md), so the curve only marks models near the edge
        return _log_interp(list(zip(self.sizes[used], rates)), model_bytes), used

    def cache_rate(self, qtype: str) -> float:
        """A probed type's decode cost per byte from the caches: the faster of its small and
        mid probe models (a small model slower per byte than the mid one is its fixed costs
        misfitted, not a cache miss)."""
        return min(self.per_type[qtype + suffix] for suffix in (CACHED, MID)
                   if qtype + suffix in self.per_type)

    def hit_share(self, model_bytes: float, hit: float | None = None) -> float:
        """The share of a decode's reads served at cache speed at ``model_bytes`` read per
        token: the pooled curve (hits), log-linear between its points; ``hit`` when given
        (the range's 'caches hold it' / 'they do not')."""
        return _log_interp(self.hits, model_bytes) if hit is None else hit


def _log_interp(points: list, x: float) -> float:
    """The value at ``x`` of [[size, value], ...] (sizes ascending): log-linear in size
    between neighbouring points, the end points' values beyond them."""
    if x <= points[0][0]:
        return points[0][1]
    for (lo, v_lo), (hi, v_hi) in zip(points, points[1:]):
        if x < hi and hi > lo:
            return v_lo + (v_hi - v_lo) * math.log(x / lo) / math.log(hi / lo)
    return points[-1][1]


INFORMATIVE_GAP = 0.2  # a type's rungs place the cache edge when DRAM is >= 20 % slower


def cache_hits(fit: PhaseFit) -> list[list[float]]:
    """[[bytes read per token, share read at cache speed], ...] from every type's size ladder:
    a rung that decodes at its type's small model's cost per byte is all cache (1), at its big
    model's all DRAM (0), in between the share between them; types whose DRAM and cache costs
    differ by less than INFORMATIVE_GAP (compute-bound: no cache edge to see) are left out.
    Pooled over types and made non-increasing with size (pool adjacent violators): where the
    caches end is a matter of size, and one type's rung caught on the wrong side of an edge
    that moves on a shared VM no longer bends that type alone."""
    pts: list[tuple[float, float]] = []
    for qtype, sizes in fit.sizes.items():
        rates = [fit.per_type.get(qtype + suffix) for _, suffix in SIZE_LADDER]
        if None in rates or len(sizes) != len(rates):
            continue
        cached, dram = fit.cache_rate(qtype), rates[-1]
        first = rates.index(cached)  # the small or the mid model: all cache
        if dram <= cached or dram - cached < INFORMATIVE_GAP * dram:
            continue
        # a rung's all-DRAM cost: the big model's plus what its rows and layers cost from DRAM
        # beyond the big model's per byte (a narrower rung streams more of them per byte)
        extra = fit.stream_extra.get(qtype) or []
        extra = extra if len(extra) == len(sizes) else [0.0] * len(sizes)
        for i, (w, r) in enumerate(zip(sizes, rates)):
            top = dram + extra[i]
            share = 1.0 if i <= first or top <= cached else (top - r) / (top - cached)
            pts.append((w, min(1.0, max(0.0, share))))
    if not pts:
        return []
    pts.sort()
    blocks: list[list[float]] = []  # [sum of shares, count, first size, last size]
    for w, h in pts:
        blocks.append([h, 1.0, w, w])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            h2, n2, _, w2 = blocks.pop()
            blocks[-1][0] += h2
            blocks[-1][1] += n2
            blocks[-1][3] = w2
    out: list[list[float]] = []
    for total, n, w_lo, w_hi in blocks:  # a block holds its share from its first to last size
        for w in ((w_lo,) if w_lo == w_hi else (w_lo, w_hi)):
            if not out or w > out[-1][0]:
                out.append([w, round(total / n, 4)])
    return out


@dataclass
class ThreadCosts:
    n_threads: int
    bandwidth_gbs: float | None = None
    decode: PhaseFit = field(default_factory=PhaseFit)
    prefill: PhaseFit = field(default_factory=PhaseFit)
    memory: dict[str, float] = field(default_factory=dict)  # compute/runtime coefficients
    measured: list[dict[str, Any]] = field(default_factory=list)  # the probe's observations
    noise: dict[str, float] = field(default_factory=dict)  # how its rounds agreed (probe_noise)


@dataclass
class DeviceProbe:
    version: int = PROBE_VERSION
    key: str = ""
    created: str = ""
    cpu: str | None = None
    llama_build: str | None = None
    llc_bytes: int | None = None
    duration_s: float | None = None
    costs: list[ThreadCosts] = field(default_factory=list)

    def at(self, n_threads: int) -> ThreadCosts:
        for c in self.costs:
            if c.n_threads == n_threads:
                return c
        have = ", ".join(str(c.n_threads) for c in self.costs) or "none"
        raise ConfigError(f"the probe has no figures at {n_threads} threads (probed: {have}); "
                          f"run `slmbench probe -t {n_threads}`")


def _bits(qtype: str) -> float:
    block, size = ggml_type_size(qtype)
    return 8.0 * size / block


def probe_from_dict(data: dict[str, Any]) -> DeviceProbe:
    """A DeviceProbe from its JSON object; a field of the wrong type or a null where a figure
    belongs raises FieldTypeError (a TypeError) naming it (``costs[0].decode.per_token_s``)."""
    from slmbench.schema import from_dict

    return from_dict(DeviceProbe, data, [], nulls=False)


def device_key(n_threads: int) -> tuple[str, str | None, str | None]:
    """(key, CPU model, llama.cpp build) of this machine at ``n_threads``."""
    digest, cpu, build = _device()
    return f"{digest}-t{n_threads}", cpu, build


@functools.lru_cache(maxsize=1)
def _device() -> tuple[str, str | None, str | None]:
    """(digest, CPU model, llama.cpp build): read once per process (the build asks llama.cpp)."""
    from slmbench.devices import cpu_model
    from slmbench.envinfo import versions
    from slmbench.llama_backend import system_info

    cpu = cpu_model("/")
    try:
        build = f"llama-cpp-python {versions().get('llama_cpp_python')}; {system_info()}"
    except Exception:  # noqa: BLE001 - a key without the build still separates CPUs
        build = None
    digest = hashlib.sha256(f"{cpu}|{build}|{PROBE_VERSION}".encode()).hexdigest()[:12]
    return digest, cpu, build


def probe_dir() -> str:
    from slmbench.config import cache_root

    return os.path.join(cache_root(), "probes")


def load_probe(path: str) -> DeviceProbe:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such probe file (run `slmbench probe`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable probe file ({exc}); run `slmbench probe` "
                          "to measure again") from None
    if not isinstance(data, dict) or data.get("version") != PROBE_VERSION:
        found = data.get("version") if isinstance(data, dict) else "?"
        raise ConfigError(f"{path}: probe of another version ({found}; this slmbench reads "
                          f"{PROBE_VERSION}); run `slmbench probe` to measure again")
    try:
        return probe_from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: malformed probe file ({exc}); run `slmbench probe` "
                          "to measure again") from None


def cached_probe(threads: Iterable[int], usable_only: bool = False) -> DeviceProbe | None:
    """This machine's stored probe covering every thread count, or None; a stored probe of
    another probe version (or damaged) is an error naming `slmbench probe`, or with
    ``usable_only`` (what `slmbench probe` itself asks: it measures again) None."""
    if not os.path.isdir(probe_dir()):  # no probe yet: do not start llama.cpp to name one
        return None
    merged: DeviceProbe | None = None
    for t in threads:
        key, _, _ = device_key(t)
        path = os.path.join(probe_dir(), f"{key}.json")
        if not os.path.exists(path):
            return None
        try:
            p = load_probe(path)
        except ConfigError:
            if usable_only:
                return None
            raise
        if merged is None:
            merged = p
        else:
            merged.costs += p.costs
    return merged


def resolve_probe(probe: Any, threads: Iterable[int]) -> DeviceProbe:
    """``probe`` as given (a DeviceProbe, or a probe file), else this machine's stored probe
    at ``threads``; a one-line error naming `slmbench probe` when there is none."""
    if isinstance(probe, DeviceProbe):
        return probe
    if probe:
        return load_probe(os.fspath(probe))
    threads = list(threads)
    stored = cached_probe(threads)
    if stored is None:
        counts = ",".join(map(str, threads))
        raise ConfigError(f"no device probe for this machine at {counts} threads: run "
                          f"`slmbench probe -t {counts}` first (~2 minutes per count)")
    return stored


def save_probe(probe: DeviceProbe) -> list[str]:
    """One file per thread count (each is reused on its own); the paths written."""
    from slmbench.results import write_json_atomic

    os.makedirs(probe_dir(), exist_ok=True)
    paths = []
    for c in probe.costs:
        key, _, _ = device_key(c.n_threads)
        one = DeviceProbe(**{**asdict(probe), "costs": []})
        one.costs = [c]
        one.key = key
        path = os.path.join(probe_dir(), f"{key}.json")
        write_json_atomic(path, asdict(one))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- cost features

def output_tensor(info: GGUFInfo) -> TensorInfo | None:
    """The output projection (the vocabulary matmul): output.weight, else the tied embedding."""
    by_name = {t.name: t for t in info.tensors}
    return by_name.get("output.weight") or by_name.get("token_embd.weight")


def _add_output(feats: dict[str, float], info: GGUFInfo) -> None:
    """The output projection's bytes, read once per token in decode and once per prompt in
    prefill (llama.cpp computes the logits of the last token only)."""
    out = output_tensor(info)
    if out is not None:
        feats[f"w:{out.type}"] = feats.get(f"w:{out.type}", 0.0) + out.n_bytes


def _weight_features(info: GGUFInfo) -> dict[str, float]:
    """'w:TYPE' -> bytes of the weights one decoded token reads: every matmul weight once and
    the output projection."""
    feats: dict[str, float] = {}
    for t in info.tensors:
        if is_matmul_weight(t):
            feats[f"w:{t.type}"] = feats.get(f"w:{t.type}", 0.0) + t.n_bytes
    _add_output(feats, info)
    return feats


def block_rows(info: GGUFInfo) -> float:
    """Output rows of every block matmul weight (each row one dot product per token)."""
    return float(sum(t.n_elements / t.dims[0] for t in info.tensors if is_matmul_weight(t)))


def matmul_rows(info: GGUFInfo) -> float:
    """Output rows of the matrix-vector products one decoded token runs: every block matmul
    weight's and the output projection's (its vocabulary)."""
    out = output_tensor(info)
    return block_rows(info) + (out.n_elements / out.dims[0] if out is not None else 0.0)


def read_bytes(info: GGUFInfo) -> float:
    """Weight bytes one decoded token reads: the multiplied weights and the output projection,
    not the token embedding's other rows (a 32k x 512 embedding is 30-40 % of a small model's
    file): what has to stay in the caches for a model to decode at cache speed."""
    return float(sum(_weight_features(info).values()))


def decode_features(info: GGUFInfo, n_depth: int, type_k: str = "f16",
                    type_v: str = "f16", cache_bytes: float = 0.0) -> dict[str, float]:
    """What one decoded token reads: weight bytes per type (the output projection included),
    n_layer, and KV bytes attended at ``n_depth`` (sliding-window layers at most the window);
    with ``cache_bytes`` (the threads' L2 caches together) also the KV bytes of each layer
    beyond them ('kv_spill'): flash attention walks a layer's cache once per query head,
    each head's rows strided between the other heads', fast while the layer's cache stays in
    L2 (MHA on this VM at 1 thread: 0.09 ms per MiB within it, +0.45 beyond)."""
    feats = _weight_features(info)
    feats["layers"] = float(info.n_layer)
    feats["rows"] = matmul_rows(info)
    per_layer = _kv_read_per_layer(info, n_depth + 1, type_k, type_v)
    feats["kv"] = sum(per_layer)
    if cache_bytes > 0:
        feats["kv_spill"] = sum(max(0.0, b - cache_bytes) for b in per_layer)
    # the scores: every query head against every cell it sees (GQA shares the KV bytes between
    # heads, not this work: softmax, scale and mask run per head)
    feats[f"scores@{head_class(info)}"] = info.n_head * sum(
        _cells_seen(info, il, n_depth + 1) for il in range(info.n_layer))
    return feats


HEAD_CLASSES = (64, 80, 96, 128, 160, 256)  # the probe's deep models have these head dims


def head_class(info: GGUFInfo) -> str:
    """The head-dimension class of a model: the nearest of HEAD_CLASSES (log scale)."""
    hd = max(info.n_embd_head_k, 1)
    return str(min(HEAD_CLASSES, key=lambda c: abs(math.log2(hd / c))))


def _is_swa(info: GGUFInfo, il: int) -> bool:
    return bool(info.sliding_window) and il < len(info.swa_layers) and info.swa_layers[il]


def _cells_seen(info: GGUFInfo, il: int, cells: int) -> int:
    """The cells a query of layer ``il`` attends to with ``cells`` in the cache: at most the
    window on a sliding-window layer."""
    return min(cells, info.sliding_window) if _is_swa(info, il) else cells


def _kv_read_per_layer(info: GGUFInfo, cells: int, type_k: str, type_v: str) -> list[float]:
    """KV bytes a query reads in each layer with ``cells`` in the cache."""
    return [_layer_kv_bytes(info, il, _cells_seen(info, il, cells), type_k, type_v)
            for il in range(info.n_layer)]


def kv_read_bytes(info: GGUFInfo, cells: int, type_k: str = "f16", type_v: str = "f16") -> float:
    return sum(_kv_read_per_layer(info, cells, type_k, type_v))


def prefill_features(info: GGUFInfo, n_prompt: int, n_depth: int) -> dict[str, float]:
    """FLOPs of a prefill of ``n_prompt`` tokens at ``n_depth``: block matmuls per type,
    the output projection for one token (as bytes: a matrix-vector product), per-token and
    per-token-layer counts, attention FLOPs (QK and AV over the cells each query sees)."""
    feats: dict[str, float] = {}
    for t in info.tensors:
        if is_matmul_weight(t):
            feats[f"f:{t.type}"] = feats.get(f"f:{t.type}", 0.0) + 2.0 * t.n_elements * n_prompt
    _add_output(feats, info)
    feats["tokens"] = float(n_prompt)
    feats["token_layers"] = float(n_prompt * info.n_layer)
    feats["token_rows"] = n_prompt * block_rows(info)
    extra = extra_layer_elements(info)
    if extra:
        feats["extra_elements"] = n_prompt * info.n_layer * extra
    # cells seen by the n_prompt queries: n_depth + i + 1 for query i, at most the window
    full = n_prompt * (n_depth + (n_prompt + 1) / 2)
    windowed = (sum(min(n_depth + i + 1, info.sliding_window) for i in range(n_prompt))
                if info.sliding_window else full)
    seen = sum(windowed if _is_swa(info, il) else full for il in range(info.n_layer))
    feats[f"attention@{head_class(info)}"] = (2.0 * info.n_head * seen
                                              * (info.n_embd_head_k + info.n_embd_head_v))
    return feats


# --------------------------------------------------------------------------- the prediction

@dataclass
class Prediction:
    model: str
    n_threads: int
    n_prompt: int
    n_gen: int
    n_depth: int
    decode_ms: float | None = None         # per token at depth
    decode_ts: float | None = None
    prefill_ms: float | None = None        # whole prompt
    prefill_ts: float | None = None
    ttft_ms: float | None = None           # prefill + the first token's sampling (~ prefill)
    e2e_ms: float | None = None            # ttft + (n_gen - 1) decode at depth
    peak_mib: float | None = None
    weights_mib: float | None = None
    repacked_mib: float | None = None      # weights the backend also holds repacked
    kv_mib: float | None = None
    rest_mib: float | None = None          # besides weights and KV: activations, runtime
    band_pct: dict[str, float] = field(default_factory=dict)
    decode_parts_ms: dict[str, float] = field(default_factory=dict)
    source: str = "header"                 # header | catalog facts | synthetic shape
    notes: list[str] = field(default_factory=list)
    baseline_decode_ms: float | None = None  # model size / probed bandwidth
    # a model about the size where the caches ended at the probe: decode per token if the
    # caches hold its weights and KV, and if they do not (cache_edge_note); else None
    decode_range_ms: list[float] | None = None
    probe_note: str | None = None  # the probe was taken on a noisy machine (noisy_probe)


def _apply(fit: PhaseFit, feats: dict[str, float], unit_prefix: str, notes: list[str],
           decode_fit: PhaseFit | None = None, model_bytes: float | None = None,
           hit: float | None = None, n_layer: int | None = None
           ) -> tuple[float, dict[str, float]]:
    """Seconds for ``feats`` under ``fit``: 'w:' features at decode rates (bytes),
    'f:' features at prefill rates (FLOPs)."""
    parts: dict[str, float] = {}
    for k, v in feats.items():
        if k.startswith("w:"):
            src = decode_fit or fit
            rate, used = src.rate(k[2:], model_bytes, hit)
            if used != k[2:]:
                notes.append(f"{k[2:]} was not probed: {used}'s figure used")
            parts[f"weights {k[2:]}"] = parts.get(f"weights {k[2:]}", 0.0) + v * rate
        elif k.startswith("f:"):
            rate, used = fit.rate(k[2:])
            if n_layer and fit.layer_slope and used in fit.layer_cap:
                rate *= 1.0 + fit.layer_slope * layer_growth(n_layer, fit.layer_cap[used])
            if used != k[2:]:
                notes.append(f"{k[2:]} was not probed: {used}'s figure used")
            parts[f"matmul {k[2:]}"] = parts.get(f"matmul {k[2:]}", 0.0) + v * rate
    if unit_prefix == "decode":
        parts["per-token overhead"] = fit.per_token_s + feats["layers"] * fit.per_layer_s
        parts["KV read"] = feats["kv"] * fit.per_kv_s
        parts["KV beyond L2"] = feats.get("kv_spill", 0.0) * fit.per_spill_s
        parts["attention scores"] = sum(v * fit.attention_rate(k.split("@")[1])
                                        for k, v in feats.items() if k.startswith("scores@"))
        if fit.stream_ref and fit.hits and model_bytes is not None:
            # rows and layers beyond the big probe models' per byte, for the share of the
            # reads the caches do not serve (negative: fewer than theirs, e.g. wide layers)
            ref = sum(v * fit.stream_ref.get(fit.rate(k[2:])[1], 0.0)
                      for k, v in feats.items() if k.startswith("w:"))
            more = (feats["rows"] * fit.stream_row_s + feats["layers"] * fit.stream_layer_s
                    - ref)
            parts["streaming rows and layers"] = (1.0 - fit.hit_share(model_bytes, hit)) * more
        if fit.kv_dram_s and fit.hits and model_bytes is not None:
            # the KV share the caches did not hold comes from DRAM: where reading it takes
            # longer than the attention's compute and cached reads, the reads bound it
            share = fit.hit_share(model_bytes, hit)
            reads = feats["kv"] * (share * fit.per_kv_s + (1.0 - share) * fit.kv_dram_s)
            attention = parts["KV read"] + parts["KV beyond L2"] + parts["attention scores"]
            parts["KV from DRAM"] = max(0.0, reads - attention)
    else:
        parts["per-token overhead"] = (feats["tokens"] * fit.per_token_s
                                       + feats["token_layers"] * fit.per_layer_s
                                       + feats.get("token_rows", 0.0) * fit.per_row_s)
        parts["attention"] = sum(v * fit.attention_rate(k.split("@")[1])
                                 for k, v in feats.items() if k.startswith("attention@"))
        if feats.get("extra_elements"):
            parts["Gemma-3 layers' extra work"] = feats["extra_elements"] * fit.per_extra_s
    return sum(parts.values()), parts


PREFILL_LAYER_REF = 2  # prefill's FLOP cost grows with the model's layer count beyond this
PREFILL_LAYER_ROUNDS = 6  # fits of the layer slope and the type rates it multiplies, in turn


def layer_growth(n_layer: float, cap: float) -> float:
    """e-folds of ``n_layer`` beyond PREFILL_LAYER_REF, counted up to ``cap``."""
    top = max(cap, PREFILL_LAYER_REF)
    return math.log(min(max(n_layer, PREFILL_LAYER_REF), top) / PREFILL_LAYER_REF)


def mapped_mib(info: GGUFInfo, shares: dict[str, float]) -> float:
    """MiB of the file that stays mapped and resident: llama.cpp unmaps the file's head and
    tail where only repacked tensors lie (a repacked output.weight at the end), so the span
    from the first to the end of the last tensor used in place (the whole of the weights when
    the header has no offsets, e.g. a split model or a shape).  ``shares``: the share of each
    weight type the CPU backend repacks (repack_shares)."""
    used = [t for t in info.tensors if not (is_multiplied(t) and shares.get(t.type, 0.0) >= 0.5)]
    if not used or any(t.offset is None for t in info.tensors):
        return info.model_size_bytes / MIB
    return (max(t.offset + t.n_bytes for t in used) - min(t.offset for t in used)) / MIB


def repack_shares(memory: dict[str, float]) -> dict[str, float]:
    """{weight type: share of its multiplied weights the CPU backend repacks} as the probe
    measured it (its memory costs' ``repack:<type>`` keys)."""
    return {k.split(":", 1)[1]: v for k, v in memory.items() if k.startswith("repack:")}


def largest_step(n_ubatch: int, n_prompt: int, n_depth: int = 0) -> int:
    """Tokens of the largest micro-batch a run computes: a prompt, or the context filled to
    the depth (in micro-batches of ``n_ubatch`` like any long prompt), whichever is longer;
    the compute buffer is touched as far as that step reaches."""
    return max(1, min(n_ubatch, max(n_prompt, n_depth)))


def memory_features(info: GGUFInfo, n_ctx: int, n_ubatch: int) -> dict[str, float]:
    """What the memory besides weights and KV grows with (MiB of 4-byte activations of the
    largest micro-batch computed, ``n_ubatch`` tokens, see largest_step): the
    hidden and FFN activations of a micro-batch, its attention scores over the context, the
    vocabulary (per 100k entries: the tokenizer's tables and a row of logits); 'one' is the
    runtime (libraries, Python, llama.cpp's fixed buffers)."""
    cells = kv_cache_bytes(info, n_ctx)["n_ctx"]
    return {"one": 1.0, "hidden": n_ubatch * info.n_embd * 4 / MIB,
            "ffn": n_ubatch * (info.n_ff or 4 * info.n_embd) * 4 / MIB,
            "scores": n_ubatch * info.n_head * cells * 4 / MIB,
            "vocab": info.n_vocab / 1e5}


def predict_memory(info: GGUFInfo, costs: ThreadCosts, n_ctx: int, step: int,
                   type_k: str = "f16", type_v: str = "f16", n_ubatch: int = 512
                   ) -> dict[str, float]:
    """Peak resident memory: weights (mapped and read) + their repacked copies + the KV cache
    as llama.cpp allocates it + the rest fitted by the probe (what of the compute buffer is
    touched, the runtime).
    The compute buffer llama.cpp reserves is bigger than what a run touches (it is sized for
    a full micro-batch of logits), so its reserved size is not what is resident. ``step``:
    the largest micro-batch computed (largest_step); ``n_ubatch``: the context's setting (a
    sliding-window cache holds the window + n_ubatch cells)."""
    kv = kv_cache_bytes(info, n_ctx, type_k, type_v, n_ubatch=n_ubatch)["total_bytes"] / MIB
    feats = memory_features(info, n_ctx, step)
    rest = sum(costs.memory.get(k, 0.0) * v for k, v in feats.items())
    shares = repack_shares(costs.memory)
    weights = mapped_mib(info, shares)
    repacked = repacked_mib(info, shares)
    return {"weights_mib": weights, "repacked_mib": repacked, "kv_mib": kv, "rest_mib": rest,
            "peak_mib": weights + repacked + kv + rest}


def cache_reach_mib(curve: list[list[float]]) -> float:
    """The largest working set of a cache curve still read closer to cache than to DRAM
    speed (0 without a curve)."""
    from slmbench.bandwidth import miss_share

    return max((m for m, _ in curve if miss_share(curve, m * MIB) < 0.5), default=0.0)


def cache_edge(fit: PhaseFit) -> tuple[float, float] | None:
    """(MiB, MiB) between which the probe's ladder saw decode reads fall from cache to DRAM
    speed (the last size still >= 90 % at cache speed, the first <= 10 %), None without."""
    lo = [w for w, h in fit.hits if h >= 0.9]
    hi = [w for w, h in fit.hits if h <= 0.1]
    if not lo or not hi:
        return None
    return max(lo) / MIB, min(hi) / MIB


def cache_edge_note(fit: PhaseFit, model_bytes: float) -> str | None:
    """A note when the bytes a model reads per token (weights and KV) lie about where the
    probe saw the caches end (from 2/3 of the last size read at cache speed to 1.25x the
    first read from DRAM; without the ladder's edge, half to 1.5x the reach of the probe's
    read curve): there decode speed depends on what else uses the cache at run time (on a
    shared VM, 1.8x between two runs of one model)."""
    mib = model_bytes / MIB
    edge = cache_edge(fit)
    if edge:
        lo, hi = edge
        if not lo / 1.5 <= mib <= 1.25 * hi:
            return None
        where = f"between ~{lo:.0f} and ~{hi:.0f} MiB"
    else:
        reach = cache_reach_mib(fit.cache_curve)
        if not reach or not reach / 2 <= mib <= 1.5 * reach:
            return None
        where = f"at ~{reach:.0f} MiB"
    return (f"it reads {mib:.0f} MiB per token (weights and KV), about the size where this "
            f"device's caches ended at the probe ({where}): its decode speed swings with what "
            "else uses the cache - expect more than the usual error")


# llama.cpp's CPU flash attention in a prefill (ggml-cpu ops.cpp): a micro-batch's query rows
# (tokens x query heads) are split into 4 chunks per thread, and each chunk is worked in tiles
# of up to 64 rows (GGML_FA_TILE_Q), converting every K/V tile to F32 once per tile; under 64
# tokens the row-by-row path serves instead. The probe's 128-token prompts fill the tiles.
FA_TILE_ROWS = 64
FA_CHUNKS_PER_THREAD = 4
ATTENTION_NOTE_SHARE = 0.1  # the tile note is given where attention is this share of a prefill


def attention_tile_note(info: GGUFInfo, tokens: int, n_threads: int) -> str | None:
    """A note when a prefill micro-batch of ``tokens`` leaves llama.cpp's flash-attention
    tiles part-empty at ``n_threads`` (or takes its row-by-row path), unlike the probe's
    prompts: the K/V conversions repeat for fewer query rows, so attention costs more per
    FLOP than the probe measured (the probe's 2-head model at 2 threads: chunks of 32 rows,
    and attention at depth as slow as at 1 thread)."""
    if tokens < FA_TILE_ROWS:
        return (f"a prompt micro-batch of {tokens} tokens (under {FA_TILE_ROWS}) takes "
                "llama.cpp's row-by-row flash attention, not the tiled one the probe "
                "measured: its attention part may be off by more than the usual error")
    rows = tokens * max(info.n_head, 1)
    per_chunk = -(-rows // (FA_CHUNKS_PER_THREAD * max(n_threads, 1)))
    if per_chunk >= FA_TILE_ROWS:
        return None
    return (f"llama.cpp splits the prompt's {rows} attention rows (tokens x {info.n_head} "
            f"heads) into chunks of {per_chunk} at {n_threads} threads, under its "
            f"{FA_TILE_ROWS}-row tile: K/V conversions repeat per chunk, so attention may "
            "take longer than predicted (the probe measured full tiles)")


PROBE_LAYER_NORMS = 2  # the synthetic (llama) layers' norms: attn_norm and ffn_norm
# layer kinds whose work besides the matmuls a probe model measures (GEMMA3_MODEL)
MEASURED_LAYER_KINDS = ("llama", "gemma3")


def extra_layer_elements(info: GGUFInfo) -> float:
    """Elements a Gemma-3 layer works on per token besides a llama layer's: GELU over the FFN
    (where llama's SiLU costs a third: `slmbench profile` of Gemma-3-270M against a llama
    layer of its shape), its Q and K norms over the heads and its post-attention and post-FFN
    norms over the width; 0 for other architectures."""
    if info.architecture != "gemma3":
        return 0.0
    return float((info.n_ff or 0) + 2 * info.n_embd
                 + (info.n_head + info.n_head_kv) * info.n_embd_head_k)


def layer_norms(info: GGUFInfo) -> int:
    """Norm tensors in the first layer (blk.0.*norm.weight): 2 in a llama layer, 6 in a
    Gemma-3 one (attention, Q, K, post-attention, FFN and post-FFN norms); 0 when the model
    has no layer tensors listed."""
    return sum(1 for t in info.tensors
               if t.name.startswith("blk.0.") and t.name.endswith("norm.weight"))


def layer_work_note(info: GGUFInfo, fit: PhaseFit | None = None) -> str | None:
    """A note when a model's layers do more besides their matmuls than the probe's llama-style
    models (more norms per layer) and the probe (prefill ``fit``) did not measure that kind of
    layer (MEASURED_LAYER_KINDS): prefill, where that work counts, may be slower than
    predicted (Gemma-3-270M: docs/prediction.md)."""
    norms = layer_norms(info)
    if norms <= PROBE_LAYER_NORMS or (info.architecture in MEASURED_LAYER_KINDS
                                      and fit is not None and fit.per_extra_s > 0):
        return None
    arch = info.architecture or "this architecture"
    return (f"{arch} layers have {norms} norms each (the probe's llama-style layers "
            f"{PROBE_LAYER_NORMS}) and may do more elementwise work: its prefill may be "
            "slower than predicted")


def probe_prefill_layers() -> int:
    """The fewest layers among the probe's per-type models whose prefill the fit uses (the
    small ones: 4)."""
    specs = probe_specs()
    # the per-type files are named <model>-<TYPE>: the prefixes carry the dash
    return min(specs[name].n_layer for name in PER_TYPE_MODELS
               if not f"{name}-".startswith(DECODE_ONLY_PREFIXES))


def prefill_layers_note(info: GGUFInfo) -> str | None:
    """A note when a model has fewer layers than any per-type probe model whose prefill the
    fit uses: the layer term (PhaseFit.layer_slope) is extrapolated below them, and shallow
    models ran faster than it says.  On this project's VM (llama-bench pp128, 1 thread, probe
    version 13): 2-layer models 512-2048 wide +20..+36 % (predicted too slow), 3-layer ones
    0..+16 %, 7-24 layers within -0..+11 % (docs/prediction.md).  Real SLMs have 12-40."""
    fewest = probe_prefill_layers()
    if info.n_layer >= fewest:
        return None
    return (f"it has {info.n_layer} layers, fewer than the probe's per-type models ({fewest}): its "
            "prefill may be faster than predicted (2-3-layer models ran up to 1.4x faster "
            "here, docs/prediction.md)")


def predict(info: GGUFInfo, probe: DeviceProbe, *, n_threads: int, n_prompt: int = 512,
            n_gen: int = 128, n_depth: int = 0, n_ubatch: int = 512, type_k: str = "f16",
            type_v: str = "f16", label: str | None = None, source: str = "header") -> Prediction:
    """Decode, prefill, end-to-end and peak memory of ``info`` on the probed device."""
    if not info.tensors:
        raise ModelLoadError(f"{label or info.path}: no tensor table to predict from")
    costs = probe.at(n_threads)
    notes: list[str] = []
    size = read_bytes(info)
    l2 = costs.decode.l2_bytes * n_threads

    def decode(depth: int, notes: list[str], hit: float | None = None
               ) -> tuple[float, dict[str, float], float]:
        # the KV a token reads competes with the weights for the caches: both place the
        # decode on the probe's cache curve (PhaseFit.hits)
        feats = decode_features(info, depth, type_k, type_v, l2)
        working = size + feats["kv"]
        return (*_apply(costs.decode, feats, "decode", notes, model_bytes=working, hit=hit),
                working)

    dec_s, parts, working = decode(n_depth, notes)
    pred = Prediction(model=label or info.name or os.path.basename(info.path) or "?",
                      n_threads=n_threads, n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth,
                      source=source, band_pct=dict(BAND_PCT), probe_note=noisy_probe(costs))
    pred.decode_ms = dec_s * 1e3
    pred.decode_ts = 1.0 / dec_s if dec_s > 0 else None
    pred.decode_parts_ms = {k: round(v * 1e3, 4) for k, v in parts.items()}
    if n_prompt:
        pp_s, pp_parts = _apply(costs.prefill, prefill_features(info, n_prompt, n_depth),
                                "prefill", notes, decode_fit=costs.decode, model_bytes=size,
                                n_layer=info.n_layer)
        tile = attention_tile_note(info, min(n_prompt, n_ubatch), n_threads)
        if tile and pp_parts["attention"] >= ATTENTION_NOTE_SHARE * pp_s:
            notes.append(tile)
        for note in (layer_work_note(info, costs.prefill), prefill_layers_note(info)):
            if note:
                notes.append(note)
        pred.prefill_ms = pp_s * 1e3
        pred.prefill_ts = n_prompt / pp_s if pp_s > 0 else None
        pred.ttft_ms = pred.prefill_ms
        dec_at = decode(n_depth + n_prompt, [])[0]
        pred.e2e_ms = pred.ttft_ms + max(n_gen - 1, 0) * dec_at * 1e3
    n_ctx = n_depth + n_prompt + n_gen
    mem = predict_memory(info, costs, n_ctx, largest_step(n_ubatch, n_prompt, n_depth),
                         type_k, type_v, n_ubatch=n_ubatch)
    pred.weights_mib, pred.kv_mib = mem["weights_mib"], mem["kv_mib"]
    pred.repacked_mib = mem["repacked_mib"]
    pred.rest_mib, pred.peak_mib = mem["rest_mib"], mem["peak_mib"]
    if costs.bandwidth_gbs:
        pred.baseline_decode_ms = info.model_size_bytes / (costs.bandwidth_gbs * 1e9) * 1e3
    edge = cache_edge_note(costs.decode, working)
    if edge and costs.decode.hits:  # the hit share is what the range varies
        held, not_held = (decode(n_depth, [], hit)[0] * 1e3 for hit in (1.0, 0.0))
        if not_held > held:
            pred.decode_range_ms = [round(held, 4), round(not_held, 4)]
            edge += (f"; here {held:.2f} ms per token if the caches hold it, {not_held:.2f} "
                     "if they do not")
    if edge:
        notes.append(edge)
    pred.notes = sorted(set(notes))
    return pred


# --------------------------------------------------------------------------- shapes without files

def info_from_shape(*, n_params: int | None = None, n_layer: int, n_embd: int, n_head: int,
                    n_head_kv: int | None = None, n_vocab: int, n_ff: int | None = None,
                    quant: str = "Q4_K_M", head_dim: int | None = None, tied: bool = True,
                    sliding_window: int | None = None, n_swa_layers: int = 0,
                    name: str = "shape") -> GGUFInfo:
    """A GGUFInfo with a tensor table built from a model's shape (catalog facts or a synthetic
    shape): llama-style blocks (q, k, v, o; gate, up, down), every weight of the label's main
    type, the output projection Q6_K for K- and legacy quants (llama.cpp's default), or Q8_0 /
    F16 for those labels.  With ``n_params`` and no ``n_ff``, the FFN width is what makes the
    parameter count come out right."""
    qtype = LABEL_TYPE.get(quant.upper())
    if qtype is None:
        raise ConfigError(f"unknown quantization {quant!r} (known: {', '.join(LABEL_TYPE)})")
    n_head_kv = n_head_kv or n_head
    hd = head_dim or n_embd // n_head
    attn = n_embd * hd * (2 * n_head + 2 * n_head_kv)
    emb = n_vocab * n_embd
    if n_ff is None:
        if not n_params:
            raise ConfigError(f"{name}: needs the FFN width or the parameter count")
        per_layer = (n_params - emb * (1 if tied else 2)) / n_layer - attn
        n_ff = max(int(per_layer / (3 * n_embd)), 1)
    out_type = qtype if qtype in ("F16", "BF16", "F32", "Q8_0") else "Q6_K"
    # a tied embedding is the output projection too, and gets its type
    embd_type = out_type if tied else qtype
    tensors = [TensorInfo("token_embd.weight", (n_embd, n_vocab), embd_type,
                          int(bytes_for(embd_type, emb)))]
    if not tied:
        tensors.append(TensorInfo("output.weight", (n_embd, n_vocab), out_type,
                                  int(bytes_for(out_type, emb))))
    shapes = {"attn_q": (n_embd, n_head * hd), "attn_k": (n_embd, n_head_kv * hd),
              "attn_v": (n_embd, n_head_kv * hd), "attn_output": (n_head * hd, n_embd),
              "ffn_gate": (n_embd, n_ff), "ffn_up": (n_embd, n_ff), "ffn_down": (n_ff, n_embd)}
    for il in range(n_layer):
        for nm, dims in shapes.items():
            tensors.append(TensorInfo(f"blk.{il}.{nm}.weight", dims, qtype,
                                      int(bytes_for(qtype, dims[0] * dims[1]))))
    size = sum(t.n_bytes for t in tensors)
    swa = [i < n_swa_layers for i in range(n_layer)]
    return GGUFInfo(path="", file_size_bytes=size, architecture="llama", name=name,
                    file_type=quant.upper(), n_params=sum(t.n_elements for t in tensors),
                    model_size_bytes=size, n_vocab=n_vocab, n_layer=n_layer, n_embd=n_embd,
                    n_head=n_head, n_head_kv_layers=[n_head_kv] * n_layer, n_embd_head_k=hd,
                    n_embd_head_v=hd, n_ff=n_ff, n_ctx_train=0,
                    sliding_window=sliding_window if n_swa_layers else None, swa_layers=swa,
                    tensor_types=dict(Counter(t.type for t in tensors)), tensors=tensors)


def info_from_catalog(entry: Any, quant: str) -> GGUFInfo:
    """A tensor table from a catalog entry's facts (nothing downloaded): approximate - a
    K-quant mix (Q4_K_M's Q6_K tensors) counts as its main type; the header is exact."""
    f = entry.facts or {}
    need = ("parameters", "layers", "hidden_size", "attention_heads", "vocab_size")
    missing = [k for k in need if not f.get(k)]
    if missing:
        raise ConfigError(f"{entry.id}: the catalog lacks facts.{', facts.'.join(missing)} "
                          "needed to predict without the file; fetch its header instead "
                          "(online) or add the facts to models.yaml")
    return info_from_shape(n_params=int(f["parameters"]), n_layer=int(f["layers"]),
                           n_embd=int(f["hidden_size"]), n_head=int(f["attention_heads"]),
                           n_head_kv=int(f.get("kv_heads") or f["attention_heads"]),
                           n_vocab=int(f["vocab_size"]), quant=quant,
                           name=f"{entry.id}:{quant}")


# --------------------------------------------------------------------------- calibration

def _nnls_fit(rows: list[dict[str, float]], targets: list[float], keys: list[str],
              relative: bool = True) -> tuple[dict[str, float], float]:
    """Non-negative least squares in relative error: minimise sum ((x.a - t) / t)^2 (with
    ``relative`` False: in absolute error, for targets that may be 0; the error returned is
    then the RMS of the residuals)."""
    import numpy as np
    from scipy.optimize import nnls

    a = np.array([[r.get(k, 0.0) for k in keys] for r in rows], dtype=float)
    t = np.array(targets, dtype=float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    w = 1.0 / t if relative else np.ones_like(t)
    x, _ = nnls((a / scale) * w[:, None], t * w, maxiter=10_000)
    coef = x / scale
    rel = (a @ coef - t) * w
    return dict(zip(keys, coef.tolist())), float(np.sqrt(np.mean(rel ** 2)))


def fit_costs(obs: list[dict[str, Any]], infos: dict[str, GGUFInfo], n_threads: int,
              bandwidth_gbs: float | None = None, l2_bytes: float = 0.0) -> ThreadCosts:
    """Fit a ThreadCosts from probe observations: dicts with model, test ('tg'/'pp'), n_prompt,
    n_depth, seconds (per token for tg, whole prompt for pp), and for memory records peak_mib,
    n_ubatch, n_ctx."""
    costs = ThreadCosts(n_threads=n_threads, bandwidth_gbs=bandwidth_gbs, measured=obs)
    kv_dram = [o for o in obs if o["model"] == KV_DRAM_MODEL and o["test"] == "tg"]
    gemma = {o["model"]: o["seconds"] for o in obs
             if o["model"] in (GEMMA3_MODEL, GEMMA3_TWIN) and o["test"] == "pp"}
    stream = [o for o in obs if o["test"] == "tg" and o["n_depth"] == 0
              and o["model"] in stream_models()]
    obs = [o for o in obs if o["model"] not in (KV_DRAM_MODEL, GEMMA3_MODEL, GEMMA3_TWIN)
           and not o["model"].startswith(STREAM_PREFIX)]

    def own(model: str, feats: dict[str, float], ladder: bool = True) -> dict[str, float]:
        # the tiny models' weights sit in the caches: their bytes get their own rate, so they
        # pin the fixed costs without lending their cache speed to real models' weights;
        # ``ladder`` False (prefill): a type's small and wide models share its FLOP rate, so
        # that the two widths pin the cost that grows with the width
        suffix = (SMALL if model.startswith(TINY_PREFIX) else
                  KV_WEIGHTS if model.startswith(KV_PREFIX) else
                  next((suffix for prefix, suffix in SIZE_LADDER if model.startswith(prefix)),
                       "") if ladder else "")
        if not suffix:
            return feats
        return {(k + suffix if k[:2] in ("w:", "f:") else k): v for k, v in feats.items()}

    # decode
    rows, ys = [], []
    for o in obs:
        if o["test"] == "tg":
            f = own(o["model"], decode_features(infos[o["model"]], o["n_depth"],
                                                cache_bytes=l2_bytes * n_threads))
            rows.append({**f, "one": 1.0})
            ys.append(o["seconds"])
    wkeys = sorted({k for r in rows for k in r if k.startswith("w:")})
    akeys = sorted({k for r in rows for k in r if k.startswith("scores@")})
    keys = wkeys + ["one", "layers", "kv"] + akeys
    # the spill term only when a probe model's KV mostly lies beyond the L2s (a few bytes
    # beyond would buy any coefficient)
    if any(r.get("kv_spill", 0.0) > 0.25 * r["kv"] for r in rows):
        keys.append("kv_spill")
    coef, err = _nnls_fit(rows, ys, keys)
    coef.setdefault("kv_spill", 0.0)
    costs.decode = PhaseFit(per_type={k[2:]: coef[k] for k in wkeys}, per_token_s=coef["one"],
                            per_layer_s=coef["layers"], per_kv_s=coef["kv"],
                            per_spill_s=coef["kv_spill"], l2_bytes=float(l2_bytes),
                            attention={k.split("@")[1]: coef[k] for k in akeys},
                            rms_rel_err=err, n_obs=len(rows))
    rungs: dict[str, list[GGUFInfo]] = {}  # each type's ladder models, smallest first
    for name in infos:  # the sizes between which a type's cost moves
        if name.startswith(CACHED_PREFIX) and f"{WIDE_PREFIX}{name[len(CACHED_PREFIX):]}" in infos:
            qtype = name[len(CACHED_PREFIX):]
            rungs[qtype] = [infos[f"{prefix}{qtype}"] for prefix, suffix in SIZE_LADDER
                            if f"{prefix}{qtype}" in infos
                            and qtype + suffix in costs.decode.per_type]
            costs.decode.sizes[qtype] = [read_bytes(info) for info in rungs[qtype]]
    row_s, layer_s = stream_costs(stream, infos)
    if row_s or layer_s:
        d = costs.decode
        d.stream_row_s, d.stream_layer_s = row_s, layer_s

        def per_byte(info: GGUFInfo) -> float:
            return (matmul_rows(info) * row_s + info.n_layer * layer_s) / read_bytes(info)

        d.stream_ref = {name[len(BIG_PREFIX):]: per_byte(info) for name, info in infos.items()
                        if name.startswith(BIG_PREFIX)}
        d.stream_extra = {qtype: [per_byte(info) - d.stream_ref[qtype] for info in ladder]
                          for qtype, ladder in rungs.items() if qtype in d.stream_ref}
    costs.decode.hits = cache_hits(costs.decode)
    costs.decode.kv_dram_s = kv_dram_rate(kv_dram, infos.get(KV_DRAM_MODEL), costs.decode,
                                          bandwidth_gbs, l2_bytes * n_threads)
    # prefill: the output projection at the decode rates just fitted (one token)
    rows, ys, layers = [], [], []
    for o in obs:
        if o["test"] == "pp":
            f = own(o["model"], prefill_features(infos[o["model"]], o["n_prompt"], o["n_depth"]),
                    ladder=False)
            out_s = sum(v * costs.decode.rate(k[2:])[0] for k, v in f.items()
                        if k.startswith("w:"))
            rows.append({k: v for k, v in f.items() if not k.startswith("w:")})
            layers.append(infos[o["model"]].n_layer)
            ys.append(max(o["seconds"] - out_s, o["seconds"] * 0.05))
    # a type's FLOP cost grows with the model's layer count up to its probe model with the
    # most layers, by one share per e-fold for every type (per-type slopes of the size term
    # this replaced followed the noise: 0-10 %)
    caps: dict[str, float] = {}
    for row, n in zip(rows, layers):
        for k in row:
            if k.startswith("f:") and "@" not in k:
                caps[k[2:]] = max(caps.get(k[2:], 0.0), float(n))
    growth = [{k[2:]: v * layer_growth(n, caps[k[2:]]) for k, v in row.items()
               if k.startswith("f:") and k[2:] in caps} for row, n in zip(rows, layers)]
    fkeys = sorted({k for r in rows for k in r if k.startswith("f:")})
    akeys = sorted({k for r in rows for k in r if k.startswith("attention@")})
    keys = fkeys + ["tokens", "token_layers", "token_rows"] + akeys
    coef, err = _nnls_fit(rows, ys, keys)
    slope = 0.0
    if any(any(g.values()) for g in growth):
        for _ in range(PREFILL_LAYER_ROUNDS):  # the slope and the rates it multiplies, in turn
            for row, g in zip(rows, growth):
                row["layers"] = sum(v * coef["f:" + t] for t, v in g.items())
            coef, err = _nnls_fit(rows, ys, keys + ["layers"])
            slope = coef["layers"]
    costs.prefill = PhaseFit(per_type={k[2:]: coef[k] for k in fkeys}, layer_slope=slope,
                             layer_cap=caps,
                             per_token_s=coef["tokens"], per_layer_s=coef["token_layers"],
                             per_row_s=coef["token_rows"],
                             per_extra_s=gemma3_extra_rate(gemma, infos.get(GEMMA3_MODEL)),
                             attention={k.split("@")[1]: coef[k] for k in akeys},
                             rms_rel_err=err, n_obs=len(rows))
    # memory: the share of each type's multiplied weights the backend repacks (its extra
    # model buffers), then peak RSS - weights - repacked - KV (allocated) against the
    # activation sizes
    mem = [o for o in obs if o["test"] == "memory"]
    if mem:
        shares: dict[str, float] = {}
        with_buffers = [o for o in mem if o.get("repacked_mib") is not None]
        if with_buffers:
            rows = [{k: v / MIB for k, v in multiplied_bytes(infos[o["model"]]).items()}
                    for o in with_buffers]
            types = sorted({k for r in rows for k in r})
            fitted, _ = _nnls_fit(rows, [o["repacked_mib"] for o in with_buffers], types,
                                  relative=False)
            shares = {k: round(v, 3) for k, v in fitted.items() if v >= 0.01}
        rows = [memory_features(infos[o["model"]], o["n_ctx"], o["step"]) for o in mem]
        ys = [max(o["peak_mib"] - mapped_mib(infos[o["model"]], shares) - o["kv_mib"]
                  - repacked_mib(infos[o["model"]], shares), 1.0) for o in mem]
        coef, err = _nnls_fit(rows, ys, ["one", "hidden", "ffn", "scores", "vocab"])
        costs.memory = {**coef, **{f"repack:{k}": v for k, v in shares.items()},
                        "rms_rel_err": err}
    return costs


def gemma3_extra_rate(seconds: dict[str, float], info: GGUFInfo | None) -> float:
    """Seconds per element of a Gemma-3 layer's work besides a llama layer's: GEMMA3_MODEL's
    prefill minus GEMMA3_TWIN's (the same shape in llama layers), per extra element
    (extra_layer_elements); 0 without both."""
    if info is None or not {GEMMA3_MODEL, GEMMA3_TWIN} <= set(seconds):
        return 0.0
    elements = prefill_features(info, PROBE_PROMPT, 0).get("extra_elements", 0.0)
    more = seconds[GEMMA3_MODEL] - seconds[GEMMA3_TWIN]
    return max(0.0, more / elements) if elements else 0.0


def stream_models() -> tuple[str, ...]:
    """The models stream_costs solves from: the big probe model of STREAM_TYPE and the
    streaming models."""
    return (BIG_PREFIX + STREAM_TYPE,) + tuple(f"{m}-{STREAM_TYPE}" for m in STREAM_MODELS)


def stream_costs(obs: list[dict[str, Any]], infos: dict[str, GGUFInfo]) -> tuple[float, float]:
    """(s per matmul output row, s per layer) of weights streamed from DRAM: the decode of
    the three stream_models() (the same type, all beyond the caches; rows and layers per
    byte apart) as bytes x rate + rows x row cost + layers x layer cost, solved without any
    other term (0, 0 without all three)."""
    seconds = {o["model"]: o["seconds"] for o in obs}
    names = stream_models()
    if not all(n in seconds and n in infos for n in names):
        return 0.0, 0.0
    rows = [{"bytes": read_bytes(infos[n]), "rows": matmul_rows(infos[n]),
             "layers": float(infos[n].n_layer)} for n in names]
    coef, _ = _nnls_fit(rows, [seconds[n] for n in names], ["bytes", "rows", "layers"])
    return coef["rows"], coef["layers"]


KV_HIDDEN = 1.1  # KV_DRAM_MODEL's depth cost within this of its in-cache attention: hidden


def kv_dram_rate(obs: list[dict[str, Any]], info: GGUFInfo | None,
                 fit: PhaseFit | None = None, bandwidth_gbs: float | None = None,
                 cache_bytes: float = 0.0) -> float:
    """Seconds per KV byte read from DRAM: what KV_DRAM_MODEL's decode at depth costs beyond
    its decode at depth 0, per KV byte more read (0 without both).  With the in-cache decode
    ``fit``: where that cost is no more than KV_HIDDEN x what the fit's attention terms
    (scores, KV read from the caches) say, the reads hid behind the scores' compute and tell
    nothing of their own cost, which is then the probed read bandwidth's (0 without it). On
    a Zen-5 VM the depth cost was 0.88-0.96 x those terms, and taken as the reads' cost it
    made an MHA model's 4x as many KV bytes per score 22-49 % too slow at depth."""
    by_depth = {o["n_depth"]: o["seconds"] for o in obs}
    if info is None or len(by_depth) < 2:
        return 0.0
    lo, hi = min(by_depth), max(by_depth)
    more = kv_read_bytes(info, hi + 1) - kv_read_bytes(info, lo + 1)
    if more <= 0:
        return 0.0
    cost = by_depth[hi] - by_depth[lo]
    if fit is not None:
        compute = (_apply(fit, decode_features(info, hi, cache_bytes=cache_bytes), "decode",
                          [])[0]
                   - _apply(fit, decode_features(info, lo, cache_bytes=cache_bytes), "decode",
                            [])[0])
        if cost <= KV_HIDDEN * compute:
            return 1e-9 / bandwidth_gbs if bandwidth_gbs else 0.0
    return max(0.0, cost / more)


def extra_model_mib(memory: Any) -> float:
    """MiB of model buffers besides the mapped file (CPU_REPACK and other extra buffer types:
    weights the backend copied into its own layout) of a measured Memory."""
    return sum(b.mib for b in memory.buffers
               if b.kind == "model" and not b.device.endswith("_Mapped"))


def _n_ubatch(rec: Any) -> int:
    """A record's micro-batch: llama.cpp's default 512 where the record does not say."""
    return (rec.settings.n_ubatch if rec.settings else None) or 512


def record_step(rec: Any) -> int:
    """The largest micro-batch a measured record computed (largest_step over its tests)."""
    return max((largest_step(_n_ubatch(rec), t.n_prompt, t.n_depth) for t in rec.tests),
               default=1)


def observations(records: list[Any], infos: dict[str, GGUFInfo]) -> list[dict[str, Any]]:
    """Probe observations from measured records (slmbench.schema.Record) of the probe models:
    the median time of each pp / tg test - of a model measured in several rounds
    (probe_device), the median of the rounds' (a failed round left out; every round's time
    kept in ``rounds``) - and, once per model, its memory (the first round's).

    The median, like the measurements a prediction is compared with, not the quickest round:
    taking the quickest (a disturbance only slows) helped on one noisy Zen-5 run (V31: 1
    thread 91-95 % of held-out decode configs within +-10 % against 77-89 %) and hurt on the
    next (V32, whose measurements were disturbed too: from the probes before them, 59 % of
    the 1-thread configs within +-10 % of the passes' median against 77 %, 2 threads 45 %
    against 61 %)."""
    ok = {rec.model_id for rec in records if rec.status == "ok"}
    timed: dict[tuple, dict[str, Any]] = {}
    seconds: dict[tuple, list[float]] = {}
    with_memory: set[str] = set()
    out: list[dict[str, Any]] = []
    for rec in records:
        model = rec.model_id
        if rec.status != "ok":
            if model in ok:
                continue
            raise SlmbenchError(f"probe model {model} failed: {rec.reason or rec.status}")
        for t in rec.tests:
            if t.test not in ("pp", "tg") or not t.ms or model.startswith(MEMORY_ONLY_PREFIX):
                continue
            secs = t.ms.median / 1e3  # robust to a disturbed repetition
            if t.test == "tg":
                secs /= max(t.n_gen, 1)
            key = (model, t.test, t.n_prompt, t.n_gen, t.n_depth)
            if key not in timed:
                timed[key] = {"model": model, "test": t.test, "n_prompt": t.n_prompt,
                              "n_gen": t.n_gen, "n_depth": t.n_depth}
                out.append(timed[key])
            seconds.setdefault(key, []).append(secs)
        m = rec.memory
        if m is not None and m.peak_rss_mib and model not in with_memory:
            with_memory.add(model)
            out.append({"model": model, "test": "memory", "peak_mib": m.peak_rss_mib,
                        "repacked_mib": extra_model_mib(m),
                        "weights_mib": infos[model].model_size_bytes / MIB,
                        "kv_mib": kv_cache_bytes(infos[model], m.n_ctx, n_ubatch=_n_ubatch(
                            rec))["total_bytes"] / MIB,
                        "step": record_step(rec), "n_ctx": m.n_ctx, "n_ubatch": _n_ubatch(rec)})
    for key, obs in timed.items():
        obs["seconds"] = statistics.median(seconds[key])
        if len(seconds[key]) > 1:  # in the order measured (probe_noise)
            obs["rounds"] = [float(f"{x:.6g}") for x in seconds[key]]
    return out


def probe_noise(measured: list[dict[str, Any]]) -> dict[str, float]:
    """How far the probe's rounds agreed at one thread count, from its observations' rounds:
    per timed model the largest difference (max / min - 1, %) between its first two rounds
    over its tests; ``models``, ``disagree`` (more than PROBE_ROUNDS_AGREE_PCT apart),
    ``median_pct`` and ``p90_pct`` of those differences. Empty without rounds (a probe
    before version 15 kept none)."""
    diff: dict[str, float] = {}
    for obs in measured:
        r = (obs.get("rounds") or [])[:2]
        if len(r) == 2 and min(r) > 0:
            d = 100.0 * (max(r) / min(r) - 1.0)
            diff[obs["model"]] = max(diff.get(obs["model"], 0.0), d)
    if not diff:
        return {}
    values = sorted(diff.values())
    return {"models": len(values),
            "disagree": sum(d > PROBE_ROUNDS_AGREE_PCT for d in values),
            "median_pct": round(statistics.median(values), 2),
            "p90_pct": round(percentile(values, 90), 2)}


def rounds_summary(noise: dict[str, float]) -> str:
    """What a probe's noise (probe_noise) says, in one phrase."""
    return (f"{noise['disagree']:.0f} of {noise['models']:.0f} models' first two rounds "
            f"differed by more than {PROBE_ROUNDS_AGREE_PCT:g} % (median "
            f"{noise['median_pct']:.1f} %, P90 {noise['p90_pct']:.1f} %)")


def noisy_probe(costs: ThreadCosts) -> str | None:
    """A warning when the probe at this thread count was taken on a noisy machine (more than
    PROBE_NOISY_SHARE of its models' rounds disagreed), else None."""
    n = costs.noise
    if not n or n["disagree"] <= PROBE_NOISY_SHARE * n["models"]:
        return None
    t = costs.n_threads
    return (f"the probe at {t} thread{'s' if t > 1 else ''} was taken on a noisy machine: "
            f"{n['disagree']:.0f} of {n['models']:.0f} probe models' two rounds differed by "
            f"more than {PROBE_ROUNDS_AGREE_PCT:g} % (median {n['median_pct']:.1f} %), so its "
            "predictions can miss by more than the band; measure again when the machine is "
            "quiet (`slmbench probe --force`)")


def noisy_warnings(probe: DeviceProbe, threads: Iterable[int]) -> list[str]:
    """noisy_probe's warning for each of ``threads`` the probe was noisy at."""
    wanted = set(threads)
    return [w for w in (noisy_probe(c) for c in probe.costs if c.n_threads in wanted) if w]


def _matches(path: str, spec: Any) -> bool:
    """Whether the probe model at ``path`` exists with the shape ``spec`` asks for."""
    from slmbench.gguf_info import read_gguf

    if not os.path.exists(path):
        return False
    try:
        info = read_gguf(path)
    except SlmbenchError:
        return False
    return (info.architecture, info.n_embd, info.n_layer, info.n_head, info.n_vocab) == (
        spec.arch, spec.n_embd, spec.n_layer, spec.n_head, spec.n_vocab) and \
        info.n_head_kv_layers[:1] == [spec.n_head_kv]


def build_probe_models(work_dir: str, types: Iterable[str] = PROBE_TYPES,
                       progress: Callable[[str], None] = lambda _m: None) -> dict[str, str]:
    """Write (or reuse) the probe's synthetic models; {model id: path}."""
    from slmbench.llama_backend import quantize
    from slmbench.synth import write_synthetic

    os.makedirs(work_dir, exist_ok=True)
    specs = probe_specs()
    paths: dict[str, str] = {}
    for name, spec in specs.items():
        path = os.path.join(work_dir, f"{name}.gguf")
        if not _matches(path, spec):  # missing, or written from an older spec of that name
            progress(f"writing {name}")
            write_synthetic(path + ".tmp", spec)
            os.replace(path + ".tmp", path)
            # its quantized copies are stale too
            for qtype in set(types) | {STREAM_TYPE} | set(TIMED_AS.values()):
                stale = os.path.join(work_dir, f"{name}-{qtype}.gguf")
                if os.path.exists(stale):
                    os.remove(stale)
        if name not in PER_TYPE_MODELS + STREAM_MODELS + tuple(TIMED_AS):
            paths[name] = path
    # the per-type models in every type, the streaming ones in theirs, the TIMED_AS ones in
    # theirs under their own name (when the specs hold them)
    quantized = [(base, tuple(types)) for base in PER_TYPE_MODELS]
    quantized += [(base, (STREAM_TYPE,)) for base in STREAM_MODELS if base in specs]
    quantized += [(base, (qtype,)) for base, qtype in TIMED_AS.items() if base in specs]
    for base, base_types in quantized:
        src = os.path.join(work_dir, f"{base}.gguf")
        for qtype in base_types:
            path = os.path.join(work_dir, f"{base}-{qtype}.gguf")
            mid = base if base in TIMED_AS else f"{base}-{qtype}"
            if qtype == "F16":
                paths[mid] = src
                continue
            if not os.path.exists(path):
                progress(f"quantizing {base} to {qtype} (pure)")
                quantize(src, path + ".tmp", PURE_LABEL[qtype], pure=True)
                os.replace(path + ".tmp", path)
            paths[mid] = path
    _remove_stale(work_dir, paths, progress)
    return paths


def _remove_stale(work_dir: str, paths: dict[str, str],
                  progress: Callable[[str], None]) -> None:
    """Remove probe models of older probe versions from ``work_dir`` (GGUF files named
    probe-* inside that no current probe model is): nothing else in the folder is touched."""
    from slmbench.gguf_info import read_gguf

    keep = {os.path.abspath(p) for p in paths.values()}
    keep |= {os.path.abspath(os.path.join(work_dir, f"{base}.gguf"))
             for base in PER_TYPE_MODELS + STREAM_MODELS + tuple(TIMED_AS)}
    for name in sorted(os.listdir(work_dir)):
        path = os.path.abspath(os.path.join(work_dir, name))
        if not name.endswith(".gguf") or path in keep:
            continue
        try:
            stale = (read_gguf(path).name or "").startswith("probe-")
        except SlmbenchError:
            continue  # not a readable GGUF: not ours to judge
        if stale:
            progress(f"removing {name} (a probe model of an older probe version)")
            os.remove(path)


def probe_model_dir() -> str:
    from slmbench.config import cache_root

    return os.path.join(cache_root(), "probe-models")


def fit_probe(records_by_threads: dict[int, list[Any]], paths: dict[str, str],
              bandwidth: dict[str, Any] | None, duration_s: float | None = None) -> DeviceProbe:
    """A DeviceProbe from the probe models' measured records per thread count (slmbench.api.
    probe_device measures them) and the bandwidth probe's result (or None)."""
    from slmbench.gguf_info import read_gguf
    from slmbench.schema import utc_now

    infos = {mid: read_gguf(p) for mid, p in paths.items()}
    by_path = {os.path.abspath(p): mid for mid, p in paths.items()}
    bw_at = {p["n_threads"]: p["read_gbs"] for p in (bandwidth or {}).get("threads") or []}
    threads = sorted(records_by_threads)
    key, cpu, build = device_key(threads[0])
    probe = DeviceProbe(key=key, created=utc_now(), cpu=cpu, llama_build=build,
                        llc_bytes=(bandwidth or {}).get("llc_bytes"), duration_s=duration_s)
    curves = (bandwidth or {}).get("cache_curves") or {}
    for t in threads:
        records = records_by_threads[t]
        for r in records:
            if r.model is not None:
                r.model_id = by_path.get(os.path.abspath(r.model.path), r.model_id)
        costs = fit_costs(observations(records, infos), infos, t, bw_at.get(t),
                          ((bandwidth or {}).get("cache_bytes") or {}).get("L2") or 0.0)
        costs.decode.cache_curve = curves.get(t) or []
        costs.noise = probe_noise(costs.measured)
        probe.costs.append(costs)
    return probe


# --------------------------------------------------------------------------- models to predict

SYNTH_KEYS = ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_vocab", "head_dim",
              "n_params", "sliding_window", "n_swa_layers")


def parse_shape(spec: str) -> GGUFInfo:
    """'shape:n_embd=1024,n_layer=16,n_head=16,n_head_kv=4,n_ff=4096,n_vocab=32000,quant=Q4_0'"""
    body = spec.split(":", 1)[1] if ":" in spec else ""
    kw: dict[str, Any] = {}
    quant = "Q4_K_M"
    for part in filter(None, (x.strip() for x in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"{spec}: expected key=value, got {part!r}")
        if key == "quant":
            quant = value
        elif key in SYNTH_KEYS:
            try:
                kw[key] = int(value)
            except ValueError:
                raise ConfigError(f"{spec}: {key} must be an integer, got {value!r}") from None
        else:
            raise ConfigError(f"{spec}: unknown key {key!r} (known: {', '.join(SYNTH_KEYS)}, "
                              "quant)")
    missing = [k for k in ("n_embd", "n_layer", "n_head", "n_vocab") if k not in kw]
    if missing:
        raise ConfigError(f"{spec}: needs {', '.join(missing)}")
    return info_from_shape(quant=quant, name=spec, **kw)


def resolve_model(spec: str, catalog: Any = None, *, header: bool = False,
                  offline: bool | None = None) -> tuple[GGUFInfo, str, str]:
    """(GGUFInfo, label, source) of what the user named: a local GGUF, ``shape:...``, or a
    catalog ``id[:QUANT]`` - from its local / cached file's header, else from the catalog's
    facts (offline, approximate), else (or with ``header``) its header read as byte ranges."""
    from slmbench.gguf_info import read_gguf

    if spec.startswith("shape:"):
        return parse_shape(spec), spec, "shape"
    if spec.endswith(".gguf") or os.path.sep in spec or os.path.exists(spec):
        return read_gguf(spec), os.path.basename(spec), "header"
    if catalog is None:
        from slmbench.catalog import load_catalog

        catalog = load_catalog()
    from slmbench import hub

    entry, quant = catalog.resolve(spec)
    quant = (quant or hub.default_quant(entry)).upper()
    label = f"{entry.id}:{quant}"
    if not header:
        try:  # a file already here: its header, no network
            return hub.fetch_header(entry, quant, offline=True), label, "header (local)"
        except SlmbenchError:
            pass
        try:
            return info_from_catalog(entry, quant), label, "catalog facts"
        except ConfigError:
            if offline:
                raise
    return hub.fetch_header(entry, quant, offline=offline), label, "header (hub)"


# --------------------------------------------------------------------------- output

def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _gbs(seconds_per_unit: float | None, width: int) -> str:
    """A fitted rate (seconds per byte or per FLOP) as G-units per second, right-aligned."""
    return f"{1e-9 / seconds_per_unit if seconds_per_unit else float('nan'):>{width}.1f}"


def format_probe(probe: DeviceProbe) -> str:
    lines = [f"device probe {probe.key.rsplit('-t', 1)[0]} ({probe.cpu or '?'}), "
             f"{probe.created[:19]}, {probe.duration_s or 0:.0f} s"]
    for c in probe.costs:
        lines.append(f"\n{c.n_threads} thread{'s' if c.n_threads > 1 else ''}: read bandwidth "
                     f"{c.bandwidth_gbs or float('nan'):.1f} GB/s; fit error (RMS, probe models)"
                     f" decode {100 * (c.decode.rms_rel_err or 0):.1f} %, prefill "
                     f"{100 * (c.prefill.rms_rel_err or 0):.1f} %")
        n, warning = c.noise, noisy_probe(c)
        if n:
            lines.append(f"  rounds: {rounds_summary(n)}"
                         + (": a NOISY machine - predictions from this probe can miss by "
                            "more than their band; measure again when it is quiet "
                            "(`slmbench probe --force`)" if warning else
                            ": a quiet enough machine"))
        lines.append(f"  {'type':<6} {'decode GB/s: small':>18} {'mid':>6} {'wide':>6} "
                     f"{'big':>6} {'prefill GFLOP/s':>16}   (decode: weights of the probe's "
                     "small / mid / wide / big models)")
        for t in PROBE_TYPES:
            d = c.decode.per_type
            lines.append(f"  {t:<6} {_gbs(d.get(t + CACHED), 18)} {_gbs(d.get(t + MID), 6)} "
                         f"{_gbs(d.get(t), 6)} {_gbs(d.get(t + BIG), 6)} "
                         f"{_gbs(c.prefill.per_type.get(t), 16)}")
        spill = c.decode.per_spill_s
        lines.append(f"  decode: {c.decode.per_token_s * 1e6:.1f} us per token + "
                     f"{c.decode.per_layer_s * 1e6:.1f} us per layer; KV within the L2s read at "
                     f"{1e-9 / c.decode.per_kv_s if c.decode.per_kv_s else float('nan'):.2f} "
                     f"GB/s (+{spill * MIB * 1e3:.2f} ms per MiB of a layer's cache beyond "
                     f"{c.decode.l2_bytes * c.n_threads / MIB:.0f} MiB of L2); attention "
                     + ", ".join(
                         f"{v * 1e9:.0f} ns per score at head dim {k}"
                         for k, v in sorted(c.decode.attention.items(),
                                            key=lambda kv: int(kv[0]))))
        if c.decode.kv_dram_s:
            lines.append(f"  decode: KV read from DRAM (weights beyond the caches evicted it) at "
                         f"{1e-9 / c.decode.kv_dram_s:.2f} GB/s, where that takes longer than "
                         "the attention's compute")
        if c.decode.stream_row_s or c.decode.stream_layer_s:
            lines.append(f"  decode: weights streamed from DRAM cost "
                         f"{c.decode.stream_row_s * 1e9:.1f} ns per matmul row + "
                         f"{c.decode.stream_layer_s * 1e6:.1f} us per layer besides their bytes "
                         "(a model pays what it has more of than the big models, per byte)")
        edge = cache_edge(c.decode)
        if edge:
            lines.append(f"  decode weights read at cache speed up to ~{edge[0]:.0f} MiB per "
                         f"token, from DRAM beyond ~{edge[1]:.0f} MiB (the probe models of "
                         "every type); a model about that size gets a note")
        elif c.decode.cache_curve:
            lines.append(f"  caches: reads stayed at cache speed up to "
                         f"~{cache_reach_mib(c.decode.cache_curve):.0f} MiB (DRAM "
                         f"{c.decode.cache_curve[-1][1]:.1f} GB/s beyond); a model about that "
                         "size gets a note")
        lines.append(f"  prefill: {c.prefill.per_token_s * 1e6:.1f} us per token + "
                     f"{c.prefill.per_layer_s * 1e6:.1f} us per token-layer + "
                     f"{c.prefill.per_row_s * 1e9:.2f} ns per matmul output row per token; "
                     "attention "
                     + ", ".join(
                         f"{1e-9 / v if v else float('nan'):.1f} GFLOP/s at head dim {k}"
                         for k, v in sorted(c.prefill.attention.items(),
                                            key=lambda kv: int(kv[0]))))
        if c.prefill.layer_slope:
            caps = sorted(c.prefill.layer_cap.values())
            lines.append(f"  prefill: a FLOP costs {100 * c.prefill.layer_slope * math.log(2):.1f}"
                         f" % more per doubling of the model's layer count beyond "
                         f"{PREFILL_LAYER_REF} (the GFLOP/s above), up to {caps[-1]:.0f} layers "
                         "(the probe's deepest model of the type)")
        m = c.memory
        if m:
            lines.append(f"  memory besides weights and KV: {m.get('one', 0):.0f} MiB runtime + "
                         f"{m.get('hidden', 0):.2f} x hidden + {m.get('ffn', 0):.2f} x FFN + "
                         f"{m.get('scores', 0):.2f} x score activations + "
                         f"{m.get('vocab', 0):.1f} per 100k vocabulary entries "
                         f"(fit error {100 * m.get('rms_rel_err', 0):.1f} %)")
            rep = repack_shares(m)
            lines.append("  weights held twice (repacked copy besides the mapped file): "
                         + (", ".join(f"{k} {100 * v:.0f} %" for k, v in rep.items())
                            or "none"))
    return "\n".join(lines)


def format_predictions(preds: list[Prediction]) -> str:
    rows = [["model", "source", "t", "decode t/s", "ms/token", "prefill t/s", "TTFT ms",
             "e2e s", "peak MiB", "size/bw ms"]]
    for p in preds:
        name = p.model if len(p.model) <= 40 else p.model[:39] + "~"
        rows.append([name, p.source, str(p.n_threads),
                     "-" if p.decode_ts is None else f"{p.decode_ts:,.1f}", _ms(p.decode_ms),
                     "-" if p.prefill_ts is None else f"{p.prefill_ts:,.1f}", _ms(p.ttft_ms),
                     "-" if p.e2e_ms is None else f"{p.e2e_ms / 1e3:,.2f}",
                     "-" if p.peak_mib is None else f"{p.peak_mib:,.0f}",
                     _ms(p.baseline_decode_ms)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                     enumerate(zip(r, widths))) for r in rows]
    if preds:
        p = preds[0]
        band = p.band_pct
        out.append(f"\nprompt {p.n_prompt}, generate {p.n_gen}, depth {p.n_depth}; e2e = TTFT + "
                   f"(generate - 1) x decode at depth + prompt. Expected error band (validation,"
                   f" docs/prediction.md): decode +-{band.get('decode', 0):.0f} %, prefill "
                   f"+-{band.get('prefill', 0):.0f} %, memory +-{band.get('memory', 0):.0f} %. "
                   "size/bw = model bytes / probed bandwidth (the folk rule), for comparison.")
    for note in dict.fromkeys(p.probe_note for p in preds if p.probe_note):
        out.append(f"WARNING: {note}")
    for p in preds:
        for n in p.notes:
            out.append(f"note ({p.model}): {n}")
        if p.source == "catalog facts":
            out.append(f"note ({p.model}): shape from catalog facts, every weight of the "
                       "label's main type - approximate; a header (--header) is exact")
    return "\n".join(out)


# --------------------------------------------------------------------------- against runs

def against_records(records: list[Any], probe: DeviceProbe) -> list[dict[str, Any]]:
    """Predicted vs measured for every pp / tg test and peak memory of measured records whose
    model file is readable here; rows flagged when the error exceeds the band."""
    from slmbench.analysis import record_names
    from slmbench.gguf_info import read_gguf

    out: list[dict[str, Any]] = []
    for rec in records:
        if rec.status != "ok" or rec.model is None or not rec.model.path or not rec.settings:
            continue
        t = rec.settings.n_threads
        if not any(c.n_threads == t for c in probe.costs):
            continue
        try:
            info = read_gguf(rec.model.path)
        except SlmbenchError:
            continue
        label = " ".join(record_names(rec))
        for test in rec.tests:
            if test.test not in ("pp", "tg") or not test.ms:
                continue
            pred = predict(info, probe, n_threads=t, n_prompt=test.n_prompt,
                           n_gen=max(test.n_gen, 1), n_depth=test.n_depth)
            if test.test == "tg":
                meas, mine, band = test.ms.mean / max(test.n_gen, 1), pred.decode_ms, "decode"
            else:
                meas, mine, band = test.ms.mean, pred.prefill_ms, "prefill"
            out.append(_versus(label, test.name, t, meas, mine, BAND_PCT[band], "ms"))
        n_ctx = rec.memory.n_ctx if rec.memory else None
        if rec.memory and rec.memory.peak_rss_mib and isinstance(n_ctx, int) and n_ctx > 0:
            mem = predict_memory(info, probe.at(t), n_ctx, record_step(rec),
                                 n_ubatch=_n_ubatch(rec))
            out.append(_versus(label, "peak memory", t, rec.memory.peak_rss_mib,
                               mem["peak_mib"], BAND_PCT["memory"], "MiB"))
    return out


def _versus(label: str, test: str, t: int, measured: float, predicted: float, band: float,
            unit: str) -> dict[str, Any]:
    err = 100.0 * (predicted / measured - 1.0) if measured else float("nan")
    return {"config": label, "test": test, "threads": t, "unit": unit, "measured": measured,
            "predicted": predicted, "error_pct": err, "band_pct": band,
            "flag": abs(err) > band}


def format_against(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ("no measured config could be predicted (model files not readable here, or no "
                "probe at their thread counts)")
    lines = [f"{'config':<28} {'test':<14} {'t':>2} {'measured':>11} {'predicted':>11} "
             f"{'error':>8}"]
    for r in rows:
        lines.append(f"{r['config'][:28]:<28} {r['test'][:14]:<14} {r['threads']:>2} "
                     f"{r['measured']:>11,.2f} {r['predicted']:>11,.2f} "
                     f"{r['error_pct']:>+7.1f}%" + ("  OFF (beyond the band: a measurement "
                                                    "or build problem?)" if r["flag"] else ""))
    n_off = sum(r["flag"] for r in rows)
    lines.append(f"{n_off} of {len(rows)} beyond the expected band" if n_off else
                 f"all {len(rows)} within the expected band")
    return "\n".join(lines)


def predictable_records(runs: list[Any], probe: DeviceProbe) -> tuple[list[Any], list[str]]:
    """The runs' records a CPU probe can be put beside: measured on the probe's CPU, with no
    layer offloaded to a GPU (where the run's llama.cpp could offload, or did not say);
    (records, what was left out and why)."""
    keep: list[Any] = []
    other: set[str] = set()
    offloaded = 0
    for run in runs:
        env = run.env
        cpu = env.cpu.model if env and env.cpu else None
        if cpu and probe.cpu and cpu != probe.cpu:
            other.add(cpu)
            continue
        can_offload = env.llama_cpp.gpu_offload if env and env.llama_cpp else None
        for rec in run.records:
            if rec.settings and rec.settings.n_gpu_layers and can_offload is not False:
                offloaded += rec.status == "ok"
                continue
            keep.append(rec)
    left = []
    if other:
        left.append(f"runs from another CPU ({', '.join(sorted(other))}) than the probe's "
                    f"({probe.cpu}) left out: predict on that device")
    if offloaded:
        left.append(f"{offloaded} config(s) with layers offloaded to a GPU (-ngl) left out: "
                    "the probe models the CPU only")
    return keep, left


def against_runs(runs: list[Any]) -> tuple[list[dict[str, Any]], str]:
    """Predicted vs measured for the runs' configs when this machine holds a probe of the
    same CPU at their thread counts (what `analyze` and `report` show); (rows, a note saying
    which probe served or why none did)."""
    records = [r for run in runs for r in run.records]
    threads = sorted({r.settings.n_threads for r in records if r.settings and r.status == "ok"
                      and isinstance(r.settings.n_threads, int)
                      and any(t.test in ("pp", "tg") for t in r.tests)})
    if not threads:
        return [], "no pp / tg tests to predict"
    try:
        probe = cached_probe(threads)
    except SlmbenchError as exc:
        return [], f"the stored probe is unusable ({exc})"
    if probe is None:
        return [], (f"no device probe on this machine at {', '.join(map(str, threads))} "
                    "threads (`slmbench probe` adds predicted vs measured)")
    records, left = predictable_records(runs, probe)
    if not records:
        return [], "; ".join(left)
    rows = against_records(records, probe)
    noisy = noisy_warnings(probe, threads)
    return rows, (f"probe {probe.key.rsplit('-t', 1)[0]} of {probe.created[:10]} "
                  f"({probe.cpu}); error = predicted / measured - 1"
                  + "".join(f"; {w}" for w in left)
                  + "".join(f"; {w} (a flag may be the probe's)" for w in noisy))


def against_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = [["config", "test", "threads", "measured", "predicted", "error", "band", ""]]
    for r in rows:
        out.append([r["config"], r["test"], str(r["threads"]),
                    f"{r['measured']:,.2f} {r['unit']}", f"{r['predicted']:,.2f} {r['unit']}",
                    f"{r['error_pct']:+.1f}%", f"+-{r['band_pct']:.0f}%",
                    "OFF" if r["flag"] else ""])
    return out
