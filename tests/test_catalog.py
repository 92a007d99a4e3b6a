"""The model catalog: the shipped file, and one clear message for every kind of mistake."""

from __future__ import annotations

import json
import textwrap

import pytest

from slmbench.catalog import load_catalog
from slmbench.cli import main
from slmbench.errors import SlmbenchError

GOOD = """
models:
  - id: a
    family: A
    repo_id: org/a-GGUF
    files: {Q8_0: a-q8_0.gguf, Q4_K_M: a-q4_k_m.gguf}
    facts: {parameters: 100, vocab_size: 10, layers: 2, attention_type: GQA}
    source: card
  - id: local
    path: models/x.gguf
"""


def write(tmp_path, text: str):
    p = tmp_path / "models.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_shipped_catalog():
    cat = load_catalog()
    assert len(cat.models) >= 15
    families = {m.family for m in cat.models}
    for fam in ("SmolLM2", "Qwen2.5", "Llama-3.2", "Gemma-3", "Gemma-2", "TinyLlama",
                "Phi-3.5", "StableLM-2", "H2O-Danube3", "Qwen2"):
        assert fam in families
    for m in cat.models:
        assert m.repo_id and "Q4_K_M" in m.files and m.source
        assert set(m.facts) >= {"parameters", "vocab_size", "training_tokens", "layers",
                                "kv_heads", "attention_type"}
    gemma = cat.get("gemma-3-270m")
    assert gemma.facts["parameters"] == 268098176 and gemma.facts["vocab_size"] == 262144


def test_local_paths_resolve_against_the_file(tmp_path):
    cat = load_catalog(write(tmp_path, GOOD))
    assert cat.get("local").paths["LOCAL"] == str((tmp_path / "models/x.gguf").resolve())
    entry, quant = cat.resolve("a:q4_k_m")
    assert entry.id == "a" and quant == "Q4_K_M"


@pytest.mark.parametrize("text, expected", [
    ("models:\n  - {id: a, repo_id: o/r, files: {Q9_9: f.gguf}}", "unknown quantization 'Q9_9'"),
    ("models:\n  - {id: a, repo_id: o/r, files: {Q8_0: f}, facts: {parameters: 1.5B}}",
     "facts.parameters must be int"),
    ("models:\n  - {id: a, path: x.gguf}\n  - {id: a, path: y.gguf}", "duplicate id"),
    ("models:\n  - {id: a, family: F}", "needs 'repo_id'"),
    ("models:\n  - {id: a, path: x.gguf, colour: red}", "unknown field 'colour'"),
    ("models:\n  - {id: a, repo_id: o/r, files: {Q8_0: f}, sha256: {Q8_0: abc}}",
     "not 64 hex digits"),
    ("models: [\n", "invalid YAML"),
    ("extra: 1\nmodels: []", "unknown top-level key"),
])
def test_each_error_kind(tmp_path, text, expected):
    with pytest.raises(SlmbenchError) as err:
        load_catalog(write(tmp_path, text))
    msg = str(err.value)
    assert expected in msg and "\n" not in msg


def test_all_problems_reported_together(tmp_path):
    text = "models:\n  - {id: a, family: F}\n  - {id: b, path: x, facts: {layers: many}}\n"
    with pytest.raises(SlmbenchError) as err:
        load_catalog(write(tmp_path, text))
    msg = str(err.value)
    assert "2 problem(s)" in msg and "model 'a'" in msg and "model 'b'" in msg


def test_unknown_ids_and_quants_list_alternatives():
    cat = load_catalog()
    with pytest.raises(SlmbenchError, match="known: smollm2-135m"):
        cat.get("smollm2-135")
    with pytest.raises(SlmbenchError, match="available: .*Q8_0"):
        cat.resolve("smollm2-135m:Q2_K")
    with pytest.raises(SlmbenchError, match="not found"):
        load_catalog("/nonexistent/models.yaml")


def test_models_cli(capsys):
    assert main(["models", "--json"]) == 0
    ids = [m["id"] for m in json.loads(capsys.readouterr().out)]
    assert ids == load_catalog().ids()
    assert main(["models"]) == 0
    assert "smollm2-135m" in capsys.readouterr().out
    assert main(["models", "--catalog", "/nonexistent.yaml"]) == 2
