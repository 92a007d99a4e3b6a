"""GGUF inspection and synthetic models (issue: foundation)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from slmbench.cli import main
from slmbench.errors import SlmbenchError
from slmbench.gguf_info import kv_cache_bytes, read_gguf
from slmbench.llama_backend import llama
from slmbench.synth import SynthSpec, synthesize, write_synthetic

CATALOG_QUANTS = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M"]


def llama_n_params(path: str) -> tuple[int, int]:
    lc = llama()
    params = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(path.encode(), params)
    assert model, f"llama.cpp could not load {path}"
    try:
        return int(lc.llama_model_n_params(model)), int(lc.llama_model_size(model))
    finally:
        lc.llama_model_free(model)


@pytest.mark.parametrize("spec", [
    SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=768, n_vocab=4096, n_ctx=1024),
    SynthSpec(n_embd=128, n_layer=3, n_head=8, n_head_kv=8, n_ff=384, n_vocab=1000, n_ctx=512),
    SynthSpec(n_embd=512, n_layer=1, n_head=8, n_head_kv=1, n_ff=1536, n_vocab=300, n_ctx=4096),
])
def test_inspect_equals_build_dimensions(tmp_path, spec):
    path = write_synthetic(str(tmp_path / "m.gguf"), spec)
    info = read_gguf(path)
    assert (info.architecture, info.n_embd, info.n_layer, info.n_head, info.n_head_kv,
            info.n_ff, info.n_vocab, info.n_ctx_train) == (
        "llama", spec.n_embd, spec.n_layer, spec.n_head, spec.n_head_kv, spec.n_ff,
        spec.n_vocab, spec.n_ctx)
    head = spec.n_embd // spec.n_head
    assert info.n_embd_head_k == info.n_embd_head_v == head
    assert info.file_type == "F16"
    assert info.sliding_window is None
    # f16 KV: K and V, 2 bytes each, per KV head and layer
    assert info.to_facts().kv_bytes_per_token_f16 == spec.n_layer * 2 * spec.n_head_kv * head * 2
    n_params, size = llama_n_params(path)
    assert info.n_params == n_params
    assert info.model_size_bytes == size


def test_every_catalog_quantization_works(tmp_path, tiny_spec):
    out = synthesize(str(tmp_path / "q.gguf"), tiny_spec, CATALOG_QUANTS)
    assert set(out) == {"F16", *CATALOG_QUANTS}
    bits = {}
    for quant, path in out.items():
        info = read_gguf(path)
        assert info.file_type == quant, (quant, info.tensor_types)
        n_params, size = llama_n_params(path)
        assert info.n_params == n_params and info.model_size_bytes == size
        bits[quant] = info.bits_per_weight
    assert bits["F16"] > bits["Q8_0"] > bits["Q6_K"] > bits["Q5_K_M"] > bits["Q4_K_M"]
    assert bits["Q4_K_M"] > bits["Q3_K_M"]


def test_synthetic_model_generates_tokens(tiny_models):
    """The synthetic model loads in llama.cpp, tokenizes text and generates greedily."""
    import ctypes

    lc = llama()
    model = lc.llama_model_load_from_file(tiny_models["Q4_K_M"].encode(),
                                          lc.llama_model_default_params())
    cparams = lc.llama_context_default_params()
    cparams.n_ctx = 128
    ctx = lc.llama_init_from_model(model, cparams)
    vocab = lc.llama_model_get_vocab(model)
    text = b"hello world, small models"
    buf = (ctypes.c_int32 * 64)()
    n = lc.llama_tokenize(vocab, text, len(text), buf, 64, True, False)
    assert 3 < n < 64 and buf[0] == 1  # BOS first
    smpl = lc.llama_sampler_init_greedy()
    generated = []
    try:
        assert lc.llama_decode(ctx, lc.llama_batch_get_one(buf, n)) == 0
        for _ in range(8):
            tok = lc.llama_sampler_sample(smpl, ctx, -1)
            assert 0 <= tok < 4096
            generated.append(tok)
            one = (ctypes.c_int32 * 1)(tok)
            assert lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) == 0
    finally:
        lc.llama_sampler_free(smpl)
        lc.llama_free(ctx)
        lc.llama_model_free(model)
    assert len(generated) == 8


def test_gemma3_architecture_loads_runs_and_reads_back(tmp_path, capsys):
    """--arch gemma3 writes Gemma-3's layers: llama.cpp loads the file as gemma3, with its
    parameter count, and decodes a prompt; the header reads back 6 norms per layer, the
    output tied to the embedding and 5 of every 6 layers sliding."""
    import ctypes

    from slmbench.predict import layer_norms, output_tensor

    spec = SynthSpec(n_embd=256, n_layer=6, n_head=2, n_head_kv=1, n_ff=512, n_vocab=1024,
                     n_ctx=1024, arch="gemma3")
    out = synthesize(str(tmp_path / "g.gguf"), spec, ["Q8_0"])
    info = read_gguf(out["Q8_0"])
    assert (info.architecture, info.n_embd, info.n_layer, info.n_head, info.n_head_kv,
            info.n_ff, info.n_embd_head_k, info.sliding_window) == (
        "gemma3", 256, 6, 2, 1, 512, 128, 512)
    assert info.swa_layers == [True] * 5 + [False]
    assert layer_norms(info) == 6
    assert output_tensor(info).name == "token_embd.weight"  # tied
    n_params, size = llama_n_params(out["Q8_0"])
    assert info.n_params == n_params and info.model_size_bytes == size
    lc = llama()
    model = lc.llama_model_load_from_file(out["Q8_0"].encode(),
                                          lc.llama_model_default_params())
    ctx = lc.llama_init_from_model(model, lc.llama_context_default_params())
    try:
        desc = ctypes.create_string_buffer(128)
        lc.llama_model_desc(model, desc, 128)
        assert desc.value.startswith(b"gemma3")
        buf = (ctypes.c_int32 * 32)()
        text = b"small models, gemma layers"
        n = lc.llama_tokenize(lc.llama_model_get_vocab(model), text, len(text), buf, 32,
                              True, False)
        assert n > 3 and lc.llama_decode(ctx, lc.llama_batch_get_one(buf, n)) == 0
    finally:
        lc.llama_free(ctx)
        lc.llama_model_free(model)
    with pytest.raises(SlmbenchError, match="--arch 'gpt2' is not one of llama, gemma3"):
        SynthSpec(arch="gpt2").validate()
    assert main(["synth", str(tmp_path / "c.gguf"), "--arch", "gemma3", "--n-embd", "128",
                 "--n-head", "2", "--n-head-kv", "1", "--n-ff", "256", "--n-vocab", "512"]) == 0
    assert read_gguf(str(tmp_path / "c.gguf")).architecture == "gemma3"


def test_bad_synth_shape_is_one_line_error(tmp_path):
    with pytest.raises(SlmbenchError) as err:
        SynthSpec(n_embd=100, n_head=3, n_vocab=10).validate()
    msg = str(err.value)
    assert "\n" not in msg and "multiple of --n-head" in msg and "--n-vocab" in msg


def _write(path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def test_corrupt_files_give_one_line_errors(tmp_path, tiny_model):
    good = Path(tiny_model).read_bytes()
    cases = {
        "empty": (b"", "empty file"),
        "not gguf": (b"PK\x03\x04" + b"\0" * 100, "not a GGUF file"),
        "short header": (b"GGUF\x03\0\0\0", "truncated GGUF header"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "absurd tensors": (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1) + b"\0" * 64,
                           "corrupt GGUF header"),
        "absurd kv": (b"GGUF" + struct.pack("<IQQ", 3, 1, 1 << 50) + b"\0" * 64,
                      "corrupt GGUF header"),
        "bad version": (b"GGUF" + struct.pack("<IQQ", 99, 1, 1) + b"\0" * 64, "version 99"),
        "garbage metadata": (b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + os.urandom(200), ""),
    }
    for name, (data, expected) in cases.items():
        path = _write(tmp_path / f"{name.replace(' ', '_')}.gguf", data)
        with pytest.raises(SlmbenchError) as err:
            read_gguf(path)
        assert "\n" not in str(err.value), name
        assert expected in str(err.value), (name, str(err.value))
    with pytest.raises(SlmbenchError, match="no such file"):
        read_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(SlmbenchError, match="directory"):
        read_gguf(str(tmp_path))


@pytest.mark.parametrize("keep", [100, 100_000])
def test_header_cut_anywhere_is_a_one_line_error(tmp_path, tiny_model, monkeypatch, keep):
    """The header parser walks arrays by hand: a file cut anywhere in it must fail cleanly,
    whether the token list is skipped (long arrays) or decoded (short ones)."""
    from slmbench import gguf_info

    good = Path(tiny_model).read_bytes()
    whole = read_gguf(tiny_model)
    monkeypatch.setattr(gguf_info, "_KEEP_ARRAY", keep)
    assert read_gguf(tiny_model) == whole  # same facts either way
    for cut in range(24, 200_000, 997):
        path = _write(tmp_path / "cut.gguf", good[:cut])
        with pytest.raises(SlmbenchError) as err:
            read_gguf(path)
        assert "\n" not in str(err.value) and "cut.gguf" in str(err.value), cut


def test_inspect_cli(tiny_models, capsys, tmp_path):
    import json

    assert main(["inspect", tiny_models["Q4_K_M"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["file_type"] == "Q4_K_M" and data["n_vocab"] == 4096 and data["n_layer"] == 2
    assert main(["inspect", tiny_models["F16"]]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "KV bytes/token" in out
    bad = _write(tmp_path / "bad.gguf", b"nope")
    assert main(["inspect", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a GGUF file" in err


def test_synth_cli(tmp_path, capsys):
    out = tmp_path / "cli.gguf"
    assert main(["synth", str(out), "--n-embd", "128", "--n-head", "2", "--n-head-kv", "1",
                 "--n-ff", "256", "--n-vocab", "512", "--quant", "Q8_0"]) == 0
    assert out.exists() and (tmp_path / "cli-Q8_0.gguf").exists()
    assert read_gguf(str(tmp_path / "cli-Q8_0.gguf")).n_vocab == 512
    assert main(["synth", str(out), "--n-vocab", "10"]) == 2


def test_sliding_window_kv_model():
    """Gemma-3 style: 5 of every 6 layers slide; their cache is n_swa + n_ubatch, padded."""
    from slmbench.gguf_info import GGUFInfo, _swa_layers

    swa = _swa_layers("gemma3", type("R", (), {"fields": {}})(), 18, True)
    assert swa.count(False) == 3 and swa[5] is False and swa[0] is True
    info = GGUFInfo(path="x", file_size_bytes=0, architecture="gemma3", name=None,
                    file_type="F16", n_params=1, model_size_bytes=1, n_vocab=262144,
                    n_layer=18, n_embd=640, n_head=4, n_head_kv_layers=[1] * 18,
                    n_embd_head_k=256, n_embd_head_v=256, n_ff=2048, n_ctx_train=32768,
                    sliding_window=512, swa_layers=swa)
    kv = kv_cache_bytes(info, 4096, n_ubatch=512)
    per_cell_layer = 2 * 256 * 2  # K + V, one KV head of 256, f16
    assert kv["swa_cells"] == 1024  # pad256(512 + 512)
    assert kv["full_bytes"] == 3 * 4096 * per_cell_layer
    assert kv["swa_bytes"] == 15 * 1024 * per_cell_layer
    full = kv_cache_bytes(info, 4096, swa_full=True)
    assert full["swa_cells"] == 4096 and full["total_bytes"] == 18 * 4096 * per_cell_layer


def test_split_model_is_read_and_loaded_from_its_first_shard(tmp_path):
    """A model split like llama-gguf-split does it: header facts over every shard, equal to
    the unsplit file and to what llama.cpp reports when it loads the first shard."""
    import shutil

    spec = SynthSpec(n_embd=128, n_layer=3, n_head=4, n_head_kv=2, n_ff=384, n_vocab=1000,
                     n_ctx=512)
    whole = read_gguf(write_synthetic(str(tmp_path / "whole.gguf"), spec))
    first = write_synthetic(str(tmp_path / "m.gguf"), spec, split_max_tensors=12)
    shards = sorted(p.name for p in tmp_path.glob("m-*"))
    assert Path(first).name == "m-00001-of-00003.gguf" and len(shards) == 3
    info = read_gguf(first)
    assert (info.n_params, info.model_size_bytes, info.tensor_types, info.n_layer) == (
        whole.n_params, whole.model_size_bytes, whole.tensor_types, whole.n_layer)
    assert info.file_size_bytes == sum(p.stat().st_size for p in tmp_path.glob("m-*"))
    assert llama_n_params(first) == (whole.n_params, whole.model_size_bytes)

    with pytest.raises(SlmbenchError, match=r"m-00002-of-00003.gguf: shard 2 of a model split "
                                            r"in 3 files; pass the first shard "
                                            r"\(m-00001-of-00003.gguf\)"):
        read_gguf(str(tmp_path / "m-00002-of-00003.gguf"))
    shutil.copy(first, tmp_path / "renamed.gguf")
    with pytest.raises(SlmbenchError, match=r"does not end in -00001-of-00003.gguf"):
        read_gguf(str(tmp_path / "renamed.gguf"))
    os.remove(tmp_path / "m-00003-of-00003.gguf")
    with pytest.raises(SlmbenchError, match=r"split model, but m-00003-of-00003.gguf is missing "
                                            r"beside it"):
        read_gguf(first)
