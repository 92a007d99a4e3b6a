"""Thin layer over llama-cpp-python's low-level C bindings: start-up, log capture, quantize.

llama-cpp-python installs its own log callback on import (with a level table older than ggml's
current enum).  slmbench installs its own callback so it can (a) keep llama.cpp quiet unless asked
and (b) parse the allocation lines ("... KV buffer size = 7.50 MiB") into the memory breakdown.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Any

from slmbench.errors import ConfigError, ModelFetchError, SlmbenchError

LOG_ENV = "SLMBENCH_LLAMA_LOG"  # set: llama.cpp's log is copied to stderr (worker processes too)
_lock = threading.Lock()
_initialised = False
_log_lines: list[str] = []
_log_partial = ""
_log_echo = False
_log_cb: Any = None  # keep a reference: ctypes callbacks must outlive their registration


def llama() -> Any:
    """The llama_cpp module, initialised once with slmbench's log callback installed."""
    global _initialised, _log_cb, _log_echo
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - dependency missing is an install problem
        raise SlmbenchError(f"llama-cpp-python is not installed ({exc}); "
                            "run `pip install -e .` (it compiles llama.cpp, ~10 min)") from None
    with _lock:
        if not _initialised:
            _log_echo = _log_echo or bool(os.environ.get(LOG_ENV))
            _log_cb = llama_cpp.llama_log_callback(_on_log)
            llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True
    return llama_cpp


def _on_log(level: int, text: bytes, user_data: Any) -> None:  # called from C threads
    global _log_partial
    try:
        chunk = text.decode("utf-8", errors="replace") if text else ""
    except Exception:  # noqa: BLE001 - never raise into C
        return
    with _lock:
        buf = _log_partial + chunk
        *complete, _log_partial = buf.split("\n")
        _log_lines.extend(complete)
        if _log_echo and chunk:
            sys.stderr.write(chunk)


def set_log_echo(echo: bool) -> None:
    """Also copy llama.cpp's log to stderr (``--verbose``)."""
    global _log_echo
    _log_echo = echo or bool(os.environ.get(LOG_ENV))


def log_mark() -> int:
    """Position in the captured log; pass to :func:`log_since` to get the lines after it."""
    with _lock:
        return len(_log_lines)


def log_since(mark: int) -> list[str]:
    with _lock:
        return list(_log_lines[mark:])


def system_info() -> str:
    return llama().llama_print_system_info().decode("utf-8", errors="replace").strip()


def quantize(src: str, dst: str, quant: str, n_threads: int = 0,
             allow_requantize: bool = False) -> None:
    """Quantize ``src`` into ``dst`` with llama.cpp's own quantizer (llama_model_quantize).

    ``allow_requantize`` lets an already-quantized file be converted (lossy twice over).
    """
    from gguf import LlamaFileType

    lc = llama()
    name = quant.upper()
    ftype = None
    for candidate in (f"MOSTLY_{name}", f"ALL_{name}"):
        if candidate in LlamaFileType.__members__:
            ftype = LlamaFileType[candidate]
            break
    if ftype is None or name == "GUESSED":
        known = [m.replace("MOSTLY_", "").replace("ALL_", "") for m in LlamaFileType.__members__
                 if m != "GUESSED"]
        raise ConfigError(f"unknown quantization '{quant}' (known: {', '.join(known)})")
    params = lc.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.nthread = int(n_threads)
    params.allow_requantize = bool(allow_requantize)
    mark = log_mark()
    rc = lc.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        tail = " | ".join(line for line in log_since(mark)[-3:] if line.strip())
        raise ModelFetchError(f"llama.cpp failed to quantize {src} to {quant} (code {rc}): {tail}")


# --------------------------------------------------------------------------- threadpools

GGML_MAX_N_THREADS = 512


class ThreadpoolParams(ctypes.Structure):
    """struct ggml_threadpool_params (ggml.h)."""

    _fields_ = [("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32),
                ("strict_cpu", ctypes.c_bool), ("paused", ctypes.c_bool)]


_tp_api: Any = None


def _threadpool_api() -> Any:
    """ggml's threadpool functions, which llama-cpp-python does not bind (None if absent)."""
    global _tp_api
    if _tp_api is None:
        try:
            lib_dir = os.path.join(os.path.dirname(llama().__file__), "lib")
            base = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))
            cpu = ctypes.CDLL(os.path.join(lib_dir, "libggml-cpu.so"))
            lib = ctypes.CDLL(os.path.join(lib_dir, "libllama.so"))
            base.ggml_threadpool_params_default.restype = ThreadpoolParams
            base.ggml_threadpool_params_default.argtypes = [ctypes.c_int]
            cpu.ggml_threadpool_new.restype = ctypes.c_void_p
            cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
            cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
            lib.llama_attach_threadpool.argtypes = [ctypes.c_void_p] * 3
            _tp_api = (base, cpu, lib)
        except (OSError, AttributeError):
            _tp_api = False
    return _tp_api or None


def attach_threadpool(ctx: Any, n_threads: int, poll: int = 50, pool: Any = None) -> Any:
    """Give ``ctx`` a persistent ggml threadpool, as llama-bench does (poll 50 by default).

    Without one, llama.cpp builds a throwaway pool for every graph it computes, which costs a
    few percent on fast single-token decodes.  Returns the pool (free with free_threadpool) or
    None when the libraries do not expose the API.  ``pool``: attach an existing pool instead
    (contexts that never compute at the same time can share one).
    """
    api = _threadpool_api()
    if api is None:
        return None
    base, cpu, lib = api
    if pool is None:
        params = base.ggml_threadpool_params_default(int(n_threads))
        params.poll = int(poll)
        pool = cpu.ggml_threadpool_new(ctypes.byref(params))
    if not pool:
        return None
    ctx_ptr = ctx if isinstance(ctx, int) else ctypes.cast(ctx, ctypes.c_void_p).value
    lib.llama_attach_threadpool(ctx_ptr, pool, pool)
    return pool


def free_threadpool(pool: Any) -> None:
    api = _threadpool_api()
    if api is not None and pool:
        api[1].ggml_threadpool_free(pool)
