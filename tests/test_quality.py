"""Quality metrics on synthetic models (random weights: the numbers test the arithmetic).

The scoring itself is checked against llama.cpp's high-level API here and against
llama-perplexity in benchmarks/quality_crosscheck.py.
"""

from __future__ import annotations

import ctypes
import json
import math

import numpy as np
import pytest

from slmbench.cli import main
from slmbench.errors import SlmbenchError
from slmbench.llama_backend import llama
from slmbench.quality import default_corpus_text, measure_quality
from slmbench.results import read_run
from slmbench.synth import SynthSpec, write_synthetic

N_CTX = 64
FAST = dict(n_ctx=N_CTX, n_threads=2, max_windows=6)


def _corpus(tmp_path, text: str) -> str:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


class _Vocab:
    """Tokenizer access straight through llama_cpp (not through slmbench.quality)."""

    def __init__(self, path: str):
        self.lc = lc = llama()
        params = lc.llama_model_default_params()
        params.vocab_only = True
        self.model = lc.llama_model_load_from_file(path.encode(), params)
        self.vocab = lc.llama_model_get_vocab(self.model)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        buf = (ctypes.c_int32 * (len(data) + 16))()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), True, False)
        return list(buf[:n])

    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(128)
        n = self.lc.llama_token_to_piece(self.vocab, tok, buf, 128, 0, False)
        return buf.raw[:n]

    def close(self) -> None:
        self.lc.llama_model_free(self.model)


def test_self_reference_is_zero(tiny_models):
    m = measure_quality(tiny_models["Q8_0"], reference=tiny_models["Q8_0"], **FAST).metrics
    assert m.kl_mean == pytest.approx(0, abs=1e-12)
    assert m.kl_p99 == pytest.approx(0, abs=1e-12) and m.kl_max == pytest.approx(0, abs=1e-12)
    assert m.top1_pct == 100.0
    assert m.delta_ppl == pytest.approx(0, abs=1e-9) and m.ppl_ratio == pytest.approx(1)
    assert m.n_tokens == 6 * (N_CTX - N_CTX // 2 - 1)


def test_lower_bit_quant_diverges_more(tiny_models):
    q8 = measure_quality(tiny_models["Q8_0"], reference=tiny_models["F16"], **FAST).metrics
    q4 = measure_quality(tiny_models["Q4_0"], reference=tiny_models["F16"], **FAST).metrics
    assert q4.kl_mean > q8.kl_mean > 0
    assert q4.kl_p99 > q8.kl_p99 >= q8.kl_median > 0
    assert q4.top1_pct <= q8.top1_pct
    # the reference's perplexity is the same whichever file is compared with it
    assert q4.ref_ppl == pytest.approx(q8.ref_ppl, rel=1e-9)
    assert q4.delta_ppl == pytest.approx(q4.ppl - q4.ref_ppl, rel=1e-9)


def test_scoring_matches_llama_cpp_high_level_api(tiny_models):
    """One window scored by hand with llama_cpp.Llama (logits_all): same NLL as measure_quality."""
    from llama_cpp import Llama

    path = tiny_models["Q8_0"]
    m = measure_quality(path, n_ctx=N_CTX, n_threads=2, max_windows=1).metrics
    text = default_corpus_text()
    # flash attention on: what llama.cpp's "auto" (slmbench's and llama-perplexity's) picks on CPU
    llm = Llama(model_path=path, n_ctx=N_CTX, n_batch=N_CTX, logits_all=True, n_threads=2,
                flash_attn=True, verbose=False)
    try:
        window = llm.tokenize(text.encode(), add_bos=True, special=False)[:N_CTX]
        window[0] = llm.token_bos()
        llm.eval(window)
        logits = np.asarray(llm.scores[:N_CTX], dtype=np.float64)
    finally:
        llm.close()
    first = N_CTX // 2

    def nll_sum(positions: range, shift: int = 1) -> float:
        total = 0.0
        for pos in positions:  # logits at pos predict token pos + 1
            row = logits[pos] - logits[pos].max()
            total += math.log(np.exp(row).sum()) - row[window[pos + shift]]
        return total

    assert m.n_tokens == N_CTX - 1 - first
    # random weights give flat distributions, so an off-by-one moves the sum by only ~3e-4
    assert m.nll_sum == pytest.approx(nll_sum(range(first, N_CTX - 1)), rel=1e-5)
    for wrong in (nll_sum(range(first - 1, N_CTX - 2)), nll_sum(range(first + 1, N_CTX - 1)),
                  nll_sum(range(first, N_CTX - 1), shift=0)):
        assert m.nll_sum != pytest.approx(wrong, rel=1e-4)


def test_n_batch_does_not_change_the_numbers(tiny_models):
    whole = measure_quality(tiny_models["Q4_K_M"], reference=tiny_models["F16"], n_batch=N_CTX,
                            **FAST).metrics
    split = measure_quality(tiny_models["Q4_K_M"], reference=tiny_models["F16"], n_batch=24,
                            **FAST).metrics
    for key in ("n_tokens", "n_bytes", "n_windows"):
        assert getattr(split, key) == getattr(whole, key)
    # batch shapes change float rounding only: NLL to ~1e-5, the (tiny) KL to well under 1 %
    for key in ("nll", "ref_ppl"):
        assert getattr(split, key) == pytest.approx(getattr(whole, key), rel=2e-4)
    assert split.kl_mean == pytest.approx(whole.kl_mean, rel=2e-2)


def test_bits_per_byte_counts_utf8_bytes_of_the_scored_text(tiny_models, tmp_path):
    # accented letters are 2 bytes in UTF-8, so bytes, characters and tokens all differ
    text = default_corpus_text()[:3000].replace("e", "é")
    path = tiny_models["F16"]
    m = measure_quality(path, corpus=_corpus(tmp_path, text), n_ctx=N_CTX, n_threads=2).metrics

    vocab = _Vocab(path)
    try:
        tokens = vocab.tokenize(text)
        pieces = [vocab.piece(t) for t in tokens]
    finally:
        vocab.close()
    # the pieces spell the text exactly (after BOS; SentencePiece adds one leading space)
    assert b"".join(pieces[1:]).removeprefix(b" ") == text.encode("utf-8")
    n_windows = len(tokens) // N_CTX
    scored: list[bytes] = []
    for w in range(n_windows):
        scored += pieces[w * N_CTX + N_CTX // 2 + 1:(w + 1) * N_CTX]
    scored_text = b"".join(scored).decode("utf-8", errors="replace")
    assert m.n_windows == n_windows and m.n_tokens == len(scored)
    assert m.n_bytes == len(b"".join(scored))
    assert m.n_bytes > len(scored_text) > 0 and m.n_bytes != m.n_tokens
    assert m.bits_per_byte == pytest.approx(m.nll_sum / math.log(2) / m.n_bytes,
                                               rel=1e-12)
    assert m.nll_sum == pytest.approx(m.nll * m.n_tokens, rel=1e-9)
    assert m.ppl == pytest.approx(math.exp(m.nll), rel=1e-12)


def test_corpus_too_short_says_how_many_tokens(tiny_models, tmp_path):
    short = _corpus(tmp_path, "far too short for two windows")
    with pytest.raises(SlmbenchError, match=r"corpus too short: .* tokenizes to \d+ tokens.*"
                                            r"--n-ctx 64 needs at least 128"):
        measure_quality(tiny_models["F16"], corpus=short, n_ctx=64)
    with pytest.raises(SlmbenchError, match="not UTF-8"):
        bad = tmp_path / "latin1.txt"
        bad.write_bytes("caf\xe9 ".encode("latin-1") * 50)
        measure_quality(tiny_models["F16"], corpus=str(bad), n_ctx=64)


def test_different_vocabulary_reference_is_refused(tiny_models, tmp_path):
    other = write_synthetic(str(tmp_path / "v.gguf"), SynthSpec(n_vocab=1000, n_layer=1))
    with pytest.raises(SlmbenchError, match=r"--reference .*v\.gguf: a different vocabulary .*"
                                            r"1000 vs 4096 tokens"):
        measure_quality(tiny_models["F16"], reference=other, **FAST)


def test_cli_json_and_results(tiny_models, tmp_path, capsys):
    run = tmp_path / "run-q"
    assert main(["quality", tiny_models["Q4_K_M"], tiny_models["Q4_0"], "--reference",
                 tiny_models["F16"], "--n-ctx", "64", "--chunks", "3", "-t", "2", "--json",
                 "--results", str(run)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["quant"] for d in data] == ["Q4_K_M", "Q4_0"]
    t = data[0]["tests"][0]
    assert t["test"] == "quality" and t["name"] == "quality@64"
    assert t["n_prompt"] == t["metrics"]["n_tokens"] == 3 * 31
    for key in ("nll", "ppl", "ppl_err", "bits_per_byte", "kl_mean", "kl_p99", "kl_median",
                "top1_pct", "delta_ppl", "n_tokens", "n_bytes", "n_windows"):
        assert key in t["metrics"], key
    assert data[0]["model"]["n_vocab"] == 4096 and data[0]["settings"]["n_ctx"] == 64
    assert data[0]["quality_input"]["reference"].endswith(".gguf")
    recs = read_run(str(run)).records
    assert len(recs) == 2 and recs[1].tests[0].metrics.kl_mean > 0


def test_cli_table_and_errors(tiny_models, tmp_path, capsys):
    assert main(["quality", tiny_models["Q8_0"], "-c", "64", "--chunks", "2", "-t", "2"]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "bits/byte" in out and "Q8_0" in out
    assert main(["quality", str(tmp_path / "missing.gguf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.gguf: no such model file" in err[0]
