"""The Python API: every command's work as a function; the CLI modules only unpack arguments.

    import slmbench
    recs = slmbench.bench(["model.gguf"], n_prompt=[64], n_gen=[16], threads=2)
    result = slmbench.run_suite("demo", results_dir="results")
    df = slmbench.load_table([result.run_dir])      # slmbench.analysis
    cmp = slmbench.compare_runs(base_dir, cand_dir)  # slmbench.compare

``read_run``, ``load_table`` and ``compare_runs`` live in :mod:`slmbench.results`,
:mod:`slmbench.analysis` and :mod:`slmbench.compare`; ``slmbench`` exports them all.

Settings are given as suite keys (``n_prompt``, ``n_gen``, ``n_depth``, ``threads``,
``repetitions``, ``cache_type``, ... — :data:`slmbench.config.FIELDS`, the same names a suite
file uses); list-valued keys are swept like in a suite.  Errors are subclasses of
:class:`~slmbench.errors.SlmbenchError` (``ConfigError``, ``ModelFetchError``,
``ModelLoadError``, ``MeasurementError``, ``ResultsFormatError``); see docs/api.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from slmbench.config import QUALITY_DEFAULTS
from slmbench.errors import ConfigError, ModelLoadError
from slmbench.schema import Record

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- measuring

def bench_suite(paths: Sequence[str | os.PathLike], settings: dict[str, Any] | None = None, *,
                from_command_line: bool = False) -> Any:
    """The suite `slmbench bench` measures: ``paths`` x the swept ``settings``."""
    from slmbench.suite import parse_suite

    if not paths:
        raise ConfigError("no model files given")
    for p in paths:
        if not os.path.isfile(p):
            raise ModelLoadError(f"{os.fspath(p)}: no such model file")
    models = {"models": [{"path": os.path.abspath(os.fspath(p))} for p in paths]}
    if from_command_line:
        return parse_suite(models, source="", overrides=dict(settings or {}))
    return parse_suite({**models, **(settings or {})}, source="slmbench.bench()")


def bench(paths: Sequence[str | os.PathLike], *, isolated: bool = True,
          progress: Progress | None = None, timeout_s: float | None = None,
          **settings: Any) -> list[Record]:
    """Measure GGUF files like llama-bench: one Record per file x swept setting.

    ``isolated`` (default) measures each config in a fresh worker process, so a crash is a
    failed record and memory figures start clean; ``isolated=False`` measures in this process.
    ``progress`` receives short status lines ("pp512 3/5").
    """
    from slmbench.suite import expand

    suite = bench_suite(paths, settings, from_command_line=bool(settings.pop("_cli", False)))
    return [measure_config(cfg, isolated=isolated, progress=progress, timeout_s=timeout_s)
            for cfg in expand(suite)]


def measure_config(cfg: Any, *, isolated: bool = True, progress: Progress | None = None,
                   timeout_s: float | None = None, device: str | None = None,
                   verbose: bool = False) -> Record:
    """One config of a suite whose model is a local file (see Runner for downloads).

    ``verbose`` copies llama.cpp's log (the worker's stderr) to this process's stderr.
    """
    import sys

    from slmbench.isolate import run_isolated
    from slmbench.worker import execute

    payload = cfg.worker_payload(cfg.model.path, device)
    if not isolated:
        record = execute(payload, progress or (lambda _msg: None))
    else:
        record, _info = run_isolated(payload, timeout_s or cfg.timeout_s, on_progress=progress,
                                     on_stderr=sys.stderr.write if verbose else None)
    record.record_id = cfg.record_id
    return record


def run_suite(suite: str | os.PathLike | dict | None = None, overrides: dict[str, Any] | None = None,
              *, results_dir: str | os.PathLike = "results", resume: str | None = None,
              run_id: str | None = None, offline: bool | None = None,
              synth_dir: str | os.PathLike | None = None, argv: list[str] | None = None,
              stream: Any = None, tty: bool | None = None, verbose: bool = False) -> Any:
    """Run a suite (a YAML file, a shipped suite's name or a dict) into
    ``results_dir/<run-id>/``;
    ``resume=RUN_ID`` continues a stopped run.  Returns a :class:`slmbench.runner.RunResult`."""
    from slmbench.runner import Runner

    if resume and run_id and resume != run_id:
        raise ConfigError("give either resume (--resume RUN_ID) or run_id (--run-id), not both")
    loaded = None  # resume alone: the suite recorded in the run's manifest
    if suite is not None or overrides or not resume:
        loaded = load_suite(suite, overrides)
    runner = Runner(loaded, results_dir=results_dir, run_id=resume or run_id,
                    resume=bool(resume), offline=offline, synth_dir=synth_dir, argv=argv,
                    stream=stream, tty=tty, verbose=verbose)
    return runner.run()


def load_suite(suite: str | os.PathLike | dict | None = None,
               overrides: dict[str, Any] | None = None) -> Any:
    """A validated suite: a file path, a shipped suite's name (None = quick) or a dict with
    the keys a suite file has (``{"models": [...], "n_prompt": [64]}``)."""
    from slmbench.suite import load_suite as _load
    from slmbench.suite import parse_suite

    if isinstance(suite, dict):
        return parse_suite(suite, source="suite dict", overrides=overrides)
    return _load(os.fspath(suite) if suite is not None else None, overrides)


def plan_suite(suite: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
               *, resume: str | None = None, results_dir: str | os.PathLike = "results"
               ) -> list[Any]:
    """The configs a run would measure, nothing measured (``run --dry-run``)."""
    from slmbench.runner import Runner
    from slmbench.suite import expand

    if suite is None and not overrides and resume:
        return Runner(None, results_dir=results_dir, run_id=resume, resume=True).configs
    return expand(load_suite(suite, overrides))


def quality(paths: Sequence[str | os.PathLike], *, reference: str | None = None,
            corpus: str | None = None, n_ctx: int = QUALITY_DEFAULTS["n_ctx"],
            n_batch: int = QUALITY_DEFAULTS["n_batch"], threads: int = 0,
            chunks: int = QUALITY_DEFAULTS["chunks"], results_dir: str | os.PathLike | None = None,
            progress: Callable[[str, int, int, float], None] | None = None) -> list[Record]:
    """Perplexity, bits per byte (and KL vs ``reference``) of each file, llama-perplexity's
    method; ``results_dir`` appends the records to that run directory."""
    from slmbench.envinfo import device_label
    from slmbench.quality import measure_quality, quality_record
    from slmbench.results import append_record, run_env
    from slmbench.schema import utc_now

    env = run_env(results_dir) if results_dir else {}
    out = []
    for path in map(os.fspath, paths):
        started = utc_now()
        on_window = (lambda d, t, p, _n=os.path.basename(path): progress(_n, d, t, p)) \
            if progress else None
        test = measure_quality(path, reference=reference, corpus=corpus, n_ctx=n_ctx,
                               n_threads=threads, n_batch=n_batch, max_windows=chunks,
                               progress=on_window)
        rec = quality_record(path, test, reference=reference, corpus=corpus, n_threads=threads,
                             n_batch=n_batch, started_at=started)
        if results_dir:
            rec.run_id = Path(results_dir).resolve().name
            rec.device = device_label(env)
            append_record(results_dir, rec)
        out.append(rec)
    return out


def run_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Run directories for what a user names: a run directory as it is, a fleet directory as
    its hosts' runs, an ``hf://datasets/...`` path as the runs it names (downloaded into the
    Hugging Face cache).  What `analyze`, `report` and `history` read."""
    from slmbench.fleet import expand_run_paths
    from slmbench.sharing import resolve_run_paths

    return expand_run_paths(resolve_run_paths(paths))
