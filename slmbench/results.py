"""Run directories on disk: append-only, crash-safe writing and tolerant reading.

Layout of ``results/<run-id>/`` (documented in results/README.md and docs/results-schema.md):
``results.jsonl`` one Record per line, appended and fsynced as soon as a config is measured;
``env.json`` the environment; ``manifest.json`` suite, versions, start/end, command line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from slmbench.errors import ResultsFormatError, SlmbenchError, warn
from slmbench.schema import (SCHEMA_VERSION, EnvInfo, Manifest, Record, from_dict,
                             from_dict_lenient, record_from_dict, to_dict, upgrade_record)

RESULTS_FILE = "results.jsonl"
ENV_FILE = "env.json"
MANIFEST_FILE = "manifest.json"
SUSTAIN_DIR = "sustain"  # sustained configs: sustain/<record_id>.jsonl, a window a line


def new_run_id(prefix: str = "run") -> str:
    """Sortable, unique enough for one machine: run-20261122-153012-<pid>."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{os.getpid() % 100000}"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON via a temp file + rename so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(to_dict(data), fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_record(run_dir: str | Path, record: Record | dict) -> None:
    """Append one record as one line and fsync it: what is measured is never lost."""
    line = json.dumps(to_dict(record), separators=(",", ":"))
    if "\n" in line:  # json.dumps never emits raw newlines; keep the invariant explicit
        raise ValueError("record serialised to more than one line")
    path = Path(run_dir) / RESULTS_FILE
    with open(path, "ab+") as fh:
        # a crash mid-append leaves a line without its newline: close it, so this record
        # starts on a line of its own (the torn one is skipped by readers)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        else:
            torn = False
        fh.write((("\n" if torn else "") + line + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def iter_record_dicts(path: str | Path) -> Iterator[dict]:
    """Yield each well-formed JSON object of a JSONL file; warn (file:line) and skip the rest.

    A runner killed mid-write can leave a torn last line; that must never break a reader.
    """
    for _lineno, obj in _numbered_record_dicts(path):
        yield obj


def _numbered_record_dicts(path: str | Path) -> Iterator[tuple[int, dict]]:
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                warn(f"{path}:{lineno}: skipped malformed line ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                warn(f"{path}:{lineno}: skipped a line that is not a JSON object")
                continue
            yield lineno, obj


@dataclass
class Run:
    """One run directory loaded into memory (typed: see slmbench.schema)."""

    path: str
    run_id: str
    env: EnvInfo = field(default_factory=EnvInfo)
    manifest: Manifest = field(default_factory=Manifest)
    records: list[Record] = field(default_factory=list)


def read_json_object(path: Path) -> dict:
    """A JSON object file; {} when absent, a one-line warning (and {}) when unreadable."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        warn(f"{path}: unreadable JSON ({exc}); ignored")
        return {}
    return data if isinstance(data, dict) else {}


def read_env(run_dir: str | Path) -> EnvInfo:
    path = Path(run_dir) / ENV_FILE
    return from_dict_lenient(EnvInfo, read_json_object(path), str(path))


def read_manifest(run_dir: str | Path) -> Manifest:
    """manifest.json; a newer schema version is refused like a newer record."""
    path = Path(run_dir) / MANIFEST_FILE
    data = read_json_object(path)
    version = data.get("schema_version", 1)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        upgrade_record({"schema_version": version}, str(path))  # raises the one-line error
    if isinstance(data.get("command"), str):  # version 1 imports wrote the command as text
        data["command"] = shlex.split(data["command"])
    return from_dict_lenient(Manifest, {**data, "schema_version": SCHEMA_VERSION}, str(path))


def read_run(run_dir: str | Path) -> Run:
    """Load a run directory (or a bare results.jsonl file); older records are migrated to
    this schema version, a newer one is refused (ResultsFormatError, one line)."""
    p = Path(run_dir)
    if p.is_file() and p.suffix == ".jsonl":
        p, results = p.parent, p
    else:
        results = p / RESULTS_FILE
    if not p.exists():
        raise ResultsFormatError(f"{run_dir}: no such run directory")
    if not results.exists() and not (p / MANIFEST_FILE).exists():
        raise ResultsFormatError(f"{run_dir}: not a run directory (no {RESULTS_FILE} inside); "
                                 "pass a directory written by `slmbench run` or "
                                 "`slmbench import`")
    manifest = read_manifest(p)
    records = []
    # a run stopped inside its first config has a manifest and no results yet
    for lineno, obj in _numbered_record_dicts(results) if results.exists() else ():
        try:
            records.append(record_from_dict(obj, f"{results}:{lineno}"))
        except TypeError as exc:
            warn(f"{results}:{lineno}: a record that does not match the schema ({exc}); skipped")
    records += recover_sustained(p, records)
    return Run(path=str(p), run_id=p.name, env=read_env(p), manifest=manifest, records=records)


def config_counts(run_dir: str | Path) -> dict[str, int]:
    """ok / failed / skipped configs of a run (the latest record of each config); all 0 when
    the run cannot be read."""
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    try:
        latest = {r.record_id: r.status for r in read_run(run_dir).records}
    except SlmbenchError:
        return counts
    for status in latest.values():
        if status in counts:
            counts[status] += 1
    return counts


def run_exit_code(run_dir: str | Path) -> int:
    """The exit code of `slmbench run` for this run directory, as a local run gives it: 130
    when the run was interrupted, 1 when a config failed (or the run did not finish), else 0.
    For a run measured elsewhere (`run --host`) and copied here."""
    status = read_manifest(run_dir).status
    if status == "interrupted":
        return 130
    if status != "finished":
        return 1
    return 1 if config_counts(run_dir)["failed"] else 0


def read_runs(run_dirs: Iterable[str | Path]) -> list[Run]:
    runs = [read_run(d) for d in run_dirs]
    if not runs:
        raise ResultsFormatError("no run directories given")
    return runs


def run_env(run_dir: str | Path, *, bandwidth: bool | Iterable[int] = False) -> EnvInfo:
    """A run's env.json, collected and written once (a resume keeps the first): the device
    profile, plus the memory-bandwidth probe for runs that measure speed (``bandwidth``: the
    run's thread counts, or True for the default count)."""
    path = Path(run_dir) / ENV_FILE
    if not path.exists():
        from slmbench.envinfo import collect_env

        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, collect_env(bandwidth=bandwidth))
    return read_env(run_dir)


def measured_ids(run_dir: str | Path) -> set[str]:
    """record_ids already finished (ok, failed or skipped) in a run: the resume set."""
    results = Path(run_dir) / RESULTS_FILE
    if not results.exists():
        return set()
    return {obj["record_id"] for obj in iter_record_dicts(results) if obj.get("record_id")}


def windows_file(record_id: str) -> str:
    """Where a sustained config's windows are written, relative to its run directory."""
    return f"{SUSTAIN_DIR}/{record_id}.jsonl"


def recover_sustained(run_dir: str | Path, records: list[Record]) -> list[Record]:
    """Sustained configs that left windows but no final record (a killed worker, an
    interrupted sweep): the test is rebuilt from ``sustain/<record_id>.jsonl`` (every summary
    is computable from the windows) and attached to the config's failed record, or returned
    as a new failed record when the runner wrote none.  Records that carry their sustained
    test already are left alone."""
    d = Path(run_dir) / SUSTAIN_DIR
    if not d.is_dir():
        return []
    from slmbench.schema import ModelFacts, Settings
    from slmbench.sustained import read_windows_file

    done = {r.record_id for r in records if any(t.sustained for t in r.tests)}
    latest = {r.record_id: r for r in records}
    new: list[Record] = []
    for f in sorted(d.glob("*.jsonl")):
        rid = f.stem
        if rid in done:
            continue
        got = read_windows_file(str(f))
        if got is None:
            continue
        header, test = got
        n = sum(1 for w in test.sustained.windows if w.complete)
        note = (f"{n} complete window(s) recovered from {windows_file(rid)} (stopped: "
                f"{test.sustained.stop_reason})")
        rec = latest.get(rid)
        if rec is None:
            rec = Record(record_id=rid, run_id=Path(run_dir).name, status="failed",
                         reason=f"no final record (the run was interrupted or its worker "
                                f"killed); {note}",
                         model_id=header.get("model_id"), quant=header.get("quant"),
                         device=header.get("device"), started_at=header.get("started_at"),
                         model=from_dict(ModelFacts, header.get("model")),
                         settings=from_dict(Settings, header.get("settings")))
            new.append(rec)
        else:
            rec.warnings.append(note)
        rec.tests.append(test)
    return new
