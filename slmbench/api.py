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

from slmbench.config import PROFILE_DEFAULTS, QUALITY_DEFAULTS
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
    return measure_suite(bench_suite(paths, settings), isolated=isolated,
                         progress=(lambda _cfg, msg: progress(msg)) if progress else None,
                         timeout_s=timeout_s)


def measure_suite(suite: Any, *, isolated: bool = True,
                  progress: Callable[[Any, str], None] | None = None,
                  on_record: Callable[[Record], None] | None = None,
                  timeout_s: float | None = None, verbose: bool = False) -> list[Record]:
    """Every config of a suite of local files, one after the other, without a run directory
    (`slmbench bench`); ``progress(config, message)``, ``on_record(record)`` as each ends."""
    from slmbench.isolate import shutdown
    from slmbench.suite import expand

    records = []
    try:
        for cfg in expand(suite):
            rec = measure_config(cfg, isolated=isolated, timeout_s=timeout_s, verbose=verbose,
                                 progress=(lambda msg, c=cfg: progress(c, msg))
                                 if progress else None)
            records.append(rec)
            if on_record:
                on_record(rec)
    finally:
        shutdown()  # the fork server that forked the workers, if any
    return records


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


def sustain(paths: str | os.PathLike | Sequence[str | os.PathLike], *, duration: Any = None,
            window: Any = None, workload: str | None = None, start_cool: Any = None,
            start_cool_timeout: Any = None, results_dir: str | os.PathLike = "results",
            run_id: str | None = None, argv: list[str] | None = None, stream: Any = None,
            tty: bool | None = None, verbose: bool = False,
            from_command_line: bool = False, **settings: Any) -> Any:
    """Sustained performance (slmbench.sustained): each model file's workload back to back for
    ``duration``, one record of speed, latency and sensors per ``window``, into
    ``results_dir/<run-id>/`` (each window is fsynced to ``sustain/<record_id>.jsonl`` as it
    ends; the record summarises them).  Durations: seconds or '60s', '10m'; ``workload``:
    'tg128', 'pp512' or 'chat:512/128'; ``settings``: suite keys (threads, n_gpu_layers, ...).

    Ctrl-C stops early: the windows measured are summarised and kept as the config's record
    (stop_reason 'interrupted').  Returns the :class:`slmbench.runner.RunResult`; its
    ``records`` hold the sustained records.
    """
    from slmbench.results import append_record, measured_ids, read_run
    from slmbench.runner import Runner
    from slmbench.suite import parse_suite
    from slmbench.sustained import make_spec

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ConfigError("no model files given")
    for p in paths:
        if not os.path.isfile(p):
            raise ModelLoadError(f"{os.fspath(p)}: no such model file")
    spec = make_spec(duration, window, workload, start_cool, start_cool_timeout)
    raw = {"models": [{"path": os.path.abspath(os.fspath(p))} for p in paths],
           "sustained": spec.to_values(), "n_prompt": [0], "n_gen": [0]}
    if from_command_line:
        suite = parse_suite(raw, source="", overrides=settings)
    else:
        suite = parse_suite({**raw, **settings}, source="slmbench.sustain()")
    runner = Runner(suite, results_dir=results_dir, run_id=run_id, argv=argv, stream=stream,
                    tty=tty, verbose=verbose)
    result = runner.run()
    # read_run also rebuilds, from its windows file, a config stopped without a final record
    recorded = measured_ids(result.run_dir)
    by_id = {r.record_id: r for r in read_run(result.run_dir).records}
    result.records = [by_id[c.record_id] for c in result.configs if c.record_id in by_id]
    if result.status == "interrupted":
        # Ctrl-C: what the stopped config measured is its result (the runner kept no record)
        for rec in result.records:
            res = rec.tests[-1].sustained if rec.tests else None
            if rec.record_id in recorded or res is None or \
                    not any(w.complete for w in res.windows):
                continue
            cfg = next(c for c in result.configs if c.record_id == rec.record_id)
            rec.status, rec.reason = "ok", None
            rec.config_index, rec.model_source = cfg.index, cfg.model.kind
            rec.warnings.append(f"stopped early by the user after {res.elapsed_s or 0:.0f} s "
                                f"of {res.duration_s:g} s")
            append_record(result.run_dir, rec)
    return result


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


def profile_models(paths: Sequence[str | os.PathLike], *,
                   n_prompt: int = PROFILE_DEFAULTS["n_prompt"],
                   n_gen: int = PROFILE_DEFAULTS["n_gen"],
                   n_depth: int = PROFILE_DEFAULTS["n_depth"],
                   repetitions: int = PROFILE_DEFAULTS["repetitions"], probe: bool = True,
                   isolated: bool = True, progress: Progress | None = None,
                   **settings: Any) -> list[Record]:
    """Operator-level profile of each file (``slmbench profile``): where the time of a prefill
    of ``n_prompt`` tokens and of ``n_gen`` single-token decodes (at depth ``n_depth``) goes,
    by operator class, block and node, with the profiling overhead (docs/profile.md).

    ``settings`` are the llama.cpp suite keys (``threads``, ``n_gpu_layers``, ``cache_type``,
    ``flash_attn``, ``n_batch`` ...); lists are swept, one profile per file x combination.
    ``probe`` measures the memory bandwidth at each thread count for the GB/s column.  Each
    profile runs in its own worker process (``isolated=False``: in this one).
    Returns one Record per profile, with one ``profile`` test per phase; a file that cannot be
    profiled is a failed record.  (Named so because ``slmbench.profile`` is the module that
    measures.)
    """
    from slmbench.isolate import shutdown
    from slmbench.profile import apply_bandwidth
    from slmbench.suite import expand, profile_config

    from_cli = bool(settings.pop("_cli", False))
    prof = {"n_prompt": n_prompt, "n_gen": n_gen, "n_depth": n_depth,
            "repetitions": repetitions}
    for key, value in prof.items():
        low = 1 if key == "repetitions" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"profile: {key} must be an integer >= {low}, got {value!r}")
    if not n_prompt and not n_gen:
        raise ConfigError("profile: nothing to profile (n_prompt and n_gen are both 0)")
    suite = bench_suite(paths, settings, from_command_line=from_cli)
    configs = [profile_config(i, c.model, c.settings, prof, c.timeout_s)
               for i, c in enumerate(expand(suite))]
    bandwidth = _probe_bandwidth({c.settings.n_threads for c in configs}) if probe else None
    out = []
    try:
        for cfg in configs:
            name = os.path.basename(cfg.model.path or "")
            record = measure_config(cfg, isolated=isolated,
                                    progress=(lambda m, _n=name: progress(f"{_n}: {m}"))
                                    if progress else None)
            apply_bandwidth(record, bandwidth)
            out.append(record)
    finally:
        shutdown()  # the fork server that forked the workers, if any
    return out


def _probe_bandwidth(threads: set[int]) -> Any:
    """The bandwidth probe at each thread count (slmbench.bandwidth), or None if it fails."""
    from slmbench.bandwidth import probe_bandwidth

    try:
        return probe_bandwidth(sorted(threads))
    except TypeError:  # the single-threaded probe of schema-1 runs
        return probe_bandwidth()
    except Exception:  # noqa: BLE001 - GB/s without a roofline is still a profile
        return None


def score_quality(paths: Sequence[str | os.PathLike], *, reference: str | None = None,
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


def recommend(paths: Sequence[str | os.PathLike], *, targets: Any = None,
              workloads: Any = None) -> Any:
    """Which config to ship per device: pass/fail per target with CIs and margins, the
    recommendation, the Pareto front and the score (:mod:`slmbench.verdict`,
    docs/recommend.md).  ``paths``: run directories, fleet directories or hf:// paths;
    ``targets``: a YAML file, a mapping (``{"ttft_ms": {"chat": 1000}}``) or None;
    ``workloads``: preset names or ``P/G`` (default: those the targets name, else those
    measured)."""
    from slmbench.verdict import recommend as _recommend
    from slmbench.results import read_run

    return _recommend([read_run(p) for p in run_paths(paths)], targets, workloads)


def targets_verdict(paths: Sequence[str | os.PathLike], targets: Any = None) -> Any:
    """`run --targets`: the verdicts of finished runs against ``targets`` (None: the targets
    their suite recorded); None when there are no targets.  ``failed_configs`` of the result
    lists the configs that miss one (or failed to measure): the CI gate's exit 1."""
    from slmbench.verdict import recommend as _recommend
    from slmbench.verdict import suite_targets
    from slmbench.results import read_run

    runs = [read_run(p) for p in run_paths(paths)]
    if targets is None:
        targets = suite_targets(runs)
    if not targets:
        return None
    return _recommend(runs, targets)


# --------------------------------------------------------------------------- prediction

def probe_device(threads: Sequence[int] = (1,), *, force: bool = False,
                 progress: Progress | None = None) -> Any:
    """This device's probe at ``threads`` (slmbench.predict.DeviceProbe): the stored one when
    the CPU, llama.cpp build and thread counts match, else measured (1.5-2 minutes per thread
    count; the first time also ~2 min to write the probe models) and stored."""
    import time

    from slmbench.bandwidth import cache_curve, probe_bandwidth
    from slmbench.predict import (DECODE_ONLY_PREFIXES, DEEP_MODELS, GEMMA3_MODEL,
                                  GEMMA3_TWIN, KV_DRAM_MODEL, MEMORY_ONLY_PREFIX, PROBE_DEPTH,
                                  PROBE_GEN, PROBE_PROMPT, PROBE_REPETITIONS, PROBE_ROUNDS,
                                  PROBE_ROUNDS_AGREE_PCT, build_probe_models, cached_probe,
                                  fit_probe, probe_model_dir, save_probe)

    threads = sorted({int(t) for t in threads})
    if not force:  # a stored probe of an older probe version is measured again
        probe = cached_probe(threads, usable_only=True)
        if probe is not None:
            return probe
    say = progress or (lambda _m: None)
    t0 = time.monotonic()
    paths = build_probe_models(probe_model_dir(), progress=say)
    say("read bandwidth")
    try:
        bandwidth = probe_bandwidth(threads)
    except Exception:  # noqa: BLE001 - the folk-rule baseline is optional, the fit is not
        bandwidth = None
    measured = {}
    curves: dict[int, list] = {}
    for t in threads:
        say(f"{t} thread{'s' if t > 1 else ''}: the caches, then {len(paths)} models")
        try:  # how far the caches reach at this thread count, right before its models
            curves[t] = cache_curve(t)
        except Exception:  # noqa: BLE001 - without it sizes interpolate in log size
            curves[t] = []
        common = dict(threads=[t], repetitions=PROBE_REPETITIONS, n_prompt=[PROBE_PROMPT],
                      n_gen=[PROBE_GEN], ttft=False)
        deep = [paths[m] for m in DEEP_MODELS if m != KV_DRAM_MODEL]
        # only the KV-from-DRAM model's decode at both depths is used: no prefill for it
        deep_decode = [paths[KV_DRAM_MODEL]]
        decode_only = [p for m, p in paths.items() if m.startswith(DECODE_ONLY_PREFIXES)]
        prefill_only = [paths[m] for m in (GEMMA3_MODEL, GEMMA3_TWIN) if m in paths]
        memory_only = [p for m, p in paths.items() if m.startswith(MEMORY_ONLY_PREFIX)]
        no_prompt = {**common, "n_prompt": [0]}
        # each probe model pins a cost of every prediction: a disturbed test is taken again
        # (not the memory-only models': no fit uses their timings)
        groups = [([p for p in paths.values() if p not in deep + deep_decode + decode_only
                    + prefill_only + memory_only], {**common, "n_depth": [0]}),
                  (prefill_only, {**common, "n_depth": [0], "n_gen": [0]}),
                  (deep, {**common, "n_depth": [0, PROBE_DEPTH]}),
                  (deep_decode, {**no_prompt, "n_depth": [0, PROBE_DEPTH]}),
                  (decode_only, {**no_prompt, "n_depth": [0]})]
        measured[t] = bench(memory_only, n_depth=[0], **common) if memory_only else []
        # every timed model in PROBE_ROUNDS rounds, a round after the other, and once more
        # where those disagree: what a model's decode costs moves from one minute to the
        # next with what else the machine's caches and DRAM serve (a Zen-5 VM, 2 threads: one
        # model 0.76-0.96 ms per token in five rounds; 1 thread: MHA's depth cost 4.0 ms
        # quiet, 5.1 in one probe, which put held-out MHA models 13-23 % slow), and a
        # disturbance lasting a whole measurement leaves its spread low. The fit takes the
        # median of the rounds (observations)
        rounds = []
        for n in range(PROBE_ROUNDS):
            say(f"{t} thread{'s' if t > 1 else ''}: round {n + 1} of {PROBE_ROUNDS}")
            rounds.append(_probe_round(groups, say))
        apart = {path for path in rounds[0] if _rounds_disagree([r[path] for r in rounds])}
        if apart:
            say(f"{len(apart)} model(s) whose rounds disagree by more than "
                f"{PROBE_ROUNDS_AGREE_PCT:g} % measured again")
            rounds.append(_probe_round([([p for p in ps if p in apart], s) for ps, s in groups],
                                       say))
        measured[t] += [rec for r in rounds for rec in r.values()]
    probe = fit_probe(measured, paths, {**(bandwidth or {}), "cache_curves": curves},
                      round(time.monotonic() - t0, 1))
    save_probe(probe)
    return probe


def _probe_round(groups: list[tuple[list[str], dict[str, Any]]],
                 say: Progress) -> dict[str, Record]:
    """One measurement of each group's files at its settings: {path: record}."""
    from slmbench.predict import PROBE_MAX_CV

    out: dict[str, Record] = {}
    for files, settings in groups:
        if files:
            for path, rec in zip(files, bench_steady(files, PROBE_MAX_CV, progress=say,
                                                     **settings)):
                out[path] = rec
    return out


def _rounds_disagree(records: list[Record]) -> bool:
    """Whether any pp / tg test of a model's rounds differs from another round's median by
    more than PROBE_ROUNDS_AGREE_PCT (a failed round: yes)."""
    from slmbench.predict import PROBE_ROUNDS_AGREE_PCT

    if any(r.status != "ok" for r in records):
        return True
    medians: dict[str, list[float]] = {}
    for r in records:
        for t in r.tests:
            if t.test in ("pp", "tg") and t.ms:
                medians.setdefault(t.name, []).append(t.ms.median)
    return any(max(v) > min(v) * (1.0 + PROBE_ROUNDS_AGREE_PCT / 100.0)
               for v in medians.values())


def predict_models(models: Sequence[str], *, threads: int | None = None, n_prompt: int = 512,
                   n_gen: int = 128, n_depth: int = 0, probe: Any = None, catalog: Any = None,
                   header: bool = False, offline: bool | None = None) -> list[Any]:
    """Predicted speed and memory (slmbench.predict.Prediction) of each model on this device:
    local GGUF paths, catalog ids (``id[:QUANT]``; nothing downloaded) or ``shape:...``.
    ``probe``: a DeviceProbe or a probe file; default the stored probe of this machine at
    ``threads`` (an error naming `slmbench probe` when there is none)."""
    from slmbench.config import default_threads
    from slmbench.predict import predict, resolve_model, resolve_probe

    threads = threads or default_threads()
    probe = resolve_probe(probe, [threads])
    out = []
    for spec in models:
        info, label, source = resolve_model(spec, catalog, header=header, offline=offline)
        out.append(predict(info, probe, n_threads=threads, n_prompt=n_prompt, n_gen=n_gen,
                           n_depth=n_depth, label=label, source=source))
    return out


def bench_steady(paths: Sequence[str | os.PathLike], max_cv: float, *, tries: int = 2,
                 progress: Progress | None = None, **settings: Any) -> list[Record]:
    """``bench`` of one config per file, then the pp / tg tests with a CV above ``max_cv`` %
    are measured again (only that kind of test, at every depth, of only those files;
    ``tries`` times at most) and the steadier measurement of each test kept; a failed record
    is measured again whole.  The memory figures stay the first measurement's."""
    recs = bench(paths, **settings)
    if len(recs) != len(paths):
        raise ConfigError("bench_steady measures one config per file: sweep settings outside it")
    for _ in range(tries):
        noisy = {i: noisy_kinds(r, max_cv) for i, r in enumerate(recs)}
        noisy = {i: kinds for i, kinds in noisy.items() if kinds}
        if not noisy:
            break
        if progress:
            progress(f"{len(noisy)} noisy measurement(s) (CV > {max_cv:g} %) taken again")
        for kinds in sorted(set(noisy.values())):
            which = [i for i, k in noisy.items() if k == kinds]
            only = ({"n_prompt": [0]} if kinds == ("tg",) else
                    {"n_gen": [0]} if kinds == ("pp",) else {})
            for i, again in zip(which, bench([paths[i] for i in which],
                                             **{**settings, **only})):
                recs[i] = steadier(recs[i], again)
    return recs


def noisy_kinds(record: Record, max_cv: float) -> tuple[str, ...]:
    """The kinds of test ('pp', 'tg') of a record with a CV above ``max_cv`` % - both for a
    failed record."""
    if record.status != "ok":
        return ("pp", "tg")
    return tuple(sorted({t.test for t in record.tests if t.test in ("pp", "tg")
                         and (not t.ms or t.ms.cv_pct > max_cv)}))


def steadier(first: Record, again: Record) -> Record:
    """``first`` with each of its pp / tg tests replaced by ``again``'s of the same name where
    that one's CV is lower (``again`` whole when ``first`` failed and it did not)."""
    if first.status != "ok":
        return again if again.status == "ok" else first
    if again.status != "ok":
        return first
    retaken = {t.name: t for t in again.tests if t.ms}
    first.tests = [retaken[t.name] if t.name in retaken and t.ms and
                   retaken[t.name].ms.cv_pct < t.ms.cv_pct else t for t in first.tests]
    return first
