"""Fleet runs: Ansible inventories (both readers), --limit, and a fleet of two "devices" - two
real OpenSSH servers on 127.0.0.1 - one of which goes away mid-run (and its run is killed, as
by a reboot): the other completes, the lost one is reported, then resumed; the fleet report
puts both devices side by side."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

import sshserver
from slmbench.errors import ConfigError
from slmbench.inventory import load_inventory, read_builtin

HAVE_ANSIBLE = shutil.which("ansible-inventory") is not None
needs_ansible = pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core not installed "
                                   "(pip install ansible-core; .ci/run installs it)")

YAML_INV = """\
all:
  vars:
    ansible_user: fleet
    slmbench_venv: ~/slmbench-venv
    level: all
  hosts:
    loose.example:
  children:
    devices:
      vars:
        level: devices
      children:
        jetsons:
        phones:
    jetsons:
      vars:
        level: jetsons
        ansible_ssh_common_args: -o StrictHostKeyChecking=no -o "ProxyJump=gw user"
      hosts:
        jetson-[01:02]:
          ansible_port: 2222
        orin:
          ansible_host: 10.0.0.5
          slmbench_device: orin-nx-lab
          slmbench_remote: python3 -m slmbench
          level: orin
    phones:
      hosts:
        pixel:8022:
          ansible_host: 192.168.1.20
          ansible_ssh_private_key_file: ~/.ssh/phone
"""

INI_INV = """\
# the same fleet in INI
loose.example

[jetsons]
jetson-[01:02] ansible_port=2222
orin ansible_host=10.0.0.5 slmbench_device=orin-nx-lab slmbench_remote="python3 -m slmbench" level=orin

[phones]
pixel:8022 ansible_host=192.168.1.20 ansible_ssh_private_key_file=~/.ssh/phone

[devices:children]
jetsons
phones

[jetsons:vars]
level=jetsons
ansible_ssh_common_args=-o StrictHostKeyChecking=no -o "ProxyJump=gw user"

[devices:vars]
level=devices

[all:vars]
ansible_user=fleet
slmbench_venv=~/slmbench-venv
level=all
"""


def write_inv(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / ("inventory.yml" if kind == "yaml" else "inventory.ini")
    p.write_text(YAML_INV if kind == "yaml" else INI_INV)
    return p


def check_fleet(inv) -> None:
    assert set(inv.hosts) == {"loose.example", "jetson-01", "jetson-02", "orin", "pixel"}
    j1, orin, pixel = inv.hosts["jetson-01"], inv.hosts["orin"], inv.hosts["pixel"]
    assert (j1.target, j1.port) == ("fleet@jetson-01", 2222)
    assert j1.ssh_opts == ["-o", "StrictHostKeyChecking=no", "-o", "ProxyJump=gw user"]
    assert j1.remote_slmbench == "~/slmbench-venv/bin/slmbench" and j1.device is None
    assert (orin.target, orin.port, orin.device) == ("fleet@10.0.0.5", None, "orin-nx-lab")
    assert orin.remote_slmbench == "python3 -m slmbench"
    assert (pixel.target, pixel.port) == ("fleet@192.168.1.20", 8022)
    assert pixel.ssh_opts == ["-i", os.path.expanduser("~/.ssh/phone")]
    # precedence: all < devices < jetsons < host
    assert [inv.hosts[h].vars["level"] for h in ("loose.example", "jetson-01", "orin", "pixel")] \
        == ["all", "jetsons", "orin", "devices"]
    assert set(j1.groups) == {"all", "devices", "jetsons"}
    assert inv.hosts["loose.example"].groups == ["all", "ungrouped"]
    assert inv.hosts["loose.example"].remote_dir == ".cache/slmbench/remote"


@pytest.mark.parametrize("kind", ["yaml", "ini"])
def test_builtin_reader(tmp_path, kind):
    inv = read_builtin(write_inv(tmp_path, kind))
    assert inv.reader == "built-in"
    check_fleet(inv)
    # where each variable was set
    where = inv.hosts["orin"].where
    assert where["level"].endswith(":26" if kind == "yaml" else ":6")
    assert where["ansible_user"].endswith(":3" if kind == "yaml" else ":23")


@needs_ansible
@pytest.mark.parametrize("kind", ["yaml", "ini"])
def test_ansible_reader_agrees(tmp_path, kind):
    path = write_inv(tmp_path, kind)
    a, b = load_inventory(path, "ansible"), read_builtin(path)
    assert a.reader == "ansible-inventory"
    check_fleet(a)
    for name in b.hosts:
        assert a.hosts[name].vars == b.hosts[name].vars, name
        assert a.hosts[name].groups == b.hosts[name].groups, name


def test_group_and_host_vars_dirs(tmp_path):
    path = write_inv(tmp_path, "ini")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("level: group_vars-all\nextra: 1\n")
    (tmp_path / "group_vars" / "phones.yaml").write_text("level: group_vars-phones\n")
    (tmp_path / "host_vars" / "orin").mkdir(parents=True)
    (tmp_path / "host_vars" / "orin" / "main.yml").write_text("\nslmbench_device: orin-b\n")
    for inv in [read_builtin(path)] + ([load_inventory(path, "ansible")] if HAVE_ANSIBLE else []):
        h = inv.hosts
        # inventory-file group vars < group_vars/all < group_vars/<group> < host line < host_vars
        assert h["loose.example"].vars["level"] == "group_vars-all"
        assert h["jetson-01"].vars["level"] == "group_vars-all"  # file vars of jetsons lose
        assert h["pixel"].vars["level"] == "group_vars-phones"
        assert h["orin"].vars["level"] == "orin" and h["orin"].device == "orin-b"
        assert h["jetson-02"].vars["extra"] == 1
    assert read_builtin(path).hosts["orin"].where["slmbench_device"].endswith("main.yml:2")


@pytest.mark.parametrize("kind", ["yaml", "ini"])
def test_limit(tmp_path, kind):
    inv = read_builtin(write_inv(tmp_path, kind))

    def sel(pattern):
        return [h.name for h in inv.select(pattern)]

    assert sel(None) == sel("all") == sel("*") == list(inv.hosts)
    assert sel("jetsons") == ["jetson-01", "jetson-02", "orin"]
    assert sel("devices") == ["jetson-01", "jetson-02", "orin", "pixel"]
    assert sel("pixel") == ["pixel"]
    assert sel("jetson-*") == ["jetson-01", "jetson-02"]
    assert sel("jetsons:!jetson-02") == sel("jetsons,!jetson-02") == ["jetson-01", "orin"]
    assert sel("devices:&phones") == ["pixel"]
    assert sel("!devices") == ["loose.example"]
    assert sel("pixel,orin") == ["orin", "pixel"]  # inventory order
    with pytest.raises(ConfigError, match=r"no host or group named 'jetson' .*groups: devices, "
                                          r"jetsons, phones"):
        inv.select("jetson")
    with pytest.raises(ConfigError, match="leaves no host"):
        inv.select("phones:&jetsons")
    with pytest.raises(ConfigError, match="regular expressions"):
        inv.select("~jet.*")


@pytest.mark.parametrize("text, message", [
    ("[jetsons]\nj1\n[jetsons:varz]\nx=1\n", r"inv\.ini:3: section \[jetsons:varz\]"),
    ("[jetsons]\nj1 ansible_port\n", r"inv\.ini:2: 'ansible_port': expected VAR=VALUE"),
    ("[all:children]\njetsons\n", r"inv\.ini:2: .*names group 'jetsons', which is not defined"),
    ("[jetsons]\nj1:22x\n", r"inv\.ini:2: 'j1:22x': after ':' comes a port"),
    ("[jetsons]\nj1\n[phones:vars]\na=1\n", r"inv\.ini:3: \[phones:vars\] for group 'phones'"),
    ("[jetsons]\nj[1:x]\n", r"inv\.ini:2: .*a host range is numbers"),
    ("[jet sons]\nj1\n", r"inv\.ini:1: .*not a section header"),
    ("[a:children]\nb\n[b:children]\na\n[a]\n[b]\n", r"groups contain each other: "),
])
def test_ini_errors_name_the_line(tmp_path, text, message):
    p = tmp_path / "inv.ini"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        read_builtin(p)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("all:\n  hosts:\n    a: {ansible_port: 22\n", r"inv\.yml:4: not valid YAML"),
    ("all:\n  hosts:\n    - a\n    - b\n", r"inv\.yml:3: the hosts of group 'all' must be a "
                                          "mapping"),
    ("all:\n  children:\n    g:\n      vars: [1]\n", r"inv\.yml:4: the vars of group 'g' must"),
    ("plugin: amazon.aws.aws_ec2\n", r"inv\.yml:1: an inventory plugin .* needs Ansible"),
    ("", r"inv\.yml: the inventory is empty"),
])
def test_yaml_errors_name_the_line(tmp_path, text, message):
    p = tmp_path / "inv.yml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_builtin(p)


def test_bad_variables_name_their_line(tmp_path):
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    a:\n      ansible_port: twenty\n")
    with pytest.raises(ConfigError, match=r"inv\.yml:4: host a: ansible_port 'twenty' is not"):
        _ = read_builtin(p).hosts["a"].port
    p.write_text("all:\n  hosts:\n    a:\n      slmbench_remote: [x]\n")
    with pytest.raises(ConfigError, match=r"inv\.yml:4: host a: slmbench_remote must be a str"):
        _ = read_builtin(p).hosts["a"].remote_slmbench


@needs_ansible
def test_ansible_errors_are_one_line(tmp_path):
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  hosts:\n    a: {ansible_port: 22\n")
    with pytest.raises(ConfigError, match=r"inv\.yml:4: not valid YAML"):  # the built-in's line
        load_inventory(p, "ansible")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "x.yml").write_text("all:\n  hosts:\n    - a\n")
    with pytest.raises(ConfigError, match="ansible-inventory cannot read it") as err:
        load_inventory(d, "ansible")
    assert "\n" not in str(err.value)


def test_missing_inventory_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such inventory file"):
        load_inventory(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="inventory directory needs Ansible's reader"):
        read_builtin(tmp_path)


# --------------------------------------------------------------------------- display

def test_display_one_line_per_host():
    from slmbench.fleet import FleetDisplay

    plain = io.StringIO()
    d = FleetDisplay(["jetson-01", "pixel"], plain, tty=False)
    d.status("jetson-01", "[3/8] qwen2.5-0.5b:Q4_K_M t4: tg32 1/5")
    d.status("jetson-01", "[3/8] qwen2.5-0.5b:Q4_K_M t4: tg32 1/5")  # unchanged: not repeated
    d.event("pixel", "FAILED: cannot reach")
    assert plain.getvalue().splitlines() == [
        "jetson-01 [3/8] qwen2.5-0.5b:Q4_K_M t4: tg32 1/5", "pixel     FAILED: cannot reach"]
    term = io.StringIO()
    d = FleetDisplay(["jetson-01", "pixel"], term, tty=True)
    d.event("pixel", "FAILED: cannot reach")
    d.status("jetson-01", "[1/2] tiny:Q8_0 t1: pp32 1/2")
    d.close()
    out = term.getvalue()
    assert "\033[2F" in out  # the block of two lines is redrawn in place
    last = out.split("\033[2F")[-1]
    assert re.sub(r"\033\[[0-9]*[A-Za-z]", "", last).splitlines() == [
        "jetson-01 [1/2] tiny:Q8_0 t1: pp32 1/2", "pixel     FAILED: cannot reach"]


# --------------------------------------------------------------------------- fleet directories

def fake_fleet(root: Path, name: str, devices: dict[str, str | None]) -> Path:
    """A fleet directory whose hosts ran (label) or failed (None), with copied runs."""
    d = root / name
    d.mkdir(parents=True)
    hosts = []
    for host, label in devices.items():
        run_id = f"{name}-{host}"
        if label:
            (d / run_id).mkdir()
            (d / run_id / "results.jsonl").write_text("")
            (d / run_id / "env.json").write_text(json.dumps({"device": {"label": label}}))
        hosts.append({"name": host, "run_id": run_id, "status": "ok" if label else "failed",
                      "error": None if label else "unreachable: cannot reach"})
    (d / "fleet.json").write_text(json.dumps({"fleet_id": name, "hosts": hosts}))
    return d


def test_expand_run_paths_and_pairs(tmp_path, capsys):
    from slmbench.errors import ResultsFormatError
    from slmbench.fleet import expand_run_paths, run_pairs

    a = fake_fleet(tmp_path, "fleet-a", {"h1": "lab-a", "h2": "lab-b", "h3": None})
    b = fake_fleet(tmp_path, "fleet-b", {"h1": "lab-a", "h2": "lab-b", "h4": "lab-c"})
    single = tmp_path / "run-x"
    assert expand_run_paths([a, single]) == [str(a / "fleet-a-h1"), str(a / "fleet-a-h2"),
                                             str(single)]
    assert "host h3 has no results (unreachable: cannot reach)" in capsys.readouterr().err
    assert run_pairs(single, tmp_path / "run-y") == [(None, str(single), str(tmp_path / "run-y"))]
    pairs = run_pairs(a, b)
    assert [(d, Path(x).name, Path(y).name) for d, x, y in pairs] == [
        ("lab-a", "fleet-a-h1", "fleet-b-h1"), ("lab-b", "fleet-a-h2", "fleet-b-h2")]
    assert "no counterpart on the other side for device(s) lab-c" in capsys.readouterr().err
    # a fleet against one run: that run's device
    assert [d for d, *_ in run_pairs(a, b / "fleet-b-h2")] == ["lab-b"]
    empty = fake_fleet(tmp_path, "fleet-c", {"h1": None})
    with pytest.raises(ResultsFormatError, match="no host of this fleet has results yet"):
        expand_run_paths([empty])
    twins = fake_fleet(tmp_path, "fleet-d", {"h1": "same", "h2": "same"})
    with pytest.raises(ConfigError, match="two runs of device 'same'"):
        run_pairs(twins, a)


@pytest.mark.parametrize("hosts, message", [
    (["h1"], r"hosts\[0\] is str, expected an object"),
    ([{"name": 3}], r"hosts\[0\]\.name is 3, expected str"),
    ([{"run_id": "r"}], r"hosts\[0\]\.name is None, expected str"),
    ([{"name": "h1"}, {"name": "h2", "port": "22"}], r"hosts\[1\]\.port is '22', expected int"),
    ([{"name": "h1", "status": "done"}], r"hosts\[0\]\.status is 'done', expected one of ok"),
])
def test_damaged_fleet_manifest_is_one_line_error(tmp_path, hosts, message, capsys):
    """A hand-edited or damaged fleet.json: report, analyze and compare stop with one line
    naming the file and the host field, never a traceback."""
    from slmbench.cli import main

    d = fake_fleet(tmp_path, "fleet-a", {"h1": "lab-a"})
    (d / "fleet.json").write_text(json.dumps({"fleet_id": "fleet-a", "hosts": hosts}))
    for argv in (["analyze", str(d)], ["compare", str(d), str(d)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "fleet.json" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- real fleets

ssh_reason = sshserver.available()
needs_sshd = pytest.mark.skipif(ssh_reason is not None, reason=ssh_reason or "")


@pytest.fixture()
def two_sshd(tmp_path):
    servers = [sshserver.SSHServer(tmp_path / f"sshd-{x}").start() for x in "ab"]
    yield servers
    for s in servers:
        s.stop()


def fleet_suite(tmp_path: Path, tiny_models: dict[str, str]) -> str:
    p = tmp_path / "fleet-suite.yaml"
    p.write_text(f"name: fleet-test\nmodels: ['{tiny_models['Q8_0']}', '{tiny_models['Q4_0']}']\n"
                 "n_prompt: [16]\nn_gen: [8]\nrepetitions: 3\nwarmup: 0\nthreads: [1, 2]\n"
                 "timeout_s: 120\n")
    return str(p)


def host_vars(srv, tmp_path: Path, label: str) -> dict:
    return {**srv.inventory_vars(), "slmbench_device": label,
            "slmbench_remote_dir": str(tmp_path / f"device-{label}")}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x]


@needs_sshd
def test_fleet_of_two_devices(tmp_path, two_sshd, tiny_models):
    """dev-b's sshd stops mid-run and its run is killed (a reboot): dev-a completes, dev-b is
    reported, a host without slmbench and an unreachable one are reported, the others go on;
    --resume brings dev-b back (relaunched with --resume there) and the fleet report has a
    column per device."""
    from slmbench.fleet import read_fleet, run_fleet

    a, b = two_sshd
    inv = tmp_path / "fleet.yml"
    inv.write_text(yaml.safe_dump({"all": {
        "vars": {"slmbench_remote": sshserver.remote_slmbench()},
        "children": {
            "lab": {"hosts": {"dev-a": host_vars(a, tmp_path, "lab-a"),
                              "dev-b": host_vars(b, tmp_path, "lab-b")}},
            "broken": {"hosts": {
                "no-slmbench": {**a.inventory_vars(), "slmbench_remote": "/nonexistent/slmbench"},
                "down": {**a.inventory_vars(), "ansible_port": sshserver._free_port()}}}}}}))
    out = io.StringIO()
    b_dir = tmp_path / "device-lab-b"

    def reboot_b():  # once dev-b measures: its sshd goes away and its run dies
        deadline = time.monotonic() + 60
        while not re.search(r"^dev-b\s+\[1/4\]", out.getvalue(), re.M) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        b.stop()
        pid_files = list(b_dir.glob("fleet-*/pid"))
        if pid_files:
            os.kill(int(pid_files[0].read_text()), signal.SIGKILL)

    t = threading.Thread(target=reboot_b)
    t.start()
    res = run_fleet(fleet_suite(tmp_path, tiny_models), {}, inventory=inv,
                    results_dir=tmp_path / "results", fleet_id="fleet-t", poll_s=0.3,
                    max_unreachable_s=2, stream=out, tty=False)
    t.join()
    log = out.getvalue()
    status = {h["name"]: h for h in res.hosts}
    assert status["dev-a"]["status"] == "ok", log
    assert status["dev-a"]["counts"] == {"ok": 4, "failed": 0, "skipped": 0}
    assert status["dev-a"]["device"] == "lab-a"
    assert status["dev-b"]["status"] == "failed" and "unreachable: lost" in status["dev-b"]["error"]
    assert "slmbench is not installed" in status["no-slmbench"]["error"]
    assert "unreachable: cannot reach" in status["down"]["error"]
    assert res.exit_code == 1
    assert re.search(r"^dev-a\s+\[4/4\] ", log, re.M) and re.search(r"^down\s+FAILED", log, re.M)
    assert read_fleet(res.fleet_dir)["hosts"] == res.hosts  # fleet.json says the same
    assert len(records(res.fleet_dir / "fleet-t-dev-a")) == 4

    # dev-b comes back: the fleet goes on where it stopped, only dev-b is measured again
    b.start()
    out2 = io.StringIO()
    res2 = run_fleet(None, None, results_dir=tmp_path / "results", resume="fleet-t",
                     poll_s=0.3, max_unreachable_s=2, stream=out2, tty=False)
    status = {h["name"]: h for h in res2.hosts}
    assert status["dev-b"]["status"] == "ok", out2.getvalue()
    log2 = out2.getvalue()
    assert re.search(r"^dev-b\s+run fleet-t-dev-b resumed", log2, re.M), log2
    assert re.search(r"^dev-a\s+done before", log2, re.M)
    assert not re.search(r"^dev-a\s+\[", log2, re.M)  # dev-a is not measured again
    recs = records(res2.fleet_dir / "fleet-t-dev-b")
    assert len(recs) == 4 and len({r["record_id"] for r in recs}) == 4
    assert {r["device"] for r in recs} == {"lab-b"}
    assert res2.exit_code == 1  # the two broken hosts are still broken
    assert len(read_fleet(res2.fleet_dir)["resumes"]) == 1

    # the fleet directory in report and compare: devices side by side, host by host
    from slmbench.cli import main

    assert main(["report", str(res2.fleet_dir), "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    header = next(line for line in md.splitlines() if "lab-a" in line and "lab-b" in line)
    assert header.startswith("| model") and "fastest" in header
    assert main(["compare", str(res2.fleet_dir), str(res2.fleet_dir), "--metric",
                 "decode"]) == 0


@needs_sshd
def test_cli_fleet_run(tmp_path, two_sshd, tiny_models, capsys):
    """`slmbench run SUITE --hosts INV.ini --limit ...`: an INI inventory, --limit by group,
    --parallel 1; exit 1 when a host fails; --dry-run lists the hosts; bad input exits 2."""
    from slmbench.cli import main

    a, _b = two_sshd
    v = a.inventory_vars()
    inv = tmp_path / "fleet.ini"
    inv.write_text(
        "[lab]\n"
        f"dev-a ansible_host=127.0.0.1 ansible_port={v['ansible_port']} slmbench_device=lab-a\n"
        f"gone ansible_host=127.0.0.1 ansible_port={sshserver._free_port()}\n"
        "[other]\nnever-used ansible_host=192.0.2.1\n"
        "[lab:vars]\n"
        f"ansible_user={v['ansible_user']}\n"
        f"ansible_ssh_private_key_file={v['ansible_ssh_private_key_file']}\n"
        f"ansible_ssh_common_args=\"{v['ansible_ssh_common_args']}\"\n"
        f"slmbench_remote=\"{sshserver.remote_slmbench()}\"\n"
        f"slmbench_remote_dir={tmp_path / 'device'}\n")
    suite = tmp_path / "one.yaml"
    suite.write_text(f"models: ['{tiny_models['Q4_0']}']\nn_prompt: [16]\nn_gen: [4]\n"
                     "repetitions: 1\nwarmup: 0\nthreads: 1\n")
    results = str(tmp_path / "results")
    assert main(["run", str(suite), "--hosts", str(inv), "--limit", "lab", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "dev-a" in listed and "gone" in listed and "never-used" not in listed
    rc = main(["run", str(suite), "--hosts", str(inv), "--limit", "lab", "--parallel", "1",
               "--results", results, "--run-id", "fleet-cli", "-n", "8"])
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    assert re.search(r"^dev-a\s+\[1/1\] ", cap.err, re.M)
    assert re.search(r"^gone\s+FAILED: unreachable", cap.err, re.M)
    assert re.search(r"^dev-a\s+lab-a\s+ok\s+1\s+0\s+0$", cap.out, re.M)
    assert re.search(r"^gone: unreachable: cannot reach", cap.out, re.M)
    recs = records(Path(results) / "fleet-cli" / "fleet-cli-dev-a")
    assert [t["name"] for t in recs[0]["tests"] if t["name"].startswith("tg")] == ["tg8"]
    assert (Path(results) / "fleet-cli" / "logs" / "dev-a.log").read_text().count("[1/1]") >= 1
    # bad input: one line, exit 2, nothing started
    for argv, msg in [(["--limit", "nope"], "no host or group named 'nope'"),
                      (["--parallel", "0"], "--parallel 0"),
                      (["--run-id", "fleet-cli"], "already exists: continue it with --resume")]:
        assert main(["run", str(suite), "--hosts", str(inv), "--results", results, *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


# --------------------------------------------------------------------------- the playbook

PLAYBOOK = Path(__file__).resolve().parent.parent / "deploy" / "ansible" / "install.yml"
needs_playbook = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                    reason="ansible-core not installed (pip install "
                                    "ansible-core; .ci/run installs it)")


def cached_llama_wheel() -> bool:
    """install.sh keeps llama-cpp-python's wheel per flag set in ~/.cache/slmbench/pip-*."""
    return any(Path.home().glob(".cache/slmbench/pip-*/wheels/**/llama_cpp_python-*.whl"))


@needs_playbook
def test_playbook_syntax():
    proc = subprocess.run(["ansible-playbook", "--syntax-check", "-i",
                           str(PLAYBOOK.with_name("inventory.example.yml")), str(PLAYBOOK)],
                          capture_output=True, text=True, env={**os.environ,
                                                               "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    example = load_inventory(PLAYBOOK.with_name("inventory.example.yml"), "builtin")
    assert example.hosts["jetson-01"].remote_slmbench == "~/slmbench-venv/bin/slmbench"


@pytest.mark.slow
@needs_sshd
@needs_playbook
@pytest.mark.skipif(not cached_llama_wheel(), reason="no llama-cpp-python wheel in "
                    "~/.cache/slmbench/pip-*: the playbook would compile llama.cpp (~10 min); "
                    "run ./install.sh first")
def test_playbook_installs_a_device_the_fleet_then_uses(tmp_path, tiny_models):
    """deploy/ansible/install.yml over ssh into a fresh venv on a loopback "device" (reusing
    install.sh's cached llama.cpp build), then a fleet run that reaches it through
    slmbench_venv alone and pushes its model file."""
    import sys

    from slmbench.fleet import run_fleet

    srv = sshserver.SSHServer(tmp_path / "sshd").start()
    try:
        python = getattr(sys, "_base_executable", None) or sys.executable
        inv = tmp_path / "inventory.yml"
        inv.write_text(yaml.safe_dump({"all": {"hosts": {"device": {
            **srv.inventory_vars(), "ansible_python_interpreter": python,
            "slmbench_python": python, "slmbench_venv": str(tmp_path / "venv"),
            "slmbench_device": "installed", "slmbench_remote_dir": str(tmp_path / "device")}}}}))
        proc = subprocess.run(["ansible-playbook", "-i", str(inv), str(PLAYBOOK)],
                              capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "fleet runs reach it as" in proc.stdout
        suite = tmp_path / "suite.yaml"
        suite.write_text(f"models: ['{tiny_models['Q4_0']}']\nn_prompt: [16]\nn_gen: [4]\n"
                         "repetitions: 1\nwarmup: 0\nthreads: 1\n")
        res = run_fleet(str(suite), {}, inventory=inv, results_dir=tmp_path / "results",
                        push_files=True, poll_s=0.3, stream=io.StringIO(), tty=False)
        host = res.hosts[0]
        assert host["status"] == "ok", host
        assert host["remote_slmbench"] == f"{tmp_path / 'venv'}/bin/slmbench"
        assert host["device"] == "installed" and host["counts"]["ok"] == 1
    finally:
        srv.stop()
