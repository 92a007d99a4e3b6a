"""Model files from the Hugging Face hub (or a local path), through huggingface_hub.

The real `hf_hub_download` does the work: the standard cache (HF_HOME / HF_HUB_CACHE), HF_TOKEN
for gated repos, HF_HUB_OFFLINE=1 to reuse cached files, HF_ENDPOINT for mirrors.  slmbench adds
what a benchmark needs on top: the catalog's pinned revision, a sha256 check when the catalog
has one (a bad file is removed from the cache, so a retry downloads it again), every shard of
a split model (``x-00001-of-0000N.gguf`` ...) from one commit, and one-line errors
(:class:`ModelFetchError`) that say what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from typing import Any, Iterator

from slmbench.errors import ModelFetchError, SlmbenchError
from slmbench.gguf_info import GGUFInfo, shard_names

DEFAULT_QUANT_ORDER = ("Q4_K_M", "Q8_0")


def default_quant(entry: Any) -> str:
    quants = entry.quants()
    for q in DEFAULT_QUANT_ORDER:
        if q in quants:
            return q
    if not quants:
        raise SlmbenchError(f"{entry.id}: the catalog lists no files for it")
    return quants[0]


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
    """Digest of a file, cached beside its blob so a 2 GB model is hashed once."""
    real = os.path.realpath(path)
    st = os.stat(real)
    sidecar = real + ".sha256"
    stamp = f"{st.st_size}:{int(st.st_mtime)}"
    try:
        with open(sidecar, encoding="ascii") as fh:
            cached_stamp, digest = fh.read().split()
        if cached_stamp == stamp:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    try:
        with open(sidecar, "w", encoding="ascii") as fh:
            fh.write(f"{stamp} {digest}\n")
    except OSError:
        pass  # a read-only cache only costs re-hashing next time
    return digest


def _reject(path: str) -> None:
    """Remove a bad download (blob, its digest sidecar and the snapshot link)."""
    real = os.path.realpath(path)
    for p in (real, real + ".sha256", path):
        try:
            os.remove(p)
        except OSError:
            pass


def fetch_model(entry: Any, quant: str | None = None, *, offline: bool | None = None,
                cache_dir: str | None = None, token: str | None = None,
                progress: bool = True) -> str:
    """Local path of ``entry``'s ``quant`` file, downloading it if needed.

    A split model (``files: {F16: x-00001-of-00002.gguf}``) is downloaded shard by shard, all
    from one commit into one snapshot directory, and the path of the first shard is returned:
    llama.cpp loads the others from beside it."""
    quant, local = _local_file(entry, quant)
    if local:
        return local
    names = entry.file_names(quant)
    digests = entry.digests(quant)
    import huggingface_hub  # noqa: F401 - fail here, not in the middle, when it is missing
    from huggingface_hub import constants

    if offline is None:
        offline = bool(constants.HF_HUB_OFFLINE)
    if not progress:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    revision = entry.revision
    paths = []
    for filename, expected in zip(names, digests):
        path = _download(entry, filename, revision, offline=offline, cache_dir=cache_dir,
                         token=token)
        if len(names) > 1:
            # the other shards from the commit the first came from, so a push in between cannot
            # mix versions and they land beside it
            revision = _snapshot_commit(path, filename)
        if expected:
            actual = sha256_of(path)
            if actual.lower() != expected.lower():
                _reject(path)
                raise ModelFetchError(
                    f"{_what(entry, filename)}: sha256 mismatch (expected {expected[:12]}..., "
                    f"got {actual[:12]}...); the file was removed from the cache - retry, or "
                    "update sha256 in models.yaml if the repo changed")
        paths.append(path)
    return paths[0]


def _local_file(entry: Any, quant: str | None) -> tuple[str, str | None]:
    """(quantization, the catalog's local path for it or None when it comes from the hub); a
    one-line ModelFetchError for a missing local file or shard or an unknown quantization."""
    quant = (quant or default_quant(entry)).upper()
    local = entry.paths.get(quant) or (entry.paths.get("LOCAL") if not entry.files else None)
    if local:
        missing = [p for p in shard_names(local) if not os.path.exists(p)]
        if missing:
            what = "local file" if len(shard_names(local)) == 1 else "shard"
            raise ModelFetchError(f"{entry.id}:{quant}: {what} {missing[0]} does not exist "
                                  "(fix 'path' in models.yaml)")
        return quant, local
    if quant not in entry.files:
        raise ModelFetchError(f"{entry.id} has no quantization {quant}; available: "
                              f"{', '.join(entry.quants())}")
    return quant, None


# A header read from the hub starts with this many bytes and doubles while the header is longer
# (Gemma-3's 262k-token vocabulary makes ~6 MiB headers); past the limit it is not a sane GGUF.
HEADER_FIRST_READ = 1 << 20
HEADER_MAX_READ = 64 << 20


def fetch_header(entry: Any, quant: str | None = None, *, offline: bool | None = None,
                 cache_dir: str | None = None, token: str | None = None) -> GGUFInfo:
    """The GGUF header (metadata and tensor table, no tensor data) of ``entry``'s ``quant`` file,
    without downloading the file: what ``slmbench predict`` needs before a download.

    A local file (``path`` in the catalog) or one already in the Hugging Face cache is read from
    disk with :func:`slmbench.gguf_info.read_gguf`, no network.  Otherwise the file's size comes
    from a HEAD request and its first bytes from HTTP ``Range`` requests through
    huggingface_hub's session (HF_ENDPOINT, HF_TOKEN and the pinned revision apply; every range
    from the commit the HEAD resolved): 1 MiB first, then more - only the bytes not yet read -
    doubling up to 64 MiB while the header is longer.

    A split model not on disk has every shard's header read this way (all from the commit the
    first shard's HEAD resolved): metadata from the first, tensors, parameters, model and file
    size over all of them, as llama.cpp loads it.

    Failures are one-line ModelFetchErrors (the same as a download's); offline and not cached
    is one too - the caller then uses the catalog's facts when it has them.  Bytes that are not
    a GGUF header are a ModelLoadError."""
    from slmbench.gguf_info import read_gguf

    quant, local = _local_file(entry, quant)
    if local:
        return read_gguf(local)
    names = entry.file_names(quant)
    from huggingface_hub import constants

    if offline is None:
        offline = bool(constants.HF_HUB_OFFLINE)
    cached = _cached(entry, names, cache_dir=cache_dir)
    if cached:
        return read_gguf(cached)
    if offline:
        raise ModelFetchError(
            f"{_what(entry, names[0])}: not in the Hugging Face cache and offline mode is on "
            "(HF_HUB_OFFLINE=1 / --offline), so its GGUF header cannot be read; the catalog's "
            "facts about the model are used instead when it has them")
    from slmbench.gguf_info import info_from_headers

    parts, revision = [], entry.revision
    for filename in names:
        with _hub_errors(entry, filename, offline=False):
            label, size, header, commit = _remote_header(entry, filename, token=token,
                                                         revision=revision)
        parts.append((label, size, header))
        revision = commit or revision  # the other shards from the first one's commit
    return info_from_headers(parts)


def _cached(entry: Any, names: list[str], *, cache_dir: str | None) -> str | None:
    """Path of the first file in the Hugging Face cache when every shard is there, else None."""
    import huggingface_hub
    from huggingface_hub import errors

    revision, first = entry.revision, None
    for filename in names:
        try:
            path = huggingface_hub.hf_hub_download(entry.repo_id, filename, revision=revision,
                                                   cache_dir=cache_dir, local_files_only=True)
        except (errors.LocalEntryNotFoundError, errors.EntryNotFoundError):
            return None
        if first is None:
            first = path
            revision = _snapshot_commit(path, filename)  # the other shards from its commit
    return first


def _remote_header(entry: Any, filename: str, *, token: str | None,
                   revision: str | None) -> tuple[str, int, Any, str | None]:
    """(label, file size, parsed header, commit) of a hub file at ``revision`` from ranged reads
    of its start (see fetch_header)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from slmbench.gguf_info import HeaderTooShort, header_from_bytes

    label = _what(entry, filename)
    url = hf_hub_url(entry.repo_id, filename, revision=revision)
    meta = get_hf_file_metadata(url, token=token)
    if meta.size is None:
        raise ModelFetchError(f"{label}: the hub did not tell the file's size (no "
                              "Content-Length); download the model instead")
    if meta.commit_hash:  # every range from one commit, even if the branch moves meanwhile
        url = hf_hub_url(entry.repo_id, filename, revision=meta.commit_hash)
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"  # byte offsets of the file, not of a compression
    buf = bytearray()
    want = HEADER_FIRST_READ
    while True:
        end = min(want, meta.size)
        if end > len(buf):
            buf += _read_range(url, len(buf), end, headers)
        try:
            return label, meta.size, header_from_bytes(bytes(buf), label, meta.size), \
                meta.commit_hash
        except HeaderTooShort:
            if want >= HEADER_MAX_READ:
                raise ModelFetchError(
                    f"{label}: GGUF header longer than {HEADER_MAX_READ >> 20} MiB read from the "
                    "hub; download the model to read it") from None
            want *= 2


def _read_range(url: str, start: int, end: int, headers: dict[str, str]) -> bytes:
    """Bytes [start, end) of a hub file in one ranged GET (huggingface_hub's session: retries,
    redirects to the CDN); a server that ignores Range is read only as far as needed."""
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    out = bytearray()
    with http_stream_backoff("GET", url, headers={**headers, "Range": f"bytes={start}-{end - 1}"},
                             timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
        hf_raise_for_status(response)
        skip = start if response.status_code == 200 else 0  # 200: the whole file from byte 0
        for chunk in response.iter_bytes():
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            out += chunk
            if len(out) >= end - start:
                break
    return bytes(out[:end - start])


def _snapshot_commit(path: str, filename: str) -> str:
    """The commit of a cached file from its path (.../snapshots/<commit>/<filename>)."""
    return os.path.basename(path[:len(path) - len(filename)].rstrip("/\\"))


def _what(entry: Any, filename: str) -> str:
    return f"{entry.repo_id}/{filename}" + (f"@{entry.revision}" if entry.revision else "")


def _download(entry: Any, filename: str, revision: str | None, *, offline: bool,
              cache_dir: str | None, token: str | None) -> str:
    """One file through hf_hub_download; every failure becomes a one-line ModelFetchError."""
    import huggingface_hub

    with _hub_errors(entry, filename, offline=offline):
        path = huggingface_hub.hf_hub_download(
            entry.repo_id, filename, revision=revision, cache_dir=cache_dir,
            token=token, local_files_only=offline)
    return path


@contextlib.contextmanager
def _hub_errors(entry: Any, filename: str, *, offline: bool) -> Iterator[None]:
    """Every huggingface_hub / network failure in the block as a one-line ModelFetchError that
    says what to do (shared by downloads and ranged header reads)."""
    import httpx2
    from huggingface_hub import constants, errors

    what = _what(entry, filename)
    try:
        yield
    except errors.GatedRepoError:
        raise ModelFetchError(
            f"{what}: the repository is gated - accept its licence on "
            f"https://huggingface.co/{entry.repo_id} while logged in, then `export HF_TOKEN=...` "
            "(or `hf auth login`) and retry") from None
    except errors.RevisionNotFoundError:
        raise ModelFetchError(f"{what}: revision {entry.revision!r} not found in "
                              f"{entry.repo_id} (fix 'revision' in models.yaml)") from None
    except errors.RemoteEntryNotFoundError:
        raise ModelFetchError(f"{what}: file {filename} not found in {entry.repo_id} (fix "
                              "'files' in models.yaml; the repo may name it differently)"
                              ) from None
    except errors.RepositoryNotFoundError:
        raise ModelFetchError(f"{what}: repository {entry.repo_id} not found, or private "
                              "(check 'repo_id' in models.yaml; for a private repo set HF_TOKEN)"
                              ) from None
    except (errors.LocalEntryNotFoundError, httpx2.TransportError):
        if offline:
            raise ModelFetchError(
                f"{what}: not in the Hugging Face cache and offline mode is on "
                "(HF_HUB_OFFLINE=1 / --offline): download it once online, or point 'path' in "
                "models.yaml at a local GGUF") from None
        raise ModelFetchError(
            f"{what}: cannot reach the hub at {constants.ENDPOINT} and the file is not cached - "
            "check the network, or use HF_HUB_OFFLINE=1 after a prior download, or a local "
            "'path' in models.yaml") from None
    except errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise ModelFetchError(f"{what}: the hub answered HTTP {status} "
                              f"({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelFetchError(f"{what}: disk full while downloading to the Hugging Face "
                                  "cache; free space or set HF_HOME to a bigger disk") from None
        raise ModelFetchError(f"{what}: download failed ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
