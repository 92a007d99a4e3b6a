"""Import of real llama-bench output (tests/data/llama-bench, made by the real binary)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from slmbench.catalog import Catalog, ModelEntry
from slmbench.cli import main
from slmbench.errors import SlmbenchError
from slmbench.importers import (flash_attn_label, import_llama_bench, load_mode_label,
                                model_id_from_file, parse_model_type)
from slmbench.results import read_run

DATA = Path(__file__).parent / "data" / "llama-bench"
NAMES = ["pp32", "pp64", "tg16", "pp32@d32", "pp64@d32", "tg16@d32"]


def raw_rows(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".jsonl":
        return [json.loads(x) for x in text.splitlines() if x.strip()]
    return list(csv.DictReader(io.StringIO(text)))


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_each_real_format_imports_and_agrees_with_the_file(fmt):
    path = DATA / f"tiny.{fmt}"
    records, env, manifest = import_llama_bench(str(path), catalog=None)
    assert manifest.format == fmt and manifest.source == "llama-bench"
    assert env.llama_cpp.build_commit == "0c1e570" and env.source == "llama-bench"
    assert env.device.kind == "cpu" and env.cpu.model.startswith("Intel")
    assert [(r.model_id, r.quant) for r in records] == [("tiny", "Q8_0"), ("tiny", "Q4_K_M")]
    for rec in records:
        assert [t.name for t in rec.tests] == NAMES and rec.source == "llama-bench"
        assert [t.test for t in rec.tests] == ["pp", "pp", "tg"] * 2
        assert rec.model.n_params == 3671296 and rec.model.architecture == "llama"
        s = rec.settings
        assert (s.n_threads, s.n_batch, s.n_ubatch, s.n_ctx) == (2, 2048, 512, 0)
        assert (s.type_k, s.flash_attn, s.load_mode, s.n_gpu_layers) == ("f16", "auto", "auto", 0)
        assert rec.extra["build_commit"] == "0c1e570" and "test_time" in rec.extra
        assert rec.extra["llama_bench_settings"]["poll"] in (50, "50")
    rows = raw_rows(path)
    tests = records[0].tests + records[1].tests
    assert len(rows) == len(tests) == 12
    for t, row in zip(tests, rows):
        assert t.n_prompt == int(row["n_prompt"]) and t.n_gen == int(row["n_gen"])
        assert t.ms.mean * 1e6 == pytest.approx(float(row["avg_ns"]), rel=1e-6)
        if fmt == "csv":  # no raw samples: avg/stddev only, with n = 0
            assert t.samples_ns == [] and t.samples_ts == [] and t.ts.n == 0
            assert t.ts.mean == pytest.approx(float(row["avg_ts"]), rel=1e-9)
            assert t.ts.stdev == pytest.approx(float(row["stddev_ts"]), rel=1e-9)
            assert t.ms.stdev * 1e6 == pytest.approx(float(row["stddev_ns"]), rel=1e-9)
        else:
            assert t.samples_ns == row["samples_ns"] and t.ts.n == 3
            # llama-bench's avg_ts is the mean of the per-sample t/s, 1e9 * tokens / ns
            assert statistics.fmean(t.samples_ts) == pytest.approx(row["avg_ts"], rel=1e-6)
            assert t.ts.mean == pytest.approx(row["avg_ts"], rel=1e-6)
            assert t.ts.stdev == pytest.approx(row["stddev_ts"], rel=1e-5)
            assert t.samples_ts == pytest.approx(row["samples_ts"], rel=1e-5)
    csv_warned = [any("no raw samples" in w for w in r.warnings) for r in records]
    assert csv_warned == [fmt == "csv"] * 2


def test_formats_agree_on_everything_but_timings():
    """The three files come from three llama-bench runs: same configs, tests and facts."""
    imported = [import_llama_bench(str(DATA / f"tiny.{f}"), catalog=None)[0]
                for f in ("json", "jsonl", "csv")]
    shapes = [[(r.record_id, r.model.model_size_bytes, r.settings.n_threads,
                [t.name for t in r.tests]) for r in recs] for recs in imported]
    # record ids hash the settings (repetitions differ for csv: unknown there)
    assert [s[1:] for s in shapes[0]] == [s[1:] for s in shapes[1]] == [s[1:] for s in shapes[2]]
    assert shapes[0] == shapes[1]


def test_phone_fixture_is_an_android_device():
    records, env, _ = import_llama_bench(str(DATA / "phone-edited.json"), catalog=None)
    assert env.device.kind == "android" and env.device.gpu is None
    assert env.device.label == "llama-bench-arm-cortex-a78"
    assert records[0].model.path == "/data/local/tmp/tiny-Q8_0.gguf"
    assert records[0].model.file_name == "tiny-Q8_0.gguf" and records[0].model_id == "tiny"
    records, env, _ = import_llama_bench(str(DATA / "phone-edited.json"), device="pixel-8",
                                         catalog=None)
    assert env.device.label == "pixel-8" and {r.device for r in records} == {"pixel-8"}


def test_pg_rows_are_kept_as_pg():
    (rec,), _, _ = import_llama_bench(str(DATA / "pg.jsonl"), catalog=None)
    assert [(t.test, t.name) for t in rec.tests] == [("pp", "pp16"), ("tg", "tg4"),
                                                      ("pg", "pp16+tg8")]
    pg = rec.tests[2]
    raw = json.loads((DATA / "pg.jsonl").read_text().splitlines()[2])
    assert (pg.n_prompt, pg.n_gen) == (16, 8) and pg.samples_ns == raw["samples_ns"]
    assert pg.samples_ts == pytest.approx([1e9 * 24 / ns for ns in raw["samples_ns"]])
    assert pg.ts.mean == pytest.approx(raw["avg_ts"], rel=1e-6)


def test_model_type_table():
    assert parse_model_type("llama ?B Q4_K - Medium") == ("llama", "Q4_K_M")
    assert parse_model_type("gemma3 270M Q8_0") == ("gemma3", "Q8_0")
    assert parse_model_type("qwen2 1B all F32") == ("qwen2", "F32")
    assert parse_model_type("llama 1B Q2_K - Medium") == ("llama", "Q2_K")
    assert parse_model_type("llama 1B IQ3_S mix - 3.66 bpw") == ("llama", "IQ3_M")
    assert parse_model_type("llama4 17Bx16E (Scout) IQ2_XXS - 2.0625 bpw") == ("llama4",
                                                                                 "IQ2_XXS")
    assert parse_model_type("gpt-oss 20B MXFP4 MoE") == ("gpt-oss", "MXFP4_MOE")
    assert parse_model_type("llama 1B (guessed) Q4_0") == ("llama", "Q4_0")
    assert parse_model_type("llama 1B unknown, may not work") == ("llama", None)
    assert parse_model_type("") == (None, None)


def test_small_mappings():
    for forms, label in ((("-1", -1, "auto", None, ""), "auto"),
                         (("0", 0, False, "false", "off"), "off"),
                         (("1", 1, True, "true", "on", "enabled"), "on")):
        assert {flash_attn_label(v) for v in forms} == {label}
    assert load_mode_label({"load_mode": "mmap+mlock"}) == "mmap+mlock"
    assert load_mode_label({"use_mmap": True}) == "mmap"
    assert load_mode_label({"use_mmap": "0"}) == "none"
    assert load_mode_label({"use_mmap": 1, "use_direct_io": 1}) == "dio"
    assert load_mode_label({}) == "auto"
    assert model_id_from_file("/sdcard/gemma-3-270m-it-Q4_K_M.gguf", "Q4_K_M") == \
        "gemma-3-270m-it"
    assert model_id_from_file("Qwen3-0.6B.q8_0.gguf", "Q8_0") == "Qwen3-0.6B"
    assert model_id_from_file("big-Q4_0-00001-of-00003.gguf", "Q4_0") == "big"
    assert model_id_from_file("custom.gguf", None) == "custom"


def test_older_llama_bench_fields_and_unknown_columns(tmp_path):
    rows = json.loads((DATA / "tiny.json").read_text())[:3]
    for r in rows:  # an older llama-bench: bool flash_attn, use_mmap instead of load_mode
        del r["load_mode"]
        r["use_mmap"] = False
        r["flash_attn"] = True
        r["n_gpu_layers"] = 99
        r["gpu_info"] = "NVIDIA GeForce RTX 3060"
        r["backends"] = "CUDA"
        r["energy_j"] = 1.5  # a column nobody knows yet
    records, env, _ = import_llama_bench(str(write_rows(tmp_path / "old.json", rows)),
                                         catalog=None)
    (rec,) = records
    s = rec.settings
    assert (s.load_mode, s.flash_attn, s.n_gpu_layers) == ("none", "on", 99)
    assert env.device.kind == "cuda" and env.llama_cpp.backends == ["CUDA"]
    assert rec.extra["unknown_fields"] == {"energy_j": {"pp32": 1.5, "pp64": 1.5, "tg16": 1.5}}
    unknown_warnings = [w for w in rec.warnings if "energy_j" in w]
    assert len(unknown_warnings) == 1


def test_rows_that_differ_in_settings_are_separate_configs(tmp_path):
    rows = json.loads((DATA / "tiny.json").read_text())[:3]
    more = [dict(r, n_threads=1) for r in rows] + [dict(r, no_kv_offload=True) for r in rows]
    records, _, _ = import_llama_bench(str(write_rows(tmp_path / "t.json", rows + more)),
                                       catalog=None)
    assert [r.settings.n_threads for r in records] == [2, 1, 2]
    assert [r.extra["llama_bench_settings"]["no_kv_offload"] for r in records] == \
        [False, False, True]
    assert len({r.record_id for r in records}) == 3
    # the same test twice in one config is kept, renamed, and said
    records, _, _ = import_llama_bench(str(write_rows(tmp_path / "d.json", rows + rows[:1])),
                                       catalog=None)
    assert [t.name for t in records[0].tests] == ["pp32", "pp64", "tg16", "pp32#2"]
    assert any("more than once" in w for w in records[0].warnings)


def test_catalog_file_names_become_catalog_ids():
    cat = Catalog(path="models.yaml", models=[
        ModelEntry(id="tiny-synth", files={"Q8_0": "sub/tiny-Q8_0.gguf"})])
    records, _, _ = import_llama_bench(str(DATA / "tiny.json"), catalog=cat)
    assert [(r.model_id, r.quant) for r in records] == [("tiny-synth", "Q8_0"),
                                                         ("tiny", "Q4_K_M")]


def test_edited_avg_ts_is_flagged(tmp_path):
    rows = json.loads((DATA / "tiny.json").read_text())[:1]
    rows[0]["avg_ts"] *= 2
    records, _, _ = import_llama_bench(str(write_rows(tmp_path / "e.json", rows)), catalog=None)
    assert any("differs from the mean" in w for w in records[0].tests[0].warnings)


def _error(tmp_path, capsys, name: str, text: str, *extra: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    assert main(["import", "llama-bench", str(p), "-o", str(tmp_path / f"out-{name}"),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slmbench import: error: "), err
    assert not (tmp_path / f"out-{name}" / "results.jsonl").exists()
    return err


def test_bad_input_is_a_one_line_error_naming_row_and_column(tmp_path, capsys):
    good = json.loads((DATA / "tiny.json").read_text())
    assert "line 1" in _error(tmp_path, capsys, "garbage.json", '[{"x": 1')
    assert "not llama-bench output" in _error(tmp_path, capsys, "garbage.txt", "hello\nworld\n")
    assert "markdown" in _error(tmp_path, capsys, "md.txt", (DATA / "tiny.md").read_text())
    assert "sql" in _error(tmp_path, capsys, "x.sql", "CREATE TABLE IF NOT EXISTS llama_bench (\n")
    assert "no results" in _error(tmp_path, capsys, "empty.json", "[]")
    assert "empty file" in _error(tmp_path, capsys, "blank.json", "\n")
    no_model = [dict(good[0]), {k: v for k, v in good[1].items() if k != "model_filename"}]
    err = _error(tmp_path, capsys, "m.json", json.dumps(no_model))
    assert "row 2" in err and "'model_filename'" in err and "m.json" in err
    no_time = [{k: v for k, v in good[0].items() if k not in ("samples_ns", "avg_ns")}]
    err = _error(tmp_path, capsys, "t.json", json.dumps(no_time))
    assert "row 1" in err and "'samples_ns'" in err and "'avg_ns'" in err
    bad_int = [dict(good[0], n_prompt="many")]
    assert "'n_prompt'" in _error(tmp_path, capsys, "i.json", json.dumps(bad_int))
    lines = (DATA / "tiny.jsonl").read_text().splitlines()
    lines[2] = lines[2][:40]  # a torn line
    assert "line 3" in _error(tmp_path, capsys, "torn.jsonl", "\n".join(lines))
    header, *rest = (DATA / "tiny.csv").read_text().splitlines()
    no_gen = ",".join(c for c in header.split(",") if c != "n_gen")
    keep = [i for i, c in enumerate(header.split(",")) if c != "n_gen"]
    body = [",".join(v for i, v in enumerate(next(csv.reader([r]))) if i in keep) for r in rest]
    err = _error(tmp_path, capsys, "nogen.csv", "\n".join([no_gen, *body]))
    assert "row 1 (line 2)" in err and "'n_gen'" in err
    mixed = [good[0], dict(good[1], build_commit="abc1234")]
    assert "build_commit" in _error(tmp_path, capsys, "mixed.json", json.dumps(mixed))
    assert "JSON array" in _error(tmp_path, capsys, "obj.json", json.dumps(good[0]), "--format",
                                  "json")
    assert main(["import", "llama-bench", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_writes_a_run_that_reads_back(tmp_path, capsys):
    run_dir = tmp_path / "a"
    assert main(["import", "llama-bench", str(DATA / "tiny.jsonl"), "-o", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 configs, 12 tests" in out and f"run directory: {run_dir}" in out
    run = read_run(run_dir)
    assert run.run_id == "a" and len(run.records) == 2
    assert run.records[0].source == "llama-bench" and run.records[0].run_id == "a"
    assert run.records[0].tests[0].samples_ns == json.loads(
        (DATA / "tiny.jsonl").read_text().splitlines()[0])["samples_ns"]
    assert run.manifest.source == "llama-bench" and run.manifest.format == "jsonl"
    assert run.manifest.imported_from == str(DATA / "tiny.jsonl")
    assert run.manifest.command[:3] == ["slmbench", "import", "llama-bench"]
    assert run.env.device.label.startswith("llama-bench-intel")
    # never overwrite a run
    assert main(["import", "llama-bench", str(DATA / "tiny.json"), "-o", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["import", "llama-bench", str(DATA / "tiny.csv"), "-o", str(tmp_path / "j"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["configs"] == 2 and summary["tests"] == 12 and summary["format"] == "csv"


def test_default_run_dir_is_under_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["import", "llama-bench", str(DATA / "tiny.json")]) == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    assert run_dir.name.startswith("imported-") and (run_dir / "env.json").exists()


def test_import_compares_with_itself_and_not_across_devices(tmp_path, capsys):
    compare = pytest.importorskip("slmbench.compare")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for src, out in (("tiny.json", a), ("tiny.json", c), ("phone-edited.json", b)):
        assert main(["import", "llama-bench", str(DATA / src), "-o", str(out)]) == 0
    res = compare.compare_runs(read_run(a), read_run(c))
    assert res.rows and not res.regressions  # the same results twice: never a regression
    assert all(r.change_pct in (0, None) for r in res.rows)
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 2  # another device: nothing matches
    assert "no matching configs" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_import_round_trips_into_analyze_and_report(fmt, tmp_path, capsys):
    analysis = pytest.importorskip("slmbench.analysis")
    pytest.importorskip("slmbench.report")
    run = tmp_path / f"run-{fmt}"
    assert main(["import", "llama-bench", str(DATA / f"tiny.{fmt}"), "-o", str(run)]) == 0
    df = analysis.load_table([str(run)])
    assert len(df) == 12 and set(df["source"]) == {"llama-bench"}
    assert main(["analyze", str(run)]) == 0
    assert "tg16" in capsys.readouterr().out
    assert main(["report", str(run), "-o", str(tmp_path / f"rep-{fmt}")]) == 0
    assert "tiny" in (tmp_path / f"rep-{fmt}" / "report.md").read_text()


def test_public_errors_are_slmbench_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(SlmbenchError, match="not llama-bench output"):
        import_llama_bench(str(p))
    with pytest.raises(SlmbenchError, match="model_filename"):
        import_llama_bench(str(p), fmt="csv")
