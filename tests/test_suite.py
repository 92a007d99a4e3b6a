"""Suite files: validation (all problems at once, one line), CLI overrides, expansion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmbench.cli import _command_parser, main
from slmbench.config import overrides_from_args
from slmbench.errors import SlmbenchError
from slmbench.config import default_threads
from slmbench.suite import SUITES_DIR, expand, load_suite, parse_suite

SYN = {"synthetic": {"n_embd": 256, "n_layer": 2, "n_vocab": 4096}, "name": "syn"}


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(SlmbenchError) as exc:
        fn(*args, **kwargs)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_every_problem_of_a_file_is_reported_at_once_on_one_line(tmp_path, tiny_model):
    path = write(tmp_path, f"""
models: [{tiny_model}]
n_promt: [64]          # typo
n_gen: lots            # wrong type
repetitions: 2.5       # not an integer
flash_attn: maybe
cache_type: [q8_0, q3_x]
""")
    msg = error_of(load_suite, path)
    assert msg.startswith(path + ":")
    assert "unknown key 'n_promt' (did you mean 'n_prompt'?)" in msg
    assert "n_gen: expected an integer or a list of integers, got 'lots'" in msg
    assert "repetitions: expected a number of repetitions or 'auto', got 2.5" in msg
    assert "flash_attn: 'maybe' is not one of auto, off, on" in msg
    assert "unknown KV cache type 'q3_x'" in msg


def test_model_entry_errors(tmp_path):
    path = write(tmp_path, """
models:
  - ./missing.gguf
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: syn, quants: [Q9_9]}
  - {synthetic: {n_embd: 256, width: 3}}
  - {id: a, path: b.gguf}
  - 42
""")
    msg = error_of(load_suite, path)
    assert "models[0]: no such model file './missing.gguf'" in msg
    assert "models[1] (syn): unknown quant 'Q9_9' (available: " in msg
    assert "models[2].synthetic: unknown field(s) width" in msg
    assert "models[3]: give exactly one of id, path or synthetic" in msg
    assert "models[4]: expected a catalog id, a .gguf path or a mapping, got 42" in msg


def test_unknown_catalog_model_and_quant(tmp_path):
    cat = pytest.importorskip("slmbench.catalog").load_catalog()
    entry = cat.get(cat_ids(cat)[0])
    good = entry.quants()[0]
    path = write(tmp_path, f"""
models: [no-such-model-xyz, "{entry.id}:Q9_9", "{entry.id}:{good}"]
""")
    msg = error_of(load_suite, path)
    assert "models[0]: unknown model id 'no-such-model-xyz'" in msg
    assert f"models[1] ({entry.id}): unknown quant 'Q9_9'" in msg
    assert "models[2]" not in msg


def cat_ids(cat) -> list[str]:
    from slmbench.suite import _catalog_ids

    return _catalog_ids(cat)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "models: [a\nn_gen: 3\n")
    msg = error_of(load_suite, path)
    assert msg.startswith(path) and "not valid YAML" in msg and "line" in msg


def test_unknown_suite_name_lists_shipped_suites():
    msg = error_of(load_suite, "no-such-suite")
    assert "no such suite file" in msg and "quick" in msg and "demo" in msg


def test_expand_is_the_cross_product_with_one_plan_per_load(tmp_path, tiny_models):
    path = write(tmp_path, f"""
models:
  - {tiny_models['Q8_0']}
  - {{synthetic: {{n_embd: 256, n_layer: 2, n_vocab: 4096}}, name: syn}}
quants: [Q8_0, Q4_K_M]
threads: [1, 2]
cache_type: [f16, q8_0/q4_0]
flash_attn: [on, off]       # YAML reads these as booleans; they stay on/off
n_prompt: [16, 64]
n_gen: 8
n_depth: [0, 32]
""")
    suite = load_suite(path)
    configs = expand(suite)
    # (1 file + 2 synthetic quants) x 2 threads x 2 cache types x 2 flash-attn settings
    assert len(configs) == 3 * 2 * 2 * 2
    assert [c.index for c in configs] == list(range(24))
    assert len({c.record_id for c in configs}) == 24
    first = configs[0]
    assert first.model.kind == "file" and first.model.quant == "Q8_0"
    assert first.plan.n_prompt == [16, 64] and first.plan.n_gen == [8]
    assert first.plan.n_depth == [0, 32]
    assert {c.settings.flash_attn for c in configs} == {"on", "off"}
    assert {(c.settings.type_k, c.settings.type_v) for c in configs} == {("f16", "f16"),
                                                                         ("q8_0", "q4_0")}
    assert {c.model.key for c in configs} == {"tiny:Q8_0", "syn:Q8_0", "syn:Q4_K_M"}
    # the record ids are stable: a second expansion (a resume) finds the same keys
    assert [c.record_id for c in expand(load_suite(path))] == [c.record_id for c in configs]


def test_manifest_copy_expands_to_the_same_configs(tmp_path, tiny_model):
    path = write(tmp_path, f"""
models: [{tiny_model}, {{synthetic: {{n_embd: 256, n_layer: 2, n_vocab: 4096}}, quants: [Q4_0]}}]
threads: 0
type_k: [f16, q8_0]
type_v: q8_0
""")
    suite = load_suite(path)
    again = parse_suite(json.loads(json.dumps(suite.to_dict())), source="manifest.json")
    assert [c.record_id for c in expand(again)] == [c.record_id for c in expand(suite)]
    # threads 0 means the physical cores, resolved before the record id is computed
    assert {c.settings.n_threads for c in expand(suite)} == {default_threads()}
    assert {(c.settings.type_k, c.settings.type_v) for c in expand(suite)} == {
        ("f16", "q8_0"), ("q8_0", "q8_0")}


def test_duplicate_configs_are_measured_once(tmp_path, tiny_model):
    suite = parse_suite({"models": [tiny_model, tiny_model], "threads": [1, 1]})
    assert len(expand(suite)) == 1


def test_command_line_overrides_replace_suite_values(tmp_path, tiny_model):
    path = write(tmp_path, """
models:
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: a, quants: [Q8_0, Q4_K_M]}
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: b}
quants: [Q4_0]
n_prompt: [512]
repetitions: 5
""")
    parser, _ = _command_parser("run")
    args = parser.parse_args([path, "--quants", "Q8_0", "-p", "64,256", "-n", "32", "-d", "0,512",
                              "-t", "2", "-ngl", "0", "--cache-type", "q8_0", "-r", "3",
                              "--warmup", "0", "--n-ctx", "2048", "--cooldown", "10",
                              "--timeout", "600", "--max-temp", "80", "--no-ttft"])
    suite = load_suite(args.suite, overrides_from_args(args))
    v = suite.values
    assert v["n_prompt"] == [64, 256] and v["n_gen"] == [32] and v["n_depth"] == [0, 512]
    assert v["threads"] == [2] and v["cache_type"] == ["q8_0"] and v["repetitions"] == 3
    assert v["cooldown_s"] == 10.0 and v["timeout_s"] == 600.0 and v["max_temp_c"] == 80.0
    configs = expand(suite)
    # --quants replaces the per-model quant lists too
    assert [c.model.key for c in configs] == ["a:Q8_0", "b:Q8_0"]
    c = configs[0]
    assert (c.settings.n_threads, c.settings.type_k, c.settings.n_ctx) == (2, "q8_0", 2048)
    assert c.plan.ttft is False and c.cooldown_s == 10.0 and c.timeout_s == 600.0
    # --models replaces the model list (paths relative to the working directory)
    args = parser.parse_args([path, "--models", tiny_model])
    suite = load_suite(args.suite, overrides_from_args(args))
    assert [m.kind for m in suite.models] == ["file"]


def test_bad_override_names_the_flag(tmp_path, tiny_model):
    path = write(tmp_path, f"models: [{tiny_model}]\n")
    msg = error_of(load_suite, path, {"flash_attn": ["sometimes"], "cooldown_s": -1.0})
    assert "command line --flash-attn: 'sometimes' is not one of auto, off, on" in msg
    assert "command line --cooldown: must be >= 0" in msg


def test_dry_run_lists_configs_without_measuring(tmp_path, tiny_model, capsys):
    path = write(tmp_path, f"models: [{tiny_model}]\nthreads: [1, 2]\nn_prompt: 16\nn_gen: 4\n")
    assert main(["run", path, "--dry-run", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "tiny:Q8_0 t1" in out and "tiny:Q8_0 t2" in out
    assert "2 timing configs; each runs: pp16, ttft16, tg4" in out
    assert not (tmp_path / "r").exists()
    # a suite error from the CLI is one line, exit code 2, no traceback
    assert main(["run", path, "-fa", "maybe", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'maybe' is not one of auto, off, on" in err


def test_shipped_suites_are_valid():
    demo = load_suite("demo")
    kinds = [c.kind for c in expand(demo)]
    assert kinds == ["bench"] * 8 + ["quality"] * 8  # 4 shapes x 2 quants, timing + quality
    for name in ("quick", "survey"):
        pytest.importorskip("slmbench.catalog")
        assert expand(load_suite(name)), name
    assert (SUITES_DIR / "quick.yaml").exists() and (SUITES_DIR / "survey.yaml").exists()


def test_overrides_travel_to_a_remote_run_as_flags():
    from slmbench.config import override_argv

    parser, _ = _command_parser("run")
    argv = ["--models", "a,b:Q8_0", "-p", "64,256", "-t", "1,2", "--cache-type", "q8_0",
            "-fa", "on", "--cooldown", "10", "--no-ttft", "-b", "512", "--max-temp", "75",
            "--quality"]
    first = overrides_from_args(parser.parse_args(argv))
    again = overrides_from_args(parser.parse_args(override_argv(first)))
    assert again == first and first["cooldown_s"] == 10.0 and first["ttft"] is False
    assert first["quality"] is True
    no = overrides_from_args(parser.parse_args(["--no-quality"]))
    assert overrides_from_args(parser.parse_args(override_argv(no)))["quality"] is False


# ------------------------------------------------------------------------------ quality --

QSYN = {"synthetic": {"n_embd": 256, "n_layer": 2, "n_vocab": 4096}, "name": "q"}


def test_quality_configs_follow_the_timing_one_per_model_file(tmp_path, tiny_model):
    suite = parse_suite({"models": [dict(QSYN, quants=["Q8_0", "Q4_0", "F16"]), tiny_model],
                         "threads": [1, 2], "n_prompt": 16, "n_gen": 4,
                         "quality": {"reference": "F16", "chunks": 3, "n_ctx": 256}})
    configs = expand(suite)
    kinds = [c.kind for c in configs]
    assert kinds == ["bench"] * 8 + ["quality"] * 4  # 4 files x 2 thread counts, then 4 files
    quality = configs[8:]
    assert [c.model.key for c in quality] == ["q:Q8_0", "q:Q4_0", "q:F16", "tiny:Q8_0"]
    # the reference itself, and a local file (no sibling quants), are scored without KL
    assert [c.reference.key if c.reference else None for c in quality] == [
        "q:F16", "q:F16", None, None]
    assert quality[0].quality["chunks"] == 3 and quality[0].quality["n_threads"] == 1
    assert quality[0].settings.n_ctx == 256 and quality[0].label == "q:Q8_0 quality vs F16"
    assert len({c.record_id for c in configs}) == len(configs)
    # the manifest copy gives the same configs back
    again = parse_suite(json.loads(json.dumps(suite.to_dict())), source="manifest.json")
    assert [c.record_id for c in expand(again)] == [c.record_id for c in configs]


def test_quality_keys_and_overrides(tmp_path, tiny_model):
    corpus = tmp_path / "text.txt"
    corpus.write_text("words " * 100, encoding="utf-8")
    path = write(tmp_path, """
models:
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: a, quants: [Q4_0]}
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: b, quants: [Q4_0],
     quality: false}
  - {synthetic: {n_embd: 256, n_layer: 2, n_vocab: 4096}, name: c, quants: [Q4_0],
     quality: {chunks: 1}}
quality: {corpus: text.txt, n_ctx: 64}
""")
    quality = [c for c in expand(load_suite(path)) if c.kind == "quality"]
    assert [c.model.key for c in quality] == ["a:Q4_0", "c:Q4_0"]
    assert quality[0].quality["corpus"] == str(corpus.resolve())  # relative to the suite file
    assert quality[1].quality["chunks"] == 1 and quality[1].quality["n_ctx"] == 64
    assert quality[0].reference is None
    assert not [c for c in expand(load_suite(path, {"quality": False})) if c.kind == "quality"]
    # --quality on a suite without the key: defaults for every model
    plain = write(tmp_path, f"models: [{tiny_model}]\n", "plain.yaml")
    assert not [c for c in expand(load_suite(plain)) if c.kind == "quality"]
    on = [c for c in expand(load_suite(plain, {"quality": True})) if c.kind == "quality"]
    assert len(on) == 1 and on[0].quality["n_ctx"] == 512 and on[0].quality["corpus"] is None
    # --quality keeps what the file configures
    kept = [c for c in expand(load_suite(path, {"quality": True})) if c.kind == "quality"]
    assert kept[0].quality["n_ctx"] == 64


def test_quality_errors_are_one_line_and_name_the_key(tmp_path, tiny_model):
    path = write(tmp_path, f"""
models:
  - {{synthetic: {{n_embd: 256, n_layer: 2, n_vocab: 4096}}, name: a, quants: [Q4_0],
     quality: {{reference: Q9_9}}}}
  - {{path: {tiny_model}, quality: {{reference: Q8_0}}}}
quality: {{n_ctx: 4, chunk: 3, corpus: missing.txt, reference: Q8_0}}
""")
    msg = error_of(load_suite, path)
    assert "quality: unknown key 'chunk' (did you mean 'chunks'?)" in msg
    assert "quality.n_ctx: expected an integer >= 8, got 4" in msg
    assert "quality.corpus: no such file 'missing.txt'" in msg
    assert "quality reference 'Q9_9' is not a quant of this model" in msg
    assert "quality reference 'Q8_0' names a quant, but a local file has no siblings" in msg
    msg = error_of(parse_suite, {"models": [tiny_model], "quality": "yes"})
    assert "quality: expected true, false or a mapping" in msg
