"""Read facts from a GGUF header without loading weights, and size the KV cache analytically.

Everything here comes from the file's metadata and tensor table, read by a small header parser
(milliseconds even for a 262k-token vocabulary; the `gguf` package supplies type sizes), so it is
cheap and needs no llama.cpp context.  The KV-cache
model mirrors llama.cpp's allocation rules (context padded to 256 cells; sliding-window layers get
``pad256(min(n_ctx, n_swa + n_ubatch))`` cells unless ``swa_full``), so it can be checked against
the KV buffer sizes llama.cpp logs.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from slmbench.errors import ModelLoadError, SlmbenchError
from slmbench.schema import ModelFacts

GGUF_MAGIC = b"GGUF"
CTX_PAD = 256  # llama.cpp pads n_ctx (and the SWA cache) to a multiple of 256 cells

# Sliding-window layer pattern per architecture, for files that do not store
# `<arch>.attention.sliding_window_pattern` (llama.cpp hard-codes these in src/models/*.cpp).
# value: (n_pattern, dense_first)
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "cohere2": (4, False),
    "exaone4": (4, False),
    "gpt-oss": (2, False),
}
# Architectures with a sliding window even when the file has no explicit size.
SWA_DEFAULT_SIZE = {"gemma2": 4096}

# Sanity limits against corrupt or hostile headers (far above any real model).
MAX_TENSORS = 1_000_000
MAX_KV = 1_000_000

# A model split into shards, named as llama.cpp's llama_split_path writes them
# ("%s-%05d-of-%05d.gguf", shards counted from 1).  llama.cpp is given the first shard and opens
# the others beside it by this name; its first shard carries all metadata and `split.count`.
SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_parts(path: str) -> tuple[str, int, int] | None:
    """'dir/x-00001-of-00003.gguf' -> ('dir/x', 1, 3); None for a file that is not a shard."""
    m = SPLIT_RE.match(path)
    if not m or not 1 <= int(m["no"]) <= int(m["count"]):
        return None
    return m["prefix"], int(m["no"]), int(m["count"])


def shard_names(first: str) -> list[str]:
    """Every shard of a split model from the name (or path) of one shard, in order; a file
    that is not a shard is its own only part."""
    parts = split_parts(first)
    if parts is None:
        return [first]
    prefix, _, count = parts
    return [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file: name, dimensions (ne0 first, as ggml), type name, bytes."""

    name: str
    dims: tuple[int, ...]
    type: str
    n_bytes: int
    offset: int | None = None  # absolute byte offset of its data in its file (part)

    @property
    def n_elements(self) -> int:
        return math.prod(self.dims)


@dataclass
class GGUFInfo:
    """What slmbench knows about one GGUF file (a superset of schema.ModelFacts)."""

    path: str
    file_size_bytes: int
    architecture: str
    name: str | None
    file_type: str
    n_params: int
    model_size_bytes: int
    n_vocab: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv_layers: list[int]
    n_embd_head_k: int
    n_embd_head_v: int
    n_ff: int | None
    n_ctx_train: int
    sliding_window: int | None
    swa_layers: list[bool]
    tensor_types: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # every tensor of the file: what slmbench.predict sums over (not part of the results schema)
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def n_head_kv(self) -> int:
        return max(self.n_head_kv_layers) if self.n_head_kv_layers else 0

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.model_size_bytes / self.n_params if self.n_params else float("nan")

    def kv_bytes_per_token(self, type_k: str = "f16", type_v: str = "f16") -> float:
        """KV bytes one more token of context costs, counting every layer (SWA layers included)."""
        return sum(_layer_kv_bytes(self, il, 1, type_k, type_v) for il in range(self.n_layer))

    def to_facts(self) -> ModelFacts:
        return ModelFacts(
            path=os.path.abspath(self.path), file_name=os.path.basename(self.path),
            file_size_bytes=self.file_size_bytes, model_size_bytes=self.model_size_bytes,
            n_params=self.n_params, bits_per_weight=round(self.bits_per_weight, 4),
            file_type=self.file_type, architecture=self.architecture, name=self.name,
            n_vocab=self.n_vocab, n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head,
            n_head_kv=self.n_head_kv, n_embd_head_k=self.n_embd_head_k,
            n_embd_head_v=self.n_embd_head_v, n_ff=self.n_ff, n_ctx_train=self.n_ctx_train,
            sliding_window=self.sliding_window, n_swa_layers=sum(self.swa_layers),
            kv_bytes_per_token_f16=int(self.kv_bytes_per_token("f16", "f16")),
            kv_bytes_per_token_q8_0=self.kv_bytes_per_token("q8_0", "q8_0"),
            tensor_types=dict(self.tensor_types),
        )


def is_matmul_weight(t: TensorInfo) -> bool:
    """A 2-D weight of a block (attention and FFN matrices)."""
    return len(t.dims) == 2 and t.name.startswith("blk.") and t.name.endswith(".weight")


def is_multiplied(t: TensorInfo) -> bool:
    """A weight llama.cpp multiplies (the blocks' matrices and an untied output.weight; not
    the embedding, which is only looked up): what the CPU backend may copy into a repacked
    layout."""
    return is_matmul_weight(t) or (t.name == "output.weight" and len(t.dims) == 2)


def multiplied_bytes(info: GGUFInfo) -> dict[str, float]:
    """Bytes per type of the multiplied weights."""
    out: dict[str, float] = {}
    for t in info.tensors:
        if is_multiplied(t):
            out[t.type] = out.get(t.type, 0.0) + t.n_bytes
    return out


# --------------------------------------------------------------------------- type sizes

def ggml_type_size(type_name: str) -> tuple[int, int]:
    """(block size in elements, bytes per block) of a ggml type name such as 'f16' or 'q8_0'."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType[type_name.upper()]
    except KeyError:
        known = ", ".join(t.name.lower() for t in GGMLQuantizationType if t in GGML_QUANT_SIZES)
        raise ModelLoadError(f"unknown cache/tensor type '{type_name}' (known: {known})") from None
    return GGML_QUANT_SIZES[qtype]


def bytes_for(type_name: str, n_elements: int) -> float:
    block, size = ggml_type_size(type_name)
    return n_elements * size / block


# --------------------------------------------------------------------------- KV cache model

def pad_ctx(n: int, pad: int = CTX_PAD) -> int:
    return ((int(n) + pad - 1) // pad) * pad


def _layer_kv_bytes(info: GGUFInfo, il: int, cells: int, type_k: str, type_v: str) -> float:
    n_kv = info.n_head_kv_layers[il] if il < len(info.n_head_kv_layers) else info.n_head_kv
    return (bytes_for(type_k, n_kv * info.n_embd_head_k * cells)
            + bytes_for(type_v, n_kv * info.n_embd_head_v * cells))


def kv_cache_bytes(info: GGUFInfo, n_ctx: int, type_k: str = "f16", type_v: str = "f16", *,
                   swa_full: bool = False, n_ubatch: int = 512, pad: bool = True) -> dict:
    """Analytic KV cache size for a context of ``n_ctx`` tokens, the way llama.cpp allocates it.

    Returns ``{"n_ctx": cells of the full cache, "swa_cells": cells of the SWA cache or None,
    "full_bytes", "swa_bytes", "total_bytes"}``.
    """
    cells = pad_ctx(n_ctx) if pad else int(n_ctx)
    has_swa = info.sliding_window and any(info.swa_layers)
    swa_cells = None
    if has_swa:
        swa_cells = cells if swa_full else min(cells, pad_ctx(min(cells, info.sliding_window
                                                                  + n_ubatch)))
    full_b = swa_b = 0.0
    for il in range(info.n_layer):
        if has_swa and info.swa_layers[il]:
            swa_b += _layer_kv_bytes(info, il, swa_cells, type_k, type_v)
        else:
            full_b += _layer_kv_bytes(info, il, cells, type_k, type_v)
    return {"n_ctx": cells, "swa_cells": swa_cells, "full_bytes": full_b, "swa_bytes": swa_b,
            "total_bytes": full_b + swa_b}


# --------------------------------------------------------------------------- reading

def _check_header(path: str) -> tuple[int, str, int, int]:
    """Cheap checks of the fixed header: (file size, byte order, tensor count, metadata count)."""
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelLoadError(f"{path}: is a directory, expected a .gguf file")
    size = os.path.getsize(path)
    if size == 0:
        raise ModelLoadError(f"{path}: empty file, not a GGUF model")
    with open(path, "rb") as fh:
        head = fh.read(24)
    return (size, *_check_fixed(path, head, size))


def _check_fixed(path: str, head: bytes, size: int) -> tuple[str, int, int]:
    """(byte order, tensor count, metadata count) from the first 24 bytes of a file of ``size``
    bytes; a one-line error for anything that is not a sane GGUF v2/v3 header."""
    if head[:4] != GGUF_MAGIC:
        raise ModelLoadError(f"{path}: not a GGUF file (magic {head[:4]!r}, expected b'GGUF'); "
                             "convert the model with llama.cpp's convert_hf_to_gguf.py")
    if len(head) < 24:
        raise ModelLoadError(f"{path}: truncated GGUF header ({size} bytes)")
    version = struct.unpack("<I", head[4:8])[0]
    endian = "<"
    if version > 0xFFFF:  # a big-endian file reads as a huge little-endian number
        endian = ">"
        version = struct.unpack(">I", head[4:8])[0]
    if version not in (2, 3):
        raise ModelLoadError(f"{path}: unsupported GGUF version {version} (supported: 2, 3)")
    n_tensors, n_kv = struct.unpack(endian + "QQ", head[8:24])
    # every tensor info takes >= 24 bytes and every key/value >= 12: counts beyond that are lies
    if n_tensors > MAX_TENSORS or n_tensors * 24 > size:
        raise ModelLoadError(f"{path}: corrupt GGUF header (claims {n_tensors} tensors in a "
                             f"{size}-byte file)")
    if n_kv > MAX_KV or n_kv * 12 > size:
        raise ModelLoadError(f"{path}: corrupt GGUF header (claims {n_kv} metadata entries in a "
                             f"{size}-byte file)")
    return endian, n_tensors, n_kv


def _value(reader: "_Header", key: str, default: Any = None) -> Any:
    value = reader.fields.get(key, default)
    return default if isinstance(value, _Skipped) else value


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    if value is None:
        return [default] * n_layer
    if isinstance(value, (list, tuple)):
        vals = [int(v) for v in value]
        return (vals + [vals[-1]] * n_layer)[:n_layer] if vals else [default] * n_layer
    return [int(value)] * n_layer


def _swa_layers(arch: str, reader: "_Header", n_layer: int, has_window: bool) -> list[bool]:
    if not has_window:
        return [False] * n_layer
    stored = _value(reader, f"{arch}.attention.sliding_window_pattern")
    if isinstance(stored, (list, tuple)):
        flags = [bool(x) for x in stored]
        return (flags + [False] * n_layer)[:n_layer]
    n_pattern, dense_first = SWA_PATTERNS.get(arch, (0, False))
    if isinstance(stored, int):
        n_pattern = stored
    if n_pattern == 0 and arch not in SWA_PATTERNS and stored is None:
        return [True] * n_layer  # a window with no pattern: every layer slides (e.g. mistral)
    if dense_first:
        return [n_pattern == 0 or il % n_pattern != 0 for il in range(n_layer)]
    return [n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(n_layer)]


def file_type_name(ftype: int | None, tensor_types: dict[str, int]) -> str:
    from gguf import LlamaFileType

    if ftype is not None:
        try:
            name = LlamaFileType(int(ftype)).name
            return name.replace("MOSTLY_", "").replace("ALL_", "")
        except ValueError:
            pass
    # no (known) file type: name it after the most common type among 2-D weights
    if tensor_types:
        return max(tensor_types.items(), key=lambda kv: kv[1])[0]
    return "unknown"


class _Skipped:
    """A metadata array too long to be a hyper-parameter (token lists, scores): only its length."""

    def __init__(self, count: int):
        self.count = count

    def __len__(self) -> int:
        return self.count


# GGUF metadata value types: id -> (struct code, size); 8 = string and 9 = array are special
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
            6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 4096  # per-layer arrays are decoded; longer ones (vocabulary) are only counted


class _HeaderError(ValueError):
    """A header that does not parse; read_gguf turns it into a one-line SlmbenchError."""


class _HeaderEnds(_HeaderError):
    """The bytes end inside the header (a truncated file, or the start of one read so far)."""


class _Header:
    """A minimal GGUF v2/v3 header parser: metadata and tensor infos, no tensor data.

    The gguf package's reader decodes every array, which takes seconds for a 262k-entry token
    list; this walks past long arrays, so a header reads in milliseconds.  ``fields`` maps key to
    value; ``tensors`` holds (name, dims ne0.., ggml type id, absolute data offset).
    """

    def __init__(self, buf: Any, endian: str, file_size: int | None = None):
        self.buf, self.e, self.off = buf, endian, 0
        self.file_size = len(buf) if file_size is None else file_size  # buf may be its start
        self.fields: dict[str, Any] = {}
        self.tensors: list[tuple[str, tuple[int, ...], int, int]] = []
        self._u32 = struct.Struct(endian + "I")
        self._u64 = struct.Struct(endian + "Q")

    def _need(self, n: int) -> None:
        if n < 0 or self.off + n > len(self.buf):
            raise _HeaderEnds("header ends early")

    def u32(self) -> int:
        self._need(4)
        v = self._u32.unpack_from(self.buf, self.off)[0]
        self.off += 4
        return v

    def u64(self) -> int:
        self._need(8)
        v = self._u64.unpack_from(self.buf, self.off)[0]
        self.off += 8
        return v

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = self.buf[self.off:self.off + n]
        self.off += n
        return bytes(raw).decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            code, size = _SCALARS[vtype]
            self._need(size)
            v = struct.unpack_from(self.e + code, self.buf, self.off)[0]
            self.off += size
            return v
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            if count > self.file_size:  # every element takes at least one byte
                raise _HeaderError(f"array of {count} elements in a {self.file_size}-byte file")
            if count > _KEEP_ARRAY:
                self._skip_array(etype, count)
                return _Skipped(count)
            return [self.value(etype) for _ in range(count)]
        raise _HeaderError(f"unknown metadata value type {vtype}")

    def _skip_array(self, etype: int, count: int) -> None:
        if etype in _SCALARS:
            size = _SCALARS[etype][1] * count
            self._need(size)
            self.off += size
        elif etype == _STRING:
            unpack, buf, off, end = self._u64.unpack_from, self.buf, self.off, len(self.buf)
            for _ in range(count):
                if off + 8 > end:
                    raise _HeaderEnds("header ends early")
                off += 8 + unpack(buf, off)[0]
            if off > end:
                raise _HeaderEnds("header ends early")
            self.off = off
        else:
            for _ in range(count):
                self.value(etype)

    def parse(self, n_tensors: int, n_kv: int) -> "_Header":
        self.off = 24
        for _ in range(n_kv):
            key = self.string()
            self.fields[key] = self.value(self.u32())
        infos = []
        for _ in range(n_tensors):
            name = self.string()
            n_dims = self.u32()
            if n_dims > 8:
                raise _HeaderError(f"tensor {name!r} has {n_dims} dimensions")
            dims = tuple(self.u64() for _ in range(n_dims))
            infos.append((name, dims, self.u32(), self.u64()))
        align = self.fields.get("general.alignment", 32)
        align = int(align) if isinstance(align, int) and align > 0 else 32
        data_start = -(-self.off // align) * align
        self.tensors = [(n, d, t, data_start + o) for n, d, t, o in infos]
        return self


def model_id_from_file(filename: str, quant: str | None) -> str:
    """'/sdcard/gemma-3-270m-it-Q4_K_M.gguf' -> 'gemma-3-270m-it' (split suffix dropped too).

    The model id of a local file: its name without the quantization, so the quantizations of
    one model group together in analysis and a file measured by slmbench compares with the
    same file imported from llama-bench.
    """
    stem = re.sub(r"\.gguf$", "", os.path.basename(filename.replace("\\", "/")), flags=re.I)
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
    if quant:
        stem = re.sub(rf"[-._]{re.escape(quant)}$", "", stem, flags=re.IGNORECASE) or stem
    return stem


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message, or its class name when it has none."""
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def _read_header(path: str) -> tuple[int, _Header]:
    """(file size, parsed header) of one GGUF file; any defect is a one-line SlmbenchError."""
    size, endian, n_tensors, n_kv = _check_header(path)
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return size, _Header(mm, endian).parse(n_tensors, n_kv)
    except Exception as exc:  # noqa: BLE001 - bad bytes surface as many kinds of error
        raise ModelLoadError(f"{path}: unreadable or truncated GGUF file ({_first_line(exc)})"
                             ) from None


class HeaderTooShort(ModelLoadError):
    """The bytes given end inside the header: read more of the file and try again."""


def header_from_bytes(buf: bytes, label: str, file_size: int) -> _Header:
    """The parsed header of a GGUF file of ``file_size`` bytes from its first bytes (a ranged
    read of a remote file: no tensor data needed).  HeaderTooShort when ``buf`` ends inside the
    header."""
    endian, n_tensors, n_kv = _check_fixed(label, bytes(buf[:24]), file_size)
    try:
        return _Header(buf, endian, file_size).parse(n_tensors, n_kv)
    except SlmbenchError:
        raise
    except _HeaderEnds:
        if len(buf) < file_size:
            raise HeaderTooShort(f"{label}: header longer than the {len(buf)} bytes read") from None
        raise ModelLoadError(f"{label}: unreadable GGUF header (header ends early)") from None
    except Exception as exc:  # noqa: BLE001 - bad bytes surface as many kinds of error
        raise ModelLoadError(f"{label}: unreadable GGUF header ({_first_line(exc)})") from None


def info_from_headers(parts: list[tuple[str, int, _Header]]) -> GGUFInfo:
    """A GGUFInfo from parsed headers, (label, file size, header) per shard, first shard
    first (one part for a file that is not split): metadata from the first, tensors over all."""
    first = parts[0][0]
    count = _value(parts[0][2], "split.count")
    if isinstance(count, int) and count > 1 and count != len(parts):
        raise ModelLoadError(f"{first}: the first of {count} shards, {len(parts)} given; "
                             "every shard's header is needed for the model's tensors")
    return _header_info(parts)


def _header_info(parts: list[tuple[str, int, _Header]],
                 what: str = "unreadable GGUF header") -> GGUFInfo:
    """_info_from_reader with odd metadata values as one-line errors naming the first part."""
    try:
        return _info_from_reader(parts)
    except SlmbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - odd metadata values surface as many kinds of error
        raise ModelLoadError(f"{parts[0][0]}: {what} ({_first_line(exc)})") from None


def read_gguf_bytes(buf: bytes, label: str, file_size: int) -> GGUFInfo:
    """A GGUFInfo from the first bytes of one GGUF file (see header_from_bytes; a split model's
    other shards are not read: parameters and sizes are this shard's)."""
    return _header_info([(label, file_size, header_from_bytes(buf, label, file_size))])


def _split_shards(path: str, reader: _Header) -> list[str]:
    """The other shards of a split model whose first shard is ``path`` (none when not split)."""
    count = _value(reader, "split.count")
    if not isinstance(count, int) or count <= 1:
        return []
    no = _value(reader, "split.no", 0)
    parts = split_parts(path)
    if isinstance(no, int) and no > 0:
        first = shard_names(path)[0] if parts else "the -00001-of-... file"
        raise ModelLoadError(f"{path}: shard {no + 1} of a model split in {count} files; pass the "
                             f"first shard ({os.path.basename(first)}), llama.cpp opens the rest")
    if parts is None or parts[2] != count:
        raise ModelLoadError(f"{path}: the first of {count} shards, but its name does not end in "
                             f"-00001-of-{count:05d}.gguf, so llama.cpp cannot find the others; "
                             "keep the names llama-gguf-split gave them")
    rest = shard_names(path)[1:]
    missing = [os.path.basename(p) for p in rest if not os.path.exists(p)]
    if missing:
        raise ModelLoadError(f"{path}: split model, but {', '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} missing beside it; download "
                             "every shard (`slmbench download` fetches them all)")
    return rest


def read_gguf(path: str) -> GGUFInfo:
    """Read a GGUF header into a GGUFInfo; any defect becomes a one-line SlmbenchError.

    A split model is read from its first shard, like llama.cpp loads it: metadata from that
    shard, tensors (parameters, model size, types) and file size over every shard."""
    path = os.fspath(path)
    size, reader = _read_header(path)
    parts = [(path, size, reader)]
    for shard in _split_shards(path, reader):
        parts.append((shard, *_read_header(shard)))
    return _header_info(parts, "unreadable or truncated GGUF file")


def _info_from_reader(parts: list[tuple[str, int, _Header]]) -> GGUFInfo:
    path, _, reader = parts[0]
    arch = _value(reader, "general.architecture")
    if not arch:
        raise ModelLoadError(f"{path}: GGUF file has no general.architecture key")
    n_params = 0
    model_bytes = 0
    tensor_types: dict[str, int] = {}
    tensors: list[TensorInfo] = []
    vocab_from_embd = None
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    for part_path, part_size, part in parts:
        data_end = 0
        for name, dims, type_id, offset in part.tensors:
            try:
                qtype = GGMLQuantizationType(type_id)
                block, type_size = GGML_QUANT_SIZES[qtype]
            except (ValueError, KeyError):
                raise ModelLoadError(f"{part_path}: tensor {name!r} has unknown ggml type "
                                     f"{type_id}; a newer llama.cpp / gguf package may know it"
                                     ) from None
            n_elements = math.prod(dims)
            n_bytes = n_elements * type_size // block
            n_params += n_elements
            model_bytes += n_bytes
            tensor_types[qtype.name] = tensor_types.get(qtype.name, 0) + 1
            tensors.append(TensorInfo(name, tuple(int(d) for d in dims), qtype.name, n_bytes,
                                      int(offset) if len(parts) == 1 else None))
            data_end = max(data_end, offset + n_bytes)
            if name == "token_embd.weight" and len(dims) == 2:
                vocab_from_embd = int(dims[1])
        if data_end > part_size:
            raise ModelLoadError(f"{part_path}: truncated GGUF file (tensor data needs {data_end} "
                                 f"bytes, file has {part_size}); download it again")
    size = sum(part_size for _, part_size, _ in parts)
    n_layer = int(_value(reader, f"{arch}.block_count", 0) or 0)
    n_embd = int(_value(reader, f"{arch}.embedding_length", 0) or 0)
    head_raw = _value(reader, f"{arch}.attention.head_count")
    heads = _per_layer(head_raw, max(n_layer, 1), 0)
    n_head = max(heads) if heads else 0
    kv_raw = _value(reader, f"{arch}.attention.head_count_kv")
    kv_layers = _per_layer(kv_raw, n_layer, n_head) if n_layer else []
    head_dim_default = n_embd // n_head if n_head else 0
    n_embd_head_k = int(_value(reader, f"{arch}.attention.key_length", head_dim_default) or 0)
    n_embd_head_v = int(_value(reader, f"{arch}.attention.value_length", head_dim_default) or 0)
    ff_raw = _value(reader, f"{arch}.feed_forward_length")
    n_ff = max(_per_layer(ff_raw, max(n_layer, 1), 0)) if ff_raw is not None else None
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens) if isinstance(tokens, (list, _Skipped)) else None
    n_vocab = int(_value(reader, f"{arch}.vocab_size", n_vocab or vocab_from_embd or 0) or 0)
    window = _value(reader, f"{arch}.attention.sliding_window", SWA_DEFAULT_SIZE.get(arch))
    window = int(window) if window else None
    swa = _swa_layers(arch, reader, n_layer, bool(window))
    weight_types = {k: v for k, v in tensor_types.items() if k not in ("F32",)} or tensor_types
    return GGUFInfo(
        path=path, file_size_bytes=size, architecture=str(arch),
        name=_value(reader, "general.name"),
        file_type=file_type_name(_value(reader, "general.file_type"), weight_types),
        n_params=n_params, model_size_bytes=model_bytes, n_vocab=n_vocab, n_layer=n_layer,
        n_embd=n_embd, n_head=n_head, n_head_kv_layers=kv_layers, n_embd_head_k=n_embd_head_k,
        n_embd_head_v=n_embd_head_v, n_ff=n_ff,
        n_ctx_train=int(_value(reader, f"{arch}.context_length", 0) or 0),
        sliding_window=window if any(swa) else None, swa_layers=swa,
        tensor_types=dict(sorted(tensor_types.items(), key=lambda kv: -kv[1])),
        tensors=tensors,
    )
