"""hub.fetch_header: a GGUF header read from the hub as HTTP ranges, without the download.

Like test_hub, every call runs in a fresh process (huggingface_hub reads HF_ENDPOINT and
HF_HUB_OFFLINE when imported) against the local fake hub, which honours Range and counts the
bytes it serves.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from hubserver import HubServer
from test_hub import C1, download

# 65536 tokens make a ~1.5 MiB header (past the first 1 MiB read: the retry path) and 2 x 16 MiB
# of embedding and output tensors a 33 MiB file
BIG_VOCAB = dict(n_embd=128, n_layer=2, n_head=2, n_head_kv=1, n_ff=256, n_vocab=65536, n_ctx=256)

SCRIPT = """
import json, sys
from slmbench import hub
from slmbench.catalog import load_catalog
from slmbench.errors import SlmbenchError
if len(sys.argv) > 3:
    hub.HEADER_MAX_READ = int(sys.argv[3])
entry, quant = load_catalog(sys.argv[1]).resolve(sys.argv[2])
try:
    info = hub.fetch_header(entry, quant)
except SlmbenchError as exc:
    print(json.dumps({"error": type(exc).__name__ + ": " + str(exc)}))
else:
    print(json.dumps({"n_params": info.n_params, "model_size_bytes": info.model_size_bytes,
                      "n_vocab": info.n_vocab, "path": info.path,
                      "tensors": [[t.name, list(t.dims), t.type, t.n_bytes]
                                  for t in info.tensors]}))
"""


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory) -> str:
    from slmbench.synth import SynthSpec, write_synthetic

    path = str(tmp_path_factory.mktemp("hdr") / "big-F16.gguf")
    return write_synthetic(path, SynthSpec(**BIG_VOCAB))


@pytest.fixture()
def hub(big_gguf):
    with HubServer() as srv:
        srv.state.add("org/big-GGUF", C1, {"big-F16.gguf": open(big_gguf, "rb").read()})
        srv.state.add("org/gated-GGUF", C1, {"g-F16.gguf": b"GGUF"}, token="hf_secret")
        yield srv


def catalog(tmp_path, local: str | None = None) -> str:
    lines = ["models:",
             "  - id: big", "    repo_id: org/big-GGUF",
             "    files: {F16: big-F16.gguf, Q8_0: missing-Q8_0.gguf}",
             "  - id: nope", "    repo_id: org/does-not-exist", "    files: {F16: x.gguf}",
             "  - id: gated", "    repo_id: org/gated-GGUF", "    files: {F16: g-F16.gguf}"]
    if local:
        lines += ["  - id: mine", f"    path: {local}"]
    p = tmp_path / "models.yaml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def header(tmp_path, endpoint, cat, spec, *extra, offline=False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, cat, spec, *extra],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def expected(path: str) -> dict:
    from slmbench.gguf_info import read_gguf

    info = read_gguf(path)
    return {"n_params": info.n_params, "model_size_bytes": info.model_size_bytes,
            "n_vocab": info.n_vocab,
            "tensors": [[t.name, list(t.dims), t.type, t.n_bytes] for t in info.tensors]}


def closed_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def test_header_over_ranges_reads_a_fraction_of_the_file(tmp_path, hub, big_gguf):
    size = os.path.getsize(big_gguf)
    assert size > 20 * 2**20
    got = header(tmp_path, hub.url, catalog(tmp_path), "big:F16")
    assert "error" not in got, got
    assert {k: got[k] for k in expected(big_gguf)} == expected(big_gguf)
    assert got["path"] == "org/big-GGUF/big-F16.gguf"
    served = hub.state.served
    assert all(rng for _, rng, _ in served), served  # every GET ranged
    # the 1.5 MiB header needs the retry: 1 MiB, then only the next MiB (no byte read twice)
    assert [rng for _, rng, _ in served] == ["bytes=0-1048575", "bytes=1048576-2097151"]
    sent = sum(n for _, _, n in served)
    print(f"header of a {size}-byte GGUF: {sent} bytes transferred ({sent / size:.1%})")
    assert sent < 0.1 * size
    assert not list((tmp_path / "hf").rglob("*.gguf"))  # nothing was downloaded to the cache


def test_header_longer_than_the_limit_is_one_line(tmp_path, hub):
    got = header(tmp_path, hub.url, catalog(tmp_path), "big:F16", str(2**20))
    assert got["error"].startswith("ModelFetchError: org/big-GGUF/big-F16.gguf: GGUF header "
                                   "longer than 1 MiB"), got


def test_missing_file_repo_gated_and_unreachable_are_one_line(tmp_path, hub):
    cat = catalog(tmp_path)
    err = header(tmp_path, hub.url, cat, "big:Q8_0")["error"]
    assert err.startswith("ModelFetchError:") and "missing-Q8_0.gguf not found in org/big" in err
    err = header(tmp_path, hub.url, cat, "nope:F16")["error"]
    assert err.startswith("ModelFetchError:") and "repository org/does-not-exist not found" in err
    err = header(tmp_path, hub.url, cat, "gated:F16")["error"]
    assert err.startswith("ModelFetchError:") and "gated" in err and "HF_TOKEN" in err
    err = header(tmp_path, closed_endpoint(), cat, "big:F16")["error"]
    assert err.startswith("ModelFetchError:") and "cannot reach the hub" in err
    assert not hub.state.served


def test_offline_not_cached_says_the_header_cannot_be_read(tmp_path, hub):
    err = header(tmp_path, hub.url, catalog(tmp_path), "big:F16", offline=True)["error"]
    assert err.startswith("ModelFetchError:") and "offline" in err
    assert "header cannot be read" in err and "catalog's facts" in err and "\n" not in err
    assert not hub.state.requests


def test_cached_or_local_file_needs_no_server(tmp_path, hub, big_gguf):
    cat = catalog(tmp_path, local=big_gguf)
    rc, out, err = download(tmp_path, hub.url, cat, "big:F16")
    assert rc == 0, err
    want = expected(big_gguf)
    for offline in (False, True):
        got = header(tmp_path, closed_endpoint(), cat, "big:F16", offline=offline)
        assert {k: got.get(k) for k in want} == want and got["path"] == out, got
    got = header(tmp_path / "empty", closed_endpoint(), cat, "mine")
    assert {k: got.get(k) for k in want} == want and got["path"] == big_gguf, got


def test_split_model_reads_every_shards_header(tmp_path, hub):
    """A split model's tensors are over all its shards (each header read in ranges, none of its
    tensor data): the same GGUFInfo as reading the downloaded shards."""
    from slmbench.gguf_info import read_gguf_bytes
    from slmbench.synth import SynthSpec, write_synthetic

    spec = SynthSpec(n_embd=64, n_layer=2, n_head=2, n_head_kv=1, n_ff=128, n_vocab=300,
                     n_ctx=256)
    first = write_synthetic(str(tmp_path / "src" / "s-f16.gguf"), spec, split_max_tensors=11)
    shards = {p.name: p.read_bytes() for p in sorted((tmp_path / "src").glob("s-f16-*"))}
    assert len(shards) == 2
    hub.state.add("org/split-GGUF", C1, shards)
    p = tmp_path / "split.yaml"
    p.write_text("models:\n  - id: s\n    repo_id: org/split-GGUF\n"
                 "    files: {F16: s-f16-00001-of-00002.gguf}\n")
    got = header(tmp_path, hub.url, str(p), "s:F16")
    want = expected(first)
    assert {k: got.get(k) for k in want} == want, got
    data = open(first, "rb").read()
    assert got["n_params"] > read_gguf_bytes(data, "x", len(data)).n_params  # not shard 1's
    assert sorted({f for f, _, _ in hub.state.served}) == sorted(shards)
    assert all(rng for _, rng, _ in hub.state.served)