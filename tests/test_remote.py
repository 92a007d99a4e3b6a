"""Remote runs over a real OpenSSH server on 127.0.0.1: round trip, a dropped connection,
and clear errors.  The "remote device" is this machine, reached through sshd."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

import sshserver
from slmbench.errors import SlmbenchError
from slmbench.remote import run_remote

reason = sshserver.available()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")
# the remote side runs this checkout's slmbench with this Python (sshd does not pass PYTHONPATH)
SLMBENCH = sshserver.remote_slmbench()


@pytest.fixture()
def sshd(tmp_path):
    srv = sshserver.SSHServer(tmp_path / "sshd").start()
    yield srv
    srv.stop()


def suite_file(tmp_path, model: str, reps: int = 2) -> str:
    p = tmp_path / "remote-suite.yaml"
    p.write_text(f"name: remote-test\nmodels: ['{model}']\nn_prompt: [32]\nn_gen: [8]\n"
                 f"repetitions: {reps}\nwarmup: 0\nthreads: [1, 2]\ntimeout_s: 120\n")
    return str(p)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x]


def test_round_trip(tmp_path, sshd, tiny_model):
    out = io.StringIO()
    local = run_remote(sshd.user_host, suite_file(tmp_path, tiny_model), [],
                       str(tmp_path / "local"), "run-remote-1", ssh_opts=sshd.client_opts,
                       port=sshd.port, remote_slmbench=SLMBENCH,
                       remote_dir=str(tmp_path / "remote"), poll_s=0.3, out=out)
    recs = records(local)
    assert local == tmp_path / "local" / "run-remote-1"
    assert sorted(r["settings"]["n_threads"] for r in recs) == [1, 2]
    assert all(r["status"] == "ok" for r in recs)
    assert json.loads((local / "manifest.json").read_text())["status"] == "finished"
    assert "started" in out.getvalue() and "copied" in out.getvalue()


def test_survives_a_dropped_connection(tmp_path, sshd, tiny_model):
    """sshd goes away mid-run and comes back: the run continues there and is fetched once."""
    out = io.StringIO()

    manifest = tmp_path / "remote" / "results" / "run-remote-2" / "manifest.json"
    seen_at_start: list = []

    def outage():
        deadline = time.monotonic() + 30
        while "started" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        # the launch returns at once (it once waited for the whole run over its ssh session)
        seen_at_start.append(json.loads(manifest.read_text())["status"]
                             if manifest.exists() else None)
        sshd.stop()
        # stay down until the client has noticed (bounded), so the reconnect is always exercised
        deadline = time.monotonic() + 15
        while "connection lost" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        sshd.start()

    t = threading.Thread(target=outage)
    t.start()
    local = run_remote(sshd.user_host, suite_file(tmp_path, tiny_model, reps=30), [],
                       str(tmp_path / "local"), "run-remote-2", ssh_opts=sshd.client_opts,
                       port=sshd.port, remote_slmbench=SLMBENCH,
                       remote_dir=str(tmp_path / "remote"), poll_s=0.3, out=out)
    t.join()
    assert seen_at_start in ([None], ["running"])
    recs = records(local)
    assert len(recs) == 2 and len({r["record_id"] for r in recs}) == 2
    assert "connection lost" in out.getvalue()


def test_clear_errors(tmp_path, sshd):
    with pytest.raises(SlmbenchError, match="slmbench is not installed"):
        run_remote(sshd.user_host, None, [], str(tmp_path), "x", ssh_opts=sshd.client_opts,
                   port=sshd.port, remote_slmbench="/nonexistent/slmbench")
    # a suite that cannot start there fails at once with its message, no relaunch loop
    bad = tmp_path / "bad-suite.yaml"
    bad.write_text("models: ['./only-here.gguf']\n")
    out = io.StringIO()
    with pytest.raises(SlmbenchError, match="stopped before it started: .*only-here.gguf"):
        run_remote(sshd.user_host, str(bad), [], str(tmp_path / "l"), "run-bad",
                   ssh_opts=sshd.client_opts, port=sshd.port, remote_slmbench=SLMBENCH,
                   remote_dir=str(tmp_path / "remote"), poll_s=0.3, out=out)
    assert "resuming" not in out.getvalue()
    sshd.stop()
    with pytest.raises(SlmbenchError, match="cannot reach"):
        run_remote(sshd.user_host, None, [], str(tmp_path), "x", ssh_opts=sshd.client_opts,
                   port=sshd.port, remote_slmbench=SLMBENCH)


def test_local_files_are_pushed_once(tmp_path, sshd, tiny_models):
    """--push-files: models and the quality corpus are copied to the device (once: a second
    run finds them there), the suite is rewritten to use the copies, results come back."""
    from slmbench.remote import pushed_suite
    from slmbench.suite import load_suite

    corpus = tmp_path / "text.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. " * 400, encoding="utf-8")
    src = tmp_path / "push-suite.yaml"
    src.write_text(f"models: ['{tiny_models['Q8_0']}', '{tiny_models['Q4_0']}']\n"
                   "n_prompt: [16]\nn_gen: [4]\nrepetitions: 1\nwarmup: 0\nthreads: 1\n"
                   "quality: {corpus: text.txt, n_ctx: 64, chunks: 1}\n")
    remote_dir = tmp_path / "remote"
    for i in (1, 2):
        suite_path = str(tmp_path / f"pushed-{i}.yaml")
        push = pushed_suite(load_suite(str(src)), suite_path)
        assert sorted(push.values()) == ["files/text.txt", "files/tiny-Q4_0.gguf",
                                         "files/tiny-Q8_0.gguf"]
        out = io.StringIO()
        local = run_remote(sshd.user_host, suite_path, [], str(tmp_path / "local"),
                           f"run-push-{i}", ssh_opts=sshd.client_opts, port=sshd.port,
                           remote_slmbench=SLMBENCH, remote_dir=str(remote_dir), poll_s=0.3,
                           push=push, out=out)
        recs = records(local)
        assert [r["status"] for r in recs] == ["ok"] * 4
        assert all(r["model"]["path"].startswith(str(remote_dir / "files")) for r in recs)
        assert {r["model_id"] for r in recs} == {"tiny"}
        copied = out.getvalue().count("copying")
        assert copied == (3 if i == 1 else 0), out.getvalue()
