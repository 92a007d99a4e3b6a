"""Quantization quality: perplexity, bits per byte and KL divergence vs a reference quant.

Perplexity follows llama.cpp's llama-perplexity exactly: the whole text is tokenized once (BOS
first when the vocabulary adds one), cut into ``len(tokens) // n_ctx`` windows of n_ctx tokens,
the first token of each window replaced by BOS, and only the second half of each window scored
(logits at positions n_ctx/2 .. n_ctx-2 predict the next token), so every scored token has at
least n_ctx/2 tokens of context.  Bits per byte divide the same total negative log-likelihood
(in bits) by the UTF-8 bytes of the scored tokens' text pieces: a tokenizer-independent number,
so models with different vocabularies compare.  Against a reference file of the same model, the
same windows give KL(reference || model) per position (mean, median, 99th percentile), top-1
agreement and the perplexity difference - the statistics of `llama-perplexity --kl-divergence`.
"""

from __future__ import annotations

import ctypes
import math
import os
from typing import Any

from slmbench.errors import SlmbenchError
from slmbench.llama_backend import llama, log_mark, log_since

DEFAULT_CORPUS = "public-domain-us.txt"


def default_corpus_text() -> str:
    path = os.path.join(os.path.dirname(__file__), "data", "corpus", DEFAULT_CORPUS)
    with open(path, encoding="utf-8") as fh:
        return fh.read()


class _Evaluator:
    """One model with a context sized for a window; logits for the scored half."""

    def __init__(self, path: str, n_ctx: int, n_threads: int):
        lc = self.lc = llama()
        mark = log_mark()
        self.model = lc.llama_model_load_from_file(os.fsencode(path),
                                                   lc.llama_model_default_params())
        if not self.model:
            raise SlmbenchError(f"{path}: llama.cpp could not load the model: "
                                f"{(log_since(mark) or ['?'])[-1].strip()}")
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_ctx
        cp.n_ubatch = min(512, n_ctx)
        cp.n_seq_max = 1
        threads = n_threads or (os.cpu_count() or 1)
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise SlmbenchError(f"{path}: could not create a context of {n_ctx} tokens")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(lc.llama_vocab_bos(self.vocab))
        self.batch = lc.llama_batch_init(n_ctx, 0, 1)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (ctypes.c_int32 * cap)()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, cap, True, False)
        if n < 0:
            raise SlmbenchError("the tokenizer failed on the corpus")
        return list(buf[:n])

    def piece_bytes(self, token: int) -> int:
        buf = ctypes.create_string_buffer(256)
        n = self.lc.llama_token_to_piece(self.vocab, token, buf, 256, 0, False)
        return max(0, n)

    def log_probs(self, window: list[int], first: int) -> Any:
        """log-softmax rows for positions first .. len(window)-1 (float64 numpy)."""
        import numpy as np

        lc, b = self.lc, self.batch
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        for i, tok in enumerate(window):
            b.token[i] = tok
            b.pos[i] = i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if i >= first else 0
        b.n_tokens = len(window)
        if lc.llama_decode(self.ctx, b) != 0:
            raise SlmbenchError("llama_decode failed while scoring the corpus")
        n_out = len(window) - first
        ptr = lc.llama_get_logits(self.ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def close(self) -> None:
        lc = self.lc
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        lc.llama_model_free(self.model)


def measure_quality(path: str, *, reference: str | None = None, corpus: str | None = None,
                    n_ctx: int = 512, n_threads: int = 0, max_windows: int = 0) -> Any:
    """A TestResult(test="quality") with perplexity, bits per byte and (with a reference) KL."""
    import numpy as np

    from slmbench.schema import TestResult

    if n_ctx < 16:
        raise SlmbenchError("--n-ctx must be at least 16")
    if corpus is not None:
        try:
            text = open(corpus, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SlmbenchError(f"{corpus}: cannot read the corpus ({exc})") from None
    else:
        text = default_corpus_text()
    model = _Evaluator(path, n_ctx, n_threads)
    ref = None
    try:
        tokens = model.tokenize(text)
        if len(tokens) < 2 * n_ctx:
            raise SlmbenchError(
                f"corpus too short: it tokenizes to {len(tokens)} tokens, and n_ctx {n_ctx} "
                f"needs at least {2 * n_ctx} (two windows); use a longer --corpus or a smaller "
                "--n-ctx")
        if reference:
            ref = _Evaluator(reference, n_ctx, n_threads)
            if ref.n_vocab != model.n_vocab or ref.tokenize(text[:2000]) != model.tokenize(
                    text[:2000]):
                raise SlmbenchError(f"{reference}: a different vocabulary or tokenizer than "
                                    f"{path}; KL needs two files of the same model")
        first = n_ctx // 2
        n_windows = len(tokens) // n_ctx
        if max_windows:
            n_windows = min(n_windows, max_windows)
        nll = nll2 = 0.0
        ref_nll = 0.0
        count = n_bytes = 0
        kls: list[Any] = []
        agree = 0
        for w in range(n_windows):
            window = tokens[w * n_ctx:(w + 1) * n_ctx]
            if model.add_bos:
                window[0] = model.bos
            lp = model.log_probs(window, first)
            targets = np.asarray(window[first + 1:])
            rows = lp[:-1]
            v = -rows[np.arange(len(targets)), targets]
            nll += float(v.sum())
            nll2 += float((v * v).sum())
            count += len(targets)
            n_bytes += sum(model.piece_bytes(int(t)) for t in targets)
            if ref is not None:
                rlp = ref.log_probs(window, first)[:-1]
                ref_nll += float(-rlp[np.arange(len(targets)), targets].sum())
                kls.append((np.exp(rlp) * (rlp - rows)).sum(axis=1))
                agree += int((rlp.argmax(axis=1) == rows.argmax(axis=1)).sum())
    finally:
        model.close()
        if ref is not None:
            ref.close()
    mean = nll / count
    var = nll2 / count - mean * mean
    err = math.sqrt(var / (count - 1)) if var > 0 and count > 1 else 0.0
    ppl = math.exp(mean)
    metrics = {"nll": mean, "ppl": ppl, "ppl_err": ppl * err,
               "bits_per_byte": nll / math.log(2) / n_bytes if n_bytes else float("nan"),
               "n_tokens": count, "n_bytes": n_bytes, "n_windows": n_windows, "n_ctx": n_ctx}
    if kls:
        kl = np.concatenate(kls)
        ref_ppl = math.exp(ref_nll / count)
        metrics.update(kl_mean=float(kl.mean()), kl_median=float(np.median(kl)),
                       kl_p99=float(np.percentile(kl, 99)), top1_pct=100.0 * agree / count,
                       ref_ppl=ref_ppl, delta_ppl=ppl - ref_ppl)
    return TestResult(test="quality", name=f"quality@{n_ctx}", n_prompt=count,
                      metrics={k: (round(v, 6) if isinstance(v, float) else v)
                               for k, v in metrics.items()})


def quality_record(path: str, test: Any, model_id: str | None = None) -> Any:
    """Wrap a quality TestResult into a Record of the results schema."""
    from slmbench.gguf_info import read_gguf
    from slmbench.measure import config_id
    from slmbench.results import utc_now
    from slmbench.schema import Record, Settings

    info = read_gguf(path)
    model_id = model_id or os.path.splitext(os.path.basename(path))[0]
    settings = Settings(n_ctx=int(test.metrics.get("n_ctx", 0)), repetitions=1, warmup=0,
                        prompt="text")
    from slmbench.measure import TestPlan

    rid = config_id(f"{model_id}:{info.file_type}:quality", settings, TestPlan([], [], [0], False))
    return Record(record_id=rid, run_id=None, model_id=model_id, quant=info.file_type,
                  started_at=utc_now(), finished_at=utc_now(), model=info.to_facts(),
                  settings=settings, tests=[test])
