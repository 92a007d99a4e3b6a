"""Quantization quality: perplexity, bits per byte and KL divergence vs a reference quant.

Perplexity follows llama.cpp's ``llama-perplexity`` (tools/perplexity/perplexity.cpp):

- the whole text is tokenized once, with the vocabulary's BOS when it adds one (``add_special``
  on, special-token parsing off), and cut into ``len(tokens) // n_ctx`` non-overlapping windows of
  n_ctx tokens; at least ``2 * n_ctx`` tokens are required, as in llama-perplexity;
- each window is evaluated from an empty KV cache with its first token replaced by BOS (when the
  vocabulary adds one), in batches of ``n_batch`` tokens;
- only the second half is scored: the logits at positions ``first = n_ctx // 2`` .. ``n_ctx - 2``
  predict tokens ``first + 1`` .. ``n_ctx - 1``, i.e. ``n_ctx - 1 - n_ctx // 2`` tokens per
  window, each with at least n_ctx/2 tokens of context;
- PPL = exp(mean NLL) and its uncertainty ``PPL * sqrt((<v^2> - <v>^2) / (N - 1))``.

Bits per byte divide the same total NLL, in bits, by the UTF-8 bytes of the scored tokens' text
pieces (``llama_token_to_piece``, special tokens rendered empty): a tokenizer-independent number,
so models with different vocabularies compare.

Against a reference file of the same model both files evaluate the same window side by side
(two contexts; nothing is stored across windows beyond one float per scored token), and each
scored position gives KL(reference || model) of the full next-token distributions (exact, in
float64 - llama-perplexity instead stores the reference's log-probabilities as 16-bit codes and
drops tokens below e^-16, so its KL can differ in the last digits), top-1 agreement and the
difference in perplexity: the statistics of ``llama-perplexity --kl-divergence``.

Memory: llama.cpp holds ``n_vocab`` floats per scored token of one batch (n_batch/2 rows by
default, 256 x 262,144 x 4 B = 256 MiB for Gemma 3); numpy works on blocks of rows of about
32 MiB.  A smaller ``n_batch`` lowers the first and gives the same numbers.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slmbench.errors import ConfigError, MeasurementError, ModelLoadError
from slmbench.llama_backend import llama, log_mark, log_since

DEFAULT_CORPUS = "pride-and-prejudice-ch1-12.txt"
BLOCK_FLOATS = 4 * 1024 * 1024  # logits per numpy block (32 MiB as float64)
VOCAB_SAMPLE = 8192  # token ids whose pieces are compared between model and reference


def default_corpus_path() -> str:
    return os.path.join(os.path.dirname(__file__), "data", "corpus", DEFAULT_CORPUS)


def default_corpus_text() -> str:
    with open(default_corpus_path(), encoding="utf-8") as fh:
        return fh.read()


def read_corpus(corpus: str | None) -> tuple[str, str]:
    """(text, path) of a user corpus or of the bundled one; one-line errors for bad files."""
    path = corpus or default_corpus_path()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"--corpus {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--corpus {path}: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}); convert it to UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"--corpus {path}: cannot read it ({exc.strerror})") from None
    if not text.strip():
        raise ConfigError(f"--corpus {path}: the file is empty")
    return text, path


def corpus_info(corpus: str | None) -> dict[str, Any]:
    """Name, size and sha256 of the corpus: what a quality number was measured on."""
    text, path = read_corpus(corpus)
    data = text.encode("utf-8")
    return {"corpus": os.path.basename(path), "corpus_bytes": len(data),
            "corpus_sha256": hashlib.sha256(data).hexdigest(), "bundled": corpus is None}


class _Evaluator:
    """One model and a one-sequence context: decode a window, expose the logits of a batch."""

    def __init__(self, path: str, n_ctx: int, n_batch: int, n_threads: int):
        if not os.path.isfile(path):
            raise ModelLoadError(f"{path}: no such model file")
        self.path = path
        lc = self.lc = llama()
        self.model = self.ctx = self.batch = None
        mark = log_mark()
        self.model = lc.llama_model_load_from_file(os.fsencode(path),
                                                   lc.llama_model_default_params())
        if not self.model:
            tail = [ln.strip() for ln in log_since(mark) if ln.strip()]
            raise ModelLoadError(f"{path}: llama.cpp could not load the model"
                                 + (f" ({tail[-1]})" if tail else ""))
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = min(512, n_batch)
        cp.n_seq_max = 1
        cp.n_threads = cp.n_threads_batch = n_threads
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            self.close()
            raise ModelLoadError(f"{path}: llama.cpp could not create a context of {n_ctx} "
                                 "tokens (out of memory? try a smaller --n-ctx or --n-batch)")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self.add_eos = bool(lc.llama_vocab_get_add_eos(self.vocab))
        self.bos = int(lc.llama_vocab_bos(self.vocab))
        self.eos = int(lc.llama_vocab_eos(self.vocab))
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self.model))
        self.batch = lc.llama_batch_init(n_batch, 0, 1)

    def tokenize(self, text: str) -> list[int]:
        """Tokens as llama-perplexity gets them: add_special on, parse_special off, no EOS."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (ctypes.c_int32 * cap)()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, cap, True, False)
        if n < 0:
            raise MeasurementError(f"{self.path}: the tokenizer failed on the corpus")
        tokens = list(buf[:n])
        if self.add_eos and tokens and tokens[-1] == self.eos:
            tokens.pop()  # llama-perplexity refuses such vocabularies; scoring EOS is meaningless
        return tokens

    def piece(self, token: int) -> bytes:
        """The token's text as UTF-8 bytes (special tokens render as nothing)."""
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lc.llama_token_to_piece(self.vocab, token, buf, size, 0, False)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def decode(self, tokens: list[int], pos0: int, first: int) -> int:
        """Decode ``tokens`` at positions pos0.. (logits for positions >= first); rows out."""
        lc, b = self.lc, self.batch
        n_out = 0
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            want = pos0 + i >= first
            b.logits[i] = 1 if want else 0
            n_out += want
        b.n_tokens = len(tokens)
        rc = lc.llama_decode(self.ctx, b)
        if rc != 0:
            raise MeasurementError(f"{self.path}: llama_decode failed (code {rc}) while scoring "
                                   "the corpus")
        return n_out

    def logits(self, n_rows: int) -> Any:
        """float32 (n_rows, n_vocab) view of the last decode's output rows (no copy)."""
        import numpy as np

        ptr = self.lc.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def clear(self) -> None:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def close(self) -> None:
        lc = self.lc
        if self.batch is not None:
            lc.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None


def _log_softmax(rows: Any) -> Any:
    """Row-wise log-softmax in float64 (for KL, where small differences matter)."""
    import numpy as np

    x = rows.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


def _target_nll(rows: Any, targets: Any) -> Any:
    """-log softmax(row)[target] per row, as llama-perplexity: float32 exp, float64 sum."""
    import numpy as np

    x = rows - rows.max(axis=1, keepdims=True)
    picked = x[np.arange(len(targets)), targets].astype(np.float64)
    lse = np.log(np.exp(x, out=x).sum(axis=1, dtype=np.float64))
    return lse - picked


def _check_same_vocab(model: _Evaluator, ref: _Evaluator, tokens: list[int], text: str) -> None:
    """Refuse a reference whose vocabulary differs: KL over different token sets is meaningless."""
    def refuse(why: str) -> None:
        raise ConfigError(f"--reference {ref.path}: a different vocabulary from {model.path} "
                          f"({why}); KL divergence needs two files of the same model, e.g. "
                          "its F16 or Q8_0")

    if ref.n_vocab != model.n_vocab:
        refuse(f"{ref.n_vocab} vs {model.n_vocab} tokens")
    if (ref.add_bos, ref.bos) != (model.add_bos, model.bos):
        refuse("a different BOS token")
    step = max(1, model.n_vocab // VOCAB_SAMPLE)
    for tok in list(range(0, model.n_vocab, step)) + [model.n_vocab - 1]:
        if ref.piece(tok) != model.piece(tok):
            refuse(f"token {tok} is {ref.piece(tok)!r} vs {model.piece(tok)!r}")
    if ref.tokenize(text) != tokens:
        refuse("the corpus tokenizes differently")


@dataclass
class _Accumulator:
    """Per-token values of the scored positions (a few floats each) and running sums."""

    nll: list[Any] = field(default_factory=list)
    ref_nll: list[Any] = field(default_factory=list)
    kl: list[Any] = field(default_factory=list)
    p_diff: list[Any] = field(default_factory=list)
    same_top: int = 0
    n_bytes: int = 0
    window_sizes: list[int] = field(default_factory=list)  # tokens scored per window


def measure_quality(path: str, *, reference: str | None = None, corpus: str | None = None,
                    n_ctx: int = 512, n_threads: int = 0, n_batch: int = 512,
                    max_windows: int = 0,
                    progress: Callable[[int, int, float], None] | None = None) -> Any:
    """A TestResult(test="quality", name="quality@<n_ctx>") for one GGUF file.

    ``metrics``: nll (nats/token), ppl, ppl_err, bits_per_byte, n_tokens (scored), n_bytes,
    n_windows, n_ctx; with ``reference`` also kl_mean, kl_mean_err, kl_median, kl_p90, kl_p99,
    kl_max, top1_pct, top1_err, rms_dp_pct, ref_ppl, ref_ppl_err, delta_ppl, delta_ppl_err,
    ppl_ratio.  ``max_windows`` (0 = all) is llama-perplexity's --chunks; ``progress`` is called
    after each window with (done, total, perplexity so far).
    """
    import numpy as np

    from slmbench.config import default_threads
    from slmbench.schema import QualityMetrics, TestResult

    if n_ctx < 8:
        raise ConfigError(f"--n-ctx {n_ctx}: must be at least 8 (half of each window is "
                          "context, the other half is scored)")
    if n_batch < 1:
        raise ConfigError(f"--n-batch {n_batch}: must be at least 1")
    if max_windows < 0:
        raise ConfigError(f"--chunks {max_windows}: must be >= 0 (0 = all windows)")
    n_batch = min(n_batch, n_ctx)
    threads = n_threads or default_threads()
    text, corpus_path = read_corpus(corpus)
    first = n_ctx // 2
    warnings: list[str] = []

    model = _Evaluator(path, n_ctx, n_batch, threads)
    ref: _Evaluator | None = None
    acc = _Accumulator()
    try:
        tokens = model.tokenize(text)
        if len(tokens) < 2 * n_ctx:
            raise ConfigError(
              f"corpus too short: {corpus_path} tokenizes to {len(tokens)} tokens for "
              f"{os.path.basename(path)}, and --n-ctx {n_ctx} needs at least {2 * n_ctx} "
              "(two windows, as llama-perplexity); use a longer --corpus or a smaller --n-ctx")
        if n_ctx > model.n_ctx_train > 0:
            warnings.append(f"n_ctx {n_ctx} > the model's training context {model.n_ctx_train}")
        if reference:
            ref = _Evaluator(reference, n_ctx, n_batch, threads)
            _check_same_vocab(model, ref, tokens, text)
        n_windows = len(tokens) // n_ctx
        if max_windows:
            n_windows = min(n_windows, max_windows)
        pieces: dict[int, int] = {}
        rows_per_block = max(1, BLOCK_FLOATS // model.n_vocab)
        for w in range(n_windows):
            scored_before = sum(len(a) for a in acc.nll)
            window = tokens[w * n_ctx:(w + 1) * n_ctx]
            if model.add_bos:
                window[0] = model.bos
            for ev in (model, ref):
                if ev is not None:
                    ev.clear()
            for start in range(0, n_ctx, n_batch):
                chunk = window[start:start + n_batch]
                n_out = model.decode(chunk, start, first)
                if ref is not None:
                    ref.decode(chunk, start, first)
                if n_out == 0:
                    continue
                # output row r predicts the token after position p = start + len(chunk) - n_out + r;
                # the last position of the window predicts nothing inside it (not scored)
                p0 = start + len(chunk) - n_out
                n_scored = min(n_out, n_ctx - 1 - p0)
                logits = model.logits(n_out)
                ref_logits = ref.logits(n_out) if ref is not None else None
                for r0 in range(0, n_scored, rows_per_block):
                    r1 = min(n_scored, r0 + rows_per_block)
                    targets = np.asarray(window[p0 + r0 + 1:p0 + r1 + 1])
                    idx = np.arange(r1 - r0)
                    for t in targets.tolist():
                        if t not in pieces:
                            pieces[t] = len(model.piece(t))
                        acc.n_bytes += pieces[t]
                    if ref_logits is None:
                        acc.nll.append(_target_nll(logits[r0:r1], targets))
                        continue
                    lp = _log_softmax(logits[r0:r1])
                    rlp = _log_softmax(ref_logits[r0:r1])
                    acc.nll.append(-lp[idx, targets])
                    acc.ref_nll.append(-rlp[idx, targets])
                    acc.kl.append((np.exp(rlp) * (rlp - lp)).sum(axis=1))
                    acc.p_diff.append(np.exp(lp[idx, targets]) - np.exp(rlp[idx, targets]))
                    acc.same_top += int((logits[r0:r1].argmax(axis=1)
                                         == ref_logits[r0:r1].argmax(axis=1)).sum())
            acc.window_sizes.append(sum(len(a) for a in acc.nll) - scored_before)
            if progress is not None:
                progress(w + 1, n_windows, math.exp(float(np.concatenate(acc.nll).mean())))
    finally:
        model.close()
        if ref is not None:
            ref.close()
    metrics = QualityMetrics(**_metrics(acc, n_ctx, n_windows))
    return TestResult(test="quality", name=f"quality@{n_ctx}", n_prompt=int(metrics.n_tokens),
                      metrics=metrics, warnings=warnings)


def _mean_err(values: Any) -> tuple[float, float]:
    """Mean and its standard error as llama-perplexity computes them."""
    n = len(values)
    mean = float(values.mean())
    var = float((values * values).mean()) - mean * mean
    return mean, (math.sqrt(var / (n - 1)) if var > 0 and n > 1 else 0.0)


def _metrics(acc: _Accumulator, n_ctx: int, n_windows: int) -> dict[str, float]:
    import numpy as np

    nll = np.concatenate(acc.nll)
    n = len(nll)
    mean, err = _mean_err(nll)
    ppl = math.exp(mean)
    total = float(nll.sum())
    m: dict[str, float] = {
        "nll": mean, "ppl": ppl, "ppl_err": ppl * err,
        "bits_per_byte": total / math.log(2) / acc.n_bytes if acc.n_bytes else float("nan"),
        "nll_sum": total, "n_tokens": n, "n_bytes": acc.n_bytes, "n_windows": n_windows,
        "n_ctx": n_ctx, "window_nll": _window_means(nll, acc.window_sizes),
    }
    if acc.kl:
        ref_nll = np.concatenate(acc.ref_nll)
        kl = np.concatenate(acc.kl)
        p_diff = np.concatenate(acc.p_diff)
        ref_mean, ref_err = _mean_err(ref_nll)
        ref_ppl = math.exp(ref_mean)
        # covariance of the two mean log-likelihoods (same tokens: strongly correlated)
        cov = (float((nll * ref_nll).mean()) - mean * ref_mean) / (n - 1) if n > 1 else 0.0
        kl_mean, kl_err = _mean_err(kl)
        top = acc.same_top / n
        m.update(
            kl_mean=kl_mean, kl_mean_err=kl_err, kl_median=float(np.median(kl)),
            kl_p90=float(np.percentile(kl, 90)), kl_p99=float(np.percentile(kl, 99)),
            kl_max=float(kl.max()),
            top1_pct=100.0 * top,
            top1_err=100.0 * math.sqrt(top * (1 - top) / (n - 1)) if n > 1 else 0.0,
            rms_dp_pct=100.0 * math.sqrt(float((p_diff * p_diff).mean())),
            ref_ppl=ref_ppl, ref_ppl_err=ref_ppl * ref_err,
            delta_ppl=ppl - ref_ppl,
            delta_ppl_err=math.sqrt(max(0.0, (ppl * err) ** 2 + (ref_ppl * ref_err) ** 2
                                        - 2 * ppl * ref_ppl * cov)),
            ppl_ratio=ppl / ref_ppl,
            window_ref_nll=_window_means(ref_nll, acc.window_sizes),
            window_kl=_window_means(kl, acc.window_sizes),
        )
    return m


def _window_means(values: Any, sizes: list[int]) -> list[float]:
    """The mean of each window's values (``sizes``: values per window, in order)."""
    out, start = [], 0
    for n in sizes:
        out.append(float(values[start:start + n].mean()) if n else float("nan"))
        start += n
    return out


def quality_settings(n_ctx: int, n_batch: int) -> Any:
    """The Settings a quality record carries: what changes its numbers (window, batch)."""
    from slmbench.config import Settings

    n_batch = min(n_batch, n_ctx) if n_ctx else n_batch
    return Settings(n_ctx=n_ctx, n_batch=n_batch, n_ubatch=min(512, n_batch), prompt="text",
                    repetitions=1, warmup=0)


def quality_record(path: str, test: Any, *, reference: str | None = None,
                   corpus: str | None = None, model_id: str | None = None,
                   quant: str | None = None, n_threads: int = 0, n_batch: int = 512,
                   started_at: str | None = None) -> Any:
    """Wrap a quality TestResult into a Record of the results schema.

    Settings carry what changes the numbers (n_ctx, n_batch); threads do not, so they stay 0 and
    quality results of runs with different thread counts still match in ``compare``.  The
    corpus (name, sha256) and the reference file go to ``Record.extra["quality"]``.
    """
    from slmbench.gguf_info import model_id_from_file, read_gguf
    from slmbench.config import TestPlan, config_id
    from slmbench.schema import utc_now
    from slmbench.schema import QualityInput, Record

    info = read_gguf(path)
    model_id = model_id or model_id_from_file(path, quant or info.file_type)
    settings = quality_settings(int(test.metrics.n_ctx or 0), n_batch)
    scored = QualityInput(**corpus_info(corpus),
                          reference=os.path.basename(reference) if reference else None,
                          n_threads=n_threads)
    key = f"{model_id}:{info.file_type}:quality:{scored.corpus_sha256}:{scored.reference}"
    rid = config_id(key, settings, TestPlan([], [], [0], False))
    now = utc_now()
    return Record(record_id=rid, run_id=None, model_id=model_id, quant=quant or info.file_type,
                  started_at=started_at or now, finished_at=now, model=info.to_facts(),
                  settings=settings, tests=[test], warnings=list(test.warnings),
                  quality_input=scored)
