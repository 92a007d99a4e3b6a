"""`slmbench demo --quick`: synthetic family, same runner, findings - offline, end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from slmbench.cli import main
from slmbench.results import read_run


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    cache = tmp_path / "cache"
    argv = ["demo", "--quick", "--results", str(tmp_path / "results"), "--cache-dir", str(cache),
            "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "finished" and out["counts"] == {"ok": 16, "failed": 0, "skipped": 0}
    run = read_run(out["run_dir"])
    models = {(r.model.n_embd, r.model.n_layer, r.model.n_vocab) for r in run.records}
    assert models == {(256, 2, 8192), (512, 4, 8192), (768, 6, 8192), (512, 4, 65536)}
    assert {r.quant for r in run.records} == {"Q8_0", "Q4_K_M"}
    # 8 timing records, then 8 quality records: KL against F16 grows as bits shrink
    quality = {(r.model_id, r.quant): r.tests[0].metrics for r in run.records
               if r.tests and r.tests[0].test == "quality"}
    assert len(quality) == 8
    for model in {m for m, _ in quality}:
        assert 0 < quality[model, "Q8_0"].kl_mean < quality[model, "Q4_K_M"].kl_mean
    assert run.env and run.manifest.status == "finished"
    # four findings: size, quantization, vocabulary, quality
    assert [f.split(":")[0] for f in out["findings"]] == ["size", "quantization", "vocabulary",
                                                          "quality"]
    # the decision at the end: the suite's targets on its own run (autocomplete workload)
    assert out["recommendation"].startswith("autocomplete: ")
    assert "kl_mean <= 0.005" in out["recommendation"]
    # statistics and report wherever those modules are installed
    if importlib.util.find_spec("slmbench.analysis"):
        assert out["analysis"]
    if importlib.util.find_spec("slmbench.report"):
        assert out["report"] and Path(out["report"]).exists()
        report = Path(out["report"]).read_text(encoding="utf-8")
        assert "Quantization speedup" in report and "Quality" in report
    # the models stay in the cache and are reused (F16 + 2 quants of 4 shapes)
    files = sorted(p.name for p in cache.glob("*.gguf"))
    assert len(files) == 12
    mtimes = {p: p.stat().st_mtime_ns for p in cache.glob("*.gguf")}
    from slmbench.runner import Runner
    from slmbench.suite import load_suite

    runner = Runner(load_suite("demo"), results_dir=tmp_path / "again", synth_dir=cache)
    paths = {runner.model_path(c) for c in runner.configs}
    assert len(paths) == 8 and all(p.startswith(str(cache)) for p in paths)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.gguf")} == mtimes
