"""Fleet runs: one suite on every host of an Ansible inventory, concurrently, over ssh.

Each host goes through the ``--host`` machinery (:func:`slmbench.remote.run_remote`: detached
run, short ssh polls, reconnects, relaunch with ``--resume``, results copied back).  A host that
is unreachable, lacks slmbench or fails is reported and the others go on.  Layout::

    results/<fleet-id>/
        fleet.json              the fleet manifest: suite, hosts, status per host, run ids
        suite.yaml              the suite the hosts were given
        <fleet-id>-<host>/      one run directory per host (results.jsonl, env.json, ...)
        logs/<host>.log         what each host's run printed

``fleet.json`` is rewritten atomically whenever a host changes state, so a fleet run that was
stopped (Ctrl-C, a lost laptop) continues with ``slmbench run --resume <fleet-id>``: finished
hosts are kept, the others are followed, relaunched or fetched.  ``report``, ``analyze`` and
``compare`` accept the fleet directory (:func:`expand_run_paths`, :func:`run_pairs`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Sequence

from slmbench.errors import ConfigError, ResultsFormatError, SlmbenchError, warn
from slmbench.results import config_counts, read_env, read_manifest
from slmbench.schema import utc_now

FLEET_FILE = "fleet.json"
FORMAT = "slmbench-fleet/1"
OK, FAILED, PENDING, RUNNING, DETACHED = "ok", "failed", "pending", "running", "detached"
HOST_STATES = (OK, FAILED, PENDING, RUNNING, DETACHED)
# the type of each host entry field fleet.json's readers rely on (null allowed, but for name)
HOST_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "target": (str,), "port": (int,), "ssh_opts": (list,),
    "remote_slmbench": (str,), "remote_dir": (str,), "device_label": (str,),
    "connection": (str,), "groups": (list,), "run_id": (str,), "status": (str,),
    "error": (str,), "started_at": (str,), "finished_at": (str,), "counts": (dict,),
    "device": (str,)}


def is_fleet_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / FLEET_FILE).is_file()


def read_fleet(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path) / FLEET_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsFormatError(f"{p}: cannot read the fleet manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise ResultsFormatError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
        raise ResultsFormatError(f"{p}: not a fleet manifest (no hosts list)")
    for i, h in enumerate(data["hosts"]):
        if not isinstance(h, dict):
            raise ResultsFormatError(f"{p}: hosts[{i}] is {type(h).__name__}, expected an object "
                                     "with name, target, run_id, status, ... (docs/fleet.md)")
        for key, types in HOST_FIELDS.items():
            value = h.get(key)
            if (value is None and key != "name") or isinstance(value, types):
                continue
            want = " or ".join(t.__name__ for t in types)
            raise ResultsFormatError(f"{p}: hosts[{i}].{key} is {value!r}, expected {want}"
                                     + ("" if key == "name" else " or null")
                                     + "; restore the file or start the fleet run again")
        if h.get("status") not in (None, *HOST_STATES):
            raise ResultsFormatError(f"{p}: hosts[{i}].status is {h['status']!r}, expected one "
                                     f"of {', '.join(HOST_STATES)}")
    return data


def fleet_runs(path: str | os.PathLike, quiet: bool = False) -> list[tuple[dict, str]]:
    """(host entry, run directory) of each host of a fleet directory that has results."""
    data = read_fleet(path)
    out = []
    for h in data["hosts"]:
        run_dir = Path(path) / h.get("run_id", "")
        if h.get("run_id") and (run_dir / "results.jsonl").is_file():
            out.append((h, str(run_dir)))
        elif not quiet:
            why = h.get("error") or h.get("status") or "no results"
            warn(f"{path}: host {h.get('name')} has no results ({why})")
    if not out:
        raise ResultsFormatError(f"{path}: no host of this fleet has results yet "
                                 f"(see {Path(path) / FLEET_FILE}; continue it with "
                                 f"slmbench run --resume {data.get('fleet_id', Path(path).name)})")
    return out


def expand_run_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Run directories for ``paths``: a fleet directory becomes the run directory of each of
    its hosts (those with results; the others are named in a warning); others stay as they are.
    """
    out: list[str] = []
    for p in paths:
        if is_fleet_dir(p):
            out += [run for _h, run in fleet_runs(p)]
        else:
            out.append(os.fspath(p))
    return out


def run_pairs(base: str | os.PathLike, cand: str | os.PathLike
              ) -> list[tuple[str | None, str, str]]:
    """What ``compare BASE CAND`` compares: [(device, base run, candidate run)].

    Two runs: one pair (device None).  A fleet directory on either side: its hosts' runs,
    matched with the other side's runs by device label (``slmbench_device``, else the detected
    label); a device on one side only is named in a warning."""
    if not is_fleet_dir(base) and not is_fleet_dir(cand):
        return [(None, os.fspath(base), os.fspath(cand))]

    def by_device(p: str | os.PathLike) -> dict[str, str]:
        runs = expand_run_paths([p])
        out: dict[str, str] = {}
        for run in runs:
            label = read_env(run).device_label or Path(run).name
            if label in out:
                raise ConfigError(f"{p}: two runs of device {label!r} ({out[label]}, {run}); "
                                  "give each host its own slmbench_device in the inventory, or "
                                  "compare the run directories one by one")
            out[label] = run
        return out

    b, c = by_device(base), by_device(cand)
    pairs = [(d, b[d], c[d]) for d in b if d in c]
    for side, only in ((base, [d for d in b if d not in c]), (cand, [d for d in c if d not in b])):
        if only:
            warn(f"{side}: no counterpart on the other side for device(s) {', '.join(only)}")
    if not pairs:
        raise ConfigError(f"{base} and {cand} have no device in common (base: "
                          f"{', '.join(b) or 'none'}; candidate: {', '.join(c) or 'none'})")
    return pairs


# --------------------------------------------------------------------------- the display

_PROGRESS = re.compile(r"^\[\d+/\d+\] ")


class FleetDisplay:
    """One line per host on stderr.

    On a terminal: a block of one line per host, redrawn in place (the host's current config
    and test, or its state); lasting events (done, failed) are printed above it.  Elsewhere
    (a log, CI): a line ``host text`` whenever a host's state changes."""

    def __init__(self, names: Sequence[str], stream: IO[str] | None = None,
                 tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.width = max([len(n) for n in names] or [0])
        self.lines = {n: "waiting" for n in names}
        self._shown: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._last = 0.0
        self._closed = False

    def status(self, name: str, text: str) -> None:
        """The host's current state (replaces its line)."""
        with self._lock:
            self.lines[name] = text
            if self.tty:
                self._draw(force=False)
            elif self._shown.get(name) != text:
                self._shown[name] = text
                self._write(f"{name:<{self.width}} {text}\n")

    def event(self, name: str, text: str) -> None:
        """A line that stays (and the host's current state)."""
        with self._lock:
            self.lines[name] = text
            self._shown[name] = text
            if self.tty:
                self._erase()
                self._write(f"{name:<{self.width}} {text}\n")
                self._draw(force=True)
            else:
                self._write(f"{name:<{self.width}} {text}\n")

    def note(self, text: str) -> None:
        """A line of its own, no host."""
        with self._lock:
            self._erase()
            self._write(text + "\n")
            self._draw(force=True)

    def close(self) -> None:
        with self._lock:
            if self.tty:
                self._draw(force=True)
            self._drawn = 0
            self._closed = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _erase(self) -> None:
        if self._drawn:
            self._write(f"\033[{self._drawn}F\033[J")
            self._drawn = 0

    def _draw(self, force: bool) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        import shutil

        cols = shutil.get_terminal_size((100, 20)).columns - 1
        text = "".join(f"\033[2K{(n.ljust(self.width) + ' ' + t)[:cols]}\n"
                       for n, t in self.lines.items())
        self._write((f"\033[{self._drawn}F" if self._drawn else "") + text)
        self._drawn = len(self.lines)


class _HostStream:
    """The file-like object a host's run_remote writes to: everything goes to the host's log
    file; progress lines and messages update the display."""

    def __init__(self, name: str, display: FleetDisplay, log: IO[str], messages: bool):
        self.name, self.display, self.log, self.messages = name, display, log, messages
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self.log.write(line + "\n")
            if self.messages:
                self.display.status(self.name, line.removeprefix(self.name + ": "))
            elif _PROGRESS.match(line):
                self.display.status(self.name, line)
            elif line.startswith("slmbench"):  # a warning or error of the run there
                self.display.event(self.name, line)
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.log.flush()


# --------------------------------------------------------------------------- running

@dataclass
class FleetResult:
    fleet_id: str
    fleet_dir: Path
    manifest: dict[str, Any]

    @property
    def hosts(self) -> list[dict[str, Any]]:
        return self.manifest["hosts"]

    @property
    def exit_code(self) -> int:
        """0: every host finished with no failed config; 1: any host or config failed."""
        bad = [h for h in self.hosts
               if h.get("status") != OK or (h.get("counts") or {}).get("failed")]
        return 1 if bad else 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "host"


def _host_entry(host: Any, fleet_id: str, taken: set[str]) -> dict[str, Any]:
    from slmbench.remote import ssh_options_from_env

    run_id = f"{fleet_id}-{_safe(host.name)}"
    n = 2
    while run_id in taken:
        run_id, n = f"{fleet_id}-{_safe(host.name)}-{n}", n + 1
    taken.add(run_id)
    return {"name": host.name, "target": host.target, "port": host.port,
            "ssh_opts": [*host.ssh_opts, *ssh_options_from_env()],
            "remote_slmbench": host.remote_slmbench, "remote_dir": host.remote_dir,
            "device_label": host.device, "connection": host.connection,
            "groups": [g for g in host.groups if g != "all"],
            "run_id": run_id, "status": PENDING, "error": None, "started_at": None,
            "finished_at": None, "counts": None, "device": None}


class _Fleet:
    def __init__(self, fleet_dir: Path, manifest: dict[str, Any], display: FleetDisplay, *,
                 poll_s: float, max_unreachable_s: float):
        self.dir = fleet_dir
        self.manifest = manifest
        self.display = display
        self.poll_s = poll_s
        self.max_unreachable_s = max_unreachable_s
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def save(self) -> None:
        from slmbench.results import write_json_atomic

        with self.lock:
            self.manifest["updated_at"] = utc_now()
            write_json_atomic(self.dir / FLEET_FILE, self.manifest)

    def update(self, h: dict[str, Any], **changes: Any) -> None:
        with self.lock:
            h.update(changes)
        self.save()

    def run_host(self, h: dict[str, Any], resume: bool) -> None:
        from slmbench.remote import Detached, UnreachableError, run_remote

        name = h["name"]
        self.update(h, status=RUNNING, error=None, started_at=h.get("started_at") or utc_now(),
                    finished_at=None)
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        m = self.manifest
        try:
            if h.get("connection") not in (None, "ssh", "paramiko", "smart"):
                raise SlmbenchError(f"ansible_connection={h['connection']} is not supported "
                                    "(slmbench reaches devices with ssh)")
            with open(logs / f"{_safe(name)}.log", "a", encoding="utf-8") as log:
                log.write(f"--- {utc_now()} {'resume' if resume else 'start'}\n")
                env = {"SLMBENCH_DEVICE": h["device_label"]} if h.get("device_label") else {}
                run_dir = run_remote(
                    h["target"], str(self.dir / m["suite_file"]), m["run_args"], str(self.dir),
                    h["run_id"], ssh_opts=h["ssh_opts"], port=h["port"],
                    remote_slmbench=h["remote_slmbench"], remote_dir=h["remote_dir"],
                    poll_s=self.poll_s, max_unreachable_s=self.max_unreachable_s,
                    push=m.get("push"), resume=resume, env=env, name=name,
                    out=_HostStream(name, self.display, log, messages=True),
                    log=_HostStream(name, self.display, log, messages=False), stop=self.stop)
            self._finished(h, run_dir)
        except Detached:
            self.update(h, status=DETACHED, error="the fleet run was stopped while this host's "
                        "run went on there")
        except UnreachableError as exc:
            self._failed(h, f"unreachable: {str(exc).removeprefix(name + ': ')}")
        except SlmbenchError as exc:
            self._failed(h, str(exc))
        except Exception as exc:  # noqa: BLE001 - one host's bug must not stop the others
            with open(logs / f"{_safe(name)}.log", "a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            self._failed(h, f"internal error: {exc.__class__.__name__}: {exc} (traceback in "
                            f"logs/{_safe(name)}.log)")

    def _failed(self, h: dict[str, Any], error: str) -> None:
        error = " ".join(error.split())
        error = error.removeprefix(h["name"] + ": ")
        self.update(h, status=FAILED, error=error, finished_at=utc_now())
        self.display.event(h["name"], f"FAILED: {error}")

    def _finished(self, h: dict[str, Any], run_dir: Path) -> None:
        manifest = read_manifest(run_dir)
        counts = config_counts(run_dir)
        state = manifest.status
        n = manifest.n_configs
        done = sum(counts.values())
        changes: dict[str, Any] = {"counts": counts, "device": read_env(run_dir).device_label,
                                   "finished_at": utc_now()}
        if h.get("device_label") and changes["device"] != h["device_label"]:
            self.display.event(h["name"], f"note: results are labelled {changes['device']!r}, "
                                          f"not {h['device_label']!r} (slmbench_device): the "
                                          "run there started without it, or slmbench there "
                                          "is too old to take it")
        if state == "finished":
            self.update(h, status=OK, error=None, **changes)
            text = f"done: {counts['ok']} ok, {counts['failed']} failed, " \
                   f"{counts['skipped']} skipped -> {run_dir}"
            self.display.event(h["name"], text)
            return
        why = ("was interrupted there" if state == "interrupted"
               else f"kept stopping there (relaunched with --resume; last state: "
                    f"{state or 'no manifest'})")
        self._failed(h, f"the run {why} ({done} of {n or '?'} configs measured; what was "
                        f"measured is in {run_dir}); continue with slmbench run --resume "
                        f"{self.manifest['fleet_id']}")
        with self.lock:
            h.update(changes)
        self.save()


def plan_fleet(inventory: str | os.PathLike, limit: str | None = None, reader: str = "auto"
               ) -> list[dict[str, Any]]:
    """The hosts a fleet run would use, with how each is reached (``run --hosts --dry-run``)."""
    from slmbench.inventory import load_inventory

    taken: set[str] = set()
    return [_host_entry(h, "fleet", taken) for h in load_inventory(inventory, reader).select(limit)]


def run_fleet(suite: str | None, overrides: dict[str, Any] | None = None, *,
              inventory: str | os.PathLike | None = None, limit: str | None = None,
              parallel: int | None = None, results_dir: str | os.PathLike = "results",
              fleet_id: str | None = None, resume: str | None = None, offline: bool = False,
              push_files: bool = False, reader: str = "auto", poll_s: float = 2.0,
              max_unreachable_s: float = 600.0, stream: IO[str] | None = None,
              tty: bool | None = None, argv: list[str] | None = None) -> FleetResult:
    """`slmbench run SUITE --hosts INVENTORY`: the suite on every selected host at once (at
    most ``parallel`` at a time), one run directory per host under ``results_dir/<fleet-id>/``.

    ``resume=FLEET_ID`` continues a fleet run: hosts that finished are kept, the others are
    followed, relaunched or fetched; ``inventory`` then only refreshes the hosts' addresses.
    Raises :class:`ConfigError` for bad input before any host is contacted."""
    from slmbench.inventory import load_inventory
    from slmbench.remote import prepare_suite
    from slmbench.results import new_run_id

    if parallel is not None and parallel < 1:
        raise ConfigError(f"--parallel {parallel}: expected 1 or more hosts at a time")
    if resume and fleet_id and resume != fleet_id:
        raise ConfigError("give either --resume FLEET_ID or --run-id FLEET_ID, not both")
    results = Path(results_dir)
    inv = load_inventory(inventory, reader) if inventory else None
    if resume:
        fleet_dir = results / resume
        if not is_fleet_dir(fleet_dir):
            raise ConfigError(f"--resume {resume}: {fleet_dir} is not a fleet directory (no "
                              f"{FLEET_FILE}); --results names the folder that holds it")
        if suite is not None or overrides or push_files:
            raise ConfigError(f"--resume {resume}: a fleet run goes on with the suite and "
                              "settings it started with; leave out SUITE, overrides and "
                              "--push-files")
        manifest = read_fleet(fleet_dir)
        if inv is not None:  # fresher addresses, keys, commands
            fresh = {h.name: h for h in inv.select(None)}
            for h in manifest["hosts"]:
                if h["name"] in fresh:
                    new = _host_entry(fresh[h["name"]], "x", set())
                    h.update({k: new[k] for k in ("target", "port", "ssh_opts",
                                                  "remote_slmbench", "remote_dir",
                                                  "device_label", "connection")})
        manifest.setdefault("resumes", []).append({"at": utc_now(), "command": argv})
    else:
        if inv is None:
            raise ConfigError("a fleet run needs --hosts INVENTORY (an Ansible inventory)")
        hosts = inv.select(limit)
        fleet_id = fleet_id or new_run_id("fleet")
        fleet_dir = results / fleet_id
        if fleet_dir.exists():
            raise ConfigError(f"{fleet_dir} already exists: continue it with --resume "
                              f"{fleet_id}, or choose another --run-id")
        taken: set[str] = set()
        entries = [_host_entry(h, fleet_id, taken) for h in hosts]  # bad variables raise here
        fleet_dir.mkdir(parents=True)
        try:
            suite_path, run_args, push = prepare_suite(suite, overrides or {}, str(fleet_dir),
                                                       offline=offline, push_files=push_files)
        except BaseException:
            import shutil

            shutil.rmtree(fleet_dir, ignore_errors=True)
            raise
        manifest = {"format": FORMAT, "fleet_id": fleet_id, "status": RUNNING,
                    "started_at": utc_now(), "finished_at": None, "command": argv,
                    "cwd": os.getcwd(), "inventory": os.path.abspath(inv.source),
                    "inventory_reader": inv.reader, "limit": limit, "parallel": parallel,
                    "suite_source": suite, "suite_file": os.path.basename(suite_path),
                    "run_args": run_args, "push": push, "hosts": entries}
    manifest["status"] = RUNNING
    manifest.pop("finished_at", None)
    todo = [h for h in manifest["hosts"] if h.get("status") != OK]
    names = [h["name"] for h in manifest["hosts"]]
    display = FleetDisplay(names, stream, tty)
    fleet = _Fleet(fleet_dir, manifest, display, poll_s=poll_s,
                   max_unreachable_s=max_unreachable_s)
    fleet.save()
    for h in manifest["hosts"]:
        if h.get("status") == OK:
            c = h.get("counts") or {}
            display.status(h["name"], f"done before: {c.get('ok', 0)} ok, {c.get('failed', 0)} "
                                      f"failed, {c.get('skipped', 0)} skipped")
    width = parallel or manifest.get("parallel") or len(todo) or 1
    slots = threading.Semaphore(width)

    def work(h: dict[str, Any]) -> None:
        with slots:
            if not fleet.stop.is_set():
                fleet.run_host(h, resume=bool(resume))

    threads = [threading.Thread(target=work, args=(h,), name=f"fleet-{h['name']}", daemon=True)
               for h in todo]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        fleet.stop.set()
        for t in threads:
            t.join(30)
        for h in manifest["hosts"]:
            if h.get("status") in (RUNNING, PENDING):
                h["status"] = DETACHED if h.get("status") == RUNNING else PENDING
        manifest["status"] = "interrupted"
        fleet.save()
        display.close()
        display.note(f"stopped following; the runs go on on the devices; fetch them with: "
                     f"slmbench run --resume {manifest['fleet_id']} --results {results_dir}")
        raise
    manifest["status"] = "finished"
    manifest["finished_at"] = utc_now()
    fleet.save()
    display.close()
    labels = [h.get("device") for h in manifest["hosts"] if h.get("device")]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        warn(f"several hosts have device label {', '.join(dupes)}: reports put them in one "
             "column; give each host its own slmbench_device in the inventory", stream)
    return FleetResult(manifest["fleet_id"], fleet_dir, manifest)


def summary_table(result: FleetResult) -> str:
    """One row per host (device, status, configs ok / failed / skipped), then why each host
    that failed did."""
    from slmbench.display import table

    rows = []
    for h in result.hosts:
        c = h.get("counts") or {}
        rows.append([h["name"], str(h.get("device") or h.get("device_label") or "-"),
                     h.get("status") or "?",
                     *(str(c[k]) if k in c else "-" for k in ("ok", "failed", "skipped"))])
    text = table(rows, ["host", "device", "status", "ok", "failed", "skipped"])
    why = [f"{h['name']}: {h['error']}" for h in result.hosts
           if h.get("status") != OK and h.get("error")]
    return text + ("\n\n" + "\n".join(why) if why else "")
