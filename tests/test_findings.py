"""Analyzer v2 on tables with known answers: the CSV contract, findings 1-4 with their numbers,
a single model's quantization study, confounders, the roofline, JSON / stats CSV, figures."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_tables import (N_CTX, PLANTED_ABOVE, family_table, kv_mib, mha_kv_share_32k,
                              quant_table)

from slmbench import figures
from slmbench.analysis import (COLUMNS, CSV_COLUMNS, columns_markdown, load_csv,
                               partial_both, partial_correlation)
from slmbench.cli import main
from slmbench.errors import ResultsFormatError
from slmbench.findings import analyze, stats_rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def family_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tables") / "published.csv"
    family_table().to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def family(family_csv):
    df = load_csv(family_csv)
    return df, analyze(df)


def _finding(result, topic: str) -> str:
    texts = [f["text"] for f in result["findings"] if f["topic"] == topic]
    assert texts, f"no {topic} finding in {[f['topic'] for f in result['findings']]}"
    return texts[0]


# --------------------------------------------------------------------------- the contract

def test_doc_carries_the_column_table_of_the_code():
    doc = (ROOT / "docs" / "analysis.md").read_text(encoding="utf-8")
    section = doc.split("<!-- columns:begin -->\n")[1].split("\n<!-- columns:end -->")[0]
    assert section == columns_markdown(), "run: python -m slmbench.analysis docs/analysis.md"
    assert [c.name for c in COLUMNS if c.required] == ["model_id"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/analysis.md" in readme


def test_a_csv_with_exactly_the_documented_columns_goes_through(tmp_path, capsys):
    """Every input column present (the first version crashed on n_ctx), and a second CSV with
    only model_id, test and one number (no quant, no device): both analyse and report."""
    full = family_table().reindex(columns=CSV_COLUMNS)
    full.to_csv(tmp_path / "full.csv", index=False)
    minimal = pd.DataFrame({"model_id": ["a", "b", "c"], "test": ["tg"] * 3,
                            "token_ms_median": [1.0, 2.0, 3.0],
                            "parameters": [1e8, 2e8, 3e8]})
    minimal.to_csv(tmp_path / "min.csv", index=False)
    for name in ("full", "min"):
        csv = str(tmp_path / f"{name}.csv")
        assert main(["analyze", "--from-csv", csv]) == 0
        assert main(["report", "--from-csv", csv, "-o", str(tmp_path / f"rep-{name}")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "∝ params^" in out.out
    df = load_csv(str(tmp_path / "min.csv"))
    assert set(df["quant"]) == {"unknown"} and set(df["device"]) == {"unknown"}
    assert list(df["name"]) == ["tg", "tg", "tg"] and df["latency_ms"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("header,rows,message", [
    ("name,ms_median\n", "tg128,5\n", r"missing required column model_id \('name' is the test"),
    ("model_id,name,ms_median\n", "x,SmolLM-135M,5\n",
     r"row 2: name 'SmolLM-135M' is not a test label"),
    ("model_id,parameters\n", "x,1e8\n", r"no measurement column"),
    ("model_id,test,ms_median\n", "x,decode,5\n", r"'decode' is not one of pp, tg, ttft"),
    ("model_id,ms_median\n", ",5\n", r"row 2: model_id is empty"),
])
def test_csv_errors_are_one_line_and_name_the_column(tmp_path, capsys, header, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text(header + rows)
    with pytest.raises(ResultsFormatError, match=message):
        load_csv(str(path))
    assert main(["analyze", "--from-csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and re.search(message, err)


def test_names_and_token_counts_fill_each_other(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model_id,name,test,n_prompt,n_gen,ms_median\n"
                    "m,pp512,,,,100\nm,tg32@d4096,,,,320\nm,,ttft,64,,50\nm,quality@512,,,,\n")
    df = load_csv(str(path)).set_index("name")
    assert df.loc["pp512", "test"] == "pp" and df.loc["pp512", "n_prompt"] == 512
    assert df.loc["tg32@d4096", "n_depth"] == 4096 and df.loc["tg32@d4096", "latency_ms"] == 10
    assert df.loc["ttft64", "n_gen"] == 1 and df.loc["quality@512", "test"] == "quality"


def test_facts_join_from_catalog_and_gguf_by_model_id(tmp_path, tiny_models):
    cat = tmp_path / "models.yaml"
    cat.write_text("version: 1\nmodels:\n  - id: Alpha-1B\n    repo_id: a/b\n"
                   "    files: {Q8_0: a.gguf}\n    facts: {parameters: 1000000000, "
                   "vocab_size: 32000, layers: 16, hidden_size: 2048, attention_heads: 32, "
                   "kv_heads: 8, context_length: 8192}\n    source: test\n")
    csv = tmp_path / "t.csv"
    csv.write_text("model_id,test,token_ms_median,kv_mib,n_ctx,model_mib\n"
                   "alpha-1b,tg,10,32,512,1000\ntiny,tg,1,1,512,10\n")
    assert main(["analyze", "--from-csv", str(csv), "--catalog", str(cat),
                 "--gguf", tiny_models["Q8_0"], "--csv", str(tmp_path / "out.csv")]) == 0
    df = pd.read_csv(tmp_path / "out.csv").set_index("model_id")
    assert df.loc["alpha-1b", "parameters"] == 1e9 and df.loc["alpha-1b", "kv_heads"] == 8
    assert df.loc["alpha-1b", "attention_type"] == "GQA" and df.loc["alpha-1b", "heads"] == 32
    assert df.loc["alpha-1b", "kv_basis"] == "facts"
    assert df.loc["tiny", "layers"] == 2 and df.loc["tiny", "vocab_size"] == 4096


# --------------------------------------------------------------------------- findings 1-4

def test_finding_1_latency_fits_and_the_prefill_spread(family):
    _, result = family
    fits = {f["kind"]: f for f in result["fits"]}
    assert set(fits) == {"ttft", "tg"}  # the table has TTFT and decode
    assert fits["ttft"]["k_ci95"][0] < 1.0 < fits["ttft"]["k_ci95"][1]  # planted: ^1.0
    assert fits["tg"]["k_ci95"][0] < 0.8 < fits["tg"]["k_ci95"][1]  # planted: ^0.8
    spread = result["spread"][0]
    assert spread["n"] == 20 and spread["ratio_ci95"][0] > 1.5
    assert spread["decode_resid_sd_log"] == pytest.approx(0.04, abs=0.02)
    assert spread["prefill_above"][0][0] == PLANTED_ABOVE
    text = _finding(result, "latency-spread")
    assert "architecture matters more in prefill than in decode" in text
    assert f"Furthest above the TTFT trend: {PLANTED_ABOVE} (+" in text
    assert f"{spread['prefill_resid_sd_log']:.2f} in log space" in text
    latency = _finding(result, "latency")
    assert "TTFT ttft512 ∝ params^" in latency and "decode tg128 (ms per token)" in latency


def test_finding_2_memory_linear_fit_and_the_control_form(family):
    df, result = family
    lin = next(f for f in result["memory_fits"] if f["form"] == "linear")
    per = df.groupby("model_id").first(numeric_only=True)
    expected = np.polyfit(per["parameters"] / 1e9, per["peak_rss_mib"], 1)
    assert lin["slope_mib_per_billion"] == pytest.approx(expected[0])
    assert lin["intercept"] == pytest.approx(expected[1]) and lin["n"] == 20
    pc = next(p for p in result["partial_correlations"] if p["y"] == "peak_rss_mib")
    assert pc["chosen"] == "linear"  # memory is linear in parameters: the linear control fits
    assert pc["linear"]["r2_control"] > pc["log"]["r2_control"]
    assert pc["linear"]["partial_r"] > 0.6 and pc["linear"]["p"] < 0.01
    assert pc["log"]["partial_r"] < pc["linear"]["partial_r"] - 0.2  # the log control blurs it
    text = _finding(result, "memory")
    assert f"{lin['slope']:,.0f} MiB per billion parameters" in text
    assert "controlling for parameters, which describes memory better" in text
    assert "Above the line:" in text and "vocabulary" in text


def test_finding_3_memory_split_and_vocabulary_compute(family):
    df, result = family
    shares = {s["model_id"]: s for s in result["memory_shares"]}
    row = df[df["model_id"] == "m05"].iloc[0]
    total = row["model_mib"] + row["kv_mib"] + row["compute_mib"] + row["other_mib"]
    assert shares["m05"]["KV_pct"] == pytest.approx(100 * row["kv_mib"] / total)
    assert sum(shares["m05"][f"{w}_pct"] for w in ("weights", "KV", "compute", "other")) == \
        pytest.approx(100)
    pc = next(p for p in result["partial_correlations"] if p["y"] == "compute_mib")
    assert pc[pc["chosen"]]["partial_r"] > 0.99  # compute = 4 x vocabulary x 512 + 20 MiB
    assert "the compute buffer rises with vocabulary net of size" in \
        [f["text"] for f in result["findings"] if f["topic"] == "memory-split"][1]


def test_finding_4_kv_share_at_32k_is_the_analytic_answer(family):
    df, result = family
    per = df.groupby("model_id").first(numeric_only=True)
    per["attention_type"] = df.groupby("model_id")["attention_type"].first()
    for model, r in per.iterrows():
        assert r["kv_share_32k"] == pytest.approx(mha_kv_share_32k(r), rel=1e-9), model
        # 50 % at KV = the rest: ctx = fixed / KV per token, to the next 256 tokens
        fixed = r["model_mib"] + r["compute_mib"] + r["other_mib"]
        ctx50 = fixed / kv_mib(int(r["layers"]), int(r["kv_heads"]), 1)
        assert 0 <= r["ctx_kv_share_50"] - ctx50 < 256 + 1
    mha = per[per["attention_type"] == "MHA"]["kv_share_32k"]
    text = _finding(result, "kv")
    assert (f"{100 * mha.min():.0f}-{100 * mha.max():.0f} % for the 8 models without GQA "
            f"(MHA; {(mha > 0.8).sum()} of 8 above 80 %)") in text
    assert "projected 20 from facts" in text
    assert len(result["kv_projection"]) == 20


def test_kv_projection_linear_fallback_sliding_window_and_unknown(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame([
        # no facts: KV scaled linearly from 4096 tokens
        {"model_id": "lin", "test": "tg", "token_ms_median": 5, "n_ctx": 4096, "kv_mib": 64,
         "model_mib": 500, "compute_mib": 50, "other_mib": 50},
        # Gemma-3-like: 18 layers, 15 of them sliding-window (512), 1 KV head of 256
        {"model_id": "swa", "test": "tg", "token_ms_median": 5, "n_ctx": 4096, "kv_mib": 30,
         "model_mib": 500, "compute_mib": 50, "other_mib": 50, "layers": 18, "heads": 4,
         "kv_heads": 1, "head_dim": 256, "sliding_window": 512, "n_swa_layers": 15},
        # no memory at all: nothing to project
        {"model_id": "none", "test": "tg", "token_ms_median": 5},
    ]).to_csv(path, index=False)
    df = load_csv(str(path)).set_index("model_id")
    assert df.loc["lin", "kv_basis"] == "linear"
    assert df.loc["lin", "kv_mib_32k"] == pytest.approx(64 * 8)
    assert df.loc["lin", "kv_share_32k"] == pytest.approx(512 / (512 + 600))
    full = 3 * 2 * 256 * 2 * 32768 / 2**20  # 3 full layers, K and V, f16
    swa = 15 * 2 * 256 * 2 * 1024 / 2**20  # pad256(512 + 512) cells
    assert df.loc["swa", "kv_basis"] == "facts"
    assert df.loc["swa", "kv_mib_32k"] == pytest.approx(full + swa)
    assert pd.isna(df.loc["none", "kv_basis"]) and pd.isna(df.loc["none", "ctx_kv_share_50"])
    from slmbench.report import tables

    mem = {row[0]: row for row in tables(load_csv(str(path)))["Memory"][1:]}
    assert mem["lin"][-2] != "n/a" and "none" not in mem  # no memory row without memory
    csv2 = tmp_path / "u.csv"
    csv2.write_text("model_id,test,token_ms_median,peak_rss_mib\nx,tg,5,900\n")
    row = tables(load_csv(str(csv2)))["Memory"][1]
    assert row[-2:] == ["n/a", "n/a"] and row[10] == "n/a"  # unknown, not "> 1M"


# --------------------------------------------------------------------------- one model

def test_single_model_quantization_study(tmp_path):
    path = tmp_path / "q.csv"
    quant_table().to_csv(path, index=False)
    result = analyze(load_csv(str(path)))
    texts = [f["text"] for f in result["findings"] if f["topic"] == "quantization"]
    speed, memory, quality = texts
    assert "prefill pp64 Q4_0 1.25x, Q8_0 1.11x, Q4_K_M 0.83x" in speed
    assert "decode tg32 Q4_0 1.30x, Q4_K_M 1.21x, Q8_0 1.14x" in speed
    assert "Q4_0 prefill 1.25x at 64 tokens -> 1.11x at 512" in speed  # less as prompts grow
    assert "Q4_0 decode 1.30x at depth 0 -> 1.16x at depth 1024" in speed
    assert "Q4_0 281 MiB of weights (-55 %)" in memory and "F16 43/3/43/10 %" in memory
    assert "Q4_0 Δppl +1.2, KL 0.06, top-1 89.0 %" in quality
    assert "front (decode tg32 vs KL): F16, Q8_0, Q4_0; dominated: Q4_K_M (by Q4_0)" in quality
    assert "Best trade-off by decode speedup / perplexity ratio: Q4_0 (1.30x for +6.0 %" in \
        quality
    study = result["quant_study"][0]
    assert study["pareto_front"] == ["F16", "Q8_0", "Q4_0"] and study["reference"] == "F16"
    assert any(f["topic"] == "note" for f in result["findings"])  # no fits across models
    assert "not enough models" not in " ".join(texts)
    stems = [s for s, _ in figures.make_all(load_csv(str(path)))]
    assert "quality-pareto" in stems and "quant-speedup" in stems


# --------------------------------------------------------------------------- statistics

def test_partial_correlation_forms_and_choice():
    rng = np.random.default_rng(3)
    size = np.geomspace(1e8, 4e9, 25)
    vocab = rng.choice([32e3, 50e3, 150e3, 256e3], 25)
    mem = 2e-6 * size + 4e-3 * vocab + rng.normal(0, 50, 25)  # linear in size
    both = partial_both(vocab, mem, size)
    assert both["chosen"] == "linear"
    # the linear form is the textbook formula on the raw control
    r = np.corrcoef([vocab, mem, size])
    expected = (r[0, 1] - r[0, 2] * r[1, 2]) / math.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    assert both["linear"]["partial_r"] == pytest.approx(expected)
    assert partial_correlation(vocab, mem, size, "log")["form"] == "log"
    assert both["log"]["partial_r"] < both["linear"]["partial_r"]


def test_confounded_correlation_flips_or_vanishes(tmp_path):
    """Simpson: within MHA and within GQA the metric falls with training tokens, across both
    it rises (GQA models: more tokens, higher metric)."""
    rows = []
    for i in range(10):  # Spearman +0.50, p 0.02 over the 20
        rows.append({"model_id": f"mha{i}", "attention_type": "MHA", "parameters": 1e8 + i,
                     "training_tokens": (1 + i) * 1e11, "peak_rss_mib": 100 - 3 * i})
        rows.append({"model_id": f"gqa{i}", "attention_type": "GQA", "parameters": 2e8 + i,
                     "training_tokens": (20 + i) * 1e11, "peak_rss_mib": 200 - 3 * i})
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    result = analyze(load_csv(str(tmp_path / "s.csv")))
    c = next(x for x in result["confounders"] if x["metric"] == "peak_rss_mib"
             and x["fact"] == "training_tokens")
    assert c["spearman_rho"] > 0.5 and c["verdict"] == "flips"
    assert c["within"]["MHA"]["spearman_rho"] == pytest.approx(-1.0)
    assert c["net_of_attention_r"] == pytest.approx(-1.0)
    text = next(f["text"] for f in result["findings"]
                if f["text"].startswith("Caution - peak_rss_mib vs training_tokens"))
    assert "within attention types GQA -1.00 (n 10), MHA -1.00 (n 10)" in text
    assert "the correlation flips" in text and "more training tokens" in text


def test_family_confounder_vanishes(family):
    _, result = family
    c = next(x for x in result["confounders"] if x["metric"] == "kv_share"
             and x["fact"] == "training_tokens")
    assert c["verdict"] == "vanishes" and abs(c["net_of_attention_r"]) < 0.3


# --------------------------------------------------------------------------- outputs

def test_analyze_json_and_stats_csv_hold_every_statistic(family_csv, tmp_path, capsys):
    assert main(["analyze", "--from-csv", family_csv, "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # stdout is the JSON alone
    for key in ("fits", "spread", "memory_fits", "partial_correlations", "memory_shares",
                "kv_projection", "quant_study", "roofline", "confounders", "correlations",
                "summary", "findings"):
        assert key in result
    assert {f["topic"] for f in result["findings"]} >= {"latency", "latency-spread", "memory",
                                                          "memory-split", "kv"}
    assert len(result["correlations"]) > 20
    stats = tmp_path / "stats.csv"
    assert main(["analyze", "--from-csv", family_csv, "--stats-csv", str(stats),
                 "--top", "0"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(stats)
    assert set(table["statistic"]) >= {"fits", "spread", "correlations", "finding",
                                       "partial_correlations", "kv_projection"}
    assert (table["statistic"] == "correlations").sum() == len(result["correlations"])
    assert "Strongest correlations\n" in out  # --top 0: all, no "of N" note
    assert len(stats_rows(result)) == len(table)


def test_report_from_csv_states_findings_1_to_4(family_csv, tmp_path):
    out = tmp_path / "rep"
    assert main(["report", "--from-csv", family_csv, "-o", str(out)]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    body = text.split("<body>")[1]
    summary = body.split("<div class='summary'>")[1].split("</div>")[0]
    for needle in ("Latency vs size (n 20): TTFT ∝ params^",
                   "architecture matters more in prefill", "MiB per billion parameters",
                   "Memory split", "KV share of memory at 32k context: ",
                   "Caution - confounded by attention type: kv_share vs training_tokens"):
        assert needle in summary, needle
    assert summary.count("<li>") <= 3 + 12  # short: summary lines + headlines
    findings = body.split("<h2>Findings</h2>")[1].split("<h2>")[0]
    for title in ("Latency and size", "Memory", "KV cache at long context", "Cautions"):
        assert f"<h3>{title}</h3>" in findings
    assert "Furthest above the TTFT trend: m07" in findings
    assert body.index("class='summary'") < body.index("<table")  # summary before tables
    assert "http" not in body and body.count("data:image/png;base64,") >= 6
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.index("## Findings") < md.index("## Memory")


# --------------------------------------------------------------------------- figures

def test_figures_have_no_overlapping_labels(family_csv, tmp_path):
    import matplotlib.pyplot as plt

    tables = {"family": load_csv(family_csv)}
    quant = tmp_path / "q.csv"
    quant_table().to_csv(quant, index=False)
    tables["quant"] = load_csv(str(quant))
    seen = set()
    for name, df in tables.items():
        for stem, fig in figures.make_all(df):
            seen.add(stem)
            assert figures.overlapping_labels(fig) == [], f"{name}: {stem}"
            plt.close(fig)
    assert {"latency-vs-params-ttft", "latency-vs-params-tg", "memory-vs-params",
            "memory-breakdown", "kv-share-vs-context", "correlations", "quant-speedup",
            "quality-pareto"} <= seen
    # the check itself finds an overlap: 12 long labels on a narrow axis
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([f"model-number-{i}" for i in range(12)], range(12))
    assert figures.overlapping_labels(fig)
    plt.close(fig)


def test_figure_details(family_csv):
    """KV curves reach 128k with 1k/4k/32k ticks; decode in ms per token; human ticks."""
    import matplotlib.pyplot as plt

    df = load_csv(family_csv)
    fig = figures.fig_kv_share_vs_context(df)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1k", "4k", "32k", "128k"]
    assert max(line.get_xdata()[-1] for line in ax.get_lines()
               if len(line.get_xdata()) > 2) == 131072
    assert any(line.get_ydata()[0] == 50 for line in ax.get_lines())  # the 50 % line
    plt.close(fig)
    fig = figures.fig_latency_vs_params(df, "tg")
    ax = fig.axes[0]
    assert "ms per token" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[\d.]+[MB]", t) for t in labels)
    assert any("params^" in t.get_text() for t in ax.get_legend().get_texts())
    assert sum(1 for t in ax.texts if re.fullmatch(r"m\d\d", t.get_text())) == 20
    plt.close(fig)
    fig = figures.fig_memory_breakdown(df)
    assert len(fig.axes) == 2 and fig.axes[1].get_xlim() == (0, 100)  # MiB and %
    assert fig.axes[0].get_yticklabels()[0].get_text() == "m01"  # smallest on top... listed
    plt.close(fig)
    assert N_CTX == 4096


def test_a_thread_sweep_is_not_mixed_into_one_statistic(tmp_path):
    """The same table at 1 and 2 threads (2 threads twice as fast): statistics use one setting
    (the most common), say so, and the speedups stay per thread count."""
    one = quant_table().assign(n_threads=1)
    two = quant_table().assign(n_threads=2)
    two["ms_median"] /= 2
    two["token_ms_median"] /= 2
    pd.concat([one, two, one.iloc[:1].assign(name="pp32")]).to_csv(tmp_path / "t.csv",
                                                                   index=False)
    df = load_csv(str(tmp_path / "t.csv"))
    result = analyze(df)
    speed = next(f["text"] for f in result["findings"] if f["topic"] == "quantization")
    assert speed.count("prefill pp") == 1 and "Q4_0 1.25x" in speed
    assert any("Statistics across models use one setting" in f["text"]
               for f in result["findings"])
    from slmbench.analysis import quant_speedups

    sp = quant_speedups(df)
    assert set(sp["n_threads"]) == {1, 2}
    assert sp[(sp["test"] == "pp64") & (sp["quant"] == "Q4_0")]["speedup"].tolist() == \
        pytest.approx([1.25, 1.25])


def test_the_same_configs_in_two_runs_are_two_studies(tmp_path):
    """A repeated run (another version, another day) is not a quantization of the first."""
    a = quant_table().assign(run_id="run-a")
    b = quant_table().assign(run_id="run-b")
    b["ms_median"] *= 2  # everything twice as slow: the speedups stay
    b["token_ms_median"] *= 2
    pd.concat([a, b]).to_csv(tmp_path / "t.csv", index=False)
    result = analyze(load_csv(str(tmp_path / "t.csv")))
    speed = [f["text"] for f in result["findings"] if f["topic"] == "quantization"
             and f["text"].startswith("Quantization of")]
    assert len(speed) == 2 and "gemma-like (cpu-test, run-a)" in speed[0]
    assert all("prefill pp64 Q4_0 1.25x, Q8_0 1.11x, Q4_K_M 0.83x" in t for t in speed)
    assert main(["report", "--from-csv", str(tmp_path / "t.csv"), "-o",
                 str(tmp_path / "rep")]) == 0
