"""`slmbench demo`: the whole pipeline on synthetic models, offline, on any machine.

The models come from suites/demo.yaml (``synthetic:`` entries): three sizes at one vocabulary and
two vocabularies at one size, each in two quantizations.  They are written once into a cache dir
and reused.  The sweep goes through the same runner as ``slmbench run`` (worker per config,
results.jsonl, resume), then the demo states what the numbers show and, when the report module
is installed, writes the report.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from slmbench.config import cache_root
from slmbench.runner import RunResult, Runner
from slmbench.schema import QualityMetrics, Record
from slmbench.suite import load_suite

# --quick: the same models, shorter tests, one thread (robust on a busy machine; the test
# suite runs this)
QUICK = {"n_prompt": [32], "n_gen": [8], "repetitions": 2, "warmup": 0, "threads": [1]}


@dataclass
class DemoResult:
    run: RunResult
    seconds: float
    findings: list[str] = field(default_factory=list)
    analysis: list[str] = field(default_factory=list)  # slmbench.analysis's statistics
    analysis_note: str | None = None  # why there are none
    report: str | None = None  # path of the report, when one was written
    report_note: str | None = None  # why there is none
    recommendation: str | None = None  # what to ship, by the suite's targets


def run_demo(results_dir: str | Path = "results", *, quick: bool = False,
             cache_dir: str | Path | None = None, stream: IO[str] | None = None,
             tty: bool | None = None, argv: list[str] | None = None,
             report: bool = True) -> DemoResult:
    t0 = time.monotonic()
    suite = load_suite("demo", QUICK if quick else None)
    runner = Runner(suite, results_dir=results_dir,
                    synth_dir=cache_dir or Path(cache_root()) / "demo",
                    stream=stream, tty=tty, argv=argv or ["slmbench", "demo"])
    result = runner.run()
    demo = DemoResult(run=result, seconds=0.0, findings=findings(result.records))
    if result.status == "finished":
        demo.analysis, demo.analysis_note = analyze(result.run_dir)
        demo.recommendation = recommendation(result.run_dir, suite.values.get("targets"))
    if report and result.status == "finished":
        demo.report, demo.report_note = write_report(result.run_dir)
    demo.seconds = time.monotonic() - t0
    return demo


# --------------------------------------------------------------------------- what it shows

def _tg(rec: Record) -> float | None:
    tests = [t for t in rec.tests if t.test == "tg" and not t.n_depth and t.ts]
    return max(tests, key=lambda t: t.n_gen).ts.mean if tests else None


def findings(records: list[Record]) -> list[str]:
    """Plain-language observations on the demo family (each only when its data is there)."""
    done = [r for r in records if r.status == "ok" and r.model is not None]
    ok = [r for r in done if not _quality(r)]  # timing records
    out: list[str] = []
    # 1. size at the smallest vocabulary, first quantization: decode is memory-bound
    if ok:
        vocab = min(r.model.n_vocab for r in ok)
        quant = ok[0].quant
        sized = sorted((r for r in ok if r.model.n_vocab == vocab and r.quant == quant),
                       key=lambda r: r.model.model_size_bytes)
        if len(sized) >= 2 and all(_tg(r) for r in sized):
            speeds = " -> ".join(f"{_tg(r):,.0f}" for r in sized)
            sizes = " -> ".join(f"{r.model.model_size_bytes / 2**20:.1f}" for r in sized)
            bw = [r.model.model_size_bytes * _tg(r) / 1e9 for r in sized]
            cache = " (the smallest model fits in the CPU caches)" if bw[0] > 1.5 * bw[-1] else ""
            out.append(f"size: decode speed {speeds} tokens/s as the weights grow {sizes} MiB "
                       f"({quant}); every token reads all weights once, so weights x speed is "
                       f"the memory bandwidth decode achieves: {bw[0]:.1f} -> {bw[-1]:.1f} "
                       f"GB/s{cache}")
    # 2. quantization: the largest and the smallest file of each model
    by_model: dict[str, list[Record]] = {}
    for r in ok:
        by_model.setdefault(r.model_id or "", []).append(r)
    size_ratio, speed_ratio, names = [], [], None
    for recs in by_model.values():
        recs = sorted(recs, key=lambda r: r.model.model_size_bytes)
        small, big = recs[0], recs[-1]
        if small is big or not (_tg(small) and _tg(big)):
            continue
        size_ratio.append(small.model.model_size_bytes / big.model.model_size_bytes)
        speed_ratio.append(_tg(small) / _tg(big))
        names = names or (small.quant, big.quant)
    if names:
        out.append(f"quantization: {names[0]} files are {100 * (1 - _mean(size_ratio)):.0f}% "
                   f"smaller than {names[1]} and decode {_mean(speed_ratio):.2f}x as fast "
                   f"(mean over {len(speed_ratio)} models)")
    # 3. vocabulary: same n_embd / n_layer, different n_vocab
    groups: dict[tuple, list[Record]] = {}
    for r in ok:
        groups.setdefault((r.model.n_embd, r.model.n_layer, r.quant), []).append(r)
    for (embd, layers, quant), recs in groups.items():
        vocabs = sorted({r.model.n_vocab for r in recs})
        if len(vocabs) < 2:
            continue
        lo = next(r for r in recs if r.model.n_vocab == vocabs[0])
        hi = next(r for r in recs if r.model.n_vocab == vocabs[-1])
        if not (_tg(lo) and _tg(hi)):
            continue
        extra = 100 * (hi.model.n_params / lo.model.n_params - 1)
        rss = (hi.memory.peak_rss_mib - lo.memory.peak_rss_mib) if hi.memory and lo.memory else 0
        out.append(f"vocabulary: {vocabs[-1] // 1024}k instead of {vocabs[0] // 1024}k tokens at "
                   f"n_embd {embd} ({quant}) adds {extra:.0f}% parameters (embedding + output "
                   f"matrix), decodes {_tg(lo) / _tg(hi):.2f}x slower and needs {rss:+.0f} MiB "
                   "peak RSS: the output layer computes a logit for every vocabulary entry")
        break
    # 4. quality: KL divergence against the reference, per quantization
    kl: dict[str, list[float]] = {}
    ref = None
    for r in done:
        m = _quality(r)
        if m and m.kl_mean is not None:
            kl.setdefault(r.quant or "?", []).append(m.kl_mean)
            ref = ref or (r.quality_input.reference if r.quality_input else None)
    if kl:
        parts = ", ".join(f"{q} {_mean(v):.5f}" for q, v in sorted(kl.items(),
                                                                   key=lambda kv: _mean(kv[1])))
        out.append(f"quality: mean KL divergence from the reference ({ref or 'F16'}) {parts} "
                   "nats per token: fewer bits move the next-token distribution further "
                   "(random weights: the perplexity itself means nothing here)")
    return out


def _quality(rec: Record) -> QualityMetrics | None:
    """The metrics of a quality record, None for a timing record."""
    return next((t.metrics for t in rec.tests if t.test == "quality"), None)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# --------------------------------------------------------------------------- analysis, report

def recommendation(run_dir: Path, targets: object) -> str | None:
    """The demo's last line: what `slmbench recommend` would ship from this run."""
    from slmbench.verdict import decision_line, recommend

    try:
        res = recommend([str(run_dir)], targets)
    except Exception as exc:  # noqa: BLE001 - the measurements stand without the verdict
        return f"no recommendation ({exc.__class__.__name__}: {exc})"
    if not res.devices or not res.devices[0].decisions:
        return None
    return (decision_line(res.devices[0].decisions[0]) + f" [targets: {'; '.join(res.targets)}"
            "; random weights: only the quality differences between quantizations of one model "
            "mean something]")


def analyze(run_dir: Path) -> tuple[list[str], str | None]:
    """slmbench.analysis's findings on the run, if this installation has the module."""
    try:
        analysis = importlib.import_module("slmbench.analysis")
    except ImportError:
        return [], "the analysis module is not part of this installation yet"
    try:
        return list(analysis.findings(analysis.load_table([str(run_dir)]), headlines=True)), None
    except Exception as exc:  # noqa: BLE001 - the measurements stand without the statistics
        return [], f"the analysis failed ({exc.__class__.__name__}: {exc})"


def write_report(run_dir: Path) -> tuple[str | None, str | None]:
    """Call slmbench.report if this installation has it: (report path, or why there is none)."""
    try:
        report = importlib.import_module("slmbench.report")
    except ImportError:
        return None, "the report module is not part of this installation yet"
    out_dir = str(Path(run_dir) / "report")
    try:
        out = report.write_report([str(run_dir)], out_dir)
    except Exception as exc:  # noqa: BLE001 - the measurements stand without a report
        return None, f"the report failed ({exc.__class__.__name__}: {exc})"
    if isinstance(out, dict):  # {'markdown': ..., 'html': ..., 'figures': ...}
        return out.get("html") or out.get("markdown") or out_dir, None
    return str(out or out_dir), None
