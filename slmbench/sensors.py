"""Temperatures, clocks and power, sampled beside every timing.

A decode speed measured at 95 °C with clocks pinned down by the thermal governor is a
different number from the same run on a cold board.  :class:`SensorSampler` reads, in a
daemon thread, every cheap sensor the device exposes:

* temperatures: ``/sys/class/thermal/thermal_zone*/temp`` and ``/sys/class/hwmon/*/temp*_input``
  (milli-°C), or psutil when neither exists;
* CPU clocks: ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` (kHz);
* CPU package energy: Linux RAPL ``/sys/class/powercap/intel-rapl:*/energy_uj`` (µJ, wraps at
  ``max_energy_range_uj``; root-only on most distributions since 2020);
* battery: ``/sys/class/power_supply/*`` with ``type`` = Battery: ``power_now`` (µW) or
  ``voltage_now`` (µV) x ``current_now`` (µA);
* NVIDIA Jetson: one long-lived ``tegrastats --interval <ms>`` process (or jetson-stats' ``jtop``
  service), whose lines :func:`parse_tegrastats_line` turns into rails, clocks and temperatures.

Files are opened once and re-read with ``os.pread`` (a few µs each); no process is started per
sample, and a sensor slower than :data:`SLOW_READ_S` is dropped at start.  The thread never
raises: failures become strings in ``sampler.errors``.

:func:`summarize` turns the samples of one time window into the JSON dict stored in
``TestResult.sensors``: average power and energy (with its source), energy per token, maximum
temperature, clock range and a ``throttled`` verdict (:func:`detect_throttle`).
"""

from __future__ import annotations

import glob
import os
import re
import statistics
import subprocess
import threading
import time
from bisect import bisect_left, bisect_right
from typing import Any, Iterable, Sequence

from slmbench.devices import find_binary, read_text
from slmbench.stats import drift_pct

# --------------------------------------------------------------------------- thresholds

TEMP_THRESHOLD_C = 85.0          # a sensor at or above this during a test = thermal throttling risk
CLOCK_DROP_FRAC = 0.10           # clocks more than 10 % below the window's running maximum ...
CLOCK_DROP_MIN_SAMPLES = 2       # ... for at least this many consecutive samples = throttled
CLOCK_SETTLE_S = 0.5             # clocks in the window's first 0.5 s are ignored (turbo settling)
LATENCY_DRIFT_PCT = 10.0         # last-quarter median token latency > first quarter by 10 %
GPU_BUSY_PCT = 50.0              # GPU clock drops only count while the GPU is this busy
TEMP_VALID_C = (-40.0, 150.0)    # outside: a disabled sensor (Jetson reports -256 C) or garbage
TEMP_IGNORED = ("pmic",)         # Jetson 'PMIC@100C' is a fixed trip point, not a measurement
SLOW_READ_S = 0.002              # a sensor file slower than this to read is not sampled
BATTERY_MA_BELOW = 10_000        # |current_now| below this is taken as mA, not µA (some drivers)
POWER_PRIORITY = ("tegrastats", "jtop", "rapl", "battery")   # which source summarize reports
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")   # tegrastats rails that measure the whole input
MAX_ERRORS = 20
# other processes (and the hypervisor's steal) using this many cores' worth of CPU more than a
# test's threads left free while it runs = a busy machine: the test gets a warning (OtherCPU)
OTHER_CPU_WARN_CORES = 0.25
OTHER_CPU_MIN_WINDOW_S = 0.5     # shorter windows: jiffy resolution (10 ms) says too little


# --------------------------------------------------------------------------- tegrastats

_TS_TIME = re.compile(r"^\s*(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s")
_TS_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_TS_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB(?: \(cached (\d+)MB\))?")
_TS_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?", re.I)
_TS_EMC = re.compile(r"\bEMC(?:_FREQ)? (\d+)%(?:@(\d+))?")
_TS_GPU = re.compile(r"\b(GR3D_FREQ|GPC_FREQ|GR3D) (?:(\d+)%)?(?:@(\[[^\]]*\]|\d+))?")
_TS_TEMP = re.compile(r"(?<![\w@])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C(?:/-?\d+(?:\.\d+)?C)?")
_TS_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


def _freq_list(text: str) -> list[int | None]:
    return [int(x) if x.strip().isdigit() else None for x in text.strip("[]").split(",")]


def parse_tegrastats_line(line: str) -> dict[str, Any]:
    """One tegrastats line -> dict.  Handles JetPack 4 to 7 (and L4T 28's older spelling).

    Keys (present only when the line has them): ``time``; ``ram_used_mb``/``ram_total_mb``;
    ``swap_used_mb``/``swap_total_mb``/``swap_cached_mb``; ``cpu_load_pct`` and ``cpu_mhz``
    (one entry per core, None for an 'off' core); ``emc_load_pct``/``emc_mhz``;
    ``gpu_load_pct``/``gpu_mhz`` (highest GPC clock) and ``gpu_gpc_mhz`` (every GPC);
    ``temps_c`` {sensor: °C} as printed (including -256 for a disabled sensor);
    ``rails_mw`` {rail: current mW} and ``rails_avg_mw`` (the running average tegrastats
    prints after the slash; rails print in mW with or without the unit); ``power_w`` and
    ``power_rail``: the board/module input (VDD_IN, POM_5V_IN or VIN), else the sum of every
    connected rail (AGX Orin, Thor without VIN) named 'sum:A+B+C'.
    """
    out: dict[str, Any] = {}
    m = _TS_TIME.match(line)
    if m:
        out["time"] = m.group(1)
    m = _TS_RAM.search(line)
    if m:
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    m = _TS_SWAP.search(line)
    if m:
        out["swap_used_mb"], out["swap_total_mb"] = int(m.group(1)), int(m.group(2))
        if m.group(3) is not None:
            out["swap_cached_mb"] = int(m.group(3))
    m = _TS_CPU.search(line)
    if m:
        common = int(m.group(2)) if m.group(2) else None   # L4T 28: 'cpu [17%,13%]@408'
        loads: list[float | None] = []
        mhz: list[int | None] = []
        for entry in m.group(1).split(","):
            entry = entry.strip()
            em = re.match(r"(\d+)%(?:@(\d+))?$", entry)
            if em:
                loads.append(float(em.group(1)))
                mhz.append(int(em.group(2)) if em.group(2) else common)
            elif entry:
                loads.append(None)   # 'off': core powered down
                mhz.append(None)
        out["cpu_load_pct"], out["cpu_mhz"] = loads, mhz
    m = _TS_EMC.search(line)
    if m:
        out["emc_load_pct"] = float(m.group(1))
        if m.group(2):
            out["emc_mhz"] = int(m.group(2))
    m = _TS_GPU.search(line)
    if m and (m.group(2) or m.group(3)):
        if m.group(2):
            out["gpu_load_pct"] = float(m.group(2))
        if m.group(3):
            gpcs = _freq_list(m.group(3))
            on = [f for f in gpcs if f is not None]
            out["gpu_mhz"] = max(on) if on else None
            if m.group(3).startswith("["):
                out["gpu_gpc_mhz"] = gpcs
    temps = {name: float(v) for name, v in _TS_TEMP.findall(line)}
    if temps:
        out["temps_c"] = temps
    rails: dict[str, int] = {}
    avgs: dict[str, int] = {}
    for name, cur, avg in _TS_RAIL.findall(line):
        if name in ("RAM", "SWAP", "IRAM"):
            continue
        rails.setdefault(name, int(cur))
        avgs.setdefault(name, int(avg))
    if rails:
        out["rails_mw"], out["rails_avg_mw"] = rails, avgs
        total = next((r for r in TOTAL_RAILS if r in rails), None)
        if total:
            out["power_w"], out["power_rail"] = rails[total] / 1000.0, total
        else:
            used = [r for r in rails if r != "NC"]
            out["power_w"] = sum(rails[r] for r in used) / 1000.0
            out["power_rail"] = "sum:" + "+".join(used)
    return out


def parse_jtop_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """jetson-stats' ``jtop.stats`` dict -> the same keys as :func:`parse_tegrastats_line`.

    jtop names temperatures 'Temp <sensor>' (°C) and rails 'Power <rail>' (mW, 'Power TOT' is
    its total); 'GPU' is the GPU load in percent.
    """
    out: dict[str, Any] = {}
    temps: dict[str, float] = {}
    rails: dict[str, int] = {}
    for key, value in stats.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key.startswith("Temp "):
            temps[key[5:]] = float(value)
        elif key.startswith("Power ") and key != "Power TOT":
            rails[key[6:]] = int(value)
    if temps:
        out["temps_c"] = temps
    if rails:
        out["rails_mw"] = rails
    if isinstance(stats.get("Power TOT"), (int, float)):
        out["power_w"], out["power_rail"] = float(stats["Power TOT"]) / 1000.0, "TOT"
    elif rails:
        out["power_w"], out["power_rail"] = sum(rails.values()) / 1000.0, "sum"
    if isinstance(stats.get("GPU"), (int, float)):
        out["gpu_load_pct"] = float(stats["GPU"])
    return out


# --------------------------------------------------------------------------- raw units

def temp_c_from_raw(raw: float) -> float:
    """Kernel thermal zones report milli-°C; a few Android drivers report deci-°C or °C."""
    a = abs(raw)
    if a >= 1500:
        return raw / 1000.0
    if a > 150:
        return raw / 10.0
    return float(raw)


def battery_power_w(uv: float | None, ua: float | None, status: str | None,
                    power_uw: float | None = None) -> tuple[float | None, str]:
    """Battery power with **discharge positive**, and a note on how it was derived.

    The rule: when ``status`` says Discharging the magnitude is device power (drivers disagree
    on the sign of ``current_now``; Qualcomm's is positive, the kernel ABI's negative);
    Charging gives minus the magnitude (power flowing in, the device's draw is unknown);
    Full / Not charging means the charger feeds the device: None.  With no usable status the
    kernel ABI sign is trusted (negative current = discharging).  ``current_now`` below
    :data:`BATTERY_MA_BELOW` is read as mA and ``voltage_now`` below 100000 as mV.
    """
    if power_uw is not None:
        magnitude = abs(power_uw) / 1e6
        sign_from_abi = None
    else:
        if uv is None or ua is None:
            return None, "no voltage/current"
        if 0 < abs(ua) < BATTERY_MA_BELOW:
            ua *= 1000.0
        if abs(uv) < 100_000:
            uv *= 1000.0
        magnitude = abs(uv * ua) / 1e12
        sign_from_abi = 1.0 if ua < 0 else -1.0
    st = (status or "").strip().lower()
    if st == "discharging":
        return magnitude, "status=Discharging"
    if st == "charging":
        return -magnitude, "status=Charging (negative: power into the battery)"
    if st in ("full", "not charging"):
        return None, f"status={status.strip()}: on external power"
    if sign_from_abi is None:
        return None, "power_now without a status"
    return sign_from_abi * magnitude, "sign from current_now (kernel ABI: negative = discharging)"


# --------------------------------------------------------------------------- the sampler

def _p(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read_small(path: str) -> str | None:
    return read_text("/", path, limit=256)


def _natural(path: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


class SensorSampler:
    """Samples device sensors in a daemon thread every ``interval_s`` seconds.

    Use as a context manager or ``start()`` / ``stop()``.  ``samples`` is a list of dicts, each
    with ``t`` (time.monotonic seconds) and ``src``: 'sysfs' samples carry ``temps_c``,
    ``cpu_mhz``, ``rapl_uj`` (raw counters), ``battery_w``; 'tegrastats' / 'jtop' samples carry
    the keys of :func:`parse_tegrastats_line`.  ``sources`` says what was found, ``errors`` what
    failed.  ``tegrastats``: None = use it when the binary exists below ``root``, False = never,
    or an explicit command (path string or argv list).
    """

    def __init__(self, root: str = "/", interval_s: float = 0.1, *,
                 tegrastats: Any = None, use_jtop: bool | None = None,
                 max_samples: int = 500_000):
        self.root = root
        self.interval_s = max(0.005, float(interval_s))
        self.samples: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.sources: dict[str, Any] = {}
        self.max_samples = max_samples
        self._tegrastats_opt = tegrastats
        self._use_jtop = use_jtop
        self._real = os.path.abspath(root) == "/"
        self._temps: list[tuple[str, int]] = []
        self._freqs: list[tuple[str, int]] = []
        self._rapl: list[tuple[str, int]] = []
        self.rapl_max_uj: dict[str, int] = {}
        self._battery: dict[str, int] = {}
        self._psutil_temps = False
        self._max_sent = False
        self._fds: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._aux_thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._started = False
        self.t_start: float | None = None
        self.t_stop: float | None = None

    # ----------------------------------------------------------------- bookkeeping
    def _error(self, msg: str) -> None:
        if len(self.errors) < MAX_ERRORS and msg not in self.errors:
            self.errors.append(msg)

    def _append(self, sample: dict[str, Any]) -> None:
        with self._lock:
            if len(self.samples) < self.max_samples:
                self.samples.append(sample)

    def _open(self, path: str) -> int | None:
        """Open a sensor file and time one read: None if unreadable or too slow to sample."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except PermissionError:
            self.sources.setdefault("unreadable", []).append(path)
            return None
        except OSError:
            return None
        t0 = time.perf_counter()
        try:
            os.pread(fd, 64, 0)
        except OSError:
            os.close(fd)   # e.g. a power-gated GPU's thermal zone: try again next start
            return None
        if time.perf_counter() - t0 > SLOW_READ_S:
            os.close(fd)
            self.sources.setdefault("too_slow", []).append(path)
            return None
        self._fds.append(fd)
        return fd

    @staticmethod
    def _read_int(fd: int) -> int | None:
        try:
            text = os.pread(fd, 64, 0).strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    # ----------------------------------------------------------------- discovery
    def _discover(self) -> None:
        root = self.root
        seen: dict[str, int] = {}

        def unique(name: str) -> str:
            n = seen.get(name, 0)
            seen[name] = n + 1
            return name if n == 0 else f"{name}.{n}"

        for d in sorted(glob.glob(_p(root, "sys/class/thermal/thermal_zone*")), key=_natural):
            kind = _read_small(d + "/type") or os.path.basename(d)
            fd = self._open(d + "/temp")
            if fd is not None:
                self._temps.append((unique(kind), fd))
        for d in sorted(glob.glob(_p(root, "sys/class/hwmon/hwmon*")), key=_natural):
            chip = _read_small(d + "/name") or os.path.basename(d)
            for f in sorted(glob.glob(d + "/temp*_input"), key=_natural):
                label = _read_small(f[:-len("_input")] + "_label")
                name = f"{chip}/{label or os.path.basename(f)[:-len('_input')]}"
                fd = self._open(f)
                if fd is not None:
                    self._temps.append((unique(name), fd))
        for d in sorted(glob.glob(_p(root, "sys/devices/system/cpu/cpu[0-9]*")), key=_natural):
            fd = self._open(d + "/cpufreq/scaling_cur_freq")
            if fd is not None:
                self._freqs.append((os.path.basename(d), fd))
        for d in sorted(glob.glob(_p(root, "sys/class/powercap/intel-rapl:*")), key=_natural):
            name = _read_small(d + "/name") or os.path.basename(d)
            if os.path.basename(d).count(":") > 1:
                name = f"{os.path.basename(d)}:{name}"   # a sub-zone (core, uncore, dram)
            fd = self._open(d + "/energy_uj")
            if fd is None:
                continue
            self._rapl.append((name, fd))
            rng = _read_small(d + "/max_energy_range_uj")
            if rng and rng.isdigit():
                self.rapl_max_uj[name] = int(rng)
        batteries = []
        for d in sorted(glob.glob(_p(root, "sys/class/power_supply/*"))):
            if (_read_small(d + "/type") or "").lower() == "battery":
                batteries.append(d)
        if batteries:
            d = next((b for b in batteries if os.path.basename(b).lower() in ("battery", "bat0")),
                     batteries[0])
            for attr in ("power_now", "voltage_now", "current_now", "status", "temp"):
                fd = self._open(f"{d}/{attr}")
                if fd is not None:
                    self._battery[attr] = fd
            if "power_now" in self._battery or {"voltage_now", "current_now"} <= set(self._battery):
                self.sources["battery"] = os.path.basename(d)
        if self._real and not self._temps:
            try:
                import psutil

                self._psutil_temps = bool(getattr(psutil, "sensors_temperatures", None)
                                          and psutil.sensors_temperatures())
            except Exception:  # noqa: BLE001 - optional
                self._psutil_temps = False
        self.sources["temperatures"] = [n for n, _ in self._temps] or (
            ["psutil"] if self._psutil_temps else [])
        self.sources["cpufreq"] = [n for n, _ in self._freqs]
        self.sources["rapl"] = [n for n, _ in self._rapl]
        if any("powercap" in p and "energy_uj" in p for p in self.sources.get("unreadable", [])):
            self.sources["rapl_note"] = ("energy_uj is root-only: run as root or "
                                         "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj`")

    # ----------------------------------------------------------------- one sample
    def _read_sysfs(self) -> dict[str, Any]:
        s: dict[str, Any] = {"t": time.monotonic(), "src": "sysfs"}
        temps: dict[str, float] = {}
        for name, fd in self._temps:
            v = self._read_int(fd)
            if v is not None:
                temps[name] = round(temp_c_from_raw(v), 3)
        if self._psutil_temps:
            import psutil

            for chip, entries in (psutil.sensors_temperatures() or {}).items():
                for i, e in enumerate(entries):
                    if e.current is not None:
                        temps[f"{chip}/{e.label or i}"] = float(e.current)
        if temps:
            s["temps_c"] = temps
        freqs = {}
        for name, fd in self._freqs:
            v = self._read_int(fd)
            if v is not None:
                freqs[name] = v / 1000.0
        if freqs:
            s["cpu_mhz"] = freqs
        rapl = {}
        for name, fd in self._rapl:
            v = self._read_int(fd)
            if v is not None:
                rapl[name] = v
        if rapl:
            s["rapl_uj"] = rapl
            if self.rapl_max_uj and not self._max_sent:   # once: summarize needs it for wraps
                s["rapl_max_uj"] = dict(self.rapl_max_uj)
                self._max_sent = True
        if self._battery:
            b = self._battery
            st = None
            if "status" in b:
                try:
                    st = os.pread(b["status"], 64, 0).decode("ascii", "replace").strip()
                except OSError:
                    st = None
            pw = self._read_int(b["power_now"]) if "power_now" in b else None
            uv = self._read_int(b["voltage_now"]) if "voltage_now" in b else None
            ua = self._read_int(b["current_now"]) if "current_now" in b else None
            w, _ = battery_power_w(uv, ua, st, pw)
            if w is not None:
                s["battery_w"] = round(w, 4)
            s["battery"] = {"status": st, "uV": uv, "uA": ua, "uW": pw}
            if "temp" in b:   # power_supply temperatures are deci-°C
                tv = self._read_int(b["temp"])
                if tv is not None:
                    s.setdefault("temps_c", {})["battery"] = tv / 10.0
        return s

    def sample_now(self) -> dict[str, Any] | None:
        """Take one file-based sample right now (call at the edges of a timed region)."""
        try:
            s = self._read_sysfs()
        except Exception as exc:  # noqa: BLE001 - never raise from sampling
            self._error(f"sample: {exc.__class__.__name__}: {exc}")
            return None
        self._append(s)
        return s

    # ----------------------------------------------------------------- threads
    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_now()
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def _tegrastats_cmd(self) -> list[str] | None:
        opt = self._tegrastats_opt
        if opt is False:
            return None
        if opt is None or opt is True:
            path = find_binary("tegrastats", self.root)
            if not path:
                return None
            opt = path
        cmd = [opt] if isinstance(opt, str) else list(opt)
        return cmd + ["--interval", str(max(1, int(round(self.interval_s * 1000))))]

    def _tegrastats_reader(self, proc: subprocess.Popen) -> None:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                t = time.monotonic()
                try:
                    parsed = parse_tegrastats_line(line)
                except Exception as exc:  # noqa: BLE001
                    self._error(f"tegrastats parse: {exc}")
                    continue
                if parsed:
                    parsed["t"], parsed["src"] = t, "tegrastats"
                    self._append(parsed)
                if self._stop.is_set():
                    break
        except Exception as exc:  # noqa: BLE001
            self._error(f"tegrastats: {exc.__class__.__name__}: {exc}")

    def _jtop_reader(self) -> None:
        try:
            from jtop import jtop  # type: ignore[import-not-found]

            with jtop(interval=max(0.1, self.interval_s)) as jet:
                while not self._stop.is_set() and jet.ok():
                    parsed = parse_jtop_stats(dict(jet.stats))
                    if parsed:
                        parsed["t"], parsed["src"] = time.monotonic(), "jtop"
                        self._append(parsed)
        except Exception as exc:  # noqa: BLE001 - the jtop service may be absent or stopped
            self._error(f"jtop: {exc.__class__.__name__}: {exc}")

    def _start_board_monitor(self) -> None:
        cmd = self._tegrastats_cmd()
        if cmd:
            try:
                self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                              text=True, bufsize=1)
            except OSError as exc:
                self._error(f"tegrastats: cannot start {cmd[0]}: {exc}")
                self._proc = None
            if self._proc is not None:
                self.sources["tegrastats"] = cmd[0]
                self._aux_thread = threading.Thread(target=self._tegrastats_reader,
                                                    args=(self._proc,), daemon=True,
                                                    name="slmbench-tegrastats")
                self._aux_thread.start()
                return
        want_jtop = self._use_jtop if self._use_jtop is not None else self._real
        if want_jtop and self._real:
            try:
                import jtop  # type: ignore[import-not-found]  # noqa: F401
            except Exception:  # noqa: BLE001
                return
            self.sources["jtop"] = True
            self._aux_thread = threading.Thread(target=self._jtop_reader, daemon=True,
                                                name="slmbench-jtop")
            self._aux_thread.start()

    def start(self) -> "SensorSampler":
        if self._started:
            return self
        self._started = True
        self._stop.clear()
        self.sources, self._max_sent, self.rapl_max_uj = {}, False, {}
        try:
            self._discover()
        except Exception as exc:  # noqa: BLE001
            self._error(f"discover: {exc.__class__.__name__}: {exc}")
        self.t_start = time.monotonic()
        try:
            self._start_board_monitor()
        except Exception as exc:  # noqa: BLE001
            self._error(f"board monitor: {exc.__class__.__name__}: {exc}")
        # no file to read = no thread: a wake-up that reads nothing still preempts llama.cpp
        if self._temps or self._freqs or self._rapl or self._battery or self._psutil_temps:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="slmbench-sensors")
            self._thread.start()
        else:
            self.sample_now()  # the window's first edge
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
        self.sample_now()
        if self._proc is not None:
            try:
                self._proc.terminate()
                self._proc.wait(timeout=2)
            except Exception:  # noqa: BLE001
                try:
                    self._proc.kill()
                    self._proc.wait(timeout=2)
                except Exception:  # noqa: BLE001
                    pass
        if self._aux_thread:
            self._aux_thread.join(timeout=5)
            self._aux_thread = None
        if self._proc is not None:
            if self._proc.stdout:
                try:
                    self._proc.stdout.close()
                except OSError:
                    pass
            self._proc = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        self._temps, self._freqs, self._rapl, self._battery = [], [], [], {}
        self.t_stop = time.monotonic()
        self._started = False

    def __enter__(self) -> "SensorSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def summary(self, t_start: float | None = None, t_end: float | None = None,
                **kwargs: Any) -> dict[str, Any]:
        """:func:`summarize` over this sampler's samples (default: its whole life)."""
        with self._lock:
            samples = list(self.samples)
        out = summarize(samples, self.t_start if t_start is None else t_start,
                        (self.t_stop or time.monotonic()) if t_end is None else t_end,
                        rapl_max_uj=self.rapl_max_uj, **kwargs)
        if self.errors:
            out["errors"] = out.get("errors", []) + list(self.errors)
        return out


# --------------------------------------------------------------------------- summarize

def _interp(ts: Sequence[float], vs: Sequence[float], t: float) -> float:
    i = bisect_left(ts, t)
    if i <= 0:
        return vs[0]
    if i >= len(ts):
        return vs[-1]
    t0, t1 = ts[i - 1], ts[i]
    if t1 == t0:
        return vs[i]
    return vs[i - 1] + (vs[i] - vs[i - 1]) * (t - t0) / (t1 - t0)


def integrate_power(points: Sequence[tuple[float, float]], t_start: float,
                    t_end: float) -> tuple[float | None, float]:
    """Energy (J) of a power series (t, W) over [t_start, t_end] by the trapezoid rule.

    The series is linearly interpolated at the window edges; outside the sampled range it is
    not extrapolated, so the second value returned is the covered time (s).
    """
    pts = sorted(points)
    if len(pts) < 2:
        return None, 0.0
    ts = [p[0] for p in pts]
    vs = [p[1] for p in pts]
    a, b = max(t_start, ts[0]), min(t_end, ts[-1])
    if b <= a:
        return None, 0.0
    inner = [(t, v) for t, v in pts if a < t < b]
    seq = [(a, _interp(ts, vs, a))] + inner + [(b, _interp(ts, vs, b))]
    energy = sum((t1 - t0) * (v0 + v1) / 2.0 for (t0, v0), (t1, v1) in zip(seq, seq[1:]))
    return energy, b - a


def rapl_energy(points: Sequence[tuple[float, int]], t_start: float, t_end: float,
                max_range_uj: int | None) -> tuple[float | None, float]:
    """Energy (J) from a RAPL counter series (t, µJ) over the window, unwrapping overflows.

    The counter restarts from 0 after ``max_energy_range_uj``: a negative step adds that range.
    The cumulative series is interpolated at the window edges (covered time returned too).
    """
    pts = sorted(points)
    if len(pts) < 2:
        return None, 0.0
    cum = [0.0]
    for (_, c0), (_, c1) in zip(pts, pts[1:]):
        d = c1 - c0
        if d < 0:
            d += max_range_uj if max_range_uj else 0
            if d < 0:
                d = 0
        cum.append(cum[-1] + d)
    ts = [p[0] for p in pts]
    a, b = max(t_start, ts[0]), min(t_end, ts[-1])
    if b <= a:
        return None, 0.0
    return (_interp(ts, cum, b) - _interp(ts, cum, a)) / 1e6, b - a


def _valid_temp(name: str, v: float) -> bool:
    low = name.lower()
    return (TEMP_VALID_C[0] < v < TEMP_VALID_C[1]) and not any(x in low for x in TEMP_IGNORED)


def _clock_drop(series: Sequence[float]) -> tuple[float, float] | None:
    """(peak, low) if the clock fell > CLOCK_DROP_FRAC below its running maximum for at least
    CLOCK_DROP_MIN_SAMPLES consecutive samples.  A ramp-up at the start is not a drop."""
    peak = 0.0
    run = 0
    low = float("inf")
    for v in series:
        if v > peak:
            peak = v
        if peak > 0 and v < (1.0 - CLOCK_DROP_FRAC) * peak:
            run += 1
            low = min(low, v)
            if run >= CLOCK_DROP_MIN_SAMPLES:
                return peak, low
        else:
            run = 0
            low = float("inf")
    return None


def detect_throttle(*, cpu_mhz: Sequence[float] = (), gpu_mhz: Sequence[float] = (),
                    temps_c: Iterable[tuple[str, float]] = (), token_ms: Any = None,
                    temp_threshold_c: float = TEMP_THRESHOLD_C) -> tuple[bool, list[str]]:
    """Throttling verdict from clock, temperature and latency series; returns (flag, reasons).

    Rules (constants at the top of this module): a clock series that falls more than 10 %
    below its running maximum for 2+ consecutive samples; any valid sensor at or above
    ``temp_threshold_c``; token latency whose last-quarter median exceeds the first quarter's
    by more than 10 % (decode slows slightly with context length on its own, so read this
    reason together with the others).
    """
    reasons = []
    for label, series in (("CPU", cpu_mhz), ("GPU", gpu_mhz)):
        drop = _clock_drop(list(series))
        if drop:
            peak, low = drop
            reasons.append(f"{label} clock fell {100 * (1 - low / peak):.0f}% "
                           f"({peak:.0f} -> {low:.0f} MHz)")
    hot = [(v, n) for n, v in temps_c if _valid_temp(n, v) and v >= temp_threshold_c]
    if hot:
        v, n = max(hot)
        reasons.append(f"{n} reached {v:.1f} C (>= {temp_threshold_c:.0f} C)")
    drift = drift_pct(token_ms)
    if drift is not None and drift > LATENCY_DRIFT_PCT:
        reasons.append(f"token latency drifted +{drift:.0f}% (last vs first quarter)")
    return bool(reasons), reasons


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def summarize(samples: Sequence[dict[str, Any]], t_start: float, t_end: float,
              n_prefill_tokens: int = 0, n_decode_tokens: int = 0, *,
              token_ms: Any = None, temp_threshold_c: float = TEMP_THRESHOLD_C,
              t_prefill_end: float | None = None, busy_s: float | None = None,
              rapl_max_uj: dict[str, int] | None = None) -> dict[str, Any]:
    """Sensor summary of the window [t_start, t_end] (time.monotonic seconds), JSON-ready.

    Power: from tegrastats/jtop's input rail, else RAPL package energy, else the battery
    (``power_source`` names it; every readable source is in ``power_sources``).  Energy per
    token: ``energy_j / n_prefill_tokens`` (``j_per_prefill_token``) and likewise for decode.
    With both counts, ``t_prefill_end`` splits the window; without it only ``j_per_token``
    (all tokens) is given.  ``busy_s``: seconds of timed work inside a window that also holds
    untimed warm-up -- per-token energy then uses average power x busy_s.
    ``token_ms``: per-token latencies (flat or one list per repetition) for the drift rule.
    """
    t_start, t_end = float(t_start), float(t_end)
    dur = max(0.0, t_end - t_start)
    rapl_max_uj = dict(rapl_max_uj or {})
    for s in samples:   # the sampler puts the counter ranges in its first RAPL sample
        for zone, rng in (s.get("rapl_max_uj") or {}).items():
            rapl_max_uj.setdefault(zone, rng)
    # samples just outside the window are kept so the edges can be interpolated
    by_src: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        t = s.get("t")
        if isinstance(t, (int, float)):
            by_src.setdefault(s.get("src", "sysfs"), []).append(s)
    window: dict[str, list[dict[str, Any]]] = {}
    for src, lst in by_src.items():
        lst.sort(key=lambda s: s["t"])
        ts = [s["t"] for s in lst]
        i0 = max(0, bisect_left(ts, t_start) - 1)
        i1 = min(len(lst), bisect_right(ts, t_end) + 1)
        window[src] = lst[i0:i1]
    inside = {src: [s for s in lst if t_start <= s["t"] <= t_end] for src, lst in window.items()}

    out: dict[str, Any] = {"window_s": _r(dur), "n_samples": sum(len(v) for v in inside.values())}
    sys_in = inside.get("sysfs", [])
    if len(sys_in) >= 2:
        gaps = [b["t"] - a["t"] for a, b in zip(sys_in, sys_in[1:])]
        out["sample_interval_s"] = _r(statistics.median(gaps))

    # ---- power and energy
    sources: dict[str, dict[str, Any]] = {}
    for src in ("tegrastats", "jtop"):
        pts = [(s["t"], s["power_w"]) for s in window.get(src, []) if s.get("power_w") is not None]
        e, cov = integrate_power(pts, t_start, t_end)
        if e is not None and cov > 0:
            rail = next((s.get("power_rail") for s in window[src] if s.get("power_rail")), None)
            sources[src] = {"energy_j": e, "covered_s": cov, "avg_power_w": e / cov, "rail": rail}
    rapl_series: dict[str, list[tuple[float, int]]] = {}
    for s in window.get("sysfs", []):
        for zone, v in (s.get("rapl_uj") or {}).items():
            rapl_series.setdefault(zone, []).append((s["t"], v))
    packages = [z for z in rapl_series if z.startswith("package")]
    zones_used = packages or [z for z in rapl_series if ":" not in z and z != "psys"]
    if zones_used:
        total, cov_min = 0.0, None
        for z in zones_used:
            e, cov = rapl_energy(rapl_series[z], t_start, t_end, rapl_max_uj.get(z))
            if e is None or cov <= 0:
                total = None
                break
            total += e
            cov_min = cov if cov_min is None else min(cov_min, cov)
        if total is not None and cov_min:
            sources["rapl"] = {"energy_j": total, "covered_s": cov_min,
                               "avg_power_w": total / cov_min, "zones": zones_used}
        for z in rapl_series:   # dram / psys / sub-zones: reported, not added
            if z in zones_used:
                continue
            e, cov = rapl_energy(rapl_series[z], t_start, t_end, rapl_max_uj.get(z))
            if e is not None and cov > 0:
                sources.setdefault("rapl_other", {})[z] = {"energy_j": _r(e),
                                                           "avg_power_w": _r(e / cov)}
    bpts = [(s["t"], s["battery_w"]) for s in window.get("sysfs", [])
            if s.get("battery_w") is not None]
    if bpts and all(w > 0 for _, w in bpts):
        e, cov = integrate_power(bpts, t_start, t_end)
        if e is not None and cov > 0:
            sources["battery"] = {"energy_j": e, "covered_s": cov, "avg_power_w": e / cov}
    elif bpts:
        out.setdefault("notes", []).append("battery charging or on external power: "
                                           "battery power not used (unplug the device)")
    primary = next((p for p in POWER_PRIORITY if p in sources), None)
    out["power_source"] = None
    out["avg_power_w"] = out["energy_j"] = None
    out["j_per_prefill_token"] = out["j_per_decode_token"] = out["j_per_token"] = None
    if primary:
        src = sources[primary]
        avg = src["avg_power_w"]
        energy = avg * dur   # covered part integrated; an uncovered edge at the average
        label = primary
        if src.get("rail"):
            label = f"{primary}:{src['rail']}"
        elif primary == "rapl":
            label = "rapl:" + "+".join(src["zones"])
        out["power_source"] = label
        out["avg_power_w"] = _r(avg)
        out["energy_j"] = _r(energy)
        if src["covered_s"] < 0.9 * dur:
            out.setdefault("notes", []).append(
                f"power samples cover {src['covered_s']:.3f} of {dur:.3f} s")
        work_e = avg * busy_s if busy_s else energy
        n_all = (n_prefill_tokens or 0) + (n_decode_tokens or 0)
        if n_all:
            out["j_per_token"] = _r(work_e / n_all, 6)
        if n_prefill_tokens and not n_decode_tokens:
            out["j_per_prefill_token"] = _r(work_e / n_prefill_tokens, 6)
        elif n_decode_tokens and not n_prefill_tokens:
            out["j_per_decode_token"] = _r(work_e / n_decode_tokens, 6)
        elif n_all and t_prefill_end is not None and t_start < t_prefill_end < t_end:
            e_pre = _source_energy(primary, window, t_start, t_prefill_end, rapl_max_uj,
                                   zones_used)
            if e_pre is not None:
                out["j_per_prefill_token"] = _r(e_pre / n_prefill_tokens, 6)
                out["j_per_decode_token"] = _r(max(0.0, energy - e_pre) / n_decode_tokens, 6)
    out["power_sources"] = {
        k: ({kk: (_r(vv) if isinstance(vv, float) else vv) for kk, vv in v.items()}
            if k != "rapl_other" else v) for k, v in sources.items()}

    # ---- temperatures and clocks
    temps: list[tuple[str, float]] = []
    first_temps: list[float] = []
    for src, lst in inside.items():
        for i, s in enumerate(lst):
            for n, v in (s.get("temps_c") or {}).items():
                if isinstance(v, (int, float)) and _valid_temp(n, v):
                    temps.append((n, float(v)))
                    if i == 0:
                        first_temps.append(float(v))
    if temps:
        name, top = max(temps, key=lambda x: x[1])
        out["temp_max_c"], out["temp_max_sensor"] = _r(top, 3), name
        out["temp_start_c"] = _r(max(first_temps), 3) if first_temps else None
    else:
        out["temp_max_c"] = out["temp_max_sensor"] = out["temp_start_c"] = None
    fastest = []   # per sample: the fastest core (a thermal cap lowers the whole cluster)
    for src in ("sysfs", "tegrastats"):
        for s in inside.get(src, []):
            vals = s.get("cpu_mhz")
            if isinstance(vals, dict):
                vals = list(vals.values())
            vals = [v for v in (vals or []) if v]
            if vals:
                fastest.append((s["t"], max(vals)))
        if fastest:
            break
    fastest.sort()
    cpu = [v for t, v in fastest if t >= t_start + CLOCK_SETTLE_S]
    shown = cpu or [v for _, v in fastest]
    out["cpu_mhz_min"] = _r(min(shown), 1) if shown else None
    out["cpu_mhz_max"] = _r(max(shown), 1) if shown else None
    gpu = [s["gpu_mhz"] for src in ("tegrastats", "jtop") for s in inside.get(src, [])
           if s.get("gpu_mhz") is not None and (s.get("gpu_load_pct") or 0) >= GPU_BUSY_PCT
           and s["t"] >= t_start + CLOCK_SETTLE_S]
    gpu_all = [s["gpu_mhz"] for src in ("tegrastats", "jtop") for s in inside.get(src, [])
               if s.get("gpu_mhz") is not None]
    if gpu_all:
        out["gpu_mhz_min"], out["gpu_mhz_max"] = min(gpu_all), max(gpu_all)
    flag, reasons = detect_throttle(cpu_mhz=cpu, gpu_mhz=gpu, temps_c=temps, token_ms=token_ms,
                                    temp_threshold_c=temp_threshold_c)
    drift = drift_pct(token_ms)
    out["latency_drift_pct"] = _r(drift, 2)
    out["throttled"], out["throttle_reasons"] = flag, reasons
    out["temp_threshold_c"] = temp_threshold_c
    return out


def _source_energy(src: str, window: dict[str, list[dict[str, Any]]], a: float, b: float,
                   rapl_max_uj: dict[str, int], zones: list[str]) -> float | None:
    """Energy of one source over [a, b] (used to split a prefill+decode window)."""
    if src in ("tegrastats", "jtop"):
        pts = [(s["t"], s["power_w"]) for s in window.get(src, []) if s.get("power_w") is not None]
        e, cov = integrate_power(pts, a, b)
        return e / cov * (b - a) if e is not None and cov > 0 else None
    if src == "battery":
        pts = [(s["t"], s["battery_w"]) for s in window.get("sysfs", [])
               if s.get("battery_w") is not None]
        e, cov = integrate_power(pts, a, b)
        return e / cov * (b - a) if e is not None and cov > 0 else None
    total = 0.0
    for z in zones:
        pts = [(s["t"], s["rapl_uj"][z]) for s in window.get("sysfs", [])
               if z in (s.get("rapl_uj") or {})]
        e, cov = rapl_energy(pts, a, b, rapl_max_uj.get(z))
        if e is None or cov <= 0:
            return None
        total += e / cov * (b - a)
    return total


def snapshot(root: str = "/", *, tegrastats_timeout_s: float = 3.0) -> dict[str, Any]:
    """One reading of every sensor, for `slmbench env`: what is readable and its values."""
    sampler = SensorSampler(root, interval_s=0.5, tegrastats=False)
    sampler.start()
    try:
        s = sampler.sample_now() or {}
    finally:
        sampler.stop()
    out: dict[str, Any] = {
        "temperatures_c": s.get("temps_c") or {},
        "cpu_mhz": s.get("cpu_mhz") or {},
        "sources": {k: v for k, v in sampler.sources.items()},
        "power": {},
        "errors": list(sampler.errors),
    }
    src = sampler.sources
    rapl = ["readable: " + ", ".join(src["rapl"])] if src.get("rapl") else []
    if src.get("rapl_note"):
        rapl.append(src["rapl_note"])
    out["power"]["rapl"] = "; ".join(rapl) or "not present"
    if src.get("battery"):
        w, how = battery_power_w((s.get("battery") or {}).get("uV"),
                                 (s.get("battery") or {}).get("uA"),
                                 (s.get("battery") or {}).get("status"),
                                 (s.get("battery") or {}).get("uW"))
        out["power"]["battery"] = {"name": src["battery"], "power_w": _r(w), "rule": how}
    else:
        out["power"]["battery"] = "not present"
    ts = find_binary("tegrastats", root)
    out["power"]["tegrastats"] = ts or "not present"
    if ts and tegrastats_timeout_s > 0:
        line = _one_line([ts, "--interval", "200"], tegrastats_timeout_s)
        if line:
            parsed = parse_tegrastats_line(line)
            out["tegrastats"] = {k: parsed[k] for k in (
                "power_w", "power_rail", "rails_mw", "temps_c", "gpu_mhz", "gpu_load_pct",
                "ram_used_mb", "ram_total_mb") if k in parsed}
    return out


def _one_line(cmd: list[str], timeout_s: float) -> str | None:
    """First stdout line of a streaming command, then stop it."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    result: list[str] = []

    def read() -> None:
        try:
            assert proc.stdout is not None
            result.append(proc.stdout.readline())
        except Exception:  # noqa: BLE001
            pass

    th = threading.Thread(target=read, daemon=True)
    th.start()
    th.join(timeout_s)
    try:
        proc.terminate()
        proc.wait(timeout=2)
    except Exception:  # noqa: BLE001
        proc.kill()
    return result[0].strip() if result and result[0].strip() else None


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, since boot): user, nice,
    system, irq, softirq and the hypervisor's steal (psutil; raises where /proc/stat cannot
    be read, e.g. Android)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


class OtherCPU:
    """How much CPU other processes took while a test ran: the whole machine's busy CPU time
    (user, nice, system, irq, softirq and the hypervisor's steal) minus this process's own
    (all its threads), over the wall time between construction and :meth:`cores`.  A busy
    machine makes llama.cpp's threads wait for a core (at every barrier when they use all of
    them): the test is then slower than the device can do, however steady its repetitions."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            busy = busy_cpu_seconds()
        except Exception:  # noqa: BLE001 - /proc/stat unreadable (Android): no figure
            return None
        return busy, time.process_time(), time.monotonic()

    def cores(self) -> float | None:
        """Cores' worth of CPU other processes used since construction (1.0 = one core busy
        the whole time); None when unreadable or the window was too short to tell."""
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[2] - self.start[2]
        if wall < OTHER_CPU_MIN_WINDOW_S:
            return None
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return round(max(0.0, other) / wall, 3)


def busy_warning(name: str, cores: float | None, n_threads: int) -> str | None:
    """A one-line warning when other processes used more of the CPU than the cores a test's
    ``n_threads`` left free, by OTHER_CPU_WARN_CORES or more: then they took turns with its
    threads."""
    n_cpu = os.cpu_count() or 1
    if cores is None or cores < max(0, n_cpu - n_threads) + OTHER_CPU_WARN_CORES:
        return None
    return (f"{name}: other processes used {cores:.2f} cores' worth of CPU while it ran with "
            f"{n_threads} thread{'s' if n_threads != 1 else ''} on {n_cpu} cores - the machine "
            "was busy and the test is slower than this device can do; measure again when it is "
            "idle")
