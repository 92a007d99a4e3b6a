"""Downloads through the real huggingface_hub code path against a local hub-like server.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE when it is imported, so every download runs
`slmbench download` in a fresh process with the environment set: exactly what a user runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest

from hubserver import HubServer

C1, C2 = "a" * 40, "b" * 40
V1, V2 = b"GGUF-v1-" + os.urandom(2000), b"GGUF-v2-" + os.urandom(3000)


@pytest.fixture()
def hub(tmp_path):
    with HubServer() as srv:
        srv.state.add("org/tiny-GGUF", C1, {"tiny-Q8_0.gguf": V1}, branch="old")
        srv.state.add("org/tiny-GGUF", C2, {"tiny-Q8_0.gguf": V2, "tiny-Q4_K_M.gguf": V2})
        srv.state.add("org/gated-GGUF", C1, {"g-Q8_0.gguf": V1}, token="hf_secret")
        yield srv


def catalog(tmp_path, revision=None, sha=None) -> str:
    lines = ["models:", "  - id: tiny", "    repo_id: org/tiny-GGUF",
             "    files: {Q8_0: tiny-Q8_0.gguf, Q4_K_M: tiny-Q4_K_M.gguf, Q4_0: missing.gguf}"]
    if revision:
        lines.append(f"    revision: '{revision}'")
    if sha:
        lines.append(f"    sha256: {{Q8_0: '{sha}'}}")
    lines += ["  - id: gated", "    repo_id: org/gated-GGUF", "    files: {Q8_0: g-Q8_0.gguf}",
              "  - id: nope", "    repo_id: org/does-not-exist", "    files: {Q8_0: x.gguf}", ""]
    p = tmp_path / "models.yaml"
    p.write_text("\n".join(lines))
    return str(p)


def download(tmp_path, endpoint, cat, *specs, offline=False, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    if token:
        env["HF_TOKEN"] = token
    proc = subprocess.run([sys.executable, "-m", "slmbench", "download", "--catalog", cat,
                           "--no-progress", *specs], capture_output=True, text=True, env=env,
                          timeout=60)
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def test_download_then_offline_reuse(tmp_path, hub):
    cat = catalog(tmp_path)
    rc, out, err = download(tmp_path, hub.url, cat, "tiny:Q8_0")
    assert rc == 0, err
    assert open(out, "rb").read() == V2 and str(tmp_path / "hf") in out
    before = len(hub.state.requests)
    rc, out2, err = download(tmp_path, hub.url, cat, "tiny:Q8_0", offline=True)
    assert rc == 0 and out2 == out, err
    assert len(hub.state.requests) == before  # the server was not contacted


def test_revision_pinning(tmp_path, hub):
    rc, out, err = download(tmp_path, hub.url, catalog(tmp_path, revision=C1), "tiny:Q8_0")
    assert rc == 0, err
    assert open(out, "rb").read() == V1 and C1 in out


def test_sha256_match_and_mismatch(tmp_path, hub):
    good = hashlib.sha256(V2).hexdigest()
    rc, out, err = download(tmp_path, hub.url, catalog(tmp_path, sha=good), "tiny:Q8_0")
    assert rc == 0, err
    bad = "0" * 64
    rc, out, err = download(tmp_path / "other", hub.url, catalog(tmp_path, sha=bad), "tiny:Q8_0")
    assert rc == 2 and "sha256 mismatch" in err and "removed" in err
    blobs = list((tmp_path / "other" / "hf").rglob("blobs/*"))
    assert not [b for b in blobs if not b.name.endswith(".incomplete")], blobs


def test_404_file_and_repo(tmp_path, hub):
    cat = catalog(tmp_path)
    rc, _, err = download(tmp_path, hub.url, cat, "tiny:Q4_0")
    assert rc == 2 and "missing.gguf not found in org/tiny-GGUF" in err
    rc, _, err = download(tmp_path, hub.url, cat, "nope:Q8_0")
    assert rc == 2 and "repository org/does-not-exist not found" in err
    assert err.count("\n") == 0


def test_gated_repo(tmp_path, hub):
    cat = catalog(tmp_path)
    rc, _, err = download(tmp_path, hub.url, cat, "gated:Q8_0")
    assert rc == 2 and "gated" in err and "HF_TOKEN" in err
    rc, out, err = download(tmp_path, hub.url, cat, "gated:Q8_0", token="hf_secret")
    assert rc == 0 and open(out, "rb").read() == V1, err


def test_no_network_and_offline_not_cached(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    cat = catalog(tmp_path)
    rc, _, err = download(tmp_path, closed, cat, "tiny:Q8_0")
    assert rc == 2 and "cannot reach the hub" in err and "HF_HUB_OFFLINE" in err
    rc, _, err = download(tmp_path, closed, cat, "tiny:Q8_0", offline=True)
    assert rc == 2 and "offline mode is on" in err


def test_unknown_model_and_quant_list_alternatives(tmp_path, hub):
    cat = catalog(tmp_path)
    rc, _, err = download(tmp_path, hub.url, cat, "tiny:Q2_K", "tnyi")
    assert rc == 2 and "available: Q8_0, Q4_K_M, Q4_0" in err and "known: tiny" in err


def test_split_model_downloads_every_shard_beside_the_first(tmp_path, hub):
    """llama.cpp's naming (x-00001-of-00002.gguf): `download` fetches both shards from one
    commit into one snapshot directory, checks a digest per shard and prints the first, which
    is what llama.cpp loads (and what the header reader reads over both shards)."""
    from slmbench.gguf_info import read_gguf
    from slmbench.synth import SynthSpec, write_synthetic

    spec = SynthSpec(n_embd=64, n_layer=2, n_head=2, n_head_kv=1, n_ff=128, n_vocab=300,
                     n_ctx=256)
    src = tmp_path / "src"
    whole = read_gguf(write_synthetic(str(src / "whole.gguf"), spec))
    write_synthetic(str(src / "big-f16.gguf"), spec, split_max_tensors=11)
    shards = {p.name: p.read_bytes() for p in sorted(src.glob("big-f16-*"))}
    assert list(shards) == ["big-f16-00001-of-00002.gguf", "big-f16-00002-of-00002.gguf"]
    hub.state.add("org/big-GGUF", C1, {f"F16/{k}": v for k, v in shards.items()})
    digests = [hashlib.sha256(v).hexdigest() for v in shards.values()]

    def cat(sha):
        p = tmp_path / "split.yaml"
        p.write_text("models:\n  - id: big\n    repo_id: org/big-GGUF\n"
                     "    files: {F16: F16/big-f16-00001-of-00002.gguf}\n"
                     f"    sha256: {{F16: ['{sha[0]}', '{sha[1]}']}}\n")
        return str(p)

    rc, out, err = download(tmp_path, hub.url, cat(digests), "big:F16")
    assert rc == 0, err
    assert out.endswith(f"snapshots/{C1}/F16/big-f16-00001-of-00002.gguf")
    second = out.replace("00001-of", "00002-of")
    assert open(second, "rb").read() == shards["big-f16-00002-of-00002.gguf"]
    info = read_gguf(out)
    assert (info.n_params, info.model_size_bytes) == (whole.n_params, whole.model_size_bytes)
    from test_gguf_synth import llama_n_params

    assert llama_n_params(out) == (whole.n_params, whole.model_size_bytes)  # via the cache links
    gets = [p for m, p in hub.state.requests if m == "GET"]
    assert len(gets) == 2 and all(f"/resolve/{C1}/" in p for p in gets[1:])

    rc, _, err = download(tmp_path / "bad", hub.url, cat([digests[0], "0" * 64]), "big:F16")
    assert rc == 2 and "big-f16-00002-of-00002.gguf: sha256 mismatch" in err, err
