"""The sweep: every config of a suite measured in its own worker process, results appended safely.

For each config the runner gets the model file (download, synthesize or local path), predicts its
memory and skips it when it cannot fit, then runs it in a fresh worker process under a timeout
(:func:`slmbench.isolate.run_isolated`: forked from a pre-imported fork server, or spawned).
Whatever happens - a result, bad settings, a segfault, an OOM kill, a hang - becomes one Record
appended (and fsynced) to ``results.jsonl`` by the runner, and the sweep goes on.  A record is written only when its config is complete, so after any crash of the runner
``--resume`` measures exactly the configs that are missing.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from slmbench.config import cache_root
from slmbench.errors import SlmbenchError
from slmbench.isolate import run_isolated, shutdown
from slmbench.progress import Progress
from slmbench.results import (MANIFEST_FILE, RESULTS_FILE, append_record,
                              measured_ids, new_run_id, read_manifest, read_run, run_env,
                              windows_file, write_json_atomic)
from slmbench.schema import (SCHEMA_VERSION, ConfigEntry, EnvInfo, Manifest, MemoryEstimate,
                             Record, WorkerInfo, from_dict, to_dict, utc_now)
from slmbench.suite import (Config, ModelRef, Suite, catalog_entry, expand, model_header,
                            parse_suite, synthetic_file)

AVAILABLE_ENV = "SLMBENCH_AVAILABLE_MIB"  # override of available RAM (tests, what-if runs)
MIB = 1024 * 1024
MARGIN_MIB = 64.0  # plus 5% of what is available: the OS and page cache need room too


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # finished | interrupted
    records: list[Record] = field(default_factory=list)  # one per config of the suite
    configs: list[Config] = field(default_factory=list)
    measured_now: int = 0

    @property
    def counts(self) -> dict[str, int]:
        c = collections.Counter(r.status for r in self.records)
        return {k: c.get(k, 0) for k in ("ok", "failed", "skipped")}

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 130
        return 1 if self.counts["failed"] else 0


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM during a sweep (a BaseException like KeyboardInterrupt, so a config's
    `except Exception` does not record it as that config's internal error)."""


class Runner:
    """Runs one suite into one run directory (new, or resumed)."""

    def __init__(self, suite: Suite | None, *, results_dir: str | Path = "results",
                 run_id: str | None = None, resume: bool = False, offline: bool | None = None,
                 synth_dir: str | Path | None = None, argv: list[str] | None = None,
                 stream: IO[str] | None = None, tty: bool | None = None, verbose: bool = False):
        self.results_dir = Path(results_dir)
        self.resume = resume
        self.offline = offline
        self.synth_dir = Path(synth_dir) if synth_dir else Path(cache_root()) / "synthetic"
        self.argv = list(sys.argv if argv is None else argv)
        self.stream = stream or sys.stderr
        self.tty = tty
        self.verbose = verbose
        self.run_id, self.run_dir = self._open_run_dir(run_id)
        self.manifest = read_manifest(self.run_dir) if resume else Manifest()
        if suite is None:
            suite = self._suite_from_manifest()
        self.suite = suite
        self.configs = expand(suite)
        self.device: str | None = None
        self.unified_memory = False  # GPU shares the RAM (Jetson): offload does not spare RAM
        self.bar: Progress | None = None
        self._paths: dict[str, str | SlmbenchError] = {}
        self._catalog: Any = None
        self.env = EnvInfo()

    # ------------------------------------------------------------------ run directory

    def _open_run_dir(self, run_id: str | None) -> tuple[str, Path]:
        if run_id is not None and (not run_id or "/" in run_id or run_id in (".", "..")):
            raise SlmbenchError(f"bad run id {run_id!r}: use the directory name under "
                                f"{self.results_dir}")
        if self.resume:
            if not run_id:
                raise SlmbenchError("--resume needs the run id (the directory name under "
                                    f"{self.results_dir})")
            run_dir = self.results_dir / run_id
            if not (run_dir / MANIFEST_FILE).exists() and not (run_dir / RESULTS_FILE).exists():
                known = sorted(p.name for p in self.results_dir.glob("*/manifest.json"))
                hint = f" (runs there: {', '.join(known[-5:])})" if known else ""
                raise SlmbenchError(f"--resume {run_id}: no run directory {run_dir}{hint}")
            return run_id, run_dir

        def taken(rid: str) -> bool:
            d = self.results_dir / rid
            return (d / RESULTS_FILE).exists() or (d / MANIFEST_FILE).exists()

        if run_id is None:  # two runs started within one second get -2, -3...
            base = run_id = new_run_id()
            n = 1
            while taken(run_id):
                n += 1
                run_id = f"{base}-{n}"
        run_dir = self.results_dir / run_id
        if taken(run_id):
            raise SlmbenchError(f"{run_dir} already exists; continue it with --resume {run_id} "
                                "or pick another --run-id")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SlmbenchError(f"cannot create {run_dir}: {exc.strerror}") from None
        return run_id, run_dir

    def _suite_from_manifest(self) -> Suite:
        data = self.manifest.suite
        if not isinstance(data, dict):
            raise SlmbenchError(f"{self.run_dir / MANIFEST_FILE}: no suite recorded; pass the "
                                "suite file again with --resume")
        return parse_suite(data, source=str(self.run_dir / MANIFEST_FILE))

    def _write_manifest(self, status: str) -> None:
        from slmbench import __version__

        m = self.manifest
        now = utc_now()
        if not m.started_at:
            m.run_id, m.started_at, m.command, m.cwd = self.run_id, now, self.argv, os.getcwd()
            m.suite_yaml = _read_text(self.suite.source)
        elif self.resume and status == "running":
            m.resumes.append({"at": now, "command": self.argv})
        m.schema_version = SCHEMA_VERSION
        m.status, m.updated_at, m.slmbench_version = status, now, __version__
        m.suite_file, m.suite, m.n_configs = self.suite.source, self.suite.to_dict(), \
            len(self.configs)
        m.configs = [ConfigEntry(index=c.index, record_id=c.record_id, model_id=c.model.model_id,
                                 quant=c.model.quant, label=c.label) for c in self.configs]
        m.finished_at = None if status == "running" else now
        m.versions = self.env.versions
        write_json_atomic(self.run_dir / MANIFEST_FILE, m)

    # ------------------------------------------------------------------ the sweep

    def run(self) -> RunResult:
        done = measured_ids(self.run_dir)
        todo = [c for c in self.configs if c.record_id not in done]
        # the decode roofline needs the bandwidth at each thread count decode runs on
        self.env = env = run_env(self.run_dir, bandwidth=sorted(
            {c.settings.n_threads for c in self.configs if c.kind == "bench"}) or True)
        from slmbench.envinfo import device_label

        self.device = device_label(env)
        self.unified_memory = bool(env.device and env.device.unified_memory)
        self._write_manifest("running")
        self._say(f"run {self.run_id}: {len(self.configs)} configs"
                  + (f", {len(self.configs) - len(todo)} already measured" if self.resume else "")
                  + f" -> {self.run_dir}")
        self.bar = Progress(len(self.configs), done=len(self.configs) - len(todo),
                            stream=self.stream, tty=self.tty)
        status = "finished"
        measured = 0
        previous_signal = _install_sigterm()
        try:
            for cfg in todo:
                if measured and cfg.cooldown_s > 0:
                    self._cool_down(cfg.cooldown_s)
                self.bar.start(cfg.label)
                record = self.run_config(cfg)
                append_record(self.run_dir, record)
                measured += record.status != "skipped"
                detail = record.reason or ""
                self.bar.finish(record.status, detail[:160])
        except (KeyboardInterrupt, Interrupted):
            status = "interrupted"
        finally:
            shutdown()  # the fork server, if a worker started it
            _restore_sigterm(previous_signal)
            self.bar.close()
            self.bar = None
            self._write_manifest(status)
        if status == "interrupted":
            self._say(f"interrupted: what was measured is in {self.run_dir / RESULTS_FILE}; "
                      f"continue with: slmbench run --resume {self.run_id} "
                      f"--results {self.results_dir}")
        return RunResult(self.run_id, self.run_dir, status, self._records(), self.configs,
                         measured)

    def _records(self) -> list[Record]:
        """The latest record of every config of this suite, in suite order."""
        by_id = {rec.record_id: rec for rec in read_run(self.run_dir).records}
        return [by_id[c.record_id] for c in self.configs if c.record_id in by_id]

    def _cool_down(self, seconds: float) -> None:
        self._note(f"cooling down {seconds:.0f} s")
        time.sleep(seconds)

    def _note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.note(text)

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.message(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # ------------------------------------------------------------------ one config

    def run_config(self, cfg: Config) -> Record:
        """Everything for one config; never raises for a problem of that config."""
        started = utc_now()
        info = estimate = reference = trace = None
        try:
            path = self.model_path(cfg)
            info = model_header(path)
            if cfg.reference is not None:
                reference = self.path_of(cfg.reference)
            estimate, reason = self.memory_check(cfg, info, reference)
            if reason:
                record = Record(record_id=cfg.record_id, status="skipped", reason=reason)
            else:
                record = self.run_worker(cfg, path, reference)
        except SlmbenchError as exc:
            record = Record(record_id=cfg.record_id, status="failed", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not cost the rest of a long sweep
            import traceback

            record = Record(record_id=cfg.record_id, status="failed",
                            reason=f"internal error: {exc.__class__.__name__}: {exc} "
                                   "(please report it; traceback in the record's traceback)")
            trace = traceback.format_exc()
        # the runner's id is the resume key, whatever the worker computed
        record.record_id = cfg.record_id
        record.run_id = self.run_id
        record.model_id = record.model_id or cfg.model.model_id
        record.quant = record.quant or cfg.model.quant or (info.file_type if info else None)
        record.device = record.device or self.device
        record.settings = record.settings or cfg.settings
        record.started_at = record.started_at or started
        record.finished_at = record.finished_at or utc_now()
        if record.model is None and info is not None:
            record.model = info.to_facts()
        record.config_index, record.model_source = cfg.index, cfg.model.kind
        record.reference_path = reference
        record.memory_estimate = from_dict(MemoryEstimate, estimate)
        record.traceback = trace
        return record

    def model_path(self, cfg: Config) -> str:
        """Local path of the config's model: download or synthesize it first if needed."""
        return self.path_of(cfg.model)

    def path_of(self, ref: ModelRef) -> str:
        """Local path of a model file (downloaded or synthesized once, then reused)."""
        if ref.kind == "file":
            return ref.path or ""
        key = ref.key
        if key not in self._paths:
            try:
                if ref.kind == "synthetic":
                    self._paths[key] = self._synthesize(ref.model_id, ref.synthetic or {},
                                                        ref.quant or "F16")
                else:
                    self._paths[key] = self._download(ref.model_id, ref.quant)
            except SlmbenchError as exc:
                self._paths[key] = exc  # one failed download fails its configs, once
            except Exception as exc:  # noqa: BLE001 - network stacks raise many kinds
                self._paths[key] = SlmbenchError(
                    f"getting {key} failed: {exc.__class__.__name__}: {exc}")
        got = self._paths[key]
        if isinstance(got, SlmbenchError):
            raise got
        return got

    def _download(self, model_id: str, quant: str | None) -> str:
        try:
            from slmbench.catalog import load_catalog
            from slmbench.hub import fetch_model
        except ImportError as exc:
            raise SlmbenchError(f"cannot download {model_id}: {exc}") from None
        if self._catalog is None:
            self._catalog = load_catalog()
        entry = catalog_entry(self._catalog, model_id)
        if entry is None:
            raise SlmbenchError(f"{model_id}: not in the model catalog (see `slmbench models`)")
        self._note(f"fetching {model_id} {quant}")
        tty = bool(self.bar and self.bar.tty)
        if tty:
            self.bar.clear()  # the hub draws its own download bar
        return str(fetch_model(entry, quant, offline=self.offline, progress=tty))

    def _synthesize(self, name: str, shape: dict[str, int], quant: str) -> str:
        """Random-weight model in the synthetic cache, written once and reused."""
        from slmbench.synth import SynthSpec, quant_path, write_synthetic

        base = synthetic_file(self.synth_dir, name, shape)
        target = base if quant == "F16" else quant_path(base, quant)
        if os.path.exists(target):
            return target
        self._note(f"synthesizing {name} {quant}")
        os.makedirs(self.synth_dir, exist_ok=True)
        if not os.path.exists(base):
            tmp = base + ".part"
            write_synthetic(tmp, SynthSpec(name=name, **shape))
            os.replace(tmp, base)
        if target != base:
            from slmbench.llama_backend import quantize

            tmp = target + ".part"
            quantize(base, tmp, quant)
            os.replace(tmp, target)
        return target

    def memory_check(self, cfg: Config, info: Any,
                     reference: str | None = None) -> tuple[dict | None, str | None]:
        """(prediction, reason to skip or None) before anything is loaded."""
        from slmbench.memory import estimate_memory, estimate_quality_memory

        if cfg.kind == "quality":
            est = estimate_quality_memory(info, cfg.settings,
                                          model_header(reference) if reference else None)
        else:
            est = estimate_memory(info, cfg.settings, cfg.plan)
        if cfg.kind == "profile":  # a second context (KV + compute) for the unprofiled twin
            extra = est["kv_mib"] + est["compute_mib"]
            est = {**est, "kv_mib": 2 * est["kv_mib"], "compute_mib": 2 * est["compute_mib"],
                   "total_mib": est["total_mib"] + extra}
        if cfg.settings.n_gpu_layers and not self.unified_memory:
            return est, None  # weights go to GPU memory; RAM is not the limit
        available = available_mib()
        if available is None:
            return est, None
        margin = MARGIN_MIB + 0.05 * available
        if est["total_mib"] <= available - margin:
            return est, None
        repacked = (f" + their repacked copy {est['repacked_mib']:.0f}"
                    if est.get("repacked_mib") else "")
        return est, (f"does not fit in memory: needs ~{est['total_mib']:.0f} MiB (weights "
                     f"{est['model_mib']:.0f}{repacked} + KV {est['kv_mib']:.0f} + compute "
                     f"{est['compute_mib']:.0f} + runtime {est['overhead_mib']:.0f}) but "
                     f"{available:.0f} MiB are available and {margin:.0f} MiB are kept free; "
                     "try a smaller quant, a smaller --n-ctx or a q8_0 KV cache")

    def run_worker(self, cfg: Config, path: str, reference: str | None = None) -> Record:
        """Measure one config in a fresh process; a crash or hang becomes a failed Record."""
        job = cfg.job(path, self.device, reference)
        if cfg.kind == "sustained":  # each window is fsynced there as it ends
            job.windows_file = windows_file(cfg.record_id)
            job.windows_path = str(self.run_dir / job.windows_file)
        record, worker = run_isolated(to_dict(job), cfg.timeout_s, on_progress=self._note,
                                      on_stderr=self.stream.write if self.verbose else None)
        record.worker = from_dict(WorkerInfo, worker)
        return record


# --------------------------------------------------------------------------- helpers

def run_suite(suite: Suite | None, **kwargs: Any) -> RunResult:
    """Convenience: ``Runner(suite, **kwargs).run()``."""
    return Runner(suite, **kwargs).run()


def available_mib() -> float | None:
    """RAM available for a new model: psutil's figure, or SLMBENCH_AVAILABLE_MIB if set."""
    override = os.environ.get(AVAILABLE_ENV)
    if override:
        try:
            return float(override)
        except ValueError:
            raise SlmbenchError(f"{AVAILABLE_ENV}={override!r}: expected a number of MiB") \
                from None
    try:
        import psutil

        return psutil.virtual_memory().available / MIB
    except Exception:  # noqa: BLE001
        return None


def _read_text(path: str) -> str | None:
    """The suite file as written (comments included), for the manifest."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def _install_sigterm() -> Any:
    """SIGTERM (e.g. `kill`, a CI timeout) stops the sweep like Ctrl-C does."""
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:
            pass


# --------------------------------------------------------------------------- summary

def _pick(rec: Record, kind: str, name: str) -> Any:
    return next((t for t in rec.tests if t.test == kind and t.name == name), None)


def summary_columns(configs: list[Config]) -> tuple[str, str, str]:
    """Names of the pp / tg / ttft tests shown in the summary (depth 0, longest / shortest)."""
    plan = next((c.plan for c in configs if c.kind == "bench"), None)
    if plan is None:
        return "", "", ""
    pp = f"pp{max(plan.n_prompt)}" if plan.n_prompt else ""
    tg = f"tg{max(plan.n_gen)}" if plan.n_gen else ""
    ttft = f"ttft{min(plan.n_prompt)}" if plan.n_prompt and plan.ttft else ""
    return pp, tg, ttft


def summary_rows(result: RunResult) -> list[dict[str, Any]]:
    """One dict per config with the headline numbers (also the --json summary)."""
    pp, tg, ttft = summary_columns(result.configs)
    rows = []
    by_id = {r.record_id: r for r in result.records}
    for cfg in result.configs:
        rec = by_id.get(cfg.record_id)
        s = cfg.settings
        row: dict[str, Any] = {
            "index": cfg.index, "kind": cfg.kind, "record_id": cfg.record_id,
            "model_id": cfg.model.model_id,
            "quant": (rec.quant if rec else None) or cfg.model.quant, "threads": s.n_threads,
            "n_gpu_layers": s.n_gpu_layers, "cache": f"{s.type_k}/{s.type_v}",
            "flash_attn": s.flash_attn, "status": rec.status if rec else "not run",
            "reason": rec.reason if rec else None}
        if cfg.kind == "quality":
            test = _pick(rec, "quality", f"quality@{s.n_ctx}") if rec else None
            m = test.metrics if test is not None and rec.status == "ok" else None
            row["reference"] = cfg.reference_label
            row.update({k: getattr(m, k) if m else None for k in QUALITY_SUMMARY})
        elif cfg.kind == "sustained":
            res = next((t.sustained for t in rec.tests if t.sustained), None) if rec else None
            sp = (res.decode if res.primary == "decode" else res.prefill) if res else None
            row.update(workload=(cfg.sustained or {}).get("workload"),
                       stop_reason=res.stop_reason if res else None,
                       **{k: getattr(sp, k) if sp else None for k in SUSTAINED_SUMMARY})
        elif cfg.kind == "profile":
            from slmbench.profile import headline

            for t in rec.tests if rec is not None and rec.status == "ok" else []:
                if t.profile is not None:
                    row[f"{t.profile.phase}_test"] = t.name
                    row[f"{t.profile.phase}_ms"] = t.profile.total_ms
                    row[f"{t.profile.phase}_classes"] = headline(t.profile)
        elif rec is not None and rec.status == "ok":
            tp, tt, tf = _pick(rec, "pp", pp), _pick(rec, "tg", tg), _pick(rec, "ttft", ttft)
            row.update({
                f"{pp}_ts": tp.ts.mean if tp and tp.ts else None,
                f"{pp}_ts_sd": tp.ts.stdev if tp and tp.ts else None,
                f"{tg}_ts": tt.ts.mean if tt and tt.ts else None,
                f"{tg}_ts_sd": tt.ts.stdev if tt and tt.ts else None,
                f"{ttft}_ms": tf.ms.median if tf and tf.ms else None,
                "peak_rss_mib": rec.memory.peak_rss_mib if rec.memory else None,
                "kv_share": rec.memory.kv_share if rec.memory else None,
                "load_ms": rec.load.load_ms if rec.load else None})
        rows.append(row)
    return rows


QUALITY_SUMMARY = ("ppl", "ppl_err", "bits_per_byte", "kl_mean", "kl_p99", "top1_pct",
                   "delta_ppl")
SUSTAINED_SUMMARY = ("burst_ts", "sustained_ts", "retained_pct", "below_90_s", "cv_pct")


def _status_noted(r: dict[str, Any], notes: list[str], what: str, extra: str = "") -> str:
    """A row's status (+ ``extra``), with a [n] pointing at the note that says why it did not
    run."""
    status = r["status"] + extra
    if r["reason"]:
        notes.append(f"[{len(notes) + 1}] {r['model_id']} {r['quant'] or ''} {what}: "
                     f"{r['reason']}")
        status += f" [{len(notes)}]"
    return status


def _sustained_table(rows: list[dict[str, Any]], notes: list[str]) -> str:
    from slmbench.display import fmt, table

    out = []
    for r in rows:
        status = _status_noted(r, notes, "sustained",
                               f" ({r['stop_reason']})" if r.get("stop_reason") not in
                               (None, "duration") else "")
        drop = r.get("below_90_s")
        out.append([r["model_id"], r["quant"] or "?", str(r["threads"]), r.get("workload") or "?",
                    fmt(r.get("burst_ts"), 1), fmt(r.get("sustained_ts"), 1),
                    f"{fmt(r.get('retained_pct'), 1)}%" if r.get("retained_pct") else "-",
                    "never" if drop is None and r.get("burst_ts") else
                    (f"{drop:g} s" if drop is not None else "-"),
                    f"{fmt(r.get('cv_pct'), 1)}%" if r.get("cv_pct") is not None else "-",
                    status])
    return table(out, ["model", "quant", "threads", "workload", "burst t/s", "sustained t/s",
                       "retained", "< 90% at", "CV", "status"])


def _quality_table(rows: list[dict[str, Any]], notes: list[str]) -> str:
    from slmbench.display import fmt, table

    out = []
    for r in rows:
        status = _status_noted(r, notes, "quality")
        ppl = (f"{fmt(r['ppl'], 3)} ± {fmt(r['ppl_err'], 3)}" if r.get("ppl") is not None
               else "-")
        out.append([r["model_id"], r["quant"] or "?", ppl, fmt(r.get("bits_per_byte"), 4),
                    r.get("reference") or "-", fmt(r.get("kl_mean"), 5), fmt(r.get("kl_p99"), 4),
                    fmt(r.get("top1_pct"), 2), fmt(r.get("delta_ppl"), 4), status])
    return table(out, ["model", "quant", "perplexity", "bits/byte", "reference", "KL mean",
                       "KL p99", "top-1 %", "Δ ppl", "status"])


def _profile_table(rows: list[dict[str, Any]], notes: list[str]) -> str:
    from slmbench.display import fmt, table

    out = []
    for r in rows:
        status = _status_noted(r, notes, "profile")
        out.append([r["model_id"], r["quant"] or "?", str(r["threads"]),
                    fmt(r.get("prefill_ms"), 3), fmt(r.get("decode_ms"), 3),
                    r.get("decode_classes") or r.get("prefill_classes") or "-", status])
    return table(out, ["model", "quant", "threads", "prefill ms/tok", "decode ms/tok",
                       "largest classes (decode)", "status"])


def summary_table(result: RunResult) -> str:
    from slmbench.display import fmt, table

    pp, tg, ttft = summary_columns(result.configs)
    all_rows = summary_rows(result)
    rows = [r for r in all_rows if r["kind"] == "bench"]
    quality_rows = [r for r in all_rows if r["kind"] == "quality"]
    sustained_rows = [r for r in all_rows if r["kind"] == "sustained"]
    profile_rows = [r for r in all_rows if r["kind"] == "profile"]
    varying = [k for k, label in (("threads", "threads"), ("n_gpu_layers", "ngl"),
                                  ("cache", "kv cache"), ("flash_attn", "fa"))
               if len({r[k] for r in rows}) > 1]
    header = ["model", "quant"] + [{"threads": "threads", "n_gpu_layers": "ngl",
                                    "cache": "kv cache", "flash_attn": "fa"}[k] for k in varying]
    header += [f"{pp} t/s", f"{tg} t/s", f"{ttft} ms", "peak RSS MiB", "KV share", "status"]

    def pm(mean: Any, sd: Any) -> str:
        if mean is None:
            return "-"
        return f"{fmt(mean, 1)} ± {fmt(sd, 1)}" if sd is not None else fmt(mean, 1)

    out = []
    notes = []
    for r in rows:
        status = r["status"]
        if r["reason"]:
            notes.append(f"[{len(notes) + 1}] {r['model_id']} {r['quant'] or ''}: {r['reason']}")
            status += f" [{len(notes)}]"
        kv = r.get("kv_share")
        out.append([r["model_id"], r["quant"] or "?"] + [str(r[k]) for k in varying] + [
            pm(r.get(f"{pp}_ts"), r.get(f"{pp}_ts_sd")),
            pm(r.get(f"{tg}_ts"), r.get(f"{tg}_ts_sd")),
            fmt(r.get(f"{ttft}_ms"), 2), fmt(r.get("peak_rss_mib"), 1),
            f"{100 * kv:.1f}%" if kv is not None else "-", status])
    parts = [table(out, header)] if out else []
    if quality_rows:
        parts += ["", "quality (lower perplexity, bits/byte and KL are better):",
                  _quality_table(quality_rows, notes)]
    if sustained_rows:
        parts += ["", "sustained (burst = first window, sustained = median of the last 20% of "
                  "the windows):", _sustained_table(sustained_rows, notes)]
    if profile_rows:
        parts += ["", "where the time goes (profiled ms per token and the largest shares; "
                  "`slmbench report` details them):", _profile_table(profile_rows, notes)]
    return "\n".join([*parts, *notes] if parts else ["(no configs)", *notes])
