"""The environment a run was measured in, captured once per run (env.json).

Timings mean little without the machine: CPU model and cores, memory, OS/kernel, CPU governor and
clock, Python and llama-cpp-python versions, llama.cpp's own system info and backends, and the
device profile (Jetson / Android / CUDA / plain CPU, from slmbench.devices).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Iterable

from slmbench.devices import cpu_model, read_text

DEVICE_ENV = "SLMBENCH_DEVICE"  # the device label of results, instead of the detected one


def cpu_governors() -> dict[str, Any]:
    govs: dict[str, int] = {}
    freqs = []
    base = "/sys/devices/system/cpu"
    try:
        cpus = sorted(d for d in os.listdir(base) if d.startswith("cpu") and d[3:].isdigit())
    except OSError:
        cpus = []
    for cpu in cpus:
        gov = read_text("/", f"{base}/{cpu}/cpufreq/scaling_governor")
        if gov:
            govs[gov] = govs.get(gov, 0) + 1
        cur = read_text("/", f"{base}/{cpu}/cpufreq/scaling_cur_freq")
        if cur and cur.isdigit():
            freqs.append(int(cur) / 1000.0)
    out: dict[str, Any] = {"governor": ", ".join(govs) or None}
    if freqs:
        out.update(cur_mhz_min=min(freqs), cur_mhz_max=max(freqs))
    else:
        try:
            import psutil

            f = psutil.cpu_freq()
            if f:
                out.update(cur_mhz_min=f.current, cur_mhz_max=f.current, max_mhz=f.max or None)
        except Exception:  # noqa: BLE001
            pass
    return out


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("slmbench", "llama-cpp-python", "huggingface-hub", "gguf", "numpy", "pandas"):
        try:
            out[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-", "_")] = None
    return out


def llama_info() -> dict[str, Any]:
    """llama.cpp's system info string, parsed feature flags and offload support."""
    try:
        from slmbench.llama_backend import llama, system_info

        lc = llama()
        text = system_info()
        gpu = bool(lc.llama_supports_gpu_offload())
    except Exception as exc:  # noqa: BLE001 - env capture must never fail a run
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    backends = sorted({part.split(":")[0].strip() for part in text.split("|") if ":" in part
                       and part.split(":")[0].strip().isupper() and "=" not in part.split(":")[0]})
    return {"system_info": text, "backends": backends, "gpu_offload": gpu}


def collect_env(bandwidth: bool | Iterable[int] = False) -> dict[str, Any]:
    """Everything about this machine a result needs beside it (JSON-serialisable).

    ``bandwidth``: probe the memory bandwidth too, with these thread counts (``True``: the
    default thread count, as llama-bench's).
    """
    import psutil

    vm = psutil.virtual_memory()
    env: dict[str, Any] = {
        "hostname": platform.node(),
        "os": {"system": platform.system(), "release": platform.release(),
               "version": platform.version(), "machine": platform.machine()},
        "cpu": {"model": cpu_model("/"), "physical_cores": psutil.cpu_count(logical=False),
                "logical_cores": psutil.cpu_count(logical=True), **cpu_governors()},
        "memory": {"total_mib": round(vm.total / 2**20, 1),
                   "available_mib": round(vm.available / 2**20, 1)},
        "versions": versions(),
        "llama_cpp": llama_info(),
        "python_executable": sys.executable,
    }
    try:
        from slmbench.devices import device_profile

        env["device"] = device_profile()
    except Exception as exc:  # noqa: BLE001 - the device module is optional at this layer
        env["device"] = {"kind": "cpu", "label": f"cpu-{platform.machine()}",
                         "error": f"{exc.__class__.__name__}: {exc}"}
    label = os.environ.get(DEVICE_ENV, "").strip()
    if label:  # a name given to this device (a fleet's slmbench_device); keep what was detected
        env["device"].setdefault("extra", {})["detected_label"] = env["device"].get("label")
        env["device"]["label"] = label
    if bandwidth:
        try:
            from slmbench.bandwidth import probe_bandwidth
            from slmbench.config import default_threads

            threads = [default_threads()] if bandwidth is True else list(bandwidth)
            env["bandwidth"] = probe_bandwidth(threads or [default_threads()])
        except Exception as exc:  # noqa: BLE001
            env["bandwidth"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    return env


def device_label(env: Any) -> str:
    """The device label of an env (EnvInfo), or cpu-<machine> when it names none."""
    return env.device_label or f"cpu-{platform.machine()}"
