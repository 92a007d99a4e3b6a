"""Model files from the Hugging Face hub (or a local path), through huggingface_hub.

The real `hf_hub_download` does the work: the standard cache (HF_HOME / HF_HUB_CACHE), HF_TOKEN
for gated repos, HF_HUB_OFFLINE=1 to reuse cached files, HF_ENDPOINT for mirrors.  slmbench adds
what a benchmark needs on top: the catalog's pinned revision, a sha256 check when the catalog
has one (a bad file is removed from the cache, so a retry downloads it again), every shard of
a split model (``x-00001-of-0000N.gguf`` ...) from one commit, and one-line errors
(:class:`ModelFetchError`) that say what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
from typing import Any

from slmbench.errors import ModelFetchError, SlmbenchError
from slmbench.gguf_info import shard_names

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
    quant = (quant or default_quant(entry)).upper()
    local = entry.paths.get(quant) or (entry.paths.get("LOCAL") if not entry.files else None)
    if local:
        missing = [p for p in shard_names(local) if not os.path.exists(p)]
        if missing:
            what = "local file" if len(shard_names(local)) == 1 else "shard"
            raise ModelFetchError(f"{entry.id}:{quant}: {what} {missing[0]} does not exist "
                                  "(fix 'path' in models.yaml)")
        return local
    if quant not in entry.files:
        raise ModelFetchError(f"{entry.id} has no quantization {quant}; available: "
                              f"{', '.join(entry.quants())}")
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
            # the other shards from the commit the first came from (.../snapshots/<commit>/
            # <filename>), so a push in between cannot mix versions and they land beside it
            revision = os.path.basename(path[:len(path) - len(filename)].rstrip("/\\"))
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


def _what(entry: Any, filename: str) -> str:
    return f"{entry.repo_id}/{filename}" + (f"@{entry.revision}" if entry.revision else "")


def _download(entry: Any, filename: str, revision: str | None, *, offline: bool,
              cache_dir: str | None, token: str | None) -> str:
    """One file through hf_hub_download; every failure becomes a one-line ModelFetchError."""
    import huggingface_hub
    from huggingface_hub import constants, errors

    what = _what(entry, filename)
    try:
        return huggingface_hub.hf_hub_download(
            entry.repo_id, filename, revision=revision, cache_dir=cache_dir,
            token=token, local_files_only=offline)
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
    except errors.LocalEntryNotFoundError:
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
