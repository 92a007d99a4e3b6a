"""Import of real llama-bench output (tests/data/llama-bench, made by the real binary)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from slmbench.cli import main
from slmbench.compare import compare_runs
from slmbench.importers import import_llama_bench, parse_model_type
from slmbench.results import read_run

DATA = Path(__file__).parent / "data" / "llama-bench"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_each_format_imports(fmt):
    records, env, manifest = import_llama_bench(str(DATA / f"tiny.{fmt}"))
    assert manifest["format"] == fmt and env["llama_cpp"]["build_commit"] == "0c1e570"
    assert [(r.model_id, r.quant) for r in records] == [("tiny", "Q8_0"), ("tiny", "Q4_K_M")]
    names = [t.name for t in records[0].tests]
    assert names == ["pp32", "pp64", "tg16", "pp32@d32", "pp64@d32", "tg16@d32"]
    assert records[0].model.n_params == 3671296 and records[0].settings.n_threads == 2
    text = (DATA / f"tiny.{fmt}").read_text()
    if fmt == "json":
        raw = json.loads(text)
    elif fmt == "jsonl":
        raw = [json.loads(x) for x in text.splitlines()]
    else:
        import csv
        import io

        raw = list(csv.DictReader(io.StringIO(text)))
    for rec_test, row in zip(records[0].tests + records[1].tests, raw):
        if fmt == "csv":
            assert rec_test.samples_ns == [] and rec_test.ts.n == 0
            assert rec_test.ts.mean == pytest.approx(float(row["avg_ts"]))
            assert rec_test.ms.mean == pytest.approx(float(row["avg_ns"]) / 1e6)
        else:
            assert rec_test.samples_ns == row["samples_ns"]
            # llama-bench's avg_ts is the mean of the per-sample t/s
            assert statistics.fmean(rec_test.samples_ts) == pytest.approx(row["avg_ts"], rel=1e-6)
    if fmt == "csv":
        assert any("no raw samples" in w for w in records[0].warnings)


def test_model_type_parsing():
    assert parse_model_type("llama ?B Q4_K - Medium") == ("llama", "Q4_K_M")
    assert parse_model_type("gemma3 270M Q8_0") == ("gemma3", "Q8_0")
    assert parse_model_type("qwen2 1B all F32") == ("qwen2", "F32")


def test_cli_writes_a_run_that_compares(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["import", "llama-bench", str(DATA / "tiny.json"), "-o", str(a)]) == 0
    assert main(["import", "llama-bench", str(DATA / "phone-edited.json"), "-o", str(b),
                 "--device", "pixel"]) == 0
    assert "imported 2 configs, 12 tests" in capsys.readouterr().out
    run = read_run(a)
    assert len(run.records) == 2 and run.records[0].source == "llama-bench"
    assert run.env["device"]["label"].startswith("llama-bench-intel")
    # the same results imported twice: never a regression (noisy rows may be "too noisy")
    assert main(["import", "llama-bench", str(DATA / "tiny.json"), "-o",
                 str(tmp_path / "c")]) == 0
    res = compare_runs(read_run(a), read_run(tmp_path / "c"))
    assert res.rows and not res.regressions
    assert {r.verdict for r in res.rows} <= {"same", "too noisy to tell"}
    assert all(r.change_pct == 0 for r in res.rows if r.change_pct is not None)
    # a different device does not match
    assert main(["compare", str(a), str(b)]) == 2


def test_bad_input_is_one_line(tmp_path, capsys):
    cases = {"garbage.json": "[{\"x\": 1", "md.txt": (DATA / "tiny.md").read_text(),
             "missing.json": json.dumps([{"model_filename": "m.gguf", "n_prompt": 1}]),
             "empty.json": "[]"}
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        assert main(["import", "llama-bench", str(p), "-o", str(tmp_path / ("o" + name))]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "error" in err, (name, err)
    assert main(["import", "llama-bench", str(tmp_path / "nope.json")]) == 2


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_import_round_trips_into_analyze_and_report(fmt, tmp_path, capsys):
    run = tmp_path / f"run-{fmt}"
    assert main(["import", "llama-bench", str(DATA / f"tiny.{fmt}"), "-o", str(run)]) == 0
    assert main(["analyze", str(run)]) == 0
    assert "tg16" in capsys.readouterr().out
    assert main(["report", str(run), "-o", str(tmp_path / f"rep-{fmt}")]) == 0
    assert "tiny" in (tmp_path / f"rep-{fmt}" / "report.md").read_text()
