"""Sensor parsing, sampling on fake sysfs trees, energy integration and throttle rules."""

from __future__ import annotations

import glob
import json
import os
import stat
import sys
import time

import pytest

from slmbench import sensors
from slmbench.sensors import (SensorSampler, battery_power_w, detect_throttle, integrate_power,
                              parse_jtop_stats, parse_tegrastats_line, rapl_energy, summarize,
                              temp_c_from_raw)

DATA = os.path.join(os.path.dirname(__file__), "data", "sensors")


def lines(name: str) -> list[str]:
    with open(os.path.join(DATA, name)) as fh:
        return [ln.rstrip("\n") for ln in fh if ln.strip() and not ln.startswith("#")]


def write(root, rel: str, text: str) -> None:
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


# --------------------------------------------------------------------------- tegrastats lines

def test_every_sample_file_parses_ram_and_cpu():
    files = sorted(glob.glob(os.path.join(DATA, "tegrastats_*.txt")))
    assert len(files) >= 8
    for f in files:
        for line in lines(os.path.basename(f)):
            d = parse_tegrastats_line(line)
            assert d["ram_used_mb"] < d["ram_total_mb"], f
            assert d["cpu_mhz"] and all(m is None or 100 <= m <= 4000 for m in d["cpu_mhz"]), f
            json.dumps(d, allow_nan=False)


def test_jetpack4_nano_unitless_rails():
    d = parse_tegrastats_line(lines("tegrastats_jp4_nano.txt")[0])
    assert d["rails_mw"] == {"POM_5V_IN": 4520, "POM_5V_GPU": 0, "POM_5V_CPU": 1078}
    assert d["rails_avg_mw"]["POM_5V_IN"] == 4680
    assert d["power_w"] == pytest.approx(4.52) and d["power_rail"] == "POM_5V_IN"
    assert d["gpu_load_pct"] == 0 and d["gpu_mhz"] == 76
    assert d["emc_load_pct"] == 10 and d["emc_mhz"] == 1600
    assert d["cpu_load_pct"] == [30, 33, 28, 26] and d["cpu_mhz"] == [1036] * 4
    assert d["temps_c"]["thermal"] == 59.75 and d["temps_c"]["PMIC"] == 100
    assert d["swap_used_mb"] == 149 and d["swap_cached_mb"] == 7
    assert "IRAM" not in d["rails_mw"]   # 'IRAM 0/252kB' is memory, not a rail


def test_jetpack4_tx2_gpu_without_clock_and_vdd_in_not_first():
    d = parse_tegrastats_line(lines("tegrastats_jp4_tx2.txt")[0])
    assert d["gpu_load_pct"] == 0 and "gpu_mhz" not in d
    assert d["emc_load_pct"] == 0 and "emc_mhz" not in d
    assert d["power_rail"] == "VDD_IN" and d["power_w"] == pytest.approx(3.14)
    assert d["rails_mw"]["VDD_SYS_GPU"] == 153 and d["rails_avg_mw"]["VDD_SYS_DDR"] == 601
    assert "swap_used_mb" not in d


def test_jetpack4_xavier_negative_temperatures():
    d = parse_tegrastats_line(lines("tegrastats_jp4_agx_xavier.txt")[0])
    assert d["temps_c"]["BCPU"] == -45 and d["temps_c"]["GPU"] == -51
    assert d["gpu_load_pct"] == 37 and d["gpu_mhz"] == 1300
    assert d["power_w"] == pytest.approx(14.025)


def test_l4t28_common_cpu_clock():
    first, second = (parse_tegrastats_line(x) for x in lines("tegrastats_l4t28_tx1.txt"))
    assert first["cpu_load_pct"] == [17, 13, 29, 5] and first["cpu_mhz"] == [408] * 4
    assert second["cpu_mhz"] == [1734] * 4
    assert second["gpu_load_pct"] == 39 and second["gpu_mhz"] == 76
    assert second["emc_mhz"] == 1600 and "rails_mw" not in second


def test_jetpack5_bracketed_gpu_and_mw_rails():
    d = parse_tegrastats_line(lines("tegrastats_jp5_xavier_nx.txt")[0])
    assert d["time"] == "07-09-2024 13:31:31"
    assert d["gpu_mhz"] == 114 and d["gpu_gpc_mhz"] == [114] and d["gpu_load_pct"] == 0
    assert d["rails_mw"] == {"VDD_IN": 2763, "VDD_CPU_GPU_CV": 650, "VDD_SOC": 650}
    assert d["rails_avg_mw"]["VDD_SOC"] == 711
    assert d["power_w"] == pytest.approx(2.763)


def test_agx_orin_sums_rails_and_keeps_disabled_sensors_raw():
    d = parse_tegrastats_line(lines("tegrastats_jp5_agx_orin.txt")[0])
    assert d["gpu_gpc_mhz"] == [0, 0]
    assert d["temps_c"]["CV0"] == -256 and d["temps_c"]["tj"] == pytest.approx(44.343)
    # no VDD_IN on AGX Orin: module input = sum of the connected rails (NC = not connected)
    assert d["power_w"] == pytest.approx((2340 + 390 + 4025 + 301) / 1000)
    assert d["power_rail"] == "sum:VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO"


def test_jetpack6_lines():
    a, b, c = (parse_tegrastats_line(x) for x in lines("tegrastats_jp6_agx_orin.txt"))
    assert a["cpu_mhz"][:4] == [2188, 2112, 2035, 2201] and len(a["cpu_mhz"]) == 12
    assert a["temps_c"] == {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562,
                            "soc1": 49.656}
    assert b["rails_avg_mw"]["VIN_SYS_5V0"] == 4657 and b["rails_mw"]["VIN_SYS_5V0"] == 4607
    assert c["emc_load_pct"] == 2
    idle, busy = (parse_tegrastats_line(x) for x in lines("tegrastats_jp6_orin_nano.txt"))
    assert idle["gpu_load_pct"] == 0 and idle["gpu_mhz"] == 305
    assert busy["gpu_load_pct"] == 99 and busy["gpu_mhz"] == 612
    assert busy["power_w"] == pytest.approx(16.321) and busy["power_rail"] == "VDD_IN"
    assert busy["temps_c"]["gpu"] == pytest.approx(58.625)


def test_jetpack7_thor_and_orin_forms():
    rows = [parse_tegrastats_line(x) for x in lines("tegrastats_jp7_thor.txt")]
    assert rows[0]["gpu_gpc_mhz"] == [0, 0, 0] and "gpu_load_pct" not in rows[0]
    assert rows[0]["power_rail"] == "sum:VDD_GPU+VDD_CPU_SOC_MSS+VIN_SYS_5V0"
    assert rows[1]["cpu_mhz"][8] == 2601
    assert rows[3]["power_rail"] == "VIN" and rows[3]["power_w"] == pytest.approx(16.802)
    assert "GR3D" not in str(rows[3].get("gpu_gpc_mhz"))
    d = parse_tegrastats_line(lines("tegrastats_jp7_orin_fragment.txt")[0])
    assert d["gpu_load_pct"] == 0 and d["gpu_gpc_mhz"] == [1300, 1300] and d["gpu_mhz"] == 1300
    assert d["temps_c"] == {"cpu": 52.968}   # 'cpu@52.968C/52.968C': value, then its limit


def test_gpc_array_with_an_off_gpc():
    d = parse_tegrastats_line("GR3D_FREQ @[300,off,600] EMC_FREQ 0%")
    assert d["gpu_gpc_mhz"] == [300, None, 600] and d["gpu_mhz"] == 600
    d = parse_tegrastats_line("CPU [12%@1190,off,off,3%@1190] GR3D_FREQ 0%@306")
    assert d["cpu_mhz"] == [1190, None, None, 1190] and d["cpu_load_pct"][1] is None
    assert d["gpu_mhz"] == 306


def test_garbage_line_gives_empty_dict():
    assert parse_tegrastats_line("") == {}
    assert parse_tegrastats_line("tegrastats: permission denied") == {}


def test_jtop_stats_dict():
    d = parse_jtop_stats({"time": "x", "CPU1": 5, "GPU": 42, "Temp CPU": 46.0, "Temp GPU": 45.5,
                          "Power VDD_IN": 5035, "Power VDD_SOC": 1200, "Power TOT": 5035,
                          "jetson_clocks": "OFF", "nvp model": "MAXN"})
    assert d["temps_c"] == {"CPU": 46.0, "GPU": 45.5}
    assert d["power_w"] == pytest.approx(5.035) and d["power_rail"] == "TOT"
    assert d["rails_mw"] == {"VDD_IN": 5035, "VDD_SOC": 1200} and d["gpu_load_pct"] == 42


# --------------------------------------------------------------------------- units and signs

def test_temperature_units():
    assert temp_c_from_raw(45500) == 45.5      # milli-°C (kernel thermal zones)
    assert temp_c_from_raw(-256000) == -256    # Jetson's disabled sensor
    assert temp_c_from_raw(355) == 35.5        # deci-°C (some Android drivers)
    assert temp_c_from_raw(41) == 41           # plain °C


@pytest.mark.parametrize("ua", [500_000, -500_000])
def test_battery_discharging_is_positive_whatever_the_driver_sign(ua):
    w, how = battery_power_w(3_850_000, ua, "Discharging")
    assert w == pytest.approx(1.925) and "Discharging" in how


def test_battery_other_states_and_units():
    assert battery_power_w(3_850_000, 500_000, "Charging")[0] == pytest.approx(-1.925)
    assert battery_power_w(3_850_000, -10, "Full")[0] is None
    assert battery_power_w(4_200_000, 0, "Not charging")[0] is None
    # no status: kernel ABI sign (negative = discharging)
    assert battery_power_w(3_850_000, -500_000, None)[0] == pytest.approx(1.925)
    assert battery_power_w(3_850_000, 500_000, "Unknown")[0] == pytest.approx(-1.925)
    assert battery_power_w(3_850_000, 500, "Discharging")[0] == pytest.approx(1.925)  # mA
    assert battery_power_w(3850, 500_000, "Discharging")[0] == pytest.approx(1.925)   # mV
    assert battery_power_w(None, None, "Discharging", power_uw=12_500_000)[0] == 12.5


# --------------------------------------------------------------------------- energy

def test_trapezoid_energy_by_hand():
    pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 3.0)]
    e, cov = integrate_power(pts, 0.0, 2.0)
    assert e == pytest.approx((1 + 3) / 2 + 3.0) and cov == 2.0
    e, cov = integrate_power(pts, 0.5, 1.5)     # edges interpolated: 2 W at 0.5, 3 W at 1.5
    assert e == pytest.approx((2 + 3) / 2 * 0.5 + 3 * 0.5) and cov == 1.0
    e, cov = integrate_power(pts, 1.5, 5.0)     # not extrapolated past the last sample
    assert e == pytest.approx(1.5) and cov == 0.5
    assert integrate_power(pts[:1], 0, 1) == (None, 0.0)


def test_rapl_wraparound_by_hand():
    rng = 1_000_000_000                         # counter range 1000 J
    pts = [(0.0, 999_000_000), (1.0, 1_000_000), (2.0, 3_000_000)]
    e, cov = rapl_energy(pts, 0.0, 2.0, rng)
    assert e == pytest.approx(2.0 + 2.0) and cov == 2.0
    e, _ = rapl_energy(pts, 0.5, 2.0, rng)      # half of the first second's 2 J
    assert e == pytest.approx(3.0)


def test_summarize_rapl_energy_per_token():
    samples = [{"t": t, "src": "sysfs", "rapl_uj": {"package-0": c, "intel-rapl:0:0:core": c // 2},
                "cpu_mhz": {"cpu0": 2400.0, "cpu1": 2400.0}, "temps_c": {"x86_pkg_temp": 60.0}}
               for t, c in [(10.0, 999_000_000), (11.0, 1_000_000), (12.0, 3_000_000)]]
    out = summarize(samples, 10.0, 12.0, n_decode_tokens=40,
                    rapl_max_uj={"package-0": 1_000_000_000})
    assert out["power_source"] == "rapl:package-0"
    assert out["energy_j"] == pytest.approx(4.0) and out["avg_power_w"] == pytest.approx(2.0)
    assert out["j_per_decode_token"] == pytest.approx(0.1) and out["j_per_prefill_token"] is None
    assert "intel-rapl:0:0:core" in out["power_sources"]["rapl_other"]   # reported, not summed
    assert out["temp_max_c"] == 60.0 and out["cpu_mhz_max"] == 2400.0
    assert out["throttled"] is False and out["throttle_reasons"] == []
    json.dumps(out, allow_nan=False)


def test_summarize_battery_and_busy_time():
    samples = [{"t": float(t), "src": "sysfs", "battery_w": w} for t, w in [(0, 1), (1, 2), (2, 3)]]
    out = summarize(samples, 0.0, 2.0, n_prefill_tokens=100)
    assert out["power_source"] == "battery"
    assert out["energy_j"] == pytest.approx(1.5 + 2.5) and out["avg_power_w"] == pytest.approx(2.0)
    assert out["j_per_prefill_token"] == pytest.approx(0.04)
    out = summarize(samples, 0.0, 2.0, n_prefill_tokens=100, busy_s=0.5)  # 0.5 s timed at 2 W
    assert out["j_per_prefill_token"] == pytest.approx(0.01)


def test_summarize_charging_battery_is_not_used():
    samples = [{"t": float(t), "src": "sysfs", "battery_w": -2.0} for t in range(3)]
    out = summarize(samples, 0.0, 2.0, n_decode_tokens=10)
    assert out["power_source"] is None and out["energy_j"] is None
    assert any("charging" in n for n in out["notes"])


def test_summarize_prefers_board_rail_and_splits_prefill_decode():
    board = [parse_tegrastats_line(x) for x in lines("tegrastats_jp6_orin_nano.txt")]
    samples = []
    for i in range(5):   # tegrastats at 16.321 W, RAPL-like counter too (must lose priority)
        s = dict(board[1], t=float(i), src="tegrastats")
        samples.append(s)
        samples.append({"t": float(i), "src": "sysfs", "rapl_uj": {"package-0": i * 1_000_000}})
    out = summarize(samples, 0.0, 4.0, n_prefill_tokens=64, n_decode_tokens=32,
                    t_prefill_end=1.0)
    assert out["power_source"] == "tegrastats:VDD_IN"
    assert out["energy_j"] == pytest.approx(16.321 * 4)
    assert out["j_per_prefill_token"] == pytest.approx(16.321 / 64, rel=1e-4)
    assert out["j_per_decode_token"] == pytest.approx(16.321 * 3 / 32, rel=1e-4)
    assert out["j_per_token"] == pytest.approx(16.321 * 4 / 96, rel=1e-4)
    assert out["power_sources"]["rapl"]["avg_power_w"] == pytest.approx(1.0)
    assert out["gpu_mhz_max"] == 612 and out["temp_max_c"] == pytest.approx(58.625)


def test_summarize_interpolates_energy_across_a_short_window():
    samples = [{"t": 0.0, "src": "sysfs", "rapl_uj": {"package-0": 0}},
               {"t": 1.0, "src": "sysfs", "rapl_uj": {"package-0": 10_000_000}}]
    out = summarize(samples, 0.25, 0.45, n_prefill_tokens=2)   # no sample inside the window
    assert out["energy_j"] == pytest.approx(2.0) and out["avg_power_w"] == pytest.approx(10.0)
    assert out["j_per_prefill_token"] == pytest.approx(1.0)


def test_summarize_without_samples_is_all_none_but_valid():
    out = summarize([], 0.0, 1.0, n_decode_tokens=5)
    assert out["power_source"] is None and out["temp_max_c"] is None
    assert out["cpu_mhz_min"] is None and out["throttled"] is False
    json.dumps(out, allow_nan=False)


# --------------------------------------------------------------------------- throttling

def test_steady_series_is_not_throttled():
    cpu = [2400, 2380, 2400, 2390, 2400, 2395, 2400, 2385] * 3
    tokens = [10.0, 10.2, 9.9, 10.1] * 10
    assert detect_throttle(cpu_mhz=cpu, temps_c=[("cpu", 70.0), ("PMIC", 100.0),
                                                 ("CV0", -256.0)],
                           token_ms=tokens) == (False, [])


def test_clock_ramp_up_is_not_a_drop_but_a_sustained_drop_is():
    assert detect_throttle(cpu_mhz=[800, 1400, 2400, 2400, 2400])[0] is False
    assert detect_throttle(cpu_mhz=[2400, 2400, 2000, 2400, 2400])[0] is False   # one dip
    flag, reasons = detect_throttle(cpu_mhz=[2400, 2400, 2400, 1900, 1900, 1900])
    assert flag and "CPU clock fell 21%" in reasons[0] and "2400 -> 1900" in reasons[0]
    flag, reasons = detect_throttle(gpu_mhz=[1300, 1300, 900, 900])
    assert flag and reasons[0].startswith("GPU clock")


def test_temperature_threshold():
    flag, reasons = detect_throttle(temps_c=[("cpu", 70.0), ("tj", 86.5)])
    assert flag and "tj reached 86.5 C" in reasons[0]
    assert detect_throttle(temps_c=[("tj", 86.5)], temp_threshold_c=90.0)[0] is False


def test_latency_drift():
    rising = [10.0] * 10 + [10.5] * 10 + [11.0] * 10 + [11.5] * 10    # +15 %
    flag, reasons = detect_throttle(token_ms=rising)
    assert flag and "drifted +15%" in reasons[0]
    per_rep = [[10.0] * 12 + [12.0] * 4, [10.0] * 12 + [12.0] * 4]    # nested: by position
    assert detect_throttle(token_ms=per_rep)[0] is True
    assert detect_throttle(token_ms=[10.0, 20.0, 30.0])[0] is False    # too few tokens


def test_summarize_flags_clock_drop_after_settling():
    # fastest core 2400 MHz, then capped at 1500 MHz; the first 0.5 s (turbo settling) ignored
    samples = [{"t": i * 0.1, "src": "sysfs",
                "cpu_mhz": {"cpu0": 2400.0 if i < 20 else 1500.0, "cpu1": 800.0}}
               for i in range(40)]
    out = summarize(samples, 0.0, 3.9)
    assert out["throttled"] is True and out["cpu_mhz_max"] == 2400 and out["cpu_mhz_min"] == 1500
    settle = [{"t": i * 0.1, "src": "sysfs", "cpu_mhz": {"cpu0": 4700.0 if i < 3 else 3900.0}}
              for i in range(30)]
    assert summarize(settle, 0.0, 2.9)["throttled"] is False
    hot = [{"t": i * 0.1, "src": "sysfs", "temps_c": {"cpu": 80.0 + i}} for i in range(10)]
    out = summarize(hot, 0.0, 0.9, temp_threshold_c=85.0)
    assert out["throttled"] and out["temp_max_c"] == 89.0 and out["temp_start_c"] == 80.0


# --------------------------------------------------------------------------- sampler on fake trees

def fake_sysfs(root, *, current_ua: str = "-500000", status: str = "Discharging") -> None:
    write(root, "sys/class/thermal/thermal_zone0/type", "x86_pkg_temp\n")
    write(root, "sys/class/thermal/thermal_zone0/temp", "45000\n")
    write(root, "sys/class/thermal/thermal_zone1/type", "acpitz\n")
    write(root, "sys/class/thermal/thermal_zone1/temp", "27800\n")
    write(root, "sys/class/thermal/thermal_zone2/type", "gpu-thermal\n")
    write(root, "sys/class/thermal/thermal_zone2/temp", "-256000\n")
    write(root, "sys/class/hwmon/hwmon0/name", "coretemp\n")
    write(root, "sys/class/hwmon/hwmon0/temp1_input", "52000\n")
    write(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2400000\n")
    write(root, "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "1800000\n")
    write(root, "sys/devices/system/cpu/cpu2/online", "0\n")   # offline core: no cpufreq dir
    write(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n")
    write(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n")
    write(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n")
    write(root, "sys/class/powercap/intel-rapl:0:0/name", "core\n")
    write(root, "sys/class/powercap/intel-rapl:0:0/energy_uj", "400000\n")
    write(root, "sys/class/power_supply/AC/type", "Mains\n")
    write(root, "sys/class/power_supply/battery/type", "Battery\n")
    write(root, "sys/class/power_supply/battery/status", status + "\n")
    write(root, "sys/class/power_supply/battery/voltage_now", "3850000\n")
    write(root, "sys/class/power_supply/battery/current_now", current_ua + "\n")
    write(root, "sys/class/power_supply/battery/temp", "312\n")


@pytest.mark.parametrize("current", ["-500000", "500000"])   # both driver sign conventions
def test_sample_now_reads_the_fake_tree(tmp_path, current):
    fake_sysfs(tmp_path, current_ua=current)
    s = SensorSampler(str(tmp_path), tegrastats=False).start()
    try:
        x = s.sample_now()
    finally:
        s.stop()
    assert x["temps_c"]["x86_pkg_temp"] == 45.0 and x["temps_c"]["acpitz"] == 27.8
    assert x["temps_c"]["coretemp/Package id 0"] == 52.0
    assert x["temps_c"]["gpu-thermal"] == -256.0 and x["temps_c"]["battery"] == 31.2
    assert x["cpu_mhz"] == {"cpu0": 2400.0, "cpu1": 1800.0}
    assert x["rapl_uj"] == {"package-0": 1000000, "intel-rapl:0:0:core": 400000}
    assert x["battery_w"] == pytest.approx(1.925)
    assert s.rapl_max_uj["package-0"] == 262143328850
    assert s.sources["battery"] == "battery" and s.errors == []


def test_unreadable_rapl_is_reported_not_raised(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    fake_sysfs(tmp_path)
    os.chmod(tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj", 0)
    s = SensorSampler(str(tmp_path), tegrastats=False).start()
    s.stop()
    assert "package-0" not in s.sources["rapl"] and "root-only" in s.sources["rapl_note"]


def test_sampler_thread_collects_at_about_the_interval(tmp_path):
    fake_sysfs(tmp_path)
    rapl = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    with SensorSampler(str(tmp_path), interval_s=0.05, tegrastats=False) as s:
        t0 = time.monotonic()
        time.sleep(0.15)
        rapl.write_text("3000000\n")      # the open handle must see the new value
        time.sleep(0.15)
        t1 = time.monotonic()
    sysfs = [x for x in s.samples if x["src"] == "sysfs"]
    assert 4 <= len(sysfs) <= 12, len(sysfs)     # ~0.3 s / 0.05 s, plus start and stop samples
    assert sysfs[0]["rapl_uj"]["package-0"] == 1000000
    assert sysfs[-1]["rapl_uj"]["package-0"] == 3000000
    ts = [x["t"] for x in sysfs]
    assert ts == sorted(ts)
    out = s.summary(t0, t1, n_decode_tokens=4)
    assert out["power_source"] == "rapl:package-0" and out["energy_j"] == pytest.approx(2.0, rel=0.35)
    assert out["temp_max_c"] == 52.0 and out["temp_max_sensor"] == "coretemp/Package id 0"
    assert out["throttled"] is False
    json.dumps(out, allow_nan=False)


def test_sampler_samples_carry_the_rapl_range_so_wraps_are_unwrapped(tmp_path):
    fake_sysfs(tmp_path)
    write(tmp_path, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "5000000\n")
    rapl = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    s = SensorSampler(str(tmp_path), interval_s=60, tegrastats=False).start()
    try:
        a = s.sample_now()
        rapl.write_text("4500000\n")      # +3.5 J
        s.sample_now()
        rapl.write_text("1000000\n")      # wrapped at 5 J: +1.5 J
        b = s.sample_now()
    finally:
        s.stop()
    out = summarize(s.samples, a["t"], b["t"], n_prefill_tokens=10)   # no rapl_max_uj passed
    assert out["energy_j"] == pytest.approx(5.0) and out["j_per_prefill_token"] == pytest.approx(0.5)


def test_sampler_on_an_empty_tree_records_nothing_and_never_raises(tmp_path):
    with SensorSampler(str(tmp_path), interval_s=0.02) as s:
        time.sleep(0.05)
    assert s.errors == [] and s.sources["temperatures"] == [] and s.sources["rapl"] == []
    out = summarize(s.samples, s.t_start, s.t_stop)
    assert out["power_source"] is None and out["temp_max_c"] is None


def test_tegrastats_process_is_streamed_and_stopped(tmp_path):
    """A stand-in `tegrastats` below the fake root prints real JetPack 6 lines at --interval."""
    src = os.path.join(DATA, "tegrastats_jp6_orin_nano.txt")
    script = tmp_path / "usr" / "bin" / "tegrastats"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1])\n"
        f"rows = [l for l in open({src!r}) if l.strip() and not l.startswith('#')]\n"
        "i = 0\n"
        "while True:\n"
        "    print(rows[i % len(rows)].strip(), flush=True)\n"
        "    i += 1\n"
        "    time.sleep(ms / 1000)\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    s = SensorSampler(str(tmp_path), interval_s=0.05).start()
    proc = s._proc
    assert proc is not None and proc.args[-2:] == ["--interval", "50"]
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and sum(x["src"] == "tegrastats" for x in s.samples) < 4:
        time.sleep(0.02)
    s.stop()
    assert proc.poll() is not None                   # the child was terminated and reaped
    rows = [x for x in s.samples if x["src"] == "tegrastats"]
    assert len(rows) >= 4 and rows[0]["power_rail"] == "VDD_IN"
    assert {r["power_w"] for r in rows} <= {5.251, 16.321}
    assert s.sources["tegrastats"].endswith("tegrastats")
    out = summarize(s.samples, rows[0]["t"], rows[-1]["t"], n_decode_tokens=10)
    assert out["power_source"] == "tegrastats:VDD_IN"
    assert 5.251 <= out["avg_power_w"] <= 16.321


def test_missing_tegrastats_binary_is_an_error_string(tmp_path):
    s = SensorSampler(str(tmp_path), tegrastats=str(tmp_path / "nope")).start()
    s.stop()
    assert any("tegrastats" in e for e in s.errors)


def test_snapshot_lists_sources(tmp_path):
    fake_sysfs(tmp_path)
    snap = sensors.snapshot(str(tmp_path))
    assert snap["temperatures_c"]["x86_pkg_temp"] == 45.0
    assert snap["cpu_mhz"]["cpu1"] == 1800.0
    assert snap["power"]["rapl"].startswith("readable: package-0")
    assert snap["power"]["battery"]["power_w"] == pytest.approx(1.925)
    assert snap["power"]["tegrastats"] == "not present"
    json.dumps(snap, allow_nan=False)
