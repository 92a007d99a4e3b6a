"""Results shared through a Hugging Face dataset repository: push, pull, and ``hf://`` paths.

A dataset written by :func:`push` is plain JSON, usable without slmbench::

    README.md                          dataset card, regenerated on every push
    index.jsonl                        one line per run: path, device, models, status, versions
    runs/<device>/<run-id>/results.jsonl   one record per measured config (docs/results-schema.md)
    runs/<device>/<run-id>/env.json        the device profile
    runs/<device>/<run-id>/manifest.json   suite, command, start/end, status
    runs/<device>/<run-id>/report/...      report.md / report.html / figures, when the run has one

Everything goes through the real ``huggingface_hub``: ``HF_TOKEN`` (or ``hf auth login``) for
auth, ``HF_ENDPOINT`` for the server, the standard cache (``HF_HOME``), ``HF_HUB_OFFLINE=1`` to
read only what is cached.  A push is one commit (all its runs, the index and the card, or
nothing: the hub applies a commit whole), made on top of the commit it read the index from,
so two pushes at once cannot lose each other's runs (the later one re-reads and retries).
A pull downloads into the hub cache and copies each run into place with a rename, so an
interrupted pull leaves no partial run behind.

``hf://datasets/ORG/NAME`` names every run of a dataset; ``.../runs/DEVICE`` one device's,
``.../runs/DEVICE/RUN_ID`` one run; glob characters select (``.../runs/*/run-2026*``);
``hf://datasets/ORG/NAME@REVISION/...`` reads a branch, tag or commit.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from slmbench.errors import ConfigError, HubError, ResultsFormatError, SlmbenchError
from slmbench.results import (ENV_FILE, MANIFEST_FILE, RESULTS_FILE, SUSTAIN_DIR,
                              iter_record_dicts, read_run)

SCHEME = "hf://"
RUNS_DIR = "runs"
INDEX_FILE = "index.jsonl"
CARD_FILE = "README.md"
REPORT_DIR = "report"
# What a run directory may upload: its three files and a report; never a model file.
RUN_FILES = (RESULTS_FILE, ENV_FILE, MANIFEST_FILE)
REPORT_SUFFIXES = (".md", ".html", ".png", ".svg")
PUSH_ATTEMPTS = 3
TOKENS_URL = "https://huggingface.co/settings/tokens"

_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


# --------------------------------------------------------------------------- hf:// paths

@dataclass(frozen=True)
class DatasetPath:
    """A parsed ``hf://datasets/ORG/NAME[@REVISION][/PATH]``."""

    repo_id: str
    revision: str | None = None
    path: str = ""  # inside the repository, may hold glob characters

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{SCHEME}datasets/{self.repo_id}{rev}" + (f"/{self.path}" if self.path else "")

    @property
    def root(self) -> str:
        return f"{SCHEME}datasets/{self.repo_id}"


def is_hf_path(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def parse_hf_path(url: str) -> DatasetPath:
    """``hf://datasets/ORG/NAME[@REV][/PATH]`` -> DatasetPath; anything else is a ConfigError."""
    if not is_hf_path(url):
        raise ConfigError(f"{url}: not an hf:// path; write hf://datasets/ORG/NAME")
    rest = url[len(SCHEME):].strip("/")
    kind, _, rest = rest.partition("/")
    if kind != "datasets":
        raise ConfigError(f"{url}: results are shared in a dataset repository; write "
                          f"hf://datasets/{kind}/{rest}".rstrip("/")
                          + ("" if rest else " (hf://datasets/ORG/NAME)"))
    org, _, rest = rest.partition("/")
    name, _, path = rest.partition("/")
    name, _, revision = name.partition("@")
    repo_id = f"{org}/{name}"
    if not _REPO_RE.fullmatch(repo_id):
        raise ConfigError(f"{url}: '{repo_id}' is not a dataset id; write "
                          "hf://datasets/ORG/NAME (e.g. hf://datasets/my-team/slm-results)")
    path = path.strip("/")
    if path and path != RUNS_DIR and not path.startswith(RUNS_DIR + "/"):
        path = f"{RUNS_DIR}/{path}"  # hf://datasets/o/n/jetson/run-1 means runs/jetson/run-1
    return DatasetPath(repo_id, revision or None, "" if path == RUNS_DIR else path)


def _segment(text: str) -> str:
    """A device label or run id as one safe path segment."""
    return _UNSAFE.sub("-", str(text)).strip("-.") or "unknown"


# --------------------------------------------------------------------------- huggingface_hub

def _hf() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - a dependency of slmbench
        raise HubError(f"huggingface_hub is needed to share results ({exc}); "
                       "pip install huggingface_hub") from None
    return huggingface_hub


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _server_message(exc: BaseException) -> str:
    """The hub's own one-line reason (X-Error-Message or the JSON error), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    message = response.headers.get("X-Error-Message") or ""
    if not message:
        try:
            data = response.json()
            message = data.get("error", "") if isinstance(data, dict) else ""
        except Exception:  # noqa: BLE001 - not JSON, or a streamed body
            message = ""
    return " ".join(str(message).split())[:200]


def _has_token(token: Any) -> bool:
    if isinstance(token, str):
        return bool(token)
    if token is False:
        return False
    try:
        return bool(_hf().get_token())
    except Exception:  # noqa: BLE001
        return False


def _hub_error(exc: BaseException, target: str, doing: str, *, token: Any, write: bool,
               endpoint: str, offline: bool = False) -> HubError:
    """One line saying what failed and what to do, for any huggingface_hub / network error."""
    from huggingface_hub import errors

    status = _status(exc)
    reason = _server_message(exc)
    detail = f"HTTP {status}" + (f": {reason}" if reason else "") if status else ""
    access = "write" if write else "read"
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError(f"{target}: {doing} needs the network, but offline mode is on "
                        "(HF_HUB_OFFLINE=1); unset it")
    if isinstance(exc, errors.GatedRepoError):
        return HubError(f"{target}: the dataset is gated ({detail}); accept its conditions on "
                        "the hub, then set HF_TOKEN to your token")
    if status == 401 and (write or "Invalid credentials" in reason
                          or not isinstance(exc, errors.RepositoryNotFoundError)):
        if not _has_token(token):
            return HubError(f"{target}: {doing} needs a Hugging Face token ({detail}); set "
                            f"HF_TOKEN to a token with {access} access ({TOKENS_URL}) or run "
                            "`hf auth login`")
        return HubError(f"{target}: the hub refused the token ({detail}) - HF_TOKEN is wrong "
                        f"or expired; create one with {access} access at {TOKENS_URL}")
    if status == 403:
        return HubError(f"{target}: {doing} is not allowed ({detail}); set HF_TOKEN to a token "
                        f"with {access} access to {target.split('/')[3]} ({TOKENS_URL})")
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(f"{target}: revision not found ({detail}); check the @REVISION part")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(f"{target}: no such dataset on {endpoint} (or it is private: set "
                        "HF_TOKEN to a token that can read it)")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        from huggingface_hub import constants

        if offline or constants.HF_HUB_OFFLINE:
            return HubError(f"{target}: not (completely) in the Hugging Face cache and offline "
                            "mode is on (HF_HUB_OFFLINE=1 / --offline); pull it once online")
        return HubError(f"{target}: cannot reach the hub at {endpoint} and it is not in the "
                        "cache - check the network (or HF_ENDPOINT)")
    if isinstance(exc, errors.HfHubHTTPError):
        return HubError(f"{target}: {doing} failed ({detail or exc.__class__.__name__})")
    name = exc.__class__.__name__
    # httpx(2)'s TransportError covers refused, dropped and timed-out connections
    if any(c.__name__ in ("TransportError", "ConnectionError", "TimeoutError")
           for c in type(exc).__mro__):
        return HubError(f"{target}: {doing} failed: the connection to {endpoint} broke "
                        f"({name}); check the network and retry")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return HubError(f"{target}: {doing} failed ({name}{': ' + text if text else ''})")


class _Hub:
    """The huggingface_hub calls of one push or pull, with their errors made one line."""

    def __init__(self, ref: DatasetPath, *, token: Any, endpoint: str | None,
                 cache_dir: str | None, write: bool, offline: bool = False):
        hf = _hf()
        from huggingface_hub import constants

        self.ref, self.token, self.write, self.offline = ref, token, write, offline
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self.cache_dir = cache_dir
        self.api = hf.HfApi(endpoint=self.endpoint, token=token)

    def fail(self, exc: BaseException, doing: str) -> HubError:
        return _hub_error(exc, self.ref.root, doing, token=self.token, write=self.write,
                          endpoint=self.endpoint, offline=self.offline)

    def call(self, doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SlmbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - the hub and the network raise many kinds
            raise self.fail(exc, doing) from None


# --------------------------------------------------------------------------- local runs

@dataclass
class LocalRun:
    """A run directory about to be pushed."""

    dir: Path
    run_id: str
    device: str
    files: dict[str, Path]   # path inside the run directory -> local file
    entry: dict              # its line of index.jsonl

    @property
    def repo_path(self) -> str:
        return f"{RUNS_DIR}/{self.device}/{self.run_id}"


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _run_files(run_dir: Path) -> dict[str, Path]:
    files = {name: run_dir / name for name in RUN_FILES if (run_dir / name).is_file()}
    for p in sorted((run_dir / SUSTAIN_DIR).glob("*.jsonl")):  # sustained configs' windows
        files[f"{SUSTAIN_DIR}/{p.name}"] = p
    report = run_dir / REPORT_DIR
    if report.is_dir():
        for p in sorted(report.rglob("*")):
            if p.is_file() and not p.is_symlink() and p.suffix.lower() in REPORT_SUFFIXES:
                files[p.relative_to(run_dir).as_posix()] = p
    return files


def device_of(run: Any) -> str:
    """A run's device label: env.json's device.label, else its records' ``device``."""
    label = run.env.device_label
    if not label:
        labels = Counter(r.device for r in run.records if getattr(r, "device", None))
        label = labels.most_common(1)[0][0] if labels else "unknown"
    return _segment(label)


def _index_entry(run: Any, device: str, files: Sequence[str]) -> dict:
    env, manifest = run.env, run.manifest
    status = Counter(r.status or "ok" for r in run.records)
    started = sorted(r.started_at for r in run.records if r.started_at)
    finished = sorted(r.finished_at for r in run.records if r.finished_at)
    # the version the file was written with (read_run migrates what it returns)
    written = [obj.get("schema_version", 1) for obj in
               iter_record_dicts(Path(run.path) / RESULTS_FILE)]
    schema = sorted({v for v in written if isinstance(v, int)})
    models = sorted({f"{r.model_id}:{r.quant}" if r.quant else str(r.model_id)
                     for r in run.records if r.model_id})
    return {
        "path": f"{RUNS_DIR}/{device}/{_segment(run.run_id)}",
        "run_id": _segment(run.run_id), "device": device,
        "device_kind": env.device.kind if env.device else None,
        "cpu": env.cpu.model if env.cpu else None,
        "status": manifest.status,
        "started_at": manifest.started_at or (started[0] if started else None),
        "finished_at": manifest.finished_at or (finished[-1] if finished else None),
        "records": len(run.records), "ok": status.get("ok", 0),
        "failed": status.get("failed", 0), "skipped": status.get("skipped", 0),
        "models": models, "schema_version": schema[-1] if schema else None,
        "slmbench": manifest.slmbench_version or env.versions.get("slmbench"),
        "llama_cpp_python": env.versions.get("llama_cpp_python"),
        "files": sorted(files),
    }


def collect_run(run_dir: str | os.PathLike) -> LocalRun:
    """A run directory as it will be pushed (validated, nothing uploaded)."""
    p = Path(run_dir)
    if p.is_file() and p.name == RESULTS_FILE:
        p = p.parent
    if is_hf_path(str(run_dir)):
        raise ConfigError(f"{run_dir}: push takes local run directories; this is already on "
                          "the hub")
    run = read_run(p)  # a clear error when it is not a run directory
    if not run.records:
        raise ResultsFormatError(f"{p}: {RESULTS_FILE} holds no records; nothing to share")
    device = device_of(run)
    files = _run_files(p)
    return LocalRun(dir=p, run_id=_segment(run.run_id), device=device, files=files,
                    entry=_index_entry(run, device, list(files)))


# --------------------------------------------------------------------------- push

@dataclass
class PushResult:
    """What :func:`push` did."""

    dataset: str                     # hf://datasets/ORG/NAME
    commit: str | None               # the new commit (None when nothing changed)
    commit_url: str | None
    new: list[str] = field(default_factory=list)        # run paths added to the dataset
    updated: list[str] = field(default_factory=list)    # run paths whose files changed
    unchanged: list[str] = field(default_factory=list)  # already there, byte for byte
    created: bool = False            # the dataset repository was created by this push


def _read_index(hub: _Hub, revision: str) -> list[dict]:
    from huggingface_hub import errors

    try:
        path = hub.api.hf_hub_download(hub.ref.repo_id, INDEX_FILE, repo_type="dataset",
                                       revision=revision, cache_dir=hub.cache_dir,
                                       tqdm_class=_quiet_bar())
    except errors.EntryNotFoundError:
        return []
    except Exception as exc:  # noqa: BLE001
        raise hub.fail(exc, "reading its index") from None
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a hand-edited index: the runs themselves are the truth
            if isinstance(obj, dict) and isinstance(obj.get("path"), str):
                out.append(obj)
    return out


def _remote_tree(hub: _Hub, revision: str) -> dict[str, Any]:
    """Every file under runs/ at ``revision``: path -> RepoFile."""
    from huggingface_hub import errors
    from huggingface_hub.hf_api import RepoFile

    try:
        return {f.path: f for f in hub.api.list_repo_tree(
            hub.ref.repo_id, path_in_repo=RUNS_DIR, recursive=True, revision=revision,
            repo_type="dataset") if isinstance(f, RepoFile)}
    except errors.EntryNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001
        raise hub.fail(exc, "listing its runs") from None


def _same(local: Path, remote: Any) -> bool:
    data = local.read_bytes()
    if remote.lfs is not None:
        return remote.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return remote.blob_id == _git_oid(data)


def _run_dirs(paths: Sequence[str]) -> set[str]:
    """runs/<device>/<run-id> of every run in a listing (a directory with results.jsonl)."""
    out = set()
    for p in paths:
        parts = p.split("/")
        if len(parts) == 4 and parts[0] == RUNS_DIR and parts[3] == RESULTS_FILE:
            out.add("/".join(parts[:3]))
    return out


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def push(run_dirs: Sequence[str | os.PathLike], to: str, *, private: bool = False,
         message: str | None = None, token: str | bool | None = None,
         endpoint: str | None = None, cache_dir: str | None = None) -> PushResult:
    """Upload run directories to the dataset ``to`` (``hf://datasets/ORG/NAME``) in one commit.

    Each run goes to ``runs/<device>/<run-id>/`` (results.jsonl, env.json, manifest.json and
    report/ when present; nothing else, never a model file); ``index.jsonl`` and the dataset
    card (README.md) are updated in the same commit.  The repository is created (``private``)
    when it does not exist.  Runs already there byte for byte are left alone; a run whose files
    changed (e.g. resumed since) replaces its old copy.
    """
    ref = parse_hf_path(to)
    if ref.path or ref.revision:
        raise ConfigError(f"{to}: push to the dataset itself (hf://datasets/{ref.repo_id}); "
                          "runs go to runs/<device>/<run-id>/ on its main branch")
    if not run_dirs:
        raise ConfigError("no run directories given")
    runs = [collect_run(d) for d in run_dirs]
    seen: dict[str, Path] = {}
    for r in runs:
        if r.repo_path in seen:
            raise ConfigError(f"{r.dir} and {seen[r.repo_path]} would both be {r.repo_path} in "
                              "the dataset (same device and run id); push one of them")
        seen[r.repo_path] = r.dir
    _hf()
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants

    hub = _Hub(ref, token=token, endpoint=endpoint, cache_dir=cache_dir, write=True)
    if constants.HF_HUB_OFFLINE:
        raise HubError(f"{ref.root}: pushing needs the network, but offline mode is on "
                       "(HF_HUB_OFFLINE=1); unset it to push")
    existed = _exists(hub)
    if not existed:
        # private=None (not False) leaves a new dataset to the owner's default visibility
        hub.call("creating the dataset", hub.api.create_repo, ref.repo_id, repo_type="dataset",
                 private=True if private else None, exist_ok=True)
    for attempt in range(PUSH_ATTEMPTS):
        info = hub.call("reading the dataset", hub.api.dataset_info, ref.repo_id)
        head = info.sha
        tree = _remote_tree(hub, head)
        result = PushResult(dataset=ref.root, commit=None, commit_url=None, created=not existed)
        ops: list[Any] = []
        now = _utc_now()
        fresh: dict[str, dict] = {}
        for r in runs:
            remote = {p[len(r.repo_path) + 1:]: f for p, f in tree.items()
                      if p.startswith(r.repo_path + "/")}
            stale = sorted(set(remote) - set(r.files))
            changed = [name for name, local in r.files.items()
                       if name not in remote or not _same(local, remote[name])]
            if not remote:
                result.new.append(r.repo_path)
            elif changed or stale:
                result.updated.append(r.repo_path)
            else:
                result.unchanged.append(r.repo_path)
                continue
            for name in changed:
                ops.append(CommitOperationAdd(f"{r.repo_path}/{name}", str(r.files[name])))
            for name in stale:
                ops.append(CommitOperationDelete(f"{r.repo_path}/{name}"))
            fresh[r.repo_path] = dict(r.entry, pushed_at=now)
        if not ops:
            return result
        present = _run_dirs(list(tree)) | set(fresh)
        index = {e["path"]: e for e in _read_index(hub, head) if e["path"] in present}
        index.update(fresh)
        for path in present - set(index):  # put there by other means: list it all the same
            _, device, run_id = path.split("/")
            index[path] = {"path": path, "device": device, "run_id": run_id, "indexed": False}
        entries = sorted(index.values(), key=lambda e: (str(e.get("started_at") or ""),
                                                        e["path"]))
        index_text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        ops.append(CommitOperationAdd(INDEX_FILE, index_text.encode()))
        ops.append(CommitOperationAdd(CARD_FILE, render_card(ref.repo_id, entries,
                                                             now).encode()))
        paths = result.new + result.updated
        title = message or (f"slmbench push: {len(paths)} run{'s' if len(paths) != 1 else ''} "
                            f"({', '.join(p[len(RUNS_DIR) + 1:] for p in paths[:3])}"
                            + (", ..." if len(paths) > 3 else "") + ")")
        description = "\n".join(
            [f"- {p} ({'new' if p in result.new else 'updated'})" for p in paths]
            + ["", "Pushed with `slmbench push`; index.jsonl and README.md regenerated."])
        try:
            commit = hub.api.create_commit(
                ref.repo_id, ops, commit_message=title, commit_description=description,
                repo_type="dataset", parent_commit=head)
        except Exception as exc:  # noqa: BLE001
            if _status(exc) == 412 and attempt + 1 < PUSH_ATTEMPTS:
                continue  # someone pushed in between: re-read their index and try again
            raise _push_error(hub, exc) from None
        result.commit, result.commit_url = commit.oid, commit.commit_url
        return result
    raise HubError(f"{ref.root}: the dataset kept changing while pushing ({PUSH_ATTEMPTS} "
                   "tries); retry")  # pragma: no cover - the loop returns or raises


def _exists(hub: _Hub) -> bool:
    from huggingface_hub import errors

    try:
        hub.api.dataset_info(hub.ref.repo_id)
        return True
    except errors.RepositoryNotFoundError as exc:
        if _status(exc) == 401 and "Invalid credentials" in _server_message(exc):
            raise hub.fail(exc, "pushing") from None
        return False  # missing, or private and not ours: create_repo tells which
    except Exception as exc:  # noqa: BLE001
        raise hub.fail(exc, "reading the dataset") from None


def _push_error(hub: _Hub, exc: BaseException) -> HubError:
    status = _status(exc)
    if status in (401, 403) or status is None:
        err = hub.fail(exc, "pushing")
        return HubError(f"{err}; nothing was committed")
    reason = _server_message(exc)
    return HubError(f"{hub.ref.root}: the hub rejected the commit (HTTP {status}"
                    + (f": {reason}" if reason else "") + "); nothing was committed - the "
                    "dataset is unchanged")


# --------------------------------------------------------------------------- the card

def _cell(value: Any) -> str:
    text = "-" if value in (None, "", []) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows])


def render_card(repo_id: str, entries: list[dict], pushed_at: str) -> str:
    """README.md of a results dataset: what is in it and how to read it, with or without
    slmbench.  ``entries`` are the lines of index.jsonl."""
    devices: dict[str, dict] = {}
    models: dict[str, dict] = {}
    for e in entries:
        d = devices.setdefault(e["device"], {"kind": e.get("device_kind"), "cpu": e.get("cpu"),
                                             "runs": 0, "last": None})
        d["runs"] += 1
        d["kind"] = d["kind"] or e.get("device_kind")
        d["cpu"] = d["cpu"] or e.get("cpu")
        d["last"] = max(filter(None, [d["last"], e.get("started_at")]), default=None)
        for m in e.get("models") or []:
            model_id, _, quant = m.partition(":")
            mm = models.setdefault(model_id, {"quants": set(), "devices": set(), "runs": set()})
            if quant:
                mm["quants"].add(quant)
            mm["devices"].add(e["device"])
            mm["runs"].add(e["path"])
    schemas = sorted({e["schema_version"] for e in entries
                      if isinstance(e.get("schema_version"), int)})
    url = f"hf://datasets/{repo_id}"
    out = ["---", f"pretty_name: slmbench results ({repo_id})",
           "tags:", "- slmbench", "- llama.cpp", "- benchmark", "- small-language-models",
           "configs:", "- config_name: records", "  data_files: runs/*/*/results.jsonl",
           "  default: true", "- config_name: runs", f"  data_files: {INDEX_FILE}", "---", "",
           "# slmbench results", "",
           "Measurements of small language models served by llama.cpp, made with slmbench "
           "and shared with `slmbench push`. This card is generated on every push (edits to it "
           "are overwritten); the data is JSON lines and usable without slmbench.", "",
           f"**{len(entries)} run{'s' if len(entries) != 1 else ''}** on **{len(devices)} "
           f"device{'s' if len(devices) != 1 else ''}**, **{len(models)} "
           f"model{'s' if len(models) != 1 else ''}**; results schema version "
           f"{', '.join(map(str, schemas)) or 'unknown'}; last push {pushed_at}.", "",
           "## Devices", ""]
    out += _table(["device", "kind", "CPU", "runs", "last run"],
                  [[k, v["kind"], v["cpu"], v["runs"], v["last"]]
                   for k, v in sorted(devices.items())])
    out += ["", "## Models", ""]
    out += _table(["model", "quantizations", "devices", "runs"],
                  [[k, ", ".join(sorted(v["quants"])), ", ".join(sorted(v["devices"])),
                    len(v["runs"])] for k, v in sorted(models.items())])
    newest = sorted(entries, key=lambda e: str(e.get("started_at") or ""), reverse=True)
    shown = newest[:200]
    out += ["", "## Runs", "", "Newest first."
            + (f" The {len(entries) - len(shown)} oldest are only in `{INDEX_FILE}`."
               if len(entries) > len(shown) else ""), ""]
    out += _table(["run", "device", "started", "status", "configs ok / failed / skipped",
                   "models", "slmbench", "llama-cpp-python"],
                  [[e.get("run_id"), e["device"], e.get("started_at"), e.get("status"),
                    f"{e.get('ok', '-')} / {e.get('failed', '-')} / {e.get('skipped', '-')}"
                    if "records" in e else None,
                    ", ".join(dict.fromkeys(m.partition(":")[0] for m in e.get("models") or [])),
                    e.get("slmbench"), e.get("llama_cpp_python")] for e in shown])
    out += ["", "## Files", "",
            "- `runs/<device>/<run-id>/results.jsonl`: one JSON record per measured config "
            "(model, quantization, settings, every raw timing sample and its statistics, the "
            "memory breakdown); each record carries its `schema_version` - the fields are "
            "documented in slmbench's `docs/results-schema.md`.",
            "- `runs/<device>/<run-id>/env.json`: the device (CPU, memory, versions, llama.cpp "
            "build); `manifest.json`: suite, command, start and end, status; `report/`: a "
            "report, when one was pushed.",
            f"- `{INDEX_FILE}`: one line per run - the tables above.", "",
            "## Use it", "", "With slmbench:", "", "```sh",
            f"slmbench pull {url} -o results/            # every run, into results/<device>/"
            "<run-id>/",
            f"slmbench history {url} --by version        # the trend across versions",
            f"slmbench report {url}/runs/DEVICE -o report/",
            f"slmbench compare {url}/runs/DEVICE/RUN_A {url}/runs/DEVICE/RUN_B", "```", "",
            "Without slmbench:", "", "```python", "import json, pathlib",
            "from huggingface_hub import snapshot_download", "",
            f'root = pathlib.Path(snapshot_download("{repo_id}", repo_type="dataset"))',
            'for path in sorted(root.glob("runs/*/*/results.jsonl")):',
            "    for line in path.open():",
            "        record = json.loads(line)",
            '        print(path.parent.name, record["model_id"], record["quant"], '
            'record["status"])', "```", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- pull

def _fetch_patterns(ref: DatasetPath, runs: str | None) -> list[str]:
    """allow_patterns for snapshot_download: a superset of the selected runs' files."""
    if runs:
        return [f"{RUNS_DIR}/{runs}/*" if "/" in runs else f"{RUNS_DIR}/*/{runs}/*"]
    return [f"{ref.path or RUNS_DIR}/*"]


def _selected(run_path: str, ref: DatasetPath, runs: str | None) -> bool:
    """Whether ``runs/<device>/<run-id>`` is named by the hf:// path and the --runs glob."""
    if ref.path:
        depth = ref.path.count("/") + 1
        if not fnmatch.fnmatchcase("/".join(run_path.split("/")[:depth]), ref.path):
            return False
    if runs:
        _, device, run_id = run_path.split("/")
        return fnmatch.fnmatchcase(f"{device}/{run_id}" if "/" in runs else run_id, runs)
    return True


def _quiet_bar() -> type:
    """A progress bar that never draws: a few small JSON files, between tables on stdout."""
    from tqdm.auto import tqdm

    class Quiet(tqdm):
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet


def _snapshot_runs(ref: DatasetPath, runs: str | None, *, token: Any, endpoint: str | None,
                   cache_dir: str | None, offline: bool | None) -> tuple[str, list[str]]:
    """Download the selected runs into the hub cache: (snapshot folder, run paths in it)."""
    hf = _hf()
    from huggingface_hub import constants

    if offline is None:
        offline = bool(constants.HF_HUB_OFFLINE)
    hub = _Hub(ref, token=token, endpoint=endpoint, cache_dir=cache_dir, write=False,
               offline=offline)
    folder = hub.call("downloading", hf.snapshot_download, ref.repo_id, repo_type="dataset",
                      revision=ref.revision, cache_dir=cache_dir, token=token,
                      endpoint=hub.endpoint, local_files_only=offline,
                      allow_patterns=_fetch_patterns(ref, runs), tqdm_class=_quiet_bar())
    found = []
    base = Path(folder) / RUNS_DIR
    if base.is_dir():
        for results in sorted(base.glob(f"*/*/{RESULTS_FILE}")):
            run_path = results.parent.relative_to(folder).as_posix()
            if _selected(run_path, ref, runs):
                found.append(run_path)
    if not found:
        what = f"{ref}" + (f" matching --runs {runs!r}" if runs else "")
        raise HubError(f"{what}: no runs (a run is runs/<device>/<run-id>/{RESULTS_FILE}); "
                       f"see the dataset card, or `slmbench pull {ref.root}` for every run")
    return folder, found


@dataclass
class PulledRun:
    """One run :func:`pull` put in place."""

    path: str        # the local run directory
    source: str      # hf://datasets/ORG/NAME/runs/<device>/<run-id>
    status: str      # 'new', 'updated', 'up to date' or 'kept' (differs locally; --force)


def _same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in root.rglob("*") if p.is_file()}
    return files(a) == files(b)


def _clean_stale(out: Path) -> None:
    """Remove temp directories of pulls that were killed (their process is gone)."""
    for tmp in out.glob(".slmbench-pull-*"):
        try:
            pid = int(tmp.name.split("-")[2])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


def pull(source: str, *, runs: str | None = None, out: str | os.PathLike = "results",
         force: bool = False, token: str | bool | None = None, endpoint: str | None = None,
         cache_dir: str | None = None, offline: bool | None = None) -> list[PulledRun]:
    """Download runs of a dataset into ``out/<device>/<run-id>/``.

    ``source`` is ``hf://datasets/ORG/NAME`` (every run) or a path inside it; ``runs`` a glob
    on run ids (``run-2026*``) or ``device/run-id``.  Files come through the Hugging Face
    cache (``offline``: only from it); each run is copied into a temporary directory beside
    its destination and renamed into place when complete.  A local run that differs from the
    pulled one is kept unless ``force``.
    """
    ref = parse_hf_path(source)
    folder, found = _snapshot_runs(ref, runs, token=token, endpoint=endpoint,
                                   cache_dir=cache_dir, offline=offline)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".slmbench-pull-{os.getpid()}-", dir=out))
    pulled = []
    try:
        for run_path in found:
            _, device, run_id = run_path.split("/")
            src = Path(folder) / run_path
            dest = out / device / run_id
            name = f"{ref.root}/{run_path}"
            if dest.exists() and _same_tree(src, dest):
                pulled.append(PulledRun(str(dest), name, "up to date"))
                continue
            if dest.exists() and not force:
                pulled.append(PulledRun(str(dest), name, "kept"))
                continue
            staged = tmp_root / device / run_id
            shutil.copytree(src, staged)  # follows the cache's links: real files
            dest.parent.mkdir(parents=True, exist_ok=True)
            status = "new"
            if dest.exists():
                old = tmp_root / "old" / device / run_id
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, old)
                status = "updated"
            os.replace(staged, dest)
            pulled.append(PulledRun(str(dest), name, status))
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return pulled


# --------------------------------------------------------------------------- hf:// paths

def resolve_run_paths(paths: Sequence[str | os.PathLike], *, token: str | bool | None = None,
                      endpoint: str | None = None, cache_dir: str | None = None,
                      offline: bool | None = None) -> list[str]:
    """Local run directories for ``paths``: local paths as they are, each ``hf://datasets/...``
    path expanded into its runs, downloaded into the Hugging Face cache (read from it alone
    when offline).  What `analyze`, `report`, `compare` and `history` call first."""
    out: list[str] = []
    for p in paths:
        if is_hf_path(p):
            ref = parse_hf_path(str(p))
            folder, found = _snapshot_runs(ref, None, token=token, endpoint=endpoint,
                                           cache_dir=cache_dir, offline=offline)
            out += [str(Path(folder) / r) for r in found]
        else:
            out.append(os.fspath(p))
    return out


def resolve_run_path(path: str | os.PathLike, **kwargs: Any) -> str:
    """One run directory: a local path, or an hf:// path that names exactly one run."""
    found = resolve_run_paths([path], **kwargs)
    if len(found) == 1:
        return found[0]
    names = ", ".join("/".join(Path(f).parts[-2:]) for f in found[:4])
    names += ", ..." if len(found) > 4 else ""
    raise ConfigError(f"{path}: names {len(found)} runs ({names}); give one, "
                      f"{DatasetPath(parse_hf_path(str(path)).repo_id)}/runs/<device>/<run-id>")
