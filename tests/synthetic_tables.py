"""Tables with known answers for the analyzer's tests (and the report screenshots).

``family_table``: 20 fictional models shaped like a published SLM table (first-token and
per-token latency, memory split into weights / KV / compute / other, facts), with planted
effects the statistics must find:

- prefill latency ∝ params^1.0 with a large architecture spread (SD 0.30 in log space) and
  one model ``m07`` planted at 2.2x its trend; decode per token ∝ params^0.8 with a small
  spread (SD 0.04);
- memory linear in parameters (F16 weights) plus a compute buffer of
  4 bytes x vocabulary x 512 (llama.cpp's logits for a 512-token batch) - so vocabulary adds
  memory net of size, which a linear control sees and a log control blurs;
- 8 MHA models (KV heads = heads) and 12 GQA models (heads / 4); the KV share follows the
  attention type, and the GQA models were trained on more tokens, so KV share vs training
  tokens correlates overall but not within an attention type;
- the KV cache f16, measured at n_ctx 4096: KV MiB = 2 x layers x kv_heads x 64 x 2 bytes x
  n_ctx / 2^20, so the 32k projection is known exactly.

``quant_table``: one model in F16 / Q8_0 / Q4_K_M / Q4_0 with the speedup pattern measured on
Gemma-3-270M on this project's 2-core CPU (Q4_0 prefill 1.25x F16, Q4_K_M 0.83x; decode
1.2-1.3x for both), a gain that shrinks with prompt length, and quality rows against F16.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIB = 2**20
HEAD_DIM = 64
N_CTX = 4096
BITS = 16  # an F16 table
PLANTED_ABOVE = "m07"


def kv_mib(layers: int, kv_heads: int, ctx: int) -> float:
    """f16 K and V for every layer: 2 tensors x layers x kv_heads x head_dim x 2 bytes."""
    return 2 * layers * kv_heads * HEAD_DIM * 2 * ctx / MIB


def family_table(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 20
    params = np.geomspace(1.2e8, 3.0e9, n)
    att = np.array(["MHA"] * 8 + ["GQA"] * 12)
    rng.shuffle(att)
    vocab = rng.choice([32000, 49152, 128256, 151936, 256000], n)
    rows = []
    for i in range(n):
        model = f"m{i + 1:02d}"
        layers = int(12 + 20 * i / (n - 1))
        heads = max(4, int(round(np.sqrt(params[i] / (12 * layers)) / HEAD_DIM / 4)) * 4)
        kv_heads = heads if att[i] == "MHA" else heads // 4
        hidden = heads * HEAD_DIM
        tokens = rng.uniform(0.2e12, 1.0e12) if att[i] == "MHA" else rng.uniform(2e12, 12e12)
        weights = params[i] * BITS / 8 / MIB
        compute = 4 * vocab[i] * 512 / MIB + 20
        other = 150 + rng.normal(0, 5)
        kv = kv_mib(layers, kv_heads, N_CTX)
        arch = 2.2 if model == PLANTED_ABOVE else float(np.exp(rng.normal(0, 0.30)))
        ttft = 40 * (params[i] / 1e8) ** 1.0 * arch
        token = 4 * (params[i] / 1e8) ** 0.8 * float(np.exp(rng.normal(0, 0.04)))
        facts = dict(model_id=model, parameters=int(params[i]), vocab_size=int(vocab[i]),
                     training_tokens=int(tokens), layers=layers, hidden_size=hidden,
                     heads=heads, kv_heads=kv_heads, n_ctx_train=2048 * (1 + i % 4),
                     attention_type=att[i])
        memory = dict(n_ctx=N_CTX, model_mib=weights, kv_mib=kv, compute_mib=compute,
                      other_mib=other, peak_rss_mib=weights + kv + compute + other)
        rows.append(dict(facts, test="ttft", name="ttft512", ms_median=ttft, **memory))
        rows.append(dict(facts, test="tg", name="tg128", token_ms_median=token,
                         ms_median=128 * token))
    return pd.DataFrame(rows)


def mha_kv_share_32k(row: pd.Series) -> float:
    """The analytic answer for a family model: KV at 32k over KV + the measured rest."""
    kv = kv_mib(int(row["layers"]), int(row["kv_heads"]), 32768)
    fixed = row["model_mib"] + row["compute_mib"] + row["other_mib"]
    return kv / (kv + fixed)


# one model, four quantizations: latency ms (pp64, pp512, ttft64, tg32, tg32@d1024)
QUANT_LATENCY = {
    "F16": {"pp64": 500.0, "pp512": 4000.0, "ttft64": 520.0, "tg32": 640.0,
            "tg32@d1024": 800.0},
    "Q8_0": {"pp64": 450.0, "pp512": 3800.0, "ttft64": 470.0, "tg32": 560.0,
             "tg32@d1024": 730.0},
    "Q4_K_M": {"pp64": 602.4, "pp512": 4600.0, "ttft64": 620.0, "tg32": 528.0,
               "tg32@d1024": 700.0},
    "Q4_0": {"pp64": 400.0, "pp512": 3600.0, "ttft64": 415.0, "tg32": 492.3,
             "tg32@d1024": 690.0},
}
QUANT_MIB = {"F16": 511.0, "Q8_0": 271.8, "Q4_K_M": 241.4, "Q4_0": 230.2}
QUANT_QUALITY = {  # q_ppl, q_kl_mean, q_top1_pct (F16 is the reference)
    "F16": (20.00, None, None),
    "Q8_0": (20.02, 0.0009, 99.0),
    "Q4_K_M": (21.50, 0.0700, 88.0),
    "Q4_0": (21.20, 0.0600, 89.0),
}


def quant_table() -> pd.DataFrame:
    rows = []
    for quant, tests in QUANT_LATENCY.items():
        base = dict(model_id="gemma-like", quant=quant, device="cpu-test", parameters=268e6,
                    vocab_size=262144, model_mib=QUANT_MIB[quant], kv_mib=39.0,
                    compute_mib=514.5, other_mib=120.0, n_ctx=8192,
                    peak_rss_mib=QUANT_MIB[quant] + 39 + 200)
        for name, ms in tests.items():
            row = dict(base, name=name, ms_median=ms)
            if name.startswith("tg"):
                row["token_ms_median"] = ms / 32
            rows.append(row)
        ppl, kl, top1 = QUANT_QUALITY[quant]
        rows.append(dict(model_id="gemma-like", quant=quant, device="cpu-test",
                         name="quality@512", q_ppl=ppl, q_kl_mean=kl, q_top1_pct=top1,
                         q_bits_per_byte=ppl / 20))
    return pd.DataFrame(rows)
