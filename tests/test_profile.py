"""slmbench profile: operator-level times from llama.cpp's scheduler callback, on real llama.cpp
with tiny synthetic models.  Only structural assertions (sums, shares, robust orderings)."""

from __future__ import annotations

import json
import os

import pytest

from slmbench.config import Settings
from slmbench.errors import ProfileError, SlmbenchError
from slmbench.profile import (CLASS_ORDER, Ggml, Node, format_comparison, format_record,
                              measure_profile)
from slmbench.schema import record_from_dict, to_dict
from slmbench.synth import SynthSpec, synthesize

ONE_THREAD = Settings(n_threads=1)


def spec(n_vocab: int) -> SynthSpec:
    return SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=768, n_vocab=n_vocab,
                     n_ctx=512)


@pytest.fixture(scope="module")
def vocab_models(model_dir) -> dict[int, str]:
    """Q8_0 models of equal width and depth, 8k and 64k vocabularies."""
    return {v: synthesize(os.path.join(model_dir, f"vocab{v}.gguf"), spec(v), ["Q8_0"])["Q8_0"]
            for v in (8192, 65536)}


@pytest.fixture(scope="module")
def tiny_profile(tiny_model):
    return measure_profile(tiny_model, ONE_THREAD, n_prompt=16, n_gen=4, repetitions=2)


def operator_ms(profile, *classes) -> float:
    return sum(c.ms for c in profile.classes if c.op_class in classes)


WORK = [c for c in CLASS_ORDER if c not in ("noise", "unattributed")]


def test_profile_accounts_for_the_profiled_time(tiny_profile, tiny_spec):
    rec = tiny_profile
    assert rec.status == "ok"
    assert [t.name for t in rec.tests] == ["profile-pp16", "profile-tg4"]
    for t in rec.tests:
        p = t.profile
        assert t.test == "profile" and p.n_samples == 2
        assert len(p.profiled_samples_ns) == len(p.unprofiled_samples_ns) == 2
        assert t.samples_ns == p.unprofiled_samples_ns and t.ms.n == 2
        # profiled wall = nodes + observer callbacks + outside the nodes (exactly, rounding)
        assert p.nodes_ms + p.callback_ms + p.unattributed_ms == \
            pytest.approx(p.profiled_ms, rel=1e-3)
        assert p.total_ms == pytest.approx(p.profiled_ms - p.callback_ms, rel=1e-3)
        assert p.callback_ms >= 0 and p.unattributed_ms >= 0
        # the classes (noise and unattributed included) are the total; shares sum to 100 %
        assert sum(c.ms for c in p.classes) == pytest.approx(p.total_ms, rel=1e-3)
        assert sum(c.pct for c in p.classes) == pytest.approx(100.0, abs=0.05)
        assert p.coverage_pct == pytest.approx(100 * p.nodes_ms / p.total_ms, abs=0.05)
        assert sum(lay.ms for lay in p.layers) == \
            pytest.approx(p.nodes_ms - p.noise_ms, rel=1e-3)
        assert {lay.layer for lay in p.layers} == {0, 1, None}
        assert 0 < p.n_timed_nodes < p.n_graph_nodes  # views go with the next node
        tops = [n.ms for n in p.top_nodes]
        assert tops == sorted(tops, reverse=True)
        labels = {c.label for c in p.classes}
        assert {"matmul Q8_0", "output Q8_0", "attention", "kv_copy", "norm", "rope",
                "embedding", "noise", "unattributed"} <= labels
        assert p.backends and all(b.upper().startswith("CPU") for b in p.backends)
    decode = rec.tests[1].profile
    assert decode.n_graphs == 4  # one graph per generated token
    out = next(c for c in decode.classes if c.op_class == "output")
    # ggml_nbytes of the Q8_0 output weights (34 bytes per 32 values), read once per token
    assert out.weight_bytes == tiny_spec.n_vocab * tiny_spec.n_embd * 34 / 32
    assert out.n_nodes == 1 and out.gbs > 0
    fused = [n for n in decode.top_nodes + rec.tests[0].profile.top_nodes if "+" in n.op]
    assert all(n.op == "RMS_NORM+MUL" and n.op_class == "norm" for n in fused)


def test_output_projection_share_grows_with_the_vocabulary(vocab_models):
    shares = {}
    for vocab, path in vocab_models.items():
        rec = measure_profile(path, ONE_THREAD, n_prompt=0, n_gen=8, repetitions=2)
        p = rec.tests[0].profile
        work = operator_ms(p, *WORK)
        shares[vocab] = operator_ms(p, "output") / work
        # weight matmuls (the vocabulary projection included) dominate decode
        assert operator_ms(p, "matmul", "output") > 0.5 * work
    assert shares[65536] > shares[8192]


def test_record_round_trips_through_the_schema(tiny_profile):
    data = json.loads(json.dumps(to_dict(tiny_profile)))
    back = record_from_dict(data)
    assert to_dict(back) == to_dict(tiny_profile)
    assert back.tests[1].profile.classes[0].label == tiny_profile.tests[1].profile.classes[0].label


def test_text_output_and_comparison(tiny_profile):
    text = format_record(tiny_profile)
    assert "profile-pp16 ms/tok" in text and "unprofiled" in text and "overhead" in text
    assert "unattributed" in text and "top nodes" in text
    other = record_from_dict(to_dict(tiny_profile))
    other.model.path = "/x/other-Q8_0.gguf"
    cmp = format_comparison([tiny_profile, other])
    assert "decode (profile-tg4, profile-tg4)" in cmp and "+0.0000" in cmp


def test_layer_of_a_node():
    def node(name, *srcs):
        return Node(name=name, op="ADD", desc="ADD", type="F32", shape=[1], backend="CPU",
                    src_names=srcs)

    assert node("ffn_up-3").layer == 3
    assert node("Qcur-12 (permuted)").layer == 12
    assert node("node_52", "Qcur-1 (view)").layer == 1  # unnamed: its source's block
    assert node("norm", "l_out-17").layer is None  # the final norm is named: no block
    assert node("result_output", "result_norm").layer is None


def test_bad_input_is_one_line(tmp_path, monkeypatch, tiny_model):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(SlmbenchError, match="not a GGUF file"):
        measure_profile(str(bad), ONE_THREAD, n_prompt=8, n_gen=2, repetitions=1)
    import llama_cpp

    monkeypatch.setattr(Ggml, "_instance", None)
    monkeypatch.delattr(llama_cpp, "ggml_backend_sched_eval_callback")
    with pytest.raises(ProfileError, match="evaluation callback") as info:
        measure_profile(tiny_model, ONE_THREAD, n_prompt=8, n_gen=2, repetitions=1)
    assert "\n" not in str(info.value)


def test_cli(tiny_model, tiny_models, capsys):
    from slmbench.cli import main

    assert main(["profile", tiny_model, "-p", "8", "-n", "2", "-r", "1", "-t", "1",
                 "--no-probe", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in recs[0]["tests"]] == ["profile-pp8", "profile-tg2"]
    assert main(["profile", tiny_model, tiny_models["Q4_0"], "-p", "0", "-n", "2", "-r", "1",
                 "-t", "1", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "decode (profile-tg2, profile-tg2)" in out and "matmul Q4_0" in out
    assert "compared: A = tiny-Q8_0, B = tiny-Q4_0" in out and "B - A" in out
    assert "Q8_0 / Q4_0" in out  # the weight types of the matmul class, A / B
    assert main(["profile", tiny_model, "-p", "0", "-n", "0"]) == 2
    assert "nothing to profile" in capsys.readouterr().err


def test_a_file_that_cannot_be_profiled_is_a_failed_record(tmp_path, tiny_model, capsys):
    """In its own worker, next to a good file: one line, and the other file is profiled."""
    from slmbench.cli import main

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    assert main(["profile", str(bad), tiny_model, "-p", "0", "-n", "2", "-r", "1", "-t", "1",
                 "--no-probe"]) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "broken.gguf" in failed[0]
    assert "profile-tg2 ms/tok" in captured.out  # the good file still ran


def test_suite_key_adds_one_profile_config_per_model_file(tiny_models):
    from slmbench.errors import ConfigError
    from slmbench.suite import expand, parse_suite

    models = [tiny_models["Q8_0"], tiny_models["Q4_0"]]
    suite = parse_suite({"models": models, "threads": [1, 2], "n_prompt": [16], "n_gen": [4],
                         "profile": {"n_prompt": 32, "n_gen": 8}})
    configs = expand(suite)
    profiles = [c for c in configs if c.kind == "profile"]
    assert [c.kind for c in configs] == ["bench"] * 4 + ["profile"] * 2
    assert [c.settings.n_threads for c in profiles] == [1, 1]  # the first swept value
    assert profiles[0].profile == {"n_prompt": 32, "n_gen": 8, "n_depth": 0, "repetitions": 3}
    assert profiles[0].plan.n_prompt == [32] and profiles[0].plan.n_gen == [8]
    assert len({c.record_id for c in configs}) == 6
    payload = profiles[0].worker_payload(models[0], None)
    assert payload["kind"] == "profile" and payload["profile"]["n_gen"] == 8
    assert parse_suite(suite.to_dict()).values["profile"] == suite.values["profile"]
    on = parse_suite({"models": models}, overrides={"profile": True})
    assert on.values["profile"]["n_prompt"] == 256
    with pytest.raises(ConfigError, match=r"profile: unknown key 'n_promt' \(did you mean"):
        parse_suite({"models": models, "profile": {"n_promt": 8}})
    with pytest.raises(ConfigError, match="nothing to profile"):
        parse_suite({"models": models, "profile": {"n_prompt": 0, "n_gen": 0}})


def test_depth_and_summary_rows(tiny_model):
    from slmbench.profile import table_rows

    rec = measure_profile(tiny_model, ONE_THREAD, n_prompt=8, n_gen=2, n_depth=16,
                          repetitions=1)
    assert [t.name for t in rec.tests] == ["profile-pp8@d16", "profile-tg2@d16"]
    for t in rec.tests:
        p = t.profile
        assert t.n_depth == 16 and p.n_samples == 1
        assert sum(c.pct for c in p.classes) == pytest.approx(100.0, abs=0.05)
        assert p.nodes_ms + p.callback_ms + p.unattributed_ms == \
            pytest.approx(p.profiled_ms, rel=1e-3)
    rows = table_rows([rec])
    assert rows[0][:4] == ["model", "quant", "threads", "test"]
    assert [r[3] for r in rows[1:]] == ["profile-pp8@d16", "profile-tg2@d16"]


def test_a_sweep_records_profiles_and_goes_on_after_a_failed_one(tmp_path, tiny_models,
                                                                  monkeypatch):
    """`profile:` in a run: one record per model file after the timing, like quality; a
    profile whose worker crashes is a failed record and the next one is still measured."""
    import io

    from slmbench.results import read_run
    from slmbench.runner import Runner, summary_table
    from slmbench.suite import parse_suite

    models = [tiny_models["Q8_0"], tiny_models["Q4_0"]]
    suite = parse_suite({"models": models, "n_prompt": [16], "n_gen": [4], "repetitions": 1,
                         "warmup": 0, "threads": 1,
                         "profile": {"n_prompt": 16, "n_gen": 4, "repetitions": 1}})
    runner = Runner(suite, results_dir=tmp_path / "results", stream=io.StringIO(), tty=False)
    assert [c.kind for c in runner.configs] == ["bench", "bench", "profile", "profile"]
    monkeypatch.setenv("SLMBENCH_TEST_CRASH", "2:segv")  # the first profile's worker
    result = runner.run()
    run = read_run(result.run_dir)
    assert [r.status for r in run.records] == ["ok", "ok", "failed", "ok"]
    prof = run.records[3]
    assert [t.name for t in prof.tests] == ["profile-pp16", "profile-tg4"]
    assert prof.tests[1].profile.classes and prof.memory_estimate.kv_mib > 0
    text = summary_table(result)
    assert "where the time goes" in text and "matmul Q4_0" in text  # (output: Q6_K)
    # report: a table row per profile test, a stacked bar per model and phase, blocks
    from slmbench.report import write_report

    out = write_report([result.run_dir], str(tmp_path / "report"))
    with open(out["markdown"], encoding="utf-8") as fh:
        md = fh.read()
    assert "## Where the time goes" in md and "| profile-tg4 |" in md
    figs = sorted(os.listdir(out["figures"]))
    assert "profile-classes.png" in figs and "profile-blocks.png" in figs
