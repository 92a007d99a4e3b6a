"""device_profile on fake Jetson / Android / CUDA / plain trees, and `slmbench env`."""

from __future__ import annotations

import json
import os
import platform

import pytest

from slmbench.cli import main
from slmbench.devices import (device_profile, jetpack_for_l4t, jetson_family, parse_getprop,
                              parse_nv_tegra_release, parse_nvidia_smi, parse_nvpmodel)


def write(root, rel: str, data) -> str:
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return path


def binary(root, rel: str) -> None:
    os.chmod(write(root, rel, "#!/bin/sh\nexit 0\n"), 0o755)


class FakeRun:
    """Stands in for the device's own commands: returns canned stdout, records each call."""

    def __init__(self, outputs: dict[str, str | None]):
        self.outputs, self.calls = outputs, []

    def __call__(self, cmd: list[str]) -> str | None:
        self.calls.append(cmd)
        return self.outputs.get(os.path.basename(cmd[0]))


def refuse(cmd: list[str]) -> str | None:
    raise AssertionError(f"no command should run here: {cmd}")


NANO_RELEASE = ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
                "DATE: Sat Feb 19 17:05:08 UTC 2022\n"
                "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
ORIN_RELEASE = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
                "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n")
NVPMODEL_Q = "NV Power Mode: MAXN\n0\n"
PIXEL_GETPROP = """[ro.boot.hardware.sku]: [G1MNW]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.brand]: [google]
[ro.product.manufacturer]: [Google]
[ro.product.model]: [Pixel 8]
[ro.soc.manufacturer]: [Google]
[ro.soc.model]: [Tensor G3]
[ro.hardware]: [shiba]
"""


# --------------------------------------------------------------------------- parsers

def test_l4t_release_and_jetpack_table():
    assert parse_nv_tegra_release(NANO_RELEASE) == "32.7.1"
    assert parse_nv_tegra_release(ORIN_RELEASE) == "36.4.3"
    assert parse_nv_tegra_release("# R35 (release), REVISION: 4.1, GCID: 1") == "35.4.1"
    assert parse_nv_tegra_release("# R38 (release), REVISION: 2, GCID: 1") == "38.2.0"
    assert parse_nv_tegra_release("garbage") is None and parse_nv_tegra_release(None) is None
    assert jetpack_for_l4t("32.7.1") == "4.6.1" and jetpack_for_l4t("36.4.3") == "6.2"
    assert jetpack_for_l4t("35.4.1") == "5.1.2" and jetpack_for_l4t("38.4.0") == "7.1"
    assert jetpack_for_l4t("36.9.9") == "6.x" and jetpack_for_l4t("99.1.0") is None


def test_small_parsers():
    assert parse_nvpmodel(NVPMODEL_Q) == "MAXN"
    assert parse_nvpmodel("NV Power Mode: 15W\n2") == "15W" and parse_nvpmodel("") is None
    props = parse_getprop(PIXEL_GETPROP + "garbage line\n")
    assert props["ro.product.model"] == "Pixel 8" and len(props) == 9
    gpus = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.14\n"
                            "NVIDIA A100-SXM4-80GB, 81920 MiB, 550.54.14\n\n")
    assert gpus[0] == {"name": "NVIDIA GeForce RTX 4090", "memory_total_mib": 24564.0,
                       "driver_version": "550.54.14"} and len(gpus) == 2
    assert parse_nvidia_smi("No devices were found") == []


@pytest.mark.parametrize("model, compatible, family", [
    ("NVIDIA Jetson Nano Developer Kit", ["nvidia,p3450-0000", "nvidia,tegra210"], "nano"),
    ("NVIDIA Orin Jetson-Small Developer Kit",   # JetPack 5 devkit: the part number decides
     ["nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"], "orin-nano"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
     ["nvidia,p3768-0000+p3767-0000", "nvidia,p3767-0000", "nvidia,tegra234"], "orin-nx"),
    ("NVIDIA Jetson AGX Orin Developer Kit",
     ["nvidia,p3737-0000+p3701-0005", "nvidia,p3701-0005", "nvidia,tegra234"], "agx-orin"),
    ("Jetson-AGX", ["nvidia,p2972-0000", "nvidia,tegra194"], "agx-xavier"),
    ("NVIDIA Jetson Xavier NX Developer Kit", ["nvidia,tegra194"], "xavier-nx"),
    ("NVIDIA Jetson AGX Thor Developer Kit", ["nvidia,tegra264"], "agx-thor"),
    ("quill", ["nvidia,quill", "nvidia,tegra186"], "tx2"),
    (None, [], None),
])
def test_jetson_family(model, compatible, family):
    assert jetson_family(model, compatible) == family


# --------------------------------------------------------------------------- profiles

def test_plain_linux_tree(tmp_path):
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD Ryzen 7 7840U\n")
    write(tmp_path, "etc/os-release", 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n')
    write(tmp_path, "proc/sys/kernel/osrelease", "6.5.0-41-generic\n")
    p = device_profile(str(tmp_path), run=refuse)
    assert p["kind"] == "cpu" and p["label"] == f"cpu-{platform.machine().lower()}"
    assert p["model"] == p["cpu_model"] == "AMD Ryzen 7 7840U"
    assert p["os"] == "Ubuntu 22.04.4 LTS" and p["kernel"] == "6.5.0-41-generic"
    assert p["gpu"] is None and p["unified_memory"] is False and p["errors"] == []
    json.dumps(p)


def test_arm_cpuinfo_without_model_name(tmp_path):
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 38.40\nCPU part\t: 0xd0b\n\n"
                                    "Hardware\t: Qualcomm Technologies, Inc SM8450\n")
    assert device_profile(str(tmp_path), run=refuse)["cpu_model"].startswith("Qualcomm")


def test_empty_tree_never_raises(tmp_path):
    p = device_profile(str(tmp_path), run=refuse)
    assert p["kind"] == "cpu" and p["model"] is None and p["os"] is None and p["errors"] == []


def test_jetson_orin_nx_jetpack6(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", ORIN_RELEASE)
    write(tmp_path, "proc/device-tree/model",
          b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    write(tmp_path, "proc/device-tree/compatible",
          b"nvidia,p3768-0000+p3767-0000\x00nvidia,p3767-0000\x00nvidia,tegra234\x00")
    write(tmp_path, "etc/os-release", 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\n')
    write(tmp_path, "usr/local/cuda/version.json",
          '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "12.6.68"\n   }\n}\n')
    binary(tmp_path, "usr/sbin/nvpmodel")
    run = FakeRun({"nvpmodel": NVPMODEL_Q})
    p = device_profile(str(tmp_path), run=run)
    assert p["kind"] == "jetson" and p["label"] == "jetson-orin-nx"
    assert p["model"] == "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
    assert p["l4t"] == "36.4.3" and p["jetpack"] == "6.2" and p["power_mode"] == "MAXN"
    assert p["soc"] == "Orin (T234)" and p["unified_memory"] is True
    assert p["gpu"]["compute_capability"] == "8.7" and p["gpu"]["cuda_version"] == "12.6.68"
    assert p["os"] == "Ubuntu 22.04.5 LTS (L4T 36.4.3)"
    assert run.calls == [[os.path.join(str(tmp_path), "usr/sbin/nvpmodel"), "-q"]]


def test_jetson_nano_jetpack4_without_nvpmodel(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", NANO_RELEASE)
    write(tmp_path, "proc/device-tree/model", b"NVIDIA Jetson Nano Developer Kit\x00")
    write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 10.2.300\n")
    p = device_profile(str(tmp_path), run=refuse)   # no nvpmodel binary: nothing may run
    assert p["label"] == "jetson-nano" and p["jetpack"] == "4.6.1" and p["power_mode"] is None
    assert p["gpu"]["cuda_version"] == "10.2.300" and p["errors"] == []


def test_jetson_with_odd_files(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", b"\xff\xfe garbage \x00\x01")
    os.makedirs(tmp_path / "proc/device-tree/model")     # a directory where a file should be
    binary(tmp_path, "usr/sbin/nvpmodel")
    p = device_profile(str(tmp_path), run=FakeRun({"nvpmodel": "ERROR: no permission"}))
    assert p["kind"] == "jetson" and p["label"] == "jetson"
    assert p["l4t"] is None and p["jetpack"] is None and p["power_mode"] is None
    assert p["errors"] == []


def test_android_build_prop_only(tmp_path):
    write(tmp_path, "system/build.prop", "# begin build properties\nro.product.model=SM-S911B\n"
                                         "ro.product.manufacturer=samsung\n"
                                         "ro.build.version.release=14\nro.board.platform=kalama\n")
    p = device_profile(str(tmp_path), run=refuse)
    assert p["kind"] == "android" and p["label"] == "android-sm-s911b"
    assert p["model"] == "samsung SM-S911B" and p["soc"] == "kalama" and p["os"] == "Android 14"
    assert p["termux"] is False and p["unified_memory"] is True


def test_android_termux_with_getprop(tmp_path):
    binary(tmp_path, "system/bin/getprop")
    env = {"PREFIX": "/data/data/com.termux/files/usr"}
    run = FakeRun({"getprop": PIXEL_GETPROP})
    p = device_profile(str(tmp_path), env=env, run=run)
    assert p["kind"] == "android" and p["label"] == "android-pixel-8" and p["termux"] is True
    assert p["model"] == "Google Pixel 8" and p["soc"] == "Google Tensor G3"
    assert p["os"] == "Android 14 (API 34)" and len(run.calls) == 1


def test_not_android_without_termux_or_build_prop(tmp_path):
    p = device_profile(str(tmp_path), env={"PREFIX": "/usr"}, run=refuse)
    assert p["kind"] == "cpu"


def test_cuda_pc(tmp_path):
    binary(tmp_path, "usr/bin/nvidia-smi")
    run = FakeRun({"nvidia-smi": "NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.14\n"
                                 "NVIDIA GeForce RTX 3060, 12288 MiB, 550.54.14\n"})
    p = device_profile(str(tmp_path), run=run)
    assert p["kind"] == "cuda" and p["label"] == "cuda-rtx-4090"
    assert p["gpu"]["memory_total_mib"] == 24564.0 and len(p["gpus"]) == 2
    assert run.calls[0][1:] == ["--query-gpu=name,memory.total,driver_version",
                                "--format=csv,noheader"]


def test_nvidia_smi_failing_leaves_a_cpu_profile(tmp_path):
    binary(tmp_path, "usr/bin/nvidia-smi")
    p = device_profile(str(tmp_path), run=FakeRun({"nvidia-smi": None}))
    assert p["kind"] == "cpu" and p["gpu"] is None


def test_real_machine_profile_is_json():
    p = device_profile()
    assert p["kind"] in ("cpu", "jetson", "android", "cuda") and p["label"]
    json.dumps(p)


# --------------------------------------------------------------------------- slmbench env

def test_env_json_on_a_fake_jetson(tmp_path, capsys):
    write(tmp_path, "etc/nv_tegra_release", ORIN_RELEASE)
    write(tmp_path, "proc/device-tree/model", b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    write(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "47125\n")
    assert main(["env", "--json", "--root", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["device"]["label"] == "jetson-agx-orin" and info["device"]["jetpack"] == "6.2"
    assert info["sensors"]["temperatures_c"] == {"cpu-thermal": 47.125}
    assert info["sensors"]["power"]["tegrastats"] == "not present"


def test_env_text_and_bad_root(tmp_path, capsys):
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1400000\n")
    assert main(["env", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device: cpu-") and "1 cores, 1400-1400 MHz" in out
    assert main(["env", "--root", str(tmp_path / "missing")]) == 2
    assert "--root" in capsys.readouterr().err
