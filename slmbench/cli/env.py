"""`slmbench env`: the device profile, the environment and one reading of every sensor."""

from __future__ import annotations

import argparse
import importlib
import json
import os
from typing import Any

from slmbench.errors import SlmbenchError

DESCRIPTION = """\
Show what slmbench knows about this device: the profile written to env.json with every run
(kind, label, board/phone model, SoC, OS, power mode, JetPack/L4T on a Jetson, GPU), the
software environment, and one reading of every sensor the benchmark samples during tests.

The 'sensors' part tells you what will be measured here:
  temperatures    kernel thermal zones and hwmon chips, in deg C
  cpu_mhz         current clock of every online core
  power.rapl      CPU package energy (x86 Linux; root-only on most distributions)
  power.battery   battery power, discharge positive (phones, laptops on battery)
  power.tegrastats  Jetson board power rails (VDD_IN / POM_5V_IN / VIN ...)
If no power source is readable, results carry temperatures and clocks but no energy.

examples:
  slmbench env                 human-readable summary
  slmbench env --json          the same as JSON (the device part is env.json's "device")
  sudo slmbench env            on x86 Linux: check that RAPL energy becomes readable
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--no-tegrastats", action="store_true",
                        help="do not start tegrastats for a one-line power reading (Jetson)")
    parser.add_argument("--root", default="/", metavar="DIR",
                        help="read /proc, /sys and /etc below DIR instead of / "
                             "(to inspect a copied tree; default /)")


def collect(root: str = "/", *, tegrastats: bool = True) -> dict[str, Any]:
    """The environment (slmbench.envinfo when present) with the device profile and a sensor
    snapshot; envinfo describes this machine, so it is only used for the real root."""
    from slmbench.devices import device_profile
    from slmbench.sensors import snapshot

    out: dict[str, Any] = {}
    env_error = None
    if os.path.abspath(root) == "/":
        try:
            envinfo = importlib.import_module("slmbench.envinfo")
        except ImportError:
            envinfo = None
        if envinfo is not None:
            try:
                out = dict(envinfo.collect_env())
            except Exception as exc:  # noqa: BLE001 - still show the device and sensors
                env_error = f"slmbench.envinfo.collect_env failed: {exc.__class__.__name__}: {exc}"
    if "device" not in out:
        out["device"] = device_profile(root)
    out["sensors"] = snapshot(root, tegrastats_timeout_s=3.0 if tegrastats else 0.0)
    if env_error:
        out["env_error"] = env_error
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    if value is None:
        return "-"
    return str(value)


def _print_dict(d: dict[str, Any], indent: int = 2) -> None:
    width = max((len(str(k)) for k in d), default=0)
    for k, v in d.items():
        if isinstance(v, dict) and v:
            print(" " * indent + f"{k}:")
            _print_dict(v, indent + 2)
        else:
            print(" " * indent + f"{str(k):<{width}}  {_fmt(v)}")


def print_text(info: dict[str, Any]) -> None:
    dev = info.get("device") or {}
    print(f"device: {dev.get('label')}  ({dev.get('kind')})")
    _print_dict({k: v for k, v in dev.items() if v not in (None, [], {}) and k != "label"})
    rest = {k: v for k, v in info.items() if k not in ("device", "sensors")}
    if rest:
        print("environment:")
        _print_dict(rest)
    sens = info.get("sensors") or {}
    print("sensors:")
    temps = sens.get("temperatures_c") or {}
    if temps:
        hot = sorted(temps.items(), key=lambda kv: -kv[1])
        print(f"  temperatures  {len(temps)} sensors, hottest "
              + ", ".join(f"{n} {v:.1f} C" for n, v in hot[:4]))
    else:
        print("  temperatures  none readable")
    mhz = sens.get("cpu_mhz") or {}
    if mhz:
        vals = list(mhz.values())
        print(f"  cpu clocks    {len(vals)} cores, {min(vals):.0f}-{max(vals):.0f} MHz")
    else:
        print("  cpu clocks    not readable (no cpufreq)")
    for name, value in (sens.get("power") or {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
        print(f"  power {name:<10} {value}")
    ts = sens.get("tegrastats")
    if ts:
        print(f"  tegrastats    {ts.get('power_rail')} = {_fmt(ts.get('power_w'))} W")
    for err in sens.get("errors") or []:
        print(f"  error: {err}")


def run(args: argparse.Namespace) -> int:
    root = args.root
    if not os.path.isdir(root):
        raise SlmbenchError(f"--root {root}: not a directory; pass the top of a copied tree "
                            "(it should contain proc/, sys/ or etc/)")
    info = collect(root, tegrastats=not args.no_tegrastats)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=False, default=str))
    else:
        print_text(info)
    return 0
