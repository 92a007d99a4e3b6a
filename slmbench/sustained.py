"""Sustained performance: how much of its burst speed a device keeps under continuous load.

One model load, one workload run back to back for a duration, measured window by window
(``slmbench sustain``, suite key ``sustained:``).  The workloads:

* ``tgN``: clear the KV cache, generate N tokens one by one (llama-bench's tgN), repeat;
* ``ppN``: clear the KV cache, prefill N prompt tokens, repeat;
* ``chat:P/G``: clear, prefill P tokens, then generate G tokens after them, repeat (what an
  assistant does).

Inputs are random token ids built once before the clock starts (BOS first), as in
:mod:`slmbench.measure`; every prefill and every generated token is timed on its own with
``time.monotonic_ns`` around ``llama_decode`` + ``llama_synchronize``.  An event belongs to
the window its end falls in; a window's speed is its tokens over the time spent inside those
timed calls (llama-bench's t/s), so the bookkeeping between events never counts.  Windows are
nominal: ``[k * window, (k + 1) * window)`` after the workload started; the run stops at
``duration`` (an event that ends after it is dropped).

Crash safety: with a ``windows_path`` every window is appended to that JSONL file and fsynced
the moment it ends (a header line first, an ``end`` line last), so a killed worker keeps the
windows it finished; :func:`read_windows_file` rebuilds the test from them.  SIGINT / SIGTERM
(Ctrl-C, the runner stopping its worker) stop the loop at the next event; the windows done,
and the partial one, are kept and summarised.

The summary (:func:`summarize_speed`): burst = the first window; sustained = the median of the
last 20 % of the windows (at least 3); retained = sustained / burst; the drop = the start of the
first window below 90 % of the burst whose next window is below too (a lone dip is counted,
not taken for the drop), or never; the window-to-window CV.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from slmbench import config
from slmbench.config import SUSTAINED_DEFAULTS, Settings
from slmbench.errors import ConfigError, MeasurementError, ModelLoadError
from slmbench.schema import (SCHEMA_VERSION, LoadResult, Record, SensorSummary,
                             SustainedResult, SustainedSpeed, SustainWindow, TestResult,
                             from_dict, to_dict, utc_now)
from slmbench.stats import percentile, summarize

Progress = Callable[[str], None]

RETAIN_THRESHOLD = 0.90        # "time until speed first drops below 90 % of burst"
SUSTAINED_FRACTION = 0.20      # the sustained part: the last 20 % of the windows ...
SUSTAINED_MIN_WINDOWS = 3      # ... and at least 3
COOL_POLL_S = 1.0
_CPU_NAMES = re.compile(r"cpu|core|pkg|package|soc|tctl|tdie|(^|[^a-z])tj($|[^a-z])", re.I)
_GPU_NAMES = re.compile(r"gpu", re.I)
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "ms": 0.001}


# --------------------------------------------------------------------------- the spec

@dataclass
class SustainSpec:
    """What a sustained test runs: a workload, for a duration, cut into windows."""

    workload: str
    n_prompt: int
    n_gen: int
    duration_s: float
    window_s: float
    start_cool_c: float | None = None
    start_cool_timeout_s: float = 600.0

    @property
    def primary(self) -> str:
        return "prefill" if self.n_gen == 0 else "decode"

    @property
    def n_windows(self) -> int:
        return max(1, math.ceil(self.duration_s / self.window_s - 1e-9))

    @property
    def test_name(self) -> str:
        return f"sustained:{self.workload}:{self.duration_s:g}s/{self.window_s:g}s"

    @property
    def n_ctx(self) -> int:
        return self.n_prompt + self.n_gen

    def key(self) -> str:
        """What makes two sustained tests the same measurement (part of the config id)."""
        cool = "-" if self.start_cool_c is None else f"{self.start_cool_c:g}"
        return f"sustained:{self.workload}:{self.duration_s:g}:{self.window_s:g}:{cool}"

    def to_values(self) -> dict[str, Any]:
        """As suite values (what :func:`make_spec` reads back)."""
        return {"duration": self.duration_s, "window": self.window_s, "workload": self.workload,
                "start_cool": self.start_cool_c, "start_cool_timeout": self.start_cool_timeout_s}


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from a number or text: 90, '90s', '10m', '1.5h', '1m30s', '500ms'."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration such as 60s or 10m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", value.strip().lower())
        rebuilt = "".join(n + u for n, u in parts)
        if not parts or rebuilt != re.sub(r"\s+", "", value.strip().lower()) or \
                any(u not in _UNITS for _, u in parts) or \
                (len(parts) > 1 and any(u == "" for _, u in parts)):
            raise ConfigError(f"{what}: {value!r} is not a duration (write e.g. 60s, 10m, 1h, "
                              "1m30s or a number of seconds)")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(f"{what}: expected a duration such as 60s or 10m, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what}: must be longer than 0 s, got {value!r}")
    return seconds


def parse_workload(text: Any) -> tuple[str, int, int]:
    """'tg128' -> ('tg128', 0, 128); 'pp512' -> ('pp512', 512, 0); 'chat:512/128' (or 'P/G',
    or a preset of config.WORKLOADS: 'chat', 'rag' ...) -> ('chat:512/128', 512, 128)."""
    from slmbench.config import WORKLOAD, workload_shape

    s = str(text).strip().lower() if isinstance(text, (str, int)) else ""
    m = re.fullmatch(r"(tg|pp)(\d+)", s)
    if m and int(m.group(2)) > 0:
        n = int(m.group(2))
        return s, (n if m.group(1) == "pp" else 0), (n if m.group(1) == "tg" else 0)
    shape = workload_shape(s[5:] if s.startswith("chat:") else s)
    if shape:
        return f"chat:{shape[0]}/{shape[1]}", shape[0], shape[1]
    raise ConfigError(f"workload: unknown workload {text!r} (use tgN, ppN, chat:P/G or a preset "
                      f"({', '.join(WORKLOAD)}), e.g. tg128, pp512, chat:512/128, rag)")


def make_spec(duration: Any = None, window: Any = None, workload: Any = None,
              start_cool: Any = None, start_cool_timeout: Any = None) -> SustainSpec:
    """A checked spec from values as written (flags, suite keys, API arguments); None = the
    default.  Every problem is raised at once as one ConfigError line."""
    d = SUSTAINED_DEFAULTS
    problems: list[str] = []
    dur = win = None
    wl: tuple[str, int, int] | None = None
    cool_timeout = 600.0
    for name, value, slot in (("duration", duration, "dur"), ("window", window, "win"),
                              ("start_cool_timeout", start_cool_timeout, "cto")):
        try:
            v = parse_duration(d[name] if value is None else value, name)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if slot == "dur":
            dur = v
        elif slot == "win":
            win = v
        else:
            cool_timeout = v
    try:
        wl = parse_workload(d["workload"] if workload is None else workload)
    except ConfigError as exc:
        problems.append(str(exc))
    cool = d["start_cool"] if start_cool is None else start_cool
    if cool is not None:
        if isinstance(cool, bool) or not isinstance(cool, (int, float, str)):
            problems.append(f"start_cool: expected a temperature in C, got {cool!r}")
            cool = None
        else:
            try:
                cool = float(str(cool).strip().upper().removesuffix("C").strip())
            except ValueError:
                problems.append(f"start_cool: expected a temperature in C, got {cool!r}")
                cool = None
            if cool is not None and not -40.0 < cool < 150.0:
                problems.append(f"start_cool: {cool:g} C is not a temperature a sensor reads")
                cool = None
    if dur is not None and win is not None and win > dur:
        problems.append(f"window: {win:g} s is longer than the duration ({dur:g} s); use a "
                        "shorter --window or a longer --duration")
    if problems:
        raise ConfigError("; ".join(problems))
    assert dur is not None and win is not None and wl is not None
    return SustainSpec(workload=wl[0], n_prompt=wl[1], n_gen=wl[2], duration_s=dur,
                       window_s=win, start_cool_c=cool, start_cool_timeout_s=cool_timeout)


def spec_from_values(values: dict[str, Any] | None) -> SustainSpec:
    """A spec from a `sustained:` mapping (unknown keys are the caller's to report)."""
    v = dict(values or {})
    return make_spec(v.get("duration"), v.get("window"), v.get("workload"), v.get("start_cool"),
                     v.get("start_cool_timeout"))


# --------------------------------------------------------------------------- summaries

def summarize_speed(windows: list[SustainWindow], metric: str) -> SustainedSpeed | None:
    """Burst, sustained, retained, first drop below 90 % and CV of one speed series.

    Only complete windows with a speed count (a window in which nothing ended has none).
    None when no window has that speed.
    """
    attr = "decode_ts" if metric == "decode" else "prefill_ts"
    pts = [(w, getattr(w, attr)) for w in windows if w.complete and getattr(w, attr)]
    if not pts:
        return None
    values = [v for _, v in pts]
    burst = values[0]
    n = len(values)
    n_sus = min(n, max(SUSTAINED_MIN_WINDOWS, math.ceil(SUSTAINED_FRACTION * n)))
    sustained = statistics.median(values[-n_sus:])
    slow = [v < RETAIN_THRESHOLD * burst for v in values]
    # the drop: the first window below 90 % of burst whose next window is below too; a lone
    # dip that recovers at once is noise (a busy moment of the OS), not the device slowing
    # down - the clock rule of slmbench.sensors asks for 2 samples in a row the same way
    below = next(((pts[i][0].t_start_s, pts[i][0].index) for i in range(1, n)
                  if slow[i] and (i + 1 == n or slow[i + 1])), (None, None))
    mean = statistics.fmean(values)
    cv = 100.0 * statistics.stdev(values) / mean if n > 1 and mean else None
    return SustainedSpeed(metric=metric, n_windows=n, burst_ts=_r(burst),
                          sustained_ts=_r(sustained), sustained_windows=n_sus,
                          retained_pct=_r(100.0 * sustained / burst, 2) if burst else None,
                          below_90_s=below[0], below_90_window=below[1],
                          n_below_90=sum(slow), cv_pct=_r(cv, 2),
                          min_ts=_r(min(values)), max_ts=_r(max(values)))


def build_result(spec: SustainSpec, windows: list[SustainWindow], *, stop_reason: str,
                 elapsed_s: float | None = None, n_iterations: int | None = None,
                 cool_wait_s: float | None = None, start_temp_c: float | None = None,
                 notes: list[str] | None = None, error: str | None = None,
                 windows_file: str | None = None) -> SustainedResult:
    """The SustainedResult of a list of windows: every summary is computed from them."""
    complete = [w for w in windows if w.complete]
    first = complete[0] if complete else None
    last = complete[-1] if complete else None

    def j(w: SustainWindow | None) -> float | None:
        return w.sensors.j_per_token if w is not None and w.sensors else None

    return SustainedResult(
        workload=spec.workload, n_prompt=spec.n_prompt, n_gen=spec.n_gen,
        duration_s=spec.duration_s, window_s=spec.window_s, elapsed_s=elapsed_s,
        stop_reason=stop_reason, error=error,
        n_iterations=(sum(w.n_iterations for w in windows) if n_iterations is None
                      else n_iterations),
        start_cool_c=spec.start_cool_c, cool_wait_s=cool_wait_s, start_temp_c=start_temp_c,
        notes=list(notes or []), primary=spec.primary,
        decode=summarize_speed(windows, "decode") if spec.n_gen else None,
        prefill=summarize_speed(windows, "prefill") if spec.n_prompt else None,
        temp_first_c=first.temp_c if first else None, temp_last_c=last.temp_c if last else None,
        cpu_mhz_first=first.cpu_mhz if first else None,
        cpu_mhz_last=last.cpu_mhz if last else None,
        gpu_mhz_first=first.gpu_mhz if first else None,
        gpu_mhz_last=last.gpu_mhz if last else None,
        j_per_token_first=j(first), j_per_token_last=j(last),
        throttled_windows=sum(1 for w in windows if w.sensors and w.sensors.throttled),
        windows_file=windows_file, windows=list(windows))


def test_result(res: SustainedResult, name: str | None = None) -> TestResult:
    """The TestResult that carries a sustained result: samples_ts = the primary speed of every
    complete window (so tables show mean ± sd over windows), warnings for what to know."""
    name = name or f"sustained:{res.workload}:{res.duration_s:g}s/{res.window_s:g}s"
    attr = "decode_ts" if res.primary == "decode" else "prefill_ts"
    samples = [getattr(w, attr) for w in res.windows if w.complete and getattr(w, attr)]
    t = TestResult(test="sustained", name=name, n_prompt=res.n_prompt, n_gen=res.n_gen,
                   samples_ts=[round(x, 4) for x in samples], ts=summarize(samples),
                   stop_reason=res.stop_reason, sustained=res)
    lat = [w.token_ms_p50 for w in res.windows if w.complete and w.token_ms_p50 is not None]
    if lat:
        t.token_ms_median = round(statistics.median(lat), 5)
        t.token_ms_p90 = round(max(w.token_ms_p90 for w in res.windows
                                   if w.complete and w.token_ms_p90 is not None), 5)
    empty = [w for w in res.windows if w.complete and w.ts is None]
    if empty:
        t.warnings.append(f"{name}: {len(empty)} window(s) without a finished "
                          f"{res.primary} event: use a longer window than one iteration")
    if res.stop_reason != "duration":
        done = sum(1 for w in res.windows if w.complete)
        t.warnings.append(f"{name}: stopped early ({res.stop_reason}) after {done} complete "
                          f"window(s) of {math.ceil(res.duration_s / res.window_s - 1e-9)}")
    if res.throttled_windows:
        t.warnings.append(f"{name}: throttling flagged in {res.throttled_windows} window(s)")
    t.warnings += [f"{name}: {n}" for n in res.notes]
    return t


# --------------------------------------------------------------------------- sensors

def _temps(sample: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """Hottest valid sensor of one sample: overall, CPU-named, GPU-named."""
    from slmbench.sensors import _valid_temp

    allt, cpu, gpu = [], [], []
    for name, v in (sample.get("temps_c") or {}).items():
        if not isinstance(v, (int, float)) or not _valid_temp(name, v):
            continue
        allt.append(float(v))
        if _GPU_NAMES.search(name):
            gpu.append(float(v))
        elif _CPU_NAMES.search(name):
            cpu.append(float(v))
    return (max(allt) if allt else None, max(cpu) if cpu else None, max(gpu) if gpu else None)


def hottest(sample: dict[str, Any] | None) -> float | None:
    return _temps(sample or {})[0]


def window_sensors(samples: list[dict[str, Any]], t0: float, t1: float) -> dict[str, Any]:
    """Mean temperatures (overall, CPU, GPU) and median clocks of the samples in [t0, t1]."""
    inside = [s for s in samples if isinstance(s.get("t"), (int, float)) and t0 <= s["t"] <= t1]
    cols: dict[str, list[float]] = {"temp_c": [], "temp_cpu_c": [], "temp_gpu_c": [],
                                    "cpu_mhz": [], "gpu_mhz": []}
    for s in inside:
        for key, v in zip(("temp_c", "temp_cpu_c", "temp_gpu_c"), _temps(s)):
            if v is not None:
                cols[key].append(v)
        mhz = s.get("cpu_mhz")
        if isinstance(mhz, dict):
            mhz = list(mhz.values())
        mhz = [v for v in (mhz or []) if v]
        if mhz:
            cols["cpu_mhz"].append(float(max(mhz)))
        if s.get("gpu_mhz") is not None:
            cols["gpu_mhz"].append(float(s["gpu_mhz"]))
    out: dict[str, Any] = {}
    for key, vals in cols.items():
        if not vals:
            out[key] = None
        elif key.endswith("_c"):
            out[key] = round(statistics.fmean(vals), 2)
        else:
            out[key] = round(statistics.median(vals), 1)
    return out


def _wait_cool(spec: SustainSpec, sampler: Any, stop: threading.Event,
               progress: Progress | None) -> tuple[float | None, float | None, list[str]]:
    """(seconds waited, temperature at the end of the wait, notes) for ``--start-cool``."""
    notes: list[str] = []
    if sampler is None:
        if spec.start_cool_c is not None:
            notes.append("sensors are off: --start-cool was not applied")
        return None, None, notes
    temp = hottest(sampler.sample_now())
    if spec.start_cool_c is None:
        return None, temp, notes
    if temp is None:
        notes.append("no temperature sensor: --start-cool was not applied")
        return 0.0, None, notes
    t0 = time.monotonic()
    deadline = t0 + spec.start_cool_timeout_s
    while temp is not None and temp >= spec.start_cool_c and not stop.is_set():
        if time.monotonic() >= deadline:
            notes.append(f"still {temp:.1f} C after waiting {spec.start_cool_timeout_s:g} s to "
                         f"cool below {spec.start_cool_c:g} C: started anyway")
            break
        if progress:
            progress(f"cooling {temp:.1f} C > {spec.start_cool_c:g} C")
        stop.wait(COOL_POLL_S)
        temp = hottest(sampler.sample_now())
    return round(time.monotonic() - t0, 3), temp, notes


# --------------------------------------------------------------------------- the windows file

class WindowsFile:
    """Append-only JSONL: a header, one line per window (fsynced as it ends), an end line."""

    def __init__(self, path: str | None):
        self.path = path
        self.fh = None
        if path:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self.fh = open(path, "w", encoding="utf-8")  # a re-measured config starts afresh
            _fsync_dir(d)

    def write(self, kind: str, data: dict[str, Any]) -> None:
        if self.fh is None:
            return
        self.fh.write(json.dumps({"kind": kind, **to_dict(data)}, separators=(",", ":")) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_windows_file(path: str) -> tuple[dict[str, Any], TestResult] | None:
    """(header, test) rebuilt from a windows file; None when it has no header.

    The stop reason is the end line's, or 'killed' when the file has none (the process died
    before it could write one); a torn last line is skipped.
    """
    header: dict[str, Any] | None = None
    windows: list[SustainWindow] = []
    end: dict[str, Any] | None = None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(obj, dict):
                    continue
                kind = obj.pop("kind", None)
                if kind == "header":
                    header = obj
                elif kind == "window":
                    try:
                        windows.append(from_dict(SustainWindow, obj))
                    except TypeError:
                        continue
                elif kind == "end":
                    end = obj
    except OSError:
        return None
    if header is None:
        return None
    try:
        spec = spec_from_values(header.get("spec"))
    except ConfigError:
        return None
    end = end or {}
    last_t = max((w.t_end_s for w in windows), default=None)
    res = build_result(spec, windows, stop_reason=end.get("stop_reason") or "killed",
                       elapsed_s=end.get("elapsed_s", last_t),
                       n_iterations=end.get("n_iterations"),
                       cool_wait_s=header.get("cool_wait_s"),
                       start_temp_c=header.get("start_temp_c"),
                       notes=header.get("notes") or [], error=end.get("error"),
                       windows_file=header.get("windows_file"))
    return header, test_result(res, spec.test_name)


# --------------------------------------------------------------------------- the loop

class _Acc:
    """What one window has collected so far."""

    def __init__(self, index: int, t0_ns: int, t1_ns: int):
        self.index, self.t0_ns, self.t1_ns = index, t0_ns, t1_ns
        self.n_iter = self.n_pp = self.n_tg = 0
        self.pp_ns = self.tg_ns = 0
        self.token_ns: list[int] = []


class _Runner:
    """Runs the workload on a loaded session and closes windows as time passes them."""

    def __init__(self, sess: Any, spec: SustainSpec, settings: Settings, rng: Any,
                 sampler: Any, out: WindowsFile, stop: threading.Event,
                 progress: Progress | None):
        self.sess, self.spec, self.settings = sess, spec, settings
        self.sampler, self.out, self.stop, self.progress = sampler, out, stop, progress
        p, g = spec.n_prompt, spec.n_gen
        self.pp = sess.batches(sess.random_tokens(p, rng), p, settings.n_batch) if p else []
        self.tg = sess.batches(sess.random_tokens(g, rng, bos_first=not p), g, 1) if g else []
        self.windows: list[SustainWindow] = []
        self.n_iterations = 0
        self.origin_ns = 0
        self.end_ns = 0
        self.acc: _Acc | None = None

    # ---- one iteration, timed event by event; False once the run must stop
    def iteration(self, timed: bool = True) -> bool:
        lc, ctx, sess = self.sess.lc, self.sess.ctx, self.sess
        decode, sync, clock = lc.llama_decode, lc.llama_synchronize, time.monotonic_ns
        sess.clear()
        if self.pp:
            a = clock()
            for b in self.pp:
                if decode(ctx, b) != 0:
                    raise MeasurementError("llama_decode failed during prefill")
            sync(ctx)
            e = clock()
            if timed and not self.event("pp", a, e, self.spec.n_prompt):
                return False
        for b in self.tg:
            a = clock()
            if decode(ctx, b) != 0:
                raise MeasurementError("llama_decode failed during generation (context full?)")
            sync(ctx)
            e = clock()
            if timed and not self.event("tg", a, e, 1):
                return False
        if timed:
            self.n_iterations += 1
            if self.acc is not None:
                self.acc.n_iter += 1
        return True

    def event(self, kind: str, a: int, e: int, n: int) -> bool:
        """Account one timed event ending at ``e``; False when the run must stop now."""
        if e >= self.end_ns:          # ends after the duration: dropped, every window closes
            self.close_through(self.spec.n_windows - 1)
            return False
        acc = self.acc
        assert acc is not None
        if e >= acc.t1_ns:
            k = min(self.spec.n_windows - 1, int((e - self.origin_ns) // self.window_ns))
            self.close_through(k - 1)
            acc = self.acc
            assert acc is not None
        if kind == "pp":
            acc.n_pp += n
            acc.pp_ns += e - a
        else:
            acc.n_tg += n
            acc.tg_ns += e - a
            acc.token_ns.append(e - a)
        return not self.stop.is_set()

    @property
    def window_ns(self) -> int:
        return int(round(self.spec.window_s * 1e9))

    def open(self, k: int) -> None:
        t0 = self.origin_ns + k * self.window_ns
        t1 = min(self.end_ns, t0 + self.window_ns) if k == self.spec.n_windows - 1 else \
            t0 + self.window_ns
        self.acc = _Acc(k, t0, t1)

    def close_through(self, k: int) -> None:
        """Close the open window and every window up to ``k``; open the next one."""
        while self.acc is not None and self.acc.index <= k:
            self.close(self.acc, complete=True)
            nxt = self.acc.index + 1
            self.acc = None
            if nxt < self.spec.n_windows:
                self.open(nxt)

    def close(self, acc: _Acc, *, complete: bool, t_end_ns: int | None = None) -> None:
        t1 = acc.t1_ns if t_end_ns is None else t_end_ns
        w = self.window(acc, t1, complete)
        self.windows.append(w)
        self.out.write("window", w)
        if self.progress:
            # the first word changes every window, so a log (no terminal) gets a line each
            temp = f", {w.temp_c:.0f} C" if w.temp_c is not None else ""
            speed = f", {w.ts:.1f} t/s" if w.ts is not None else ""
            self.progress(f"{w.index + 1}/{self.spec.n_windows} windows{speed}{temp}")

    def window(self, acc: _Acc, t1_ns: int, complete: bool) -> SustainWindow:
        s0 = (acc.t0_ns - self.origin_ns) / 1e9
        s1 = (t1_ns - self.origin_ns) / 1e9
        dur_ns = max(1, t1_ns - acc.t0_ns)
        pp_ts = 1e9 * acc.n_pp / acc.pp_ns if acc.n_pp and acc.pp_ns else None
        tg_ts = 1e9 * acc.n_tg / acc.tg_ns if acc.n_tg and acc.tg_ns else None
        token_ms = [x / 1e6 for x in acc.token_ns]
        w = SustainWindow(
            index=acc.index, t_start_s=round(s0, 4), t_end_s=round(s1, 4), complete=complete,
            n_iterations=acc.n_iter, n_prefill_tokens=acc.n_pp,
            prefill_s=round(acc.pp_ns / 1e9, 6), prefill_ts=_r(pp_ts),
            n_decode_tokens=acc.n_tg, decode_s=round(acc.tg_ns / 1e9, 6), decode_ts=_r(tg_ts),
            ts=_r(tg_ts if self.spec.primary == "decode" else pp_ts),
            busy_pct=round(100.0 * (acc.pp_ns + acc.tg_ns) / dur_ns, 2),
            token_ms_p50=_r(percentile(token_ms, 50), 5) if token_ms else None,
            token_ms_p90=_r(percentile(token_ms, 90), 5) if token_ms else None)
        if self.sampler is not None:
            # sensors run on time.monotonic(); the loop's clock is time.monotonic_ns()
            a, b = acc.t0_ns / 1e9, t1_ns / 1e9
            try:
                self.sampler.sample_now()     # a sample at the window's edge
                samples = list(self.sampler.samples)   # one C-level copy under the GIL
                for key, v in window_sensors(samples, a, b).items():
                    setattr(w, key, v)
                # no token_ms: the latency-drift rule compares a window's first and last
                # quarter, which here mixes early and late positions of repeated iterations
                w.sensors = from_dict(SensorSummary, self.sampler.summary(
                    a, b, n_prefill_tokens=acc.n_pp, n_decode_tokens=acc.n_tg,
                    busy_s=(acc.pp_ns + acc.tg_ns) / 1e9))
            except Exception as exc:  # noqa: BLE001 - a sensor problem never loses a window
                w.sensors = SensorSummary(error=f"{exc.__class__.__name__}: {exc}")
        return w

    def run(self) -> str:
        """Warm up, then run until the duration ends or ``stop`` is set; the stop reason."""
        for _ in range(self.settings.warmup):
            if self.stop.is_set():
                return "interrupted"
            self.iteration(timed=False)
        self.origin_ns = time.monotonic_ns()
        self.end_ns = self.origin_ns + int(round(self.spec.duration_s * 1e9))
        self.open(0)
        while not self.stop.is_set():
            if not self.iteration():
                break
        if self.acc is None:               # every window closed: the duration ran out
            return "duration"
        now = time.monotonic_ns()
        if now >= self.acc.t1_ns and self.acc.index == self.spec.n_windows - 1:
            self.close_through(self.acc.index)
            return "duration"
        # stopped inside a window: keep it, marked incomplete (left out of the summary)
        acc, self.acc = self.acc, None
        if acc.n_pp or acc.n_tg:
            self.close(acc, complete=False, t_end_ns=now)
        return "interrupted"


def _slower(w: SustainWindow, sp: SustainedSpeed) -> bool:
    v = w.decode_ts if sp.metric == "decode" else w.prefill_ts
    return v is not None and sp.burst_ts is not None and v < RETAIN_THRESHOLD * sp.burst_ts


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


# --------------------------------------------------------------------------- measuring

class _StopOnSignals:
    """SIGINT / SIGTERM set ``stop`` instead of raising (main thread only), restored after."""

    def __init__(self, stop: threading.Event, enabled: bool = True):
        self.stop = stop
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopOnSignals":
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self.previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop.set()

    def __exit__(self, *exc: Any) -> None:
        for sig, prev in self.previous.items():
            try:
                signal.signal(sig, prev)
            except (ValueError, OSError):
                pass


def measure_sustained(path: str, settings: Settings, spec: SustainSpec, *,
                      model_id: str | None = None, quant: str | None = None,
                      device: str | None = None, record_id: str | None = None,
                      windows_path: str | None = None, windows_file: str | None = None,
                      sensors: Any = "auto", progress: Progress | None = None,
                      stop: threading.Event | None = None,
                      handle_signals: bool = True) -> Record:
    """Load ``path`` once and run ``spec``'s workload for its duration; one Record whose one
    test is the sustained result.

    ``windows_path``: the JSONL file each window is appended (and fsynced) to as it ends
    (``windows_file``: how the record names it, e.g. relative to the run directory).
    ``sensors``: 'auto' (the device's, unless SLMBENCH_NO_SENSORS), None, or a started
    :class:`slmbench.sensors.SensorSampler` (tests pass one on a fake sysfs tree; the caller
    stops it).  ``stop`` ends the run early like Ctrl-C (which, with ``handle_signals`` in the
    main thread, sets it; SIGTERM too).  Bad input raises SlmbenchError.
    """
    import numpy as np

    from slmbench.gguf_info import model_id_from_file, read_gguf
    from slmbench.measure import Session, _start_sensors, _unified_memory
    from slmbench.memory import breakdown, hwm_mib, parse_buffers, rss_mib

    path = os.fspath(path)
    settings = config.resolved(settings)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such model file")
    info = read_gguf(path)
    quant = quant or info.file_type
    model_id = model_id or model_id_from_file(path, quant)
    if record_id is None:
        record_id = config.config_id(f"{model_id}:{quant}:{spec.key()}", settings,
                                     config.TestPlan([spec.n_prompt] if spec.n_prompt else [],
                                                     [spec.n_gen] if spec.n_gen else [],
                                                     [0], False))
    record = Record(record_id=record_id, run_id=None, model_id=model_id, quant=quant,
                    device=device, started_at=utc_now(), model=info.to_facts(),
                    settings=settings)
    stop = stop or threading.Event()
    own_sampler = sensors == "auto"
    sampler = _start_sensors() if own_sampler else sensors
    sess = None
    out = WindowsFile(None)
    runner: _Runner | None = None
    stop_reason, error = "duration", None
    cool_wait = start_temp = None
    notes: list[str] = []
    t_start = time.monotonic()
    with _StopOnSignals(stop, handle_signals):
        try:
            if progress:
                progress("loading")
            sess = Session(path, settings, settings.n_ctx or spec.n_ctx, info)
            record.load = LoadResult(load_ms=round(sess.load_ms, 3), ctx_ms=round(sess.ctx_ms, 3),
                                     rss_before_load_mib=round(sess.rss_before_load, 2),
                                     rss_after_load_mib=round(sess.rss_after_load, 2),
                                     rss_after_ctx_mib=round(sess.rss_after_ctx, 2))
            cool_wait, start_temp, notes = _wait_cool(spec, sampler, stop, progress)
            if sampler is None and own_sampler:
                notes.append("no sensor sampler (SLMBENCH_NO_SENSORS is set or sensors failed "
                             "to start): no temperatures, clocks or power")
            out = WindowsFile(windows_path)
            out.write("header", {"schema_version": SCHEMA_VERSION, "record_id": record_id,
                                 "model_id": model_id, "quant": quant, "device": device,
                                 "started_at": record.started_at, "model": record.model,
                                 "settings": asdict(settings), "spec": spec.to_values(),
                                 "cool_wait_s": cool_wait, "start_temp_c": start_temp,
                                 "notes": notes, "windows_file": windows_file})
            runner = _Runner(sess, spec, settings, np.random.default_rng(settings.seed), sampler,
                             out, stop, progress)
            t_start = time.monotonic()
            stop_reason = "interrupted" if stop.is_set() else runner.run()
        except MeasurementError as exc:
            stop_reason, error = "error", str(exc)
            if runner is not None and runner.acc is not None and \
                    (runner.acc.n_pp or runner.acc.n_tg):
                runner.close(runner.acc, complete=False, t_end_ns=time.monotonic_ns())
        finally:
            elapsed = round(time.monotonic() - t_start, 3)
            n_iter = runner.n_iterations if runner else 0
            if runner is not None or out.fh is not None:
                out.write("end", {"stop_reason": stop_reason, "elapsed_s": elapsed,
                                  "n_iterations": n_iter, "error": error,
                                  "finished_at": utc_now()})
            out.close()
            if own_sampler and sampler is not None:
                sampler.stop()
            if sess is not None:
                rss = rss_mib()
                record.memory = breakdown(
                    parse_buffers(sess.log_lines), n_ctx=sess.n_ctx, peak_rss_mib=rss,
                    hwm=hwm_mib(), info=info, type_k=settings.type_k, type_v=settings.type_v,
                    swa_full=settings.swa_full, n_ubatch=settings.n_ubatch, rss_hz=None,
                    unified_memory=_unified_memory(), rss_before_load_mib=sess.rss_before_load)
                sess.close()
    if runner is None:          # the model never ran (load failed): nothing to summarise
        raise MeasurementError(error or "the sustained workload did not start")
    res = build_result(spec, runner.windows, stop_reason=stop_reason, elapsed_s=elapsed,
                       n_iterations=runner.n_iterations, cool_wait_s=cool_wait,
                       start_temp_c=start_temp, notes=notes, error=error,
                       windows_file=windows_file)
    test = test_result(res, spec.test_name)
    record.tests.append(test)
    record.warnings.extend(test.warnings)
    record.finished_at = utc_now()
    if stop_reason == "error" and not any(w.complete for w in runner.windows):
        record.status, record.reason = "failed", error
    return record


# --------------------------------------------------------------------------- text

def format_sustained(t: TestResult) -> str:
    """The window table and the summary lines of a sustained test, for the terminal."""
    from slmbench.display import fmt, table

    res = t.sustained
    if res is None:
        return f"{t.name}: no sustained result"
    both = res.n_prompt and res.n_gen
    header = ["window", "t s", "tok/s"] + (["prefill tok/s"] if both else []) + \
        ["ms/token p50 / p90", "temp C", "CPU MHz", "W", "J/token", "throttled"]
    rows = []
    for w in res.windows:
        s = w.sensors
        lat = "-" if w.token_ms_p50 is None else f"{w.token_ms_p50:.3f} / {w.token_ms_p90:.3f}"
        rows.append([str(w.index) + ("" if w.complete else "*"),
                     f"{w.t_start_s:.1f}-{w.t_end_s:.1f}", fmt(w.ts, 1)]
                    + ([fmt(w.prefill_ts, 1)] if both else [])
                    + [lat, fmt(w.temp_c, 1), fmt(w.cpu_mhz, 0),
                       fmt(s.avg_power_w if s else None, 2),
                       fmt(s.j_per_token if s else None, 4),
                       "yes" if s and s.throttled else "-"])
    lines = [f"{t.name}: {res.workload} for {res.duration_s:g} s in {res.window_s:g} s windows "
             f"({res.n_iterations} iterations, stopped: {res.stop_reason})", ""]
    lines.append(table(rows, header))
    if any(not w.complete for w in res.windows):
        lines.append("* incomplete window (the run stopped inside it): not in the summary")
    lines.append("")
    lines += summary_lines(res)
    return "\n".join(lines)


def summary_lines(res: SustainedResult) -> list[str]:
    """The headline numbers in plain sentences."""
    out = []
    for sp in (res.decode, res.prefill):
        if sp is None:
            continue
        what = "decode" if sp.metric == "decode" else "prefill"
        drop = ("never" if sp.below_90_s is None else
                f"at {sp.below_90_s:g} s (window {sp.below_90_window})")
        lone = [w for w in res.windows if w.complete and _slower(w, sp) and
                (sp.below_90_window is None or w.index < sp.below_90_window)]
        if lone:
            drop += (f" ({len(lone)} lone window(s) below 90% "
                     f"{'before' if sp.below_90_window is not None else 'in between'}: noise)")
        cv = "-" if sp.cv_pct is None else f"{sp.cv_pct:.1f}%"
        out.append(f"{what}: burst {sp.burst_ts:.1f} tok/s, sustained {sp.sustained_ts:.1f} "
                   f"tok/s (median of the last {sp.sustained_windows} windows), retained "
                   f"{sp.retained_pct:.1f}%; below 90% of burst: {drop}; window-to-window CV "
                   f"{cv}")

    def pair(a: float | None, b: float | None, unit: str, nd: int = 1) -> str:
        if a is None and b is None:
            return "-"
        fa = "-" if a is None else f"{a:.{nd}f}"
        fb = "-" if b is None else f"{b:.{nd}f}"
        return f"{fa} -> {fb} {unit}"

    start = "" if res.start_temp_c is None else f" (before the workload: {res.start_temp_c:.1f} C" \
        + (f", after {res.cool_wait_s:g} s of cooling" if res.cool_wait_s else "") + ")"
    out.append(f"temperature first -> last window: {pair(res.temp_first_c, res.temp_last_c, 'C')}"
               f"{start}; CPU clock: {pair(res.cpu_mhz_first, res.cpu_mhz_last, 'MHz', 0)}"
               + (f"; GPU clock: {pair(res.gpu_mhz_first, res.gpu_mhz_last, 'MHz', 0)}"
                  if res.gpu_mhz_first is not None else ""))
    out.append(f"energy per token first -> last window: "
               f"{pair(res.j_per_token_first, res.j_per_token_last, 'J', 4)}; throttled windows: "
               f"{res.throttled_windows}")
    out += [f"note: {n}" for n in res.notes]
    return out
