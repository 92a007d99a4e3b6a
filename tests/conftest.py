"""Shared fixtures: tiny synthetic GGUF models built once per test session."""

from __future__ import annotations

import os

import pytest

from slmbench.synth import SynthSpec, synthesize

TINY = SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=768, n_vocab=4096, n_ctx=2048)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_models(model_dir) -> dict[str, str]:
    """{quant: path} for a 2-layer, 256-wide llama: F16, Q8_0, Q4_K_M, Q4_0."""
    return synthesize(os.path.join(model_dir, "tiny.gguf"), TINY, ["Q8_0", "Q4_K_M", "Q4_0"])


@pytest.fixture(scope="session")
def tiny_model(tiny_models) -> str:
    """The Q8_0 tiny model: the default subject of measurement tests."""
    return tiny_models["Q8_0"]


@pytest.fixture(scope="session")
def tiny_spec() -> SynthSpec:
    return TINY
