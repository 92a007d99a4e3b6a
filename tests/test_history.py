"""History: runs ordered by version or date, step changes marked by the compare rule, figures."""

from __future__ import annotations

import json

import numpy as np

from slmbench.cli import main
from slmbench.history import _release_key, history, run_version
from slmbench.results import read_run, write_json_atomic
from test_compare import make_record, write_run


def versioned_run(tmp_path, name, version, rng, tg_ms, *, build=None, started=None, kv=100.0):
    d = write_run(tmp_path, name, [make_record(rng, tg_ms=tg_ms, kv=kv)])
    env = {"device": {"label": "cpu-test"}}
    if version:
        env["versions"] = {"llama_cpp_python": version}
    if build:
        env["llama_cpp"] = {"build": build}
    write_json_atomic(f"{d}/env.json", env)
    if started:
        write_json_atomic(f"{d}/manifest.json", {"started_at": started})
    return d


def test_history_orders_by_version_and_flags_a_step(tmp_path, capsys):
    rng = np.random.default_rng(7)
    # written out of order on purpose: 0.3.10 must sort after 0.3.9 (not as a string)
    c = versioned_run(tmp_path, "c", "0.3.10", rng, 13.0, started="2026-01-01T00:00:00+00:00")
    a = versioned_run(tmp_path, "a", "0.3.8", rng, 10.0, started="2026-03-01T00:00:00+00:00")
    b = versioned_run(tmp_path, "b", "0.3.9", rng, 10.0, started="2026-02-01T00:00:00+00:00")
    res = history([read_run(x) for x in (c, a, b)], metrics=["decode"])
    assert [r.label for r in res.runs] == ["0.3.8", "0.3.9", "0.3.10"]
    tg = next(s for s in res.series if s.metric == "decode")
    assert [p.label for p in tg.points] == ["0.3.8", "0.3.9", "0.3.10"]
    assert [p.step for p in tg.points] == ["", "", "slower"]
    assert tg.points[2].regression and tg.points[2].step_change_pct < -15
    assert {s.metric for s in res.series} == {"decode", "decode_p90"}
    # by date the order is c, b, a and the step lands elsewhere
    res = history([read_run(x) for x in (a, b, c)], by="date", metrics=["decode"])
    assert [r.run_id for r in res.runs] == ["c", "b", "a"]
    tg = next(s for s in res.series if s.metric == "decode")
    assert [p.step for p in tg.points] == ["", "faster", ""]

    assert main(["history", a, b, c, "--metric", "decode", "--plot", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "SLOWER" in out and "2 step change(s), 2 for the worse" in out
    assert out.index("0.3.8") < out.index("0.3.9") < out.index("0.3.10")
    for ext in ("png", "svg"):
        assert (tmp_path / "fig" / f"history-tg32-decode.{ext}").stat().st_size > 1000
        assert (tmp_path / "fig" / f"history-tg32-decode_p90.{ext}").exists()


def test_history_memory_step_json_and_missing_versions(tmp_path, capsys):
    rng = np.random.default_rng(8)
    a = versioned_run(tmp_path, "a", "0.3.9", rng, 10.0, build="6000")
    b = versioned_run(tmp_path, "b", "0.3.9", rng, 10.0, build="6100", kv=120.0)
    c = versioned_run(tmp_path, "c", None, rng, 10.0, started="2026-01-01T00:00:00+00:00")
    assert main(["history", c, b, a, "--metric", "kv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in data["runs"]] == ["0.3.9 b6000", "0.3.9 b6100", "2026-01-01"]
    assert any("no llama-cpp-python" in n for n in data["notes"])
    (kv,) = data["series"]
    assert kv["metric"] == "kv_mib" and [p["value"] for p in kv["points"]] == [100, 120, 100]
    assert [p["step"] for p in kv["points"]] == ["", "worse", "better"]


def test_run_version_is_tolerant():
    def run(env, extra=None):
        from slmbench.results import Run
        from slmbench.schema import EnvInfo, Record, from_dict

        return Run(path="x", run_id="x", env=from_dict(EnvInfo, env),
                   records=[Record(record_id="r", run_id="x", model_id="m", quant="q",
                                   extra=extra or {})])

    assert run_version(run({})) is None
    assert run_version(run({"versions": None, "llama_cpp": {"error": "no lib"}})) is None
    assert run_version(run({"versions": {"llama_cpp_python": "0.3.16"}})) == "0.3.16"
    # a llama-bench import: the build number in env.json or in the records
    assert run_version(run({"llama_cpp": {"build_number": 6123}})) == "llama.cpp b6123"
    assert run_version(run({}, {"build_commit": "abc1234def"})) == "llama.cpp @abc1234de"
    keys = ["0.3.10", "0.3.9", "0.3.9rc1", "0.3.16 b6100", "0.3.16 b600", "1.0"]
    assert sorted(keys, key=_release_key) == ["0.3.9rc1", "0.3.9", "0.3.10", "0.3.16 b600",
                                              "0.3.16 b6100", "1.0"]


def test_history_bad_input_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(9)
    a = versioned_run(tmp_path, "a", "0.3.8", rng, 10.0)
    b = versioned_run(tmp_path, "b", "0.3.9", rng, 10.0)
    for argv in (["history", a], ["history", a, str(tmp_path / "nope")],
                 ["history", a, b, "--metric", "bogus"], ["history", a, b, "--threshold", "x"]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.strip().count("\n") == 0
