"""The results schema: documented in one generated file that must not drift, typed end to
end, versioned (older runs migrated on read, newer ones refused)."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from slmbench import schema
from slmbench.errors import ResultsFormatError
from slmbench.results import read_run
from slmbench.schema import SCHEMA_VERSION, Record, schema_markdown

V1_RUN = Path(__file__).resolve().parent / "data" / "runs" / "v1"  # written by slmbench at ae4d330


def test_schema_doc_is_current():
    doc = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"
    assert doc.read_text(encoding="utf-8").strip() == schema_markdown().strip(), (
        "docs/results-schema.md is stale: run `python -m slmbench.schema > "
        "docs/results-schema.md`")


def test_settings_doc_is_current():
    from slmbench.config import settings_markdown

    doc = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
    assert doc.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run `python -m slmbench.config > docs/settings.md`")


def test_every_field_is_documented():
    classes = [obj for obj in vars(schema).values()
               if dataclasses.is_dataclass(obj) and obj.__module__ in ("slmbench.schema",
                                                                      "slmbench.config")]
    assert len(classes) >= 24
    for cls in classes:
        assert cls.__name__ in schema_markdown(), f"{cls.__name__} is not in the schema doc"
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc"
    assert Record().schema_version == SCHEMA_VERSION


def test_human_count_rounds_across_units():
    from slmbench.display import human_count

    assert [human_count(x) for x in (999_885_952, 268_098_176, 134_515_008, 999_400, 42,
                                     2e12, None)] == ["1B", "268M", "135M", "999K", "42", "2T",
                                                      "?"]


def test_a_version_1_run_is_migrated_on_read():
    run = read_run(V1_RUN)
    assert len(run.records) == 4 and {r.schema_version for r in run.records} == {SCHEMA_VERSION}
    bench, _, q8, q4 = run.records
    # the runner's bookkeeping moved out of extra into typed fields, nothing lost
    assert bench.worker.exit_code == 0 and bench.worker.start_ms > 0
    assert bench.memory_estimate.total_mib > bench.memory_estimate.model_mib > 0
    assert bench.memory_estimate.repacked_mib is None  # not estimated before version 3
    assert bench.config_index == 0 and bench.model_source == "synthetic"
    assert "worker" not in bench.extra and "path" not in bench.extra  # model.path has it
    assert bench.tests[0].sensors.throttled is False and bench.tests[0].sensors.window_s > 0
    assert q4.quality_input.reference and q4.quality_input.corpus_sha256
    assert q4.reference_path.endswith(".gguf")
    assert 0 < q4.tests[0].metrics.kl_mean and q8.tests[0].metrics.ppl > 1
    # env.json and manifest.json are typed too
    assert run.env.device.label and run.env.cpu.model and run.env.bandwidth.read_gbs > 0
    assert run.manifest.status == "finished" and run.manifest.n_configs == 4
    assert run.manifest.configs[3].label.endswith("quality vs Q8_0")
    assert run.manifest.suite["quality"]["reference"] == "Q8_0"


def test_a_version_2_estimate_keeps_its_total_and_has_no_repacked_copy():
    est = {"model_mib": 200.0, "kv_mib": 10.0, "compute_mib": 5.0, "overhead_mib": 150.0,
           "total_mib": 365.0}
    rec = schema.record_from_dict({"record_id": "r", "schema_version": 2,
                                   "memory_estimate": est})
    assert rec.schema_version == SCHEMA_VERSION == 4
    assert rec.memory_estimate.total_mib == 365.0 and rec.memory_estimate.repacked_mib is None


def test_a_version_3_test_has_no_busy_figure():
    rec = schema.record_from_dict({"record_id": "r", "schema_version": 3,
                                   "tests": [{"test": "tg", "name": "tg16", "n_gen": 16}]})
    assert rec.schema_version == 4 and rec.tests[0].other_cpu_cores is None


def test_a_newer_version_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "future"
    shutil.copytree(V1_RUN, run_dir)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["schema_version"] = SCHEMA_VERSION + 1
    (run_dir / "results.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    with pytest.raises(ResultsFormatError) as err:
        read_run(run_dir)
    msg = str(err.value)
    assert "results.jsonl:1" in msg and f"schema {SCHEMA_VERSION + 1}" in msg
    assert "upgrade slmbench" in msg and "\n" not in msg
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(ResultsFormatError, match="manifest.json: written by a newer slmbench"):
        read_run(run_dir)


def test_a_field_of_the_wrong_type_is_named_not_a_traceback(tmp_path, capsys):
    """A hand-edited or damaged file: a record with a field of the wrong type is skipped
    with one line naming file:line and the field; a damaged env.json / manifest.json field
    is dropped with one line; the rest of the run is read."""
    run_dir = tmp_path / "damaged"
    shutil.copytree(V1_RUN, run_dir)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    bad = [json.loads(x) for x in lines[:3]]
    bad[0]["model"] = "x"                       # an object expected
    bad[1]["tests"][0]["ms"]["median"] = "fast"  # a number expected, inside a list
    bad[2]["tests"] = 3                         # a list expected
    (run_dir / "results.jsonl").write_text(
        "\n".join([json.dumps(b) for b in bad] + lines[3:]) + "\n")
    env = json.loads((run_dir / "env.json").read_text())
    (run_dir / "env.json").write_text(json.dumps({**env, "cpu": "x", "versions": [1]}))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "command": {"a": 1}}))
    run = read_run(run_dir)
    assert len(run.records) == len(lines) - 3
    assert run.env.cpu is None and run.env.versions == {}  # dropped, as if not recorded
    err = capsys.readouterr().err
    for where, what in (("results.jsonl:1", "model is 'x', expected an object"),
                        ("results.jsonl:2", "tests[0].ms.median is 'fast', expected a number"),
                        ("results.jsonl:3", "tests is 3, expected a list"),
                        ("env.json", "cpu is 'x', expected an object"),
                        ("env.json", "versions is [1], expected an object"),
                        ("manifest.json", "command is {'a': 1}, expected a list")):
        assert any(where in line and what in line for line in err.splitlines()), (where, err)
    assert "Traceback" not in err


def test_unknown_keys_are_kept_not_lost():
    rec = schema.record_from_dict({"record_id": "r", "schema_version": SCHEMA_VERSION,
                                   "future_field": {"x": 1}})
    assert rec.extra == {"future_field": {"x": 1}}
    env = schema.from_dict(schema.EnvInfo, {"device": {"label": "d", "new_fact": 3},
                                            "new_part": True, "versions": None})
    assert env.device.extra == {"new_fact": 3} and env.extra == {"new_part": True}
    assert env.versions == {}  # a null collection reads as empty


def test_what_the_producers_write_has_a_typed_home():
    """collect_env, device_profile and the sensor summary write no key the schema lacks."""
    from slmbench.devices import device_profile
    from slmbench.envinfo import collect_env
    from slmbench.sensors import summarize

    def names(cls):
        return {f.name for f in dataclasses.fields(cls)}

    env = collect_env()
    assert set(env) <= names(schema.EnvInfo)
    for part, cls in (("os", schema.OSInfo), ("cpu", schema.CPUInfo),
                      ("memory", schema.MemInfo), ("llama_cpp", schema.LlamaInfo)):
        assert set(env[part]) <= names(cls), part
    assert set(device_profile()) <= names(schema.DeviceProfile)
    summary = summarize([{"t": 0.0, "src": "sysfs", "temps": {"cpu": 50.0}, "cpu_mhz": [2000]},
                         {"t": 1.0, "src": "sysfs", "temps": {"cpu": 60.0}, "cpu_mhz": [2000]}],
                        0.0, 1.0, n_decode_tokens=10, token_ms=[[1.0] * 8])
    assert set(summary) <= names(schema.SensorSummary)


def test_version_1_config_ids_are_kept():
    """A run written before schema 2 resumes: its suite expands to the same record ids."""
    from slmbench.suite import expand, parse_suite

    run = read_run(V1_RUN)
    configs = expand(parse_suite(run.manifest.suite))
    assert [c.record_id for c in configs] == [c.record_id for c in run.manifest.configs]
    assert [c.record_id for c in configs] == [r.record_id for r in run.records]
