"""Run directories on disk: append-only, crash-safe writing and tolerant reading.

Layout of ``results/<run-id>/`` (documented in results/README.md and docs/results-schema.md):
``results.jsonl`` one Record per line, appended and fsynced as soon as a config is measured;
``env.json`` the environment; ``manifest.json`` suite, versions, start/end, command line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from slmbench.errors import SlmbenchError
from slmbench.schema import Record, from_dict, to_dict

RESULTS_FILE = "results.jsonl"
ENV_FILE = "env.json"
MANIFEST_FILE = "manifest.json"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                warnings.warn(f"{path}:{lineno}: skipped malformed line ({exc.msg})", stacklevel=2)
                continue
            if not isinstance(obj, dict):
                warnings.warn(f"{path}:{lineno}: skipped line that is not a JSON object",
                              stacklevel=2)
                continue
            yield obj


@dataclass
class Run:
    """One run directory loaded into memory."""

    path: str
    run_id: str
    env: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        warnings.warn(f"{path}: unreadable JSON ({exc}); ignored", stacklevel=2)
        return {}
    return data if isinstance(data, dict) else {}


def read_run(run_dir: str | Path) -> Run:
    """Load a run directory (or a bare results.jsonl file)."""
    p = Path(run_dir)
    if p.is_file() and p.suffix == ".jsonl":
        p, results = p.parent, p
    else:
        results = p / RESULTS_FILE
    if not p.exists():
        raise SlmbenchError(f"{run_dir}: no such run directory")
    if not results.exists():
        raise SlmbenchError(f"{run_dir}: not a run directory (no {RESULTS_FILE} inside); "
                            "pass a directory written by `slmbench run` or `slmbench import`")
    records = []
    for lineno, obj in enumerate(iter_record_dicts(results), 1):
        try:
            records.append(from_dict(Record, obj))
        except TypeError as exc:
            warnings.warn(f"{results}: record {lineno} does not match the schema ({exc}); skipped",
                          stacklevel=2)
    run_id = p.name
    return Run(path=str(p), run_id=run_id, env=_read_json(p / ENV_FILE),
               manifest=_read_json(p / MANIFEST_FILE), records=records)


def read_runs(run_dirs: Iterable[str | Path]) -> list[Run]:
    runs = [read_run(d) for d in run_dirs]
    if not runs:
        raise SlmbenchError("no run directories given")
    return runs


def run_env(run_dir: str | Path, *, bandwidth: bool = False) -> dict:
    """A run's env.json, collected and written once (a resume keeps the first): the device
    profile, plus the memory-bandwidth probe for runs that measure speed (``bandwidth``)."""
    path = Path(run_dir) / ENV_FILE
    if path.exists():
        return _read_json(path)
    from slmbench.envinfo import collect_env

    path.parent.mkdir(parents=True, exist_ok=True)
    env = collect_env(bandwidth=bandwidth)
    write_json_atomic(path, env)
    return env


def measured_ids(run_dir: str | Path) -> set[str]:
    """record_ids already finished (ok, failed or skipped) in a run: the resume set."""
    results = Path(run_dir) / RESULTS_FILE
    if not results.exists():
        return set()
    return {obj["record_id"] for obj in iter_record_dicts(results) if obj.get("record_id")}
