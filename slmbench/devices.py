"""What device is this?  A small profile written next to every result.

A timing means little without the board it ran on: an Orin NX in 10 W mode and the same
module at MAXN differ by 2x.  :func:`device_profile` recognises four kinds of device --
a plain CPU machine (Linux, macOS), an NVIDIA Jetson, an Android phone (Termux) and a PC with
an NVIDIA GPU -- and returns a flat, JSON-able dict.  Its ``label`` (``cpu-x86_64``,
``jetson-orin-nx``, ``android-pixel-8``, ``cuda-rtx-4090``) goes into every result record.

Every file is read below ``root`` so tests can point it at a fake tree; commands
(``nvpmodel``, ``getprop``, ``nvidia-smi``) run only when their binary exists below ``root``.
Nothing here raises on an odd or missing file: what cannot be read is ``None``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from typing import Any, Callable, Mapping

Runner = Callable[[list[str]], "str | None"]

# L4T (Jetson Linux) release -> JetPack.  Exact releases only, from NVIDIA's JetPack archive;
# an unknown revision falls back to the major series (see JETPACK_SERIES), never to a guess
# of the minor version.
L4T_TO_JETPACK: dict[str, str] = {
    "32.1.0": "4.2", "32.3.1": "4.3", "32.4.2": "4.4 DP", "32.4.3": "4.4", "32.4.4": "4.4.1",
    "32.5.0": "4.5", "32.5.1": "4.5.1", "32.5.2": "4.5.1", "32.6.1": "4.6",
    "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "34.1.0": "5.0 DP", "34.1.1": "5.0.1 DP", "35.1.0": "5.0.2", "35.2.1": "5.1",
    "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
    "38.2.0": "7.0", "38.2.1": "7.0", "38.4.0": "7.1", "39.2.0": "7.2",
}
JETPACK_SERIES = {"32": "4.x", "34": "5.x", "35": "5.x", "36": "6.x", "38": "7.x", "39": "7.x"}

# Tegra SoC (device-tree "compatible") -> (marketing name, CUDA compute capability).
TEGRA_SOCS: dict[str, tuple[str, str]] = {
    "tegra210": ("Tegra X1 (T210)", "5.3"),
    "tegra186": ("Tegra X2 (T186)", "6.2"),
    "tegra194": ("Xavier (T194)", "7.2"),
    "tegra234": ("Orin (T234)", "8.7"),
    "tegra264": ("Thor (T264)", "11.0"),
}

# Orin modules by device-tree part number: the devkit carrier reports the same model string
# ("NVIDIA Orin Jetson-Small Developer Kit" on JetPack 5) for Orin NX and Orin Nano.
ORIN_PARTS = {
    "p3767-0000": "orin-nx", "p3767-0001": "orin-nx", "p3767-0003": "orin-nano",
    "p3767-0004": "orin-nano", "p3767-0005": "orin-nano", "p3701": "agx-orin",
}

# (words that must all appear in the lower-cased model string, family slug); first match wins.
JETSON_FAMILIES: list[tuple[tuple[str, ...], str]] = [
    (("thor",), "agx-thor"),
    (("orin", "nano"), "orin-nano"),
    (("orin", "nx"), "orin-nx"),
    (("agx", "orin"), "agx-orin"),
    (("xavier", "nx"), "xavier-nx"),
    (("agx", "xavier"), "agx-xavier"),
    (("jetson-agx",), "agx-xavier"),   # AGX Xavier on JetPack 4 reports just "Jetson-AGX"
    (("tx2",), "tx2"),
    (("tx1",), "tx1"),
    (("nano",), "nano"),
]
SOC_FAMILY_FALLBACK = {"tegra210": "nano", "tegra186": "tx2", "tegra194": "xavier",
                       "tegra234": "orin", "tegra264": "thor"}

TERMUX_MARKER = "com.termux"
COMMAND_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------- small readers

def _path(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def read_text(root: str, path: str, limit: int = 1 << 16) -> str | None:
    """A small file below ``root`` as text, or None for any reason (absent, unreadable, dir)."""
    try:
        with open(_path(root, path), "rb") as fh:
            data = fh.read(limit)
    except (OSError, ValueError):
        return None
    # /proc/device-tree strings are NUL terminated; some hold several NUL-separated strings.
    return data.decode("utf-8", errors="replace").replace("\x00", "\n").strip() or None


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    line = text.splitlines()[0].strip()
    return line or None


def find_binary(name: str, root: str = "/") -> str | None:
    """Path of an executable ``name``: on PATH for the real system, in the usual bin dirs below
    a fake ``root``."""
    if os.path.abspath(root) == "/":
        return shutil.which(name)
    for d in ("usr/sbin", "usr/bin", "sbin", "bin", "usr/local/bin", "system/bin",
              "data/data/com.termux/files/usr/bin"):
        p = _path(root, os.path.join(d, name))
        if os.path.isfile(p):
            return p
    return None


def run_command(cmd: list[str]) -> str | None:
    """stdout of a short command, or None if it fails, times out or prints nothing."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                             check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def slug(text: str | None) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'nvidia-geforce-rtx-4090' (safe in file names and labels)."""
    return re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")


# --------------------------------------------------------------------------- Jetson

_L4T_RE = re.compile(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", re.I)


def parse_nv_tegra_release(text: str | None) -> str | None:
    """'# R36 (release), REVISION: 4.3, GCID: ...' -> '36.4.3'."""
    m = _L4T_RE.search(text or "")
    if not m:
        return None
    rev = m.group(2).strip(".")
    parts = rev.split(".")
    if len(parts) == 1:
        parts.append("0")
    return ".".join([m.group(1)] + parts[:2])


def jetpack_for_l4t(l4t: str | None) -> str | None:
    """JetPack version for an L4T release: exact when known, else the series ('6.x')."""
    if not l4t:
        return None
    if l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t]
    return JETPACK_SERIES.get(l4t.split(".")[0])


def parse_nvpmodel(text: str | None) -> str | None:
    """`nvpmodel -q` prints 'NV Power Mode: MAXN' (and the mode id on the next line)."""
    for line in (text or "").splitlines():
        m = re.match(r"\s*NV Power Mode\s*:\s*(.+?)\s*$", line, re.I)
        if m:
            return m.group(1)
    return None


def jetson_family(model: str | None, compatible: list[str]) -> str | None:
    """Slug of the Jetson family from the device-tree model, refined by the part number."""
    low = (model or "").lower()
    for part, fam in ORIN_PARTS.items():  # the part number is exact where the model is vague
        if any(part in c for c in compatible):
            return fam
    for words, fam in JETSON_FAMILIES:
        if all(w in low for w in words):
            return fam
    for c in compatible:
        soc = c.split(",")[-1]
        if soc in SOC_FAMILY_FALLBACK:
            return SOC_FAMILY_FALLBACK[soc]
    return None


def _cuda_version(root: str) -> str | None:
    text = read_text(root, "usr/local/cuda/version.json")
    if text:
        m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"', text)
        if m:
            return m.group(1)
    m = re.search(r"CUDA Version\s+([\d.]+)", read_text(root, "usr/local/cuda/version.txt") or "")
    return m.group(1) if m else None


def _jetson(root: str, run: Runner) -> dict[str, Any] | None:
    release = read_text(root, "etc/nv_tegra_release")
    model = _first_line(read_text(root, "proc/device-tree/model"))
    compat_text = read_text(root, "proc/device-tree/compatible") or ""
    compatible = [c.strip() for c in compat_text.splitlines() if c.strip()]
    is_tegra = any("nvidia,tegra" in c for c in compatible)
    if release is None and not (model and "jetson" in model.lower()) and not is_tegra:
        return None
    l4t = parse_nv_tegra_release(release)
    soc_key = next((c.split(",")[-1] for c in compatible if c.split(",")[-1] in TEGRA_SOCS), None)
    soc_name, cc = TEGRA_SOCS.get(soc_key or "", (None, None))
    power_mode = None
    nvp = find_binary("nvpmodel", root)
    if nvp:
        power_mode = parse_nvpmodel(run([nvp, "-q"]))
    family = jetson_family(model, compatible)
    return {
        "kind": "jetson",
        "label": f"jetson-{family}" if family else "jetson",
        "model": model,
        "soc": soc_name or soc_key,
        "unified_memory": True,
        "gpu": {"name": f"{soc_name or 'Tegra'} integrated GPU", "memory": "shared with CPU",
                "compute_capability": cc, "cuda_version": _cuda_version(root)},
        "power_mode": power_mode,
        "jetpack": jetpack_for_l4t(l4t),
        "l4t": l4t,
        "compatible": compatible or None,
    }


# --------------------------------------------------------------------------- Android

_GETPROP_LINE = re.compile(r"^\[(.+?)\]:\s*\[(.*)\]\s*$")
ANDROID_PROPS = ("ro.product.model", "ro.product.manufacturer", "ro.product.brand",
                 "ro.soc.model", "ro.soc.manufacturer", "ro.board.platform", "ro.hardware",
                 "ro.build.version.release", "ro.build.version.sdk", "ro.product.cpu.abi")
BUILD_PROP_FILES = ("system/build.prop", "vendor/build.prop", "system/vendor/build.prop",
                    "product/build.prop", "odm/etc/build.prop")


def parse_getprop(text: str | None) -> dict[str, str]:
    """All of `getprop`'s '[key]: [value]' lines."""
    props = {}
    for line in (text or "").splitlines():
        m = _GETPROP_LINE.match(line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    return props


def parse_build_prop(text: str | None) -> dict[str, str]:
    """key=value lines of a build.prop file (comments skipped)."""
    props = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    return props


def android_props(root: str, run: Runner) -> dict[str, str]:
    """System properties: one `getprop` call on a real phone, build.prop files otherwise."""
    props: dict[str, str] = {}
    for f in BUILD_PROP_FILES:  # lowest priority first; getprop (runtime values) wins
        props.update(parse_build_prop(read_text(root, f, limit=1 << 20)))
    gp = find_binary("getprop", root)
    if gp:
        props.update(parse_getprop(run([gp])))
    return props


def _android(root: str, env: Mapping[str, str], run: Runner) -> dict[str, Any] | None:
    termux = TERMUX_MARKER in env.get("PREFIX", "")
    if not termux and not os.path.isfile(_path(root, "system/build.prop")):
        return None
    props = android_props(root, run)

    def prop(key: str) -> str | None:
        v = props.get(key, "").strip()
        return v or None

    model = prop("ro.product.model")
    maker = prop("ro.product.manufacturer")
    soc = prop("ro.soc.model") or prop("ro.board.platform") or prop("ro.hardware")
    soc_maker = prop("ro.soc.manufacturer")
    release = prop("ro.build.version.release")
    sdk = prop("ro.build.version.sdk")
    os_name = f"Android {release}" if release else "Android"
    if sdk:
        os_name += f" (API {sdk})"
    return {
        "kind": "android",
        "label": f"android-{slug(model)}" if model else "android",
        "model": f"{maker} {model}" if maker and model and not model.lower().startswith(
            maker.lower()) else model,
        "manufacturer": maker,
        "soc": f"{soc_maker} {soc}" if soc_maker and soc else soc,
        "os": os_name,
        "termux": termux,
        "unified_memory": True,
        "gpu": None,
    }


# --------------------------------------------------------------------------- CUDA on a PC

def parse_nvidia_smi(text: str | None) -> list[dict[str, Any]]:
    """Rows of `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader`,
    e.g. 'NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.14'."""
    gpus = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0]:
            continue
        m = re.match(r"([\d.]+)\s*MiB", parts[1])
        gpus.append({"name": parts[0], "memory_total_mib": float(m.group(1)) if m else None,
                     "driver_version": parts[2] or None})
    return gpus


def _cuda_pc(root: str, run: Runner) -> list[dict[str, Any]]:
    smi = find_binary("nvidia-smi", root)
    if not smi:
        return []
    return parse_nvidia_smi(run([smi, "--query-gpu=name,memory.total,driver_version",
                                 "--format=csv,noheader"]))


def _gpu_label(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' -> 'rtx-4090'."""
    s = slug(name)
    for prefix in ("nvidia-", "geforce-", "tesla-", "quadro-"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return s


# --------------------------------------------------------------------------- plain CPU

def cpu_model(root: str) -> str | None:
    """CPU name from /proc/cpuinfo ('model name' on x86, 'Hardware'/'Model' on some ARM)."""
    info = read_text(root, "proc/cpuinfo", limit=1 << 20) or ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    for key in ("model name", "hardware", "model", "cpu model", "processor"):
        v = fields.get(key)
        if v and not v.isdigit():
            return v
    if os.path.abspath(root) == "/":  # no /proc (macOS, Windows)
        return platform.processor() or None
    return None


def os_name(root: str) -> str | None:
    """'Ubuntu 22.04.4 LTS' from os-release, 'macOS 14.5' on a Mac."""
    text = read_text(root, "etc/os-release") or read_text(root, "usr/lib/os-release")
    if text:
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
        if m and m.group(1):
            return m.group(1)
    if os.path.abspath(root) == "/" and platform.system() == "Darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    return None


def _mac(run: Runner) -> dict[str, Any]:
    brand = run(["sysctl", "-n", "machdep.cpu.brand_string"])
    hw = run(["sysctl", "-n", "hw.model"])
    apple = platform.machine() == "arm64"
    return {"model": hw, "soc": brand, "unified_memory": apple,
            "gpu": {"name": f"{brand} GPU", "backend": "metal", "memory": "shared with CPU"}
            if apple and brand else None}


# --------------------------------------------------------------------------- the profile

def device_profile(root: str = "/", *, env: Mapping[str, str] | None = None,
                   run: Runner | None = None) -> dict[str, Any]:
    """Describe this device (see the module doc).  Never raises.

    ``env`` defaults to os.environ for the real root and to {} for a fake tree; ``run`` runs a
    command and returns its stdout (tests pass a stand-in for nvpmodel/getprop/nvidia-smi).
    """
    real = os.path.abspath(root) == "/"
    env = (os.environ if real else {}) if env is None else env
    run = run or run_command
    machine = platform.machine() or None
    base: dict[str, Any] = {
        "kind": "cpu", "label": "cpu-" + (re.sub(r"[^a-z0-9_]+", "-", (machine or "").lower()) or "unknown"), "model": None, "soc": None,
        "os": None, "kernel": _first_line(read_text(root, "proc/sys/kernel/osrelease")),
        "machine": machine, "platform": platform.system() or None,
        "cpu_model": None, "unified_memory": False, "gpu": None, "gpus": None,
        "power_mode": None, "jetpack": None, "l4t": None, "errors": [],
    }
    try:
        base["cpu_model"] = cpu_model(root)
        base["os"] = os_name(root)
        if real and base["kernel"] is None:
            base["kernel"] = platform.release() or None
        found = _jetson(root, run) or _android(root, env, run)
        if found:
            base.update({k: v for k, v in found.items() if v is not None or k in ("gpu",)})
            if found["kind"] == "jetson" and base["os"] and found.get("l4t"):
                base["os"] = f"{base['os']} (L4T {found['l4t']})"
            return base
        if real and platform.system() == "Darwin":
            base.update(_mac(run))
            base["cpu_model"] = base["cpu_model"] or base["soc"]
        base["model"] = base["model"] or base["cpu_model"]
        gpus = _cuda_pc(root, run)
        if gpus:
            base.update(kind="cuda", label=f"cuda-{_gpu_label(gpus[0]['name'])}", gpu=gpus[0],
                        gpus=gpus if len(gpus) > 1 else None)
    except Exception as exc:  # noqa: BLE001 - a profile is best effort, never fatal
        base["errors"].append(f"{exc.__class__.__name__}: {exc}")
    return base
