"""Results shared through a Hugging Face dataset: push, pull and hf:// paths.

Every call is the real huggingface_hub (create_repo, preupload, LFS batch, commit, repo info,
tree, resolve) against tests/hubserver.py on 127.0.0.1.  Library calls pass ``endpoint=`` and
``cache_dir=``; the command-line tests run `slmbench` in a fresh process with HF_ENDPOINT,
HF_HOME, HF_TOKEN and HF_HUB_OFFLINE set, as a user would (huggingface_hub reads them once, at
import).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hubserver import HubServer
from slmbench.errors import ConfigError, HubError, SlmbenchError
from slmbench.schema import SCHEMA_VERSION
from slmbench.results import append_record, read_run, write_json_atomic
from slmbench.sharing import parse_hf_path, pull, push, resolve_run_path, resolve_run_paths
from test_compare import make_record

# huggingface_hub's own LFS upload (httpx data=) warns; nothing slmbench can change
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

W = "hf_writer"     # a token the test hub lets write
DS = "hf://datasets/team/slm-results"
REPO = "team/slm-results"


@pytest.fixture()
def hub(monkeypatch):
    from huggingface_hub import constants

    for key in [k for k in os.environ if k.startswith("HF_")]:
        monkeypatch.delenv(key)
    # LFS files (the report's PNGs) go through the LFS batch protocol the test hub speaks; with
    # hf_xet installed the client would use the Xet protocol, which it does not
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubServer() as srv:
        yield srv


def make_run(root: Path, name: str, device: str, version: str, *, tg_ms: float = 10.0,
             seed: int = 0, started: str = "2026-01-01T00:00:00+00:00") -> str:
    """A finished run directory as `slmbench run` leaves it, with a report and a stray model."""
    rng = np.random.default_rng(seed)
    d = root / name
    d.mkdir(parents=True)
    for model, quant in (("smollm2-135m", "Q8_0"), ("smollm2-135m", "Q4_K_M")):
        rec = make_record(rng, tg_ms=tg_ms, model=model, quant=quant)
        rec.run_id, rec.device, rec.started_at = name, device, started
        append_record(d, rec)
    write_json_atomic(d / "env.json", {"device": {"label": device, "kind": "cpu"},
                                       "cpu": {"model": "Test CPU"},
                                       "versions": {"llama_cpp_python": version,
                                                    "slmbench": "0.1.0"}})
    write_json_atomic(d / "manifest.json", {"run_id": name, "status": "finished",
                                            "started_at": started, "slmbench_version": "0.1.0"})
    (d / "report" / "figures").mkdir(parents=True)
    (d / "report" / "report.md").write_text("# report\n")
    (d / "report" / "figures" / "tg.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (d / "model.gguf").write_bytes(b"GGUF" + os.urandom(64))  # never uploaded
    (d / "report" / "notes.txt").write_text("not a report file")  # nor this
    return str(d)


def opts(hub, tmp_path, **kw):
    return dict(endpoint=hub.url, cache_dir=str(tmp_path / "hf-cache"), **kw)


def tree(hub) -> dict[str, bytes]:
    return hub.state.files(REPO)


def test_hf_paths_parse_and_bad_ones_say_what_to_write():
    ref = parse_hf_path("hf://datasets/team/slm-results@v2/runs/jetson/run-1/")
    assert (ref.repo_id, ref.revision, ref.path) == ("team/slm-results", "v2",
                                                     "runs/jetson/run-1")
    assert str(ref) == "hf://datasets/team/slm-results@v2/runs/jetson/run-1"
    assert parse_hf_path(f"{DS}/jetson").path == "runs/jetson"  # runs/ may be left out
    assert parse_hf_path(f"{DS}/runs").path == ""
    with pytest.raises(ConfigError, match="shared in a dataset repository; write "
                                          "hf://datasets/team/x"):
        parse_hf_path("hf://team/x")
    with pytest.raises(ConfigError, match="'team/' is not a dataset id"):
        parse_hf_path("hf://datasets/team")


def test_push_uploads_runs_index_and_card_in_one_commit_then_pull_gets_them_back(
        hub, tmp_path):
    hub.state.page_size = 3  # the tree listing is paginated (Link header), as on the hub
    a = make_run(tmp_path / "local", "run-a", "cpu-x86_64", "0.3.8")
    b = make_run(tmp_path / "local", "run-b", "jetson orin/nx", "0.3.9", seed=1)
    res = push([a, b], DS, token=W, **opts(hub, tmp_path))
    assert res.created and res.commit and res.new == ["runs/cpu-x86_64/run-a",
                                                      "runs/jetson-orin-nx/run-b"]
    files = tree(hub)
    run_a = {p for p in files if p.startswith("runs/cpu-x86_64/run-a/")}
    assert run_a == {f"runs/cpu-x86_64/run-a/{f}" for f in (
        "results.jsonl", "env.json", "manifest.json", "report/report.md",
        "report/figures/tg.png")}
    assert not [p for p in files if p.endswith((".gguf", ".txt"))]
    assert files["runs/cpu-x86_64/run-a/results.jsonl"] == Path(a, "results.jsonl").read_bytes()
    log = hub.state.repo(REPO)["log"]
    assert len(log) == 2  # the repository's first commit, then the push: one commit
    assert log[-1]["summary"] == ("slmbench push: 2 runs (cpu-x86_64/run-a, "
                                  "jetson-orin-nx/run-b)")
    index = [json.loads(x) for x in files["index.jsonl"].decode().splitlines()]
    assert [e["path"] for e in index] == ["runs/cpu-x86_64/run-a", "runs/jetson-orin-nx/run-b"]
    assert index[0]["models"] == ["smollm2-135m:Q4_K_M", "smollm2-135m:Q8_0"]
    assert index[0]["schema_version"] == SCHEMA_VERSION
    assert index[1]["llama_cpp_python"] == "0.3.9"
    card = files["README.md"].decode()
    assert card.startswith("---\npretty_name: slmbench results (team/slm-results)")
    assert (f"**2 runs** on **2 devices**, **1 model**; results schema version {SCHEMA_VERSION}"
            in card)
    assert "| jetson-orin-nx | cpu | Test CPU | 1 |" in card
    assert "| smollm2-135m | Q4_K_M, Q8_0 | cpu-x86_64, jetson-orin-nx | 2 |" in card
    assert f"slmbench history {DS} --by version" in card

    out = tmp_path / "pulled"
    got = pull(DS, out=out, **opts(hub, tmp_path))
    assert [(Path(r.path).relative_to(out).as_posix(), r.status) for r in got] == [
        ("cpu-x86_64/run-a", "new"), ("jetson-orin-nx/run-b", "new")]
    for name in ("results.jsonl", "env.json", "manifest.json", "report/figures/tg.png"):
        assert (out / "cpu-x86_64/run-a" / name).read_bytes() == Path(a, name).read_bytes()
    assert not (out / "cpu-x86_64/run-a/model.gguf").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp dir left
    assert read_run(out / "jetson-orin-nx/run-b").records[0].device == "jetson orin/nx"
    # a second pull is up to date; a local edit is kept unless --force
    assert {r.status for r in pull(DS, out=out, **opts(hub, tmp_path))} == {"up to date"}
    (out / "cpu-x86_64/run-a/env.json").write_text("{}")
    got = pull(DS, out=out, runs="run-a", **opts(hub, tmp_path))
    assert [r.status for r in got] == ["kept"]
    got = pull(DS, out=out, runs="cpu-*/run-a", force=True, **opts(hub, tmp_path))
    assert [r.status for r in got] == ["updated"]
    assert (out / "cpu-x86_64/run-a/env.json").read_bytes() == Path(a, "env.json").read_bytes()


def test_pushing_again_skips_unchanged_runs_and_replaces_changed_ones(hub, tmp_path):
    a = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    b = make_run(tmp_path, "run-b", "cpu", "0.3.9", seed=1)
    push([a], DS, token=W, **opts(hub, tmp_path))
    n_commits = len(hub.state.repo(REPO)["log"])
    res = push([a], DS, token=W, **opts(hub, tmp_path))
    assert res.commit is None and res.unchanged == ["runs/cpu/run-a"]
    assert len(hub.state.repo(REPO)["log"]) == n_commits
    # run-a resumed (one more record) and its report deleted; run-b is new
    append_record(a, make_record(np.random.default_rng(5), model="qwen2.5-0.5b"))
    for f in sorted(Path(a, "report").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    Path(a, "report").rmdir()
    res = push([a, b], DS, token=W, message="nightly", **opts(hub, tmp_path))
    assert (res.new, res.updated) == (["runs/cpu/run-b"], ["runs/cpu/run-a"])
    files = tree(hub)
    assert not [p for p in files if p.startswith("runs/cpu/run-a/report")]
    assert files["runs/cpu/run-a/results.jsonl"] == Path(a, "results.jsonl").read_bytes()
    assert hub.state.repo(REPO)["log"][-1]["summary"] == "nightly"
    index = [json.loads(x) for x in files["index.jsonl"].decode().splitlines()]
    assert len(index) == 2 and "qwen2.5-0.5b:Q8_0" in index[0]["models"]
    # hf://...@REVISION reads the dataset as it was at that commit
    first = hub.state.repo(REPO)["log"][1]["oid"]
    old = resolve_run_paths([f"hf://datasets/{REPO}@{first}"], **opts(hub, tmp_path))
    assert [Path(d).name for d in old] == ["run-a"] and Path(old[0], "report").is_dir()


def test_auth_failures_are_one_line_naming_hf_token(hub, tmp_path):
    run = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    cases = [(False, "creating the dataset needs a Hugging Face token (HTTP 401: You must be authenticated "
                     "to create a repo); set HF_TOKEN to a token with write access"),
             ("hf_wrong", "the hub refused the token (HTTP 401: Invalid credentials in "
                          "Authorization header) - HF_TOKEN is wrong or expired"),
             ("hf_reader", "is not allowed (HTTP 403: You don't have the rights to create a "
                           "repo: this token is read-only); set HF_TOKEN to a token with write "
                           "access to team")]
    for token, expected in cases:
        with pytest.raises(HubError) as err:
            push([run], DS, token=token, **opts(hub, tmp_path))
        msg = str(err.value)
        assert expected in msg and "\n" not in msg, msg
    assert hub.state.repo(REPO) is None
    # an existing dataset the token can read: the upload itself is refused
    push([run], DS, token=W, **opts(hub, tmp_path))
    other = make_run(tmp_path, "run-b", "cpu", "0.3.8")
    with pytest.raises(HubError, match=r"pushing is not allowed \(HTTP 403: .*read-only\); set "
                                       r"HF_TOKEN .*; nothing was committed"):
        push([other], DS, token="hf_reader", **opts(hub, tmp_path))


def test_rejected_commit_leaves_the_dataset_as_it_was(hub, tmp_path):
    a = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    push([a], DS, token=W, **opts(hub, tmp_path))
    before = tree(hub)
    hub.state.faults["commit"] = (422, "pre-receive hook declined: repository over quota")
    b = make_run(tmp_path, "run-b", "cpu", "0.3.9")
    with pytest.raises(HubError) as err:
        push([b], DS, token=W, **opts(hub, tmp_path))
    assert str(err.value) == (
        f"{DS}: the hub rejected the commit (HTTP 422: pre-receive hook declined: repository "
        "over quota); nothing was committed - the dataset is unchanged")
    assert tree(hub) == before


@pytest.mark.parametrize("fault", ["commit", "lfs_upload"])
def test_push_interrupted_midway_leaves_no_partial_run(hub, tmp_path, monkeypatch, fault):
    """The connection drops while committing, or an LFS upload fails after others went
    through: the dataset is unchanged (no run directory with some of its files)."""
    hub.state.lfs_threshold = 100  # results.jsonl and the figure go through LFS
    a = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    push([a], DS, token=W, **opts(hub, tmp_path))
    before = tree(hub)
    b = make_run(tmp_path, "run-b", "cpu", "0.3.9", seed=2)
    hub.state.faults[fault] = "drop" if fault == "commit" else (403, "upload URL expired")
    with pytest.raises(HubError) as err:
        push([b], DS, token=W, **opts(hub, tmp_path))
    assert "\n" not in str(err.value)
    assert ("connection to" in str(err.value)) == (fault == "commit")
    assert tree(hub) == before and not [p for p in tree(hub) if "run-b" in p]
    del hub.state.faults[fault]
    push([b], DS, token=W, **opts(hub, tmp_path))
    assert tree(hub)["runs/cpu/run-b/results.jsonl"] == Path(b, "results.jsonl").read_bytes()
    got = pull(f"{DS}/runs/cpu/run-b", out=tmp_path / "out", **opts(hub, tmp_path))
    assert Path(got[0].path, "results.jsonl").read_bytes() == Path(b, "results.jsonl").read_bytes()


def test_concurrent_push_is_retried_on_top_of_the_other(hub, tmp_path):
    a = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    push([a], DS, token=W, **opts(hub, tmp_path))
    theirs = make_run(tmp_path / "theirs", "run-t", "arm", "0.3.9")
    mine = make_run(tmp_path, "run-m", "cpu", "0.3.9")
    pushed = []

    def someone_else(state, key):
        if not pushed:  # their push lands between our read and our commit, once
            pushed.append(1)
            state.before_commit = None
            push([theirs], DS, token=W, **opts(hub, tmp_path / "x"))
    hub.state.before_commit = someone_else
    push([mine], DS, token=W, **opts(hub, tmp_path))
    index = [json.loads(x)["path"] for x in tree(hub)["index.jsonl"].decode().splitlines()]
    assert sorted(index) == ["runs/arm/run-t", "runs/cpu/run-a", "runs/cpu/run-m"]
    assert "**3 runs** on **2 devices**" in tree(hub)["README.md"].decode()


def test_pull_of_a_missing_or_private_dataset(hub, tmp_path):
    with pytest.raises(HubError) as err:
        pull("hf://datasets/team/nope", out=tmp_path / "o", **opts(hub, tmp_path))
    assert str(err.value) == (f"hf://datasets/team/nope: no such dataset on {hub.url} (or it "
                              "is private: set HF_TOKEN to a token that can read it)")
    a = make_run(tmp_path, "run-a", "cpu", "0.3.8")
    push([a], "hf://datasets/team/secret", private=True, token=W, **opts(hub, tmp_path))
    with pytest.raises(HubError, match="no such dataset .* set HF_TOKEN"):
        pull("hf://datasets/team/secret", out=tmp_path / "o", token=False,
             **opts(hub, tmp_path))
    got = pull("hf://datasets/team/secret", out=tmp_path / "o", token="hf_reader",
               **opts(hub, tmp_path))
    assert [r.status for r in got] == ["new"]
    with pytest.raises(HubError, match=r"matching --runs 'run-z\*': no runs"):
        pull("hf://datasets/team/secret", runs="run-z*", out=tmp_path / "o", token="hf_reader",
             **opts(hub, tmp_path))
    assert not (tmp_path / "o" / "cpu" / "run-z").exists()


def test_pull_that_fails_midway_leaves_no_partial_run(hub, tmp_path):
    for name in ("run-a", "run-b"):
        push([make_run(tmp_path, name, "cpu", "0.3.8")], DS, token=W, **opts(hub, tmp_path))
    hub.state.faults.update(resolve=(403, "signature expired"),
                            resolve_glob="runs/cpu/run-b/manifest.json")
    out = tmp_path / "out"
    with pytest.raises(HubError, match="HTTP 403: signature expired") as err:
        pull(DS, out=out, **opts(hub, tmp_path))
    assert "\n" not in str(err.value)
    assert not out.exists() or not list(out.rglob("*"))
    hub.state.faults.clear()
    assert [r.status for r in pull(DS, out=out, **opts(hub, tmp_path))] == ["new", "new"]


def test_offline_reads_the_cache_only(hub, tmp_path):
    push([make_run(tmp_path, "run-a", "cpu", "0.3.8")], DS, token=W, **opts(hub, tmp_path))
    with pytest.raises(HubError, match=r"not \(completely\) in the Hugging Face cache and "
                                       r"offline mode is on"):
        resolve_run_paths([DS], offline=True, **opts(hub, tmp_path))
    online = resolve_run_paths([DS], **opts(hub, tmp_path))
    n = len(hub.state.requests)
    assert resolve_run_paths([DS], offline=True, **opts(hub, tmp_path)) == online
    assert len(hub.state.requests) == n
    assert online[0].endswith("runs/cpu/run-a") and read_run(online[0]).records


def test_push_checks_its_runs_before_any_upload(hub, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlmbenchError, match="not a run directory"):
        push([str(tmp_path / "empty")], DS, token=W, **opts(hub, tmp_path))
    a = make_run(tmp_path / "x", "run-a", "cpu", "0.3.8")
    b = make_run(tmp_path / "y", "run-a", "cpu", "0.3.8")
    with pytest.raises(ConfigError, match="would both be runs/cpu/run-a"):
        push([a, b], DS, token=W, **opts(hub, tmp_path))
    with pytest.raises(ConfigError, match="push to the dataset itself"):
        push([a], f"{DS}/runs/cpu", token=W, **opts(hub, tmp_path))
    assert hub.state.requests == []


# --------------------------------------------------------------------------- the CLI

def cli(tmp_path, hub, *args, token=None, offline=False, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5",
               HF_HUB_DOWNLOAD_TIMEOUT="5", PYTHONPATH=os.pathsep.join(sys.path))
    if token:
        env["HF_TOKEN"] = token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-m", "slmbench", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_push_and_pull_with_the_environment(hub, tmp_path):
    a = make_run(tmp_path / "results", "run-a", "cpu", "0.3.8")
    rc, out, err = cli(tmp_path, hub, "push", a, "--to", DS, token="hf_bogus")
    assert rc == 2 and "HF_TOKEN is wrong or expired" in err and err.count("\n") == 1, err
    rc, out, err = cli(tmp_path, hub, "push", a, "--to", DS, "--private", token=W)
    assert rc == 0, err
    assert f"new        {DS}/runs/cpu/run-a" in out and f"created {DS}, commit " in out
    assert hub.state.repo(REPO)["private"]
    rc, out, err = cli(tmp_path, hub, "pull", DS, "-o", "pulled", token="hf_reader")
    assert rc == 0 and out.startswith("new") and "1 new" in err, err
    assert (tmp_path / "pulled/cpu/run-a/results.jsonl").exists()
    n = len(hub.state.requests)
    rc, out, err = cli(tmp_path, hub, "pull", DS, "-o", "again", offline=True)
    assert rc == 0 and (tmp_path / "again/cpu/run-a/manifest.json").exists(), err
    assert len(hub.state.requests) == n
    rc, out, err = cli(tmp_path, hub, "pull", "hf://datasets/team/other", offline=True)
    assert rc == 2 and "offline mode is on" in err and err.count("\n") == 1, err


def test_cli_pull_killed_midway_leaves_no_partial_run(hub, tmp_path):
    push([make_run(tmp_path, "run-a", "cpu", "0.3.8")], DS, token=W, **opts(hub, tmp_path))
    hub.state.faults.update(resolve="stall", resolve_glob="runs/cpu/run-a/manifest.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"),
               PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "slmbench", "pull", DS, "-o", "out"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not any("manifest.json" in p for m, p in hub.state.requests if m == "GET"):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out = tmp_path / "out"
    assert not (out / "cpu").exists()
    hub.state.faults.clear()
    rc, _, err = cli(tmp_path, hub, "pull", DS, "-o", "out")
    assert rc == 0 and (out / "cpu/run-a/manifest.json").exists(), err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_hf_paths_feed_history_compare_analyze_report(hub, tmp_path):
    """`slmbench history hf://datasets/team/slm-results --by version`: a team's regression
    history straight from the dataset (downloaded into the cache first)."""
    runs = [make_run(tmp_path, f"run-{v}", "cpu", f"0.3.{v}", tg_ms=10.0 + 3 * (v == 10),
                     seed=v) for v in (8, 9, 10)]
    push(runs, DS, token=W, **opts(hub, tmp_path))
    rc, out, err = cli(tmp_path, hub, "history", DS, "--by", "version", "--metric", "decode")
    assert rc == 0, err
    assert "SLOWER" in out and out.index("0.3.8") < out.index("0.3.9") < out.index("0.3.10")
    rc, out, err = cli(tmp_path, hub, "compare", f"{DS}/runs/cpu/run-8", f"{DS}/cpu/run-10",
                       offline=True)  # from the cache history filled
    assert rc == 1 and "SLOWER" in out, err
    rc, out, err = cli(tmp_path, hub, "compare", DS, f"{DS}/runs/cpu/run-9")
    assert rc == 2 and err.count("\n") == 1, err
    assert f"{DS}: names 3 runs (cpu/run-10, cpu/run-8, cpu/run-9); give one, {DS}/runs/" in err
    rc, out, err = cli(tmp_path, hub, "report", f"{DS}/runs/*/run-[89]", "-o", "rep")
    assert rc == 0 and (tmp_path / "rep" / "report.html").exists(), err
    with pytest.raises(SlmbenchError, match="names 3 runs"):
        resolve_run_path(DS, **opts(hub, tmp_path))
