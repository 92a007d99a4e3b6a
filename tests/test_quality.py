"""Quality metrics on synthetic models (random weights: the numbers test the arithmetic)."""

from __future__ import annotations

import json
import math

import pytest

from slmbench.cli import main
from slmbench.errors import SlmbenchError
from slmbench.quality import default_corpus_text, measure_quality

FAST = dict(n_ctx=64, n_threads=2, max_windows=6)


def test_self_reference_is_zero(tiny_models):
    m = measure_quality(tiny_models["Q8_0"], reference=tiny_models["Q8_0"], **FAST).metrics
    assert m["kl_mean"] == pytest.approx(0, abs=1e-9) and m["top1_pct"] == 100.0
    assert m["delta_ppl"] == pytest.approx(0, abs=1e-9)


def test_lower_bit_quant_diverges_more(tiny_models):
    q8 = measure_quality(tiny_models["Q8_0"], reference=tiny_models["F16"], **FAST).metrics
    q4 = measure_quality(tiny_models["Q4_0"], reference=tiny_models["F16"], **FAST).metrics
    assert q4["kl_mean"] > q8["kl_mean"] > 0
    assert q4["top1_pct"] <= q8["top1_pct"]


def test_bits_per_byte_counts_bytes_not_tokens(tiny_models, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(default_corpus_text()[:4000], encoding="utf-8")
    m = measure_quality(tiny_models["F16"], corpus=str(corpus), n_ctx=64, n_threads=2).metrics
    total_nll = m["nll"] * m["n_tokens"]
    assert m["bits_per_byte"] == pytest.approx(total_nll / math.log(2) / m["n_bytes"], rel=1e-5)
    assert m["n_bytes"] > m["n_tokens"]  # pieces span several bytes on average
    assert m["ppl"] == pytest.approx(math.exp(m["nll"]), rel=1e-5)
    assert m["n_tokens"] == m["n_windows"] * (64 - 32 - 1)  # llama-perplexity's scored half


def test_errors(tiny_models, tmp_path, model_dir):
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(SlmbenchError, match="corpus too short.*needs at least 128"):
        measure_quality(tiny_models["F16"], corpus=str(short), n_ctx=64)
    from slmbench.synth import SynthSpec, write_synthetic

    other = write_synthetic(str(tmp_path / "v.gguf"), SynthSpec(n_vocab=1000))
    with pytest.raises(SlmbenchError, match="different vocabulary"):
        measure_quality(tiny_models["F16"], reference=other, **FAST)


def test_cli_json_and_results(tiny_models, tmp_path, capsys):
    run = tmp_path / "run-q"
    assert main(["quality", tiny_models["Q4_K_M"], "--reference", tiny_models["F16"],
                 "--n-ctx", "64", "--max-windows", "3", "--json", "--results", str(run)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["tests"][0]["test"] == "quality" and data[0]["quant"] == "Q4_K_M"
    assert (run / "results.jsonl").exists()
