"""The model catalog: the shipped file, and one clear line for every kind of mistake."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from slmbench.catalog import (FACT_KEYS, LOCAL, QUANT_BITS, QUANT_NAMES, default_catalog_path,
                              facts_frame, load_catalog)
from slmbench.cli import main
from slmbench.errors import SlmbenchError

REPO = Path(__file__).resolve().parent.parent
GOOD = """
models:
  - id: a
    family: A
    repo_id: org/a-GGUF
    files: {Q8_0: a-q8_0.gguf, q4_k_m: a-q4_k_m.gguf}
    sha256: {Q8_0: "%s"}
    facts: {parameters: 100, vocab_size: 10, layers: 2, attention_heads: 4, kv_heads: 2,
            attention_type: GQA, release_date: "2024-11"}
    source: card
  - id: local
    path: models/x.gguf
  - id: both
    repo_id: org/b-GGUF
    files: {Q8_0: b-q8_0.gguf}
    paths: {Q4_0: ../elsewhere/b-q4_0.gguf, local: ~/b.gguf}
""" % ("ab" * 32)


def write(tmp_path, text: str, name: str = "models.yaml") -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(SlmbenchError) as err:
        load_catalog(write(tmp_path, text))
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_shipped_catalog_has_the_survey_families_with_every_fact_explicit():
    cat = load_catalog(str(REPO / "models.yaml"))
    assert len(cat.models) >= 15
    families = {m.family for m in cat.models}
    assert families >= {"SmolLM2", "Qwen2.5", "Qwen2", "Llama-3.2", "Gemma-3", "Gemma-2",
                        "TinyLlama", "Phi-3.5", "StableLM-2", "H2O-Danube3"}
    assert set(cat.ids()) >= {
        "smollm2-135m", "smollm2-360m", "smollm2-1.7b", "qwen2.5-0.5b", "qwen2.5-1.5b",
        "qwen2.5-3b", "llama-3.2-1b", "llama-3.2-3b", "gemma-3-270m", "gemma-3-1b", "gemma-2-2b",
        "tinyllama-1.1b", "phi-3.5-mini", "stablelm-2-1.6b", "h2o-danube3-500m", "qwen2-0.5b",
        "qwen2-1.5b"}
    raw = {m["id"]: m for m in yaml.safe_load((REPO / "models.yaml").read_text())["models"]}
    for m in cat.models:
        assert m.repo_id and m.source and "Q4_K_M" in m.files, m.id
        assert set(raw[m.id]["facts"]) == set(FACT_KEYS), f"{m.id}: write every fact (null if unknown)"
        assert all(f.endswith(".gguf") for f in m.files.values())
    gemma = cat.get("gemma-3-270m")
    assert gemma.facts["parameters"] == 268098176 and gemma.facts["vocab_size"] == 262144
    assert gemma.facts["attention_type"] == "MQA" and gemma.facts["kv_heads"] == 1
    # the survey suite's quantization study needs these on llama-3.2-1b
    assert {"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M"} <= set(cat.get("llama-3.2-1b").files)


def test_default_path_env_then_repo_root_and_the_packaged_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("SLMBENCH_CATALOG", raising=False)
    assert Path(default_catalog_path()) == REPO / "models.yaml"
    packaged = REPO / "slmbench" / "data" / "models.yaml"
    assert packaged.is_symlink() and packaged.resolve() == (REPO / "models.yaml").resolve()
    mine = write(tmp_path, GOOD)
    monkeypatch.setenv("SLMBENCH_CATALOG", mine)
    assert load_catalog().ids() == ["a", "local", "both"]
    monkeypatch.setenv("SLMBENCH_CATALOG", str(tmp_path / "gone.yaml"))
    with pytest.raises(SlmbenchError, match=r"gone.yaml: model catalog not found \(from "
                                            r"\$SLMBENCH_CATALOG\)"):
        load_catalog()


def test_local_paths_resolve_against_the_catalog_file(tmp_path):
    cat = load_catalog(write(tmp_path, GOOD))
    assert cat.get("local").paths == {LOCAL: str((tmp_path / "models/x.gguf").resolve())}
    assert cat.get("local").quants() == [LOCAL]
    both = cat.get("both")
    assert both.paths["Q4_0"] == str((tmp_path / "../elsewhere/b-q4_0.gguf").resolve())
    assert both.paths[LOCAL] == str(Path("~/b.gguf").expanduser().resolve())
    assert both.quants() == ["Q8_0", "Q4_0", LOCAL]
    a, quant = cat.resolve(" a:q4_k_m ")
    assert a.id == "a" and quant == "Q4_K_M" and a.files["Q4_K_M"] == "a-q4_k_m.gguf"
    assert a.sha256 == {"Q8_0": "ab" * 32}
    assert cat.resolve("local:local") == (cat.get("local"), LOCAL)
    assert cat.resolve("a") == (a, None)
    assert cat.get("A") is a  # a unique case-insensitive match


@pytest.mark.parametrize("text, expected", [
    ("models:\n  - {id: a, repo_id: o/r, files: {Q9_9: f.gguf}}",
     "models.yaml:2: model 'a': files.Q9_9: unknown quantization 'Q9_9'"),
    ("models:\n  - id: a\n    repo_id: o/r\n    files: {Q8_0: f.gguf}\n    source: x\n"
     "    facts: {parameters: 1.5B}",
     "models.yaml:6: model 'a': facts.parameters: must be an integer or null, got '1.5B' "
     "(write 1500000000)"),
    ("models:\n  - id: a\n    repo_id: o/r\n    files: {Q8_0: f.gguf}\n    source: x\n"
     "    facts:\n      training_tokens: 2e12",
     "models.yaml:7: model 'a': facts.training_tokens: must be an integer or null, got '2e12' "
     "(write 2000000000000)"),
    ("models:\n  - {id: a, path: x.gguf}\n  - {id: a, path: y.gguf}",
     "models.yaml:3: model 'a': id: duplicate id (first at line 2)"),
    ("models:\n  - {id: a, family: F}",
     "models.yaml:2: model 'a': repo_id/path: missing"),
    ("models:\n  - {id: a, path: x.gguf, repo: o/r}",
     "model 'a': unknown field 'repo' (did you mean 'repo_id'?)"),
    ("models:\n  - {id: a, repo_id: o/r, files: {Q8_0: f.gguf}, sha256: {Q8_0: abc}}",
     "model 'a': sha256.Q8_0: 'abc' is not 64 hex digits"),
    ("models: [\n  {id: a\n", "models.yaml:3:1: invalid YAML"),
    ("extra: 1\nmodels: []", "models.yaml:1: top level: unknown field 'extra'"),
    ("models:\n  - {id: a, files: {Q8_0: f.gguf}}", "model 'a': repo_id: missing"),
    ("models:\n  - {id: a, repo_id: o/r}", "model 'a': files: missing"),
    ("models:\n  - {id: 'a:b', path: x.gguf}", "models[0]: id: 'a:b' is not a valid id"),
    ("models:\n  - {id: a, repo_id: o/r, files: {Q8_0: f.bin}}", "files.Q8_0: 'f.bin' is not a "
     ".gguf file name"),
    ("models:\n  - {id: a, path: x.gguf, source: s, facts: {release_date: 2024-11-01}}",
     "facts.release_date: must be 'YYYY-MM' (quoted)"),
    ("models:\n  - {id: a, path: x.gguf, source: s,\n     facts: {attention_heads: 8, "
     "kv_heads: 8, attention_type: GQA}}",
     "models.yaml:3: model 'a': facts.attention_type: GQA contradicts 8 heads / 8 KV heads "
     "(that is MHA)"),
    ("models:\n  - {id: a, path: x.gguf, facts: {layers: 2}}", "model 'a': source: missing"),
    ("models:\n  - id: a\n    path: x.gguf\n    path: y.gguf",
     "models.yaml:4: key 'path' repeated (first at line 3)"),
    ("models:\n  - {id: a, repo_id: o/r, files: {Q8_0: f.gguf, q8_0: g.gguf}}",
     "files.q8_0: quantization Q8_0 listed twice"),
    ("version: 2\nmodels: []", "version: 2 is not supported"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: x-00002-of-00002.gguf}}",
     "files.F16: 'x-00002-of-00002.gguf' is shard 2 of 2; name the first one "
     "(x-00001-of-00002.gguf)"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: [x-00001-of-00003.gguf, "
     "x-00002-of-00003.gguf]}}",
     "files.F16: a list names the shards of one split model, in order, as llama.cpp names "
     "them: x-00001-of-00003.gguf, x-00002-of-00003.gguf, x-00003-of-00003.gguf (got 2 names)"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: [a.gguf, b.gguf]}}",
     "them; 'a.gguf' does not end in -00001-of-00002.gguf"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: [x-00001-of-00002.gguf, y.bin]}}",
     "files.F16: 'y.bin' is not a .gguf file name"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: x-00001-of-00002.gguf},\n"
     "     sha256: {F16: %s}}" % ("ab" * 32),
     "models.yaml:3: model 'a': sha256.F16: 1 digest for 2 files - give one per shard"),
    ("models:\n  - {id: a, repo_id: o/r, files: {F16: []}}",
     "files.F16: must be a non-empty string or a list of them (one per shard), got []"),
    ("models: {a: 1}", "models: must be a list"),
    ("- a\n- b\n", "expected a mapping with a top-level 'models:' list"),
])
def test_each_mistake_is_one_line_naming_file_line_model_and_field(tmp_path, text, expected):
    msg = error_of(tmp_path, text)
    assert expected in msg, msg


def test_every_problem_is_reported_together_in_file_order(tmp_path):
    msg = error_of(tmp_path, """\
        models:
          - {id: a, family: F}
          - id: b
            path: x.gguf
            source: card
            facts: {layers: many, kv_heads: 2.5}
          - {id: c, repo_id: o/r, files: {Q4_K_M: c.gguf}, sha256: {Q4_K_M: xyz}}
        """)
    assert msg.startswith("4 problems in the model catalog ")
    parts = msg.split(": ", 1)[1].split("; ")
    assert [p.split(":")[1] for p in parts] == ["2", "6", "6", "7"]
    assert "model 'a'" in parts[0] and "facts.layers" in parts[1] and "facts.kv_heads" in parts[2]
    assert "model 'c': sha256.Q4_K_M" in parts[3]


def test_missing_unreadable_and_empty_catalogs(tmp_path):
    with pytest.raises(SlmbenchError, match="nope.yaml: model catalog not found; pass --catalog"):
        load_catalog(str(tmp_path / "nope.yaml"))
    with pytest.raises(SlmbenchError, match="must be a YAML file, not a directory"):
        load_catalog(str(tmp_path))
    with pytest.raises(SlmbenchError, match="got an empty file"):
        load_catalog(write(tmp_path, ""))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00models")
    with pytest.raises(SlmbenchError, match="cannot read the model catalog"):
        load_catalog(str(tmp_path / "bin.yaml"))


def test_unknown_ids_and_quants_list_the_alternatives():
    cat = load_catalog(str(REPO / "models.yaml"))
    with pytest.raises(SlmbenchError, match="unknown model 'smollm2-135' in the catalog .*; "
                                            "known: smollm2-135m, "):
        cat.get("smollm2-135")
    with pytest.raises(SlmbenchError) as err:
        cat.resolve("gemma-2-2b:Q4_0")
    assert "model 'gemma-2-2b' has no quantization 'Q4_0'" in str(err.value)
    assert "available: F32, Q8_0, " in str(err.value)
    with pytest.raises(SlmbenchError, match=r"'Q9' \(not a llama.cpp type\)"):
        cat.resolve("smollm2-135m:q9")


def test_quant_bits_cover_every_label_in_a_sensible_order():
    assert set(QUANT_BITS) == set(QUANT_NAMES)
    order = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ2_XS"]
    assert [QUANT_BITS[q] for q in order] == sorted((QUANT_BITS[q] for q in order), reverse=True)


def test_facts_frame_has_one_row_per_model():
    pytest.importorskip("pandas")
    cat = load_catalog(str(REPO / "models.yaml"))
    df = facts_frame(cat)
    assert list(df.index) == cat.ids() and list(df.columns) == ["family", *FACT_KEYS]
    assert df.loc["phi-3.5-mini", "training_tokens"] == 3_400_000_000_000
    assert str(df["parameters"].dtype) == "Int64"


def test_models_cli_json_table_and_errors(capsys, tmp_path):
    cat = load_catalog(str(REPO / "models.yaml"))
    assert main(["models", "--json", "--catalog", str(REPO / "models.yaml")]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in listed] == cat.ids()
    assert listed[0]["quants"] and set(listed[0]["facts"]) == set(FACT_KEYS)
    assert main(["models", "--catalog", write(tmp_path, GOOD)]) == 0
    out = capsys.readouterr().out
    assert "org/a-GGUF" in out and "org/b-GGUF + local" in out and "3 models in" in out
    row = next(line for line in out.splitlines() if line.startswith("a "))
    assert "Q8_0,Q4_K_M" in row and "GQA" in row
    bad = write(tmp_path, "models:\n  - {id: a}\n", "bad.yaml")
    assert main(["models", "--catalog", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("slmbench models: error: 1 problem in the model catalog")
    assert "\n" not in err and "bad.yaml:2: model 'a': repo_id/path: missing" in err


def test_models_cli_uses_the_environment_catalog(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMBENCH_CATALOG", write(tmp_path, GOOD))
    assert main(["models", "--json"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == ["a", "local", "both"]
    assert os.environ["SLMBENCH_CATALOG"].endswith("models.yaml")


def test_split_files_by_pattern_or_list_with_a_digest_per_shard(tmp_path):
    digests = ["ab" * 32, "CD" * 32]
    cat = load_catalog(write(tmp_path, f"""\
        models:
          - id: big
            repo_id: org/big-GGUF
            files:
              F16: sub/big-f16-00001-of-00002.gguf
              Q8_0: [big-q8_0-00001-of-00003.gguf, big-q8_0-00002-of-00003.gguf,
                     big-q8_0-00003-of-00003.gguf]
              Q4_K_M: big-q4_k_m.gguf
            sha256: {{F16: [{digests[0]}, {digests[1]}], Q4_K_M: {digests[0]}}}
        """))
    big = cat.get("big")
    assert big.files == {"F16": "sub/big-f16-00001-of-00002.gguf",
                         "Q8_0": "big-q8_0-00001-of-00003.gguf", "Q4_K_M": "big-q4_k_m.gguf"}
    assert big.file_names("F16") == ["sub/big-f16-00001-of-00002.gguf",
                                     "sub/big-f16-00002-of-00002.gguf"]
    assert big.file_names("Q8_0")[-1] == "big-q8_0-00003-of-00003.gguf"
    assert big.file_names("Q4_K_M") == ["big-q4_k_m.gguf"]
    assert big.digests("F16") == ["ab" * 32, "cd" * 32]
    assert big.digests("Q8_0") == [None, None, None]
    assert big.digests("Q4_K_M") == ["ab" * 32] and big.sha256 == {"Q4_K_M": "ab" * 32}


def test_shipped_catalog_pins_the_default_model_and_names_the_qwen_3b_shards():
    cat = load_catalog(str(REPO / "models.yaml"))
    smol = cat.get("smollm2-135m")
    assert smol.revision == "09816acd5d99df7be770d85ea30822623dab342c"
    assert set(smol.sha256) == {"Q8_0", "Q4_K_M"}
    qwen = cat.get("qwen2.5-3b")
    assert qwen.file_names("F16") == ["qwen2.5-3b-instruct-fp16-00001-of-00002.gguf",
                                      "qwen2.5-3b-instruct-fp16-00002-of-00002.gguf"]
