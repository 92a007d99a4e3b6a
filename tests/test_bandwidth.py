"""The bandwidth probe's sizing and cache reading (the probe itself: test_measure)."""

from __future__ import annotations

import pytest

from slmbench.bandwidth import cache_sizes, last_level_cache, probe_size_mib


def _cache(root, cpu, index, level, kind, size):
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    (d / "level").write_text(f"{level}\n")
    (d / "type").write_text(f"{kind}\n")
    (d / "size").write_text(f"{size}\n")


def test_cache_sizes_from_sysfs_take_the_largest_core(tmp_path):
    _cache(tmp_path, 0, 0, 1, "Data", "32K")
    _cache(tmp_path, 0, 1, 1, "Instruction", "32K")
    _cache(tmp_path, 0, 2, 2, "Unified", "512K")  # a little core
    _cache(tmp_path, 7, 2, 2, "Unified", "2048K")  # a big core
    _cache(tmp_path, 7, 3, 3, "Unified", "8M")
    (tmp_path / "cpufreq").mkdir()  # not a cpu
    caches = cache_sizes(str(tmp_path))
    assert caches == {"L1d": 32768, "L1i": 32768, "L2": 2 << 20, "L3": 8 << 20}
    assert last_level_cache(caches) == 8 << 20
    assert last_level_cache({"L1d": 1, "L1i": 2}) == 1 and last_level_cache({}) is None
    assert cache_sizes(str(tmp_path / "missing")) == {}


def test_probe_size_is_twice_the_llc_within_bounds():
    assert probe_size_mib(None) == 256
    assert probe_size_mib(4 << 20) == 256  # Jetson Orin: 4 MiB L3
    assert probe_size_mib(260 << 20) == 520  # this VM's 260 MiB L3
    assert probe_size_mib(1 << 30) == 1024
    assert probe_size_mib(260 << 20, available_mib=1024) == 128  # a phone with 1 GiB free


def test_the_run_env_probes_each_thread_count_of_the_run(tmp_path, monkeypatch):
    """The runner passes its configs' thread counts; env.json keeps a figure for each."""
    import slmbench.bandwidth as bw
    from slmbench.results import run_env

    real = bw.probe_bandwidth
    monkeypatch.setattr(bw, "probe_bandwidth",
                        lambda threads, **kw: real(threads, size_mib=16, repeats=1))
    env = run_env(tmp_path, bandwidth=[4, 1, 4])
    assert [p.n_threads for p in env.bandwidth.threads] == [1, 4]
    assert env.bandwidth.at_threads(4)[1] == 4 and env.bandwidth.array_mib == 16
    assert env.bandwidth.cache_bytes == cache_sizes()


def test_cache_curve_and_the_miss_share_it_gives():
    """A real read-bandwidth-by-size curve, and the 0..1 share between cache and DRAM speed
    that slmbench.predict uses to place a model's cost per byte."""
    from slmbench.bandwidth import cache_curve, miss_share

    curve = cache_curve(1, (1, 4, 64), min_read_mib=64, repeats=1)
    assert [m for m, _ in curve] == [1.0, 4.0, 64.0] and all(g > 0 for _, g in curve)
    planted = [[8.0, 30.0], [32.0, 30.0], [64.0, 30.0], [96.0, 20.0], [128.0, 15.0],
               [256.0, 12.0]]
    shares = [miss_share(planted, m * 2**20) for m in (4, 32, 64, 80, 96, 128, 256, 1024)]
    assert shares[:3] == [0.0, 0.0, 0.0] and shares[-2:] == [1.0, 1.0]
    assert shares == sorted(shares) and 0 < shares[3] < shares[4] < shares[5] < 1
    # at 96 MiB: 1/20 GB/s is a third of the way from 1/30 to 1/12
    assert shares[4] == pytest.approx((1 / 20 - 1 / 30) / (1 / 12 - 1 / 30))
