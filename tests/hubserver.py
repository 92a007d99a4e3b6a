"""A local HTTP server on 127.0.0.1 that answers like the Hugging Face hub, for real
`huggingface_hub` calls (HF_ENDPOINT / ``endpoint=`` pointed at it).

Enough of the protocol for what slmbench uses:

- downloads (`hf_hub_download`, `snapshot_download`): HEAD/GET
  ``/[datasets/]{repo_id}/resolve/{revision}/{path}`` with X-Repo-Commit, ETag (the git blob
  sha1 of a regular file, the sha256 of an LFS file) and Content-Length;
  ``GET /api/{models|datasets}/{repo_id}[/revision/{rev}]`` (repo info: sha, siblings) and
  ``GET /api/.../tree/{rev}[/{path}]?recursive=`` (paginated with a Link header like the hub);
- uploads (`create_repo`, `create_commit` / `upload_folder`): ``POST /api/repos/create``
  (409 when it exists), ``POST /api/validate-yaml`` (a README's metadata),
  ``POST /api/{type}s/{repo_id}/preupload/{rev}`` (regular or lfs, and the oid already there),
  the LFS batch API ``POST /[datasets/]{repo_id}.git/info/lfs/objects/batch`` with its upload
  (``PUT``) and verify actions, and ``POST /api/{type}s/{repo_id}/commit/{rev}`` (ndjson: file,
  lfsFile, deletedFile, deletedFolder; ``parentCommit`` checked, 412 when the branch moved).
  A commit applies all its operations or none: a branch only ever points at whole commits.

Not the Xet storage protocol: with hf_xet installed, huggingface_hub uploads LFS files through
Xet, so tests that upload LFS files set HF_HUB_DISABLE_XET (the LFS batch protocol).

404s carry X-Error-Code (RepoNotFound / RevisionNotFound / EntryNotFound) as the hub's do.
Auth: a bearer token in ``write_tokens`` may create repos and commit; one in ``read_tokens`` may
read private repos but gets 403 on writes; an unknown token is 401 "Invalid credentials in
Authorization header"; writes without a token are 401.  Gated model repos (``add(token=)``)
answer 401 GatedRepo without their token; private repos are 404 to others.

Faults for tests (``state.faults[name] = (status, message)`` or ``"drop"`` to close the
connection without an answer; ``"stall"`` to hang until the server stops) on: create, info,
tree, preupload, lfs_batch, lfs_upload, commit, resolve (``faults["resolve_glob"]`` limits it
to matching paths).  ``before_commit(state, repo_key)`` runs before a commit is applied
(another client committing in between).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlencode

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# The hub keeps small text as regular git blobs and the rest in LFS; the client assumes a
# regular file is at most 5 MB (huggingface_hub's CommitOperationAdd._local_oid).
LFS_THRESHOLD = 5 * 2**20


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Blob:
    def __init__(self, data: bytes, lfs: bool):
        self.data, self.lfs = data, lfs
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.pointer = LFS_POINTER.format(oid=self.sha256, size=len(data)).encode()
        self.oid = git_oid(self.pointer if lfs else data)  # what the tree lists

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else git_oid(self.data)


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}        # "dataset:org/name" -> repo
        self.requests: list[tuple[str, str]] = []
        self.lfs: dict[str, bytes] = {}         # the LFS store: sha256 -> content
        self.write_tokens: set[str] = {"hf_writer"}
        self.read_tokens: set[str] = {"hf_reader"}
        self.faults: dict[str, Any] = {}
        self.lfs_threshold = LFS_THRESHOLD
        self.page_size = 1000                   # tree entries per page, like the hub
        self.before_commit: Callable[["HubState", str], None] | None = None
        self.stop = threading.Event()
        self._n = 0
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ state helpers
    @staticmethod
    def key(repo_id: str, repo_type: str = "model") -> str:
        return f"{repo_type}:{repo_id}"

    def add(self, repo_id: str, commit: str, files: dict[str, bytes], *, branch: str = "main",
            token: str | None = None, repo_type: str = "model", private: bool = False) -> None:
        """A repo with a commit of ``files`` (binary and big files in LFS) on ``branch``."""
        repo = self.repos.setdefault(self.key(repo_id, repo_type), self._new_repo(repo_id,
                                                                                  repo_type))
        repo["commits"][commit] = {p: Blob(d, self._is_lfs(p, d)) for p, d in files.items()}
        repo["refs"][branch] = commit
        repo["token"], repo["private"] = token, private
        for blob in repo["commits"][commit].values():
            if blob.lfs:
                self.lfs[blob.sha256] = blob.data

    def _new_repo(self, repo_id: str, repo_type: str) -> dict:
        return {"id": repo_id, "type": repo_type, "refs": {}, "commits": {}, "log": [],
                "token": None, "private": False}

    def _is_lfs(self, path: str, data: bytes) -> bool:
        return (len(data) >= self.lfs_threshold or b"\0" in data[:1024]
                or path.endswith((".gguf", ".bin", ".safetensors")))

    def repo(self, repo_id: str, repo_type: str = "dataset") -> dict | None:
        return self.repos.get(self.key(repo_id, repo_type))

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main"
              ) -> dict[str, bytes]:
        """Path -> content at ``revision`` (empty when the repo or revision does not exist)."""
        repo = self.repo(repo_id, repo_type)
        if repo is None:
            return {}
        commit = repo["refs"].get(revision, revision)
        return {p: b.data for p, b in repo["commits"].get(commit, {}).items()}

    def new_commit_id(self, parent: str | None, files: dict[str, Blob], summary: str) -> str:
        with self.lock:
            self._n += 1
            n = self._n
        body = json.dumps([parent, sorted((p, b.oid) for p, b in files.items()), summary, n])
        return hashlib.sha1(body.encode()).hexdigest()

    def commit(self, repo_id: str, files: dict[str, bytes | None], summary: str,
               repo_type: str = "dataset", branch: str = "main") -> str:
        """Commit directly (another client): ``None`` deletes a path."""
        repo = self.repo(repo_id, repo_type)
        parent = repo["refs"].get(branch)
        new = dict(repo["commits"].get(parent, {}))
        for p, d in files.items():
            if d is None:
                new.pop(p, None)
            else:
                new[p] = Blob(d, self._is_lfs(p, d))
        cid = self.new_commit_id(parent, new, summary)
        repo["commits"][cid] = new
        repo["refs"][branch] = cid
        repo["log"].append({"oid": cid, "parent": parent, "summary": summary, "description": ""})
        return cid


class _Drop(Exception):
    """Close the connection without an answer (a network cut)."""


def _handler(state: HubState, base_url: Callable[[], str]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        # -------------------------------------------------------------- plumbing
        def _body(self) -> bytes:
            return self.body

        def _read_body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                return self.rfile.read(n)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return b""

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
                  ctype: str = "application/json") -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict | None = None) -> None:
            self._send(status, json.dumps(data).encode(), headers)

        def _error(self, status: int, code: str | None, message: str) -> None:
            headers = {"X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            self._json(status, {"error": message}, headers)

        def _fault(self, name: str, path: str = "") -> bool:
            fault = state.faults.get(name)
            if fault is None:
                return False
            glob = state.faults.get(f"{name}_glob")
            if glob and not fnmatch.fnmatch(path, glob):
                return False
            if fault == "drop":
                raise _Drop()
            if fault == "stall":
                state.stop.wait(60)
                raise _Drop()
            status, message = fault
            self._error(status, None, message)
            return True

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization") or ""
            return auth[7:] if auth.startswith("Bearer ") else None

        def _known(self, token: str) -> bool:
            return (token in state.write_tokens or token in state.read_tokens
                    or any(r["token"] == token for r in state.repos.values()))

        def _can_read(self, repo: dict) -> bool:
            """False after answering the error."""
            token = self._token()
            if token and not self._known(token):
                self._error(401, None, "Invalid credentials in Authorization header")
                return False
            if repo["token"] and token != repo["token"]:
                self._error(401, "GatedRepo", f"Access to {repo['id']} is restricted")
                return False
            if repo["private"] and token not in state.write_tokens | state.read_tokens:
                self._error(404, "RepoNotFound", f"Repository {repo['id']} not found")
                return False
            return True

        def _can_write(self, what: str) -> bool:
            token = self._token()
            if token is None:
                self._error(401, None, f"You must be authenticated to {what}")
                return False
            if not self._known(token):
                self._error(401, None, "Invalid credentials in Authorization header")
                return False
            if token not in state.write_tokens:
                self._error(403, None, f"You don't have the rights to {what}: this token is "
                                       "read-only")
                return False
            return True

        def _repo_or_404(self, repo_id: str, repo_type: str) -> dict | None:
            repo = state.repo(repo_id, repo_type)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return repo

        def _head(self, repo: dict, revision: str) -> str | None:
            commit = repo["refs"].get(revision)
            if commit is None and revision in repo["commits"]:
                commit = revision
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return commit

        # -------------------------------------------------------------- routing
        def _route(self) -> None:
            state.requests.append((self.command, self.path))
            raw, _, query = self.path.partition("?")
            self.query = {k: v[-1] for k, v in parse_qs(query).items()}
            parts = [unquote(p) for p in raw.strip("/").split("/")]
            if parts[:1] == ["_lfs"]:
                return self._lfs_object(parts[1:])
            if parts[:1] == ["api"]:
                if parts[1:3] == ["repos", "create"] and self.command == "POST":
                    return self._create()
                if parts[1:2] == ["validate-yaml"] and self.command == "POST":
                    return self._validate_yaml()
                if len(parts) >= 4 and parts[1] in TYPES:
                    repo_id, rest = "/".join(parts[2:4]), parts[4:]
                    repo_type = TYPES[parts[1]]
                    if not rest or rest[0] == "revision":
                        return self._info(repo_id, repo_type, rest[1] if rest else "main")
                    if rest[0] == "tree" and len(rest) >= 2:
                        return self._tree(repo_id, repo_type, rest[1], "/".join(rest[2:]))
                    if rest[0] == "preupload" and len(rest) >= 2:
                        return self._preupload(repo_id, repo_type, rest[1])
                    if rest[0] == "commit" and len(rest) >= 2:
                        return self._commit(repo_id, repo_type, rest[1])
                return self._error(404, None, f"no such endpoint {raw}")
            repo_type = "model"
            if parts[0] in ("datasets", "spaces"):
                repo_type, parts = TYPES[parts[0]], parts[1:]
            if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == [
                    "info", "lfs", "objects", "batch"]:
                return self._lfs_batch(f"{parts[0]}/{parts[1][:-4]}", repo_type)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), repo_type, parts[3],
                                     "/".join(parts[4:]))
            return self._error(404, "RepoNotFound", "not a hub URL")

        def _serve(self) -> None:
            try:
                self.body = self._read_body() if self.command in ("POST", "PUT") else b""
                self._route()
            except _Drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

        do_GET = do_HEAD = do_POST = do_PUT = _serve

        # -------------------------------------------------------------- repos
        def _create(self) -> None:
            body = json.loads(self._body() or b"{}")
            if not self._can_write("create a repo") or self._fault("create"):
                return
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or 'user'}/{body['name']}"
            url = f"{base_url()}/{PREFIX[repo_type]}{repo_id}"
            if state.repo(repo_id, repo_type):
                return self._json(409, {"error": f"You already created this {repo_type} repo",
                                        "url": url},
                                  {"X-Error-Message": "You already created this repo"})
            repo = state.repos[state.key(repo_id, repo_type)] = state._new_repo(repo_id,
                                                                                repo_type)
            repo["private"] = body.get("visibility") == "private" or bool(body.get("private"))
            # the hub starts every repo with a commit holding .gitattributes
            files = {".gitattributes": Blob(b"*.gguf filter=lfs diff=lfs merge=lfs -text\n",
                                            False)}
            cid = state.new_commit_id(None, files, "initial commit")
            repo["commits"][cid], repo["refs"]["main"] = files, cid
            repo["log"].append({"oid": cid, "parent": None, "summary": "initial commit",
                                "description": ""})
            self._json(200, {"url": url, "name": repo_id, "id": repo_id})

        def _validate_yaml(self) -> None:
            import yaml

            body = json.loads(self._body() or b"{}")
            content = body.get("content", "")
            errors = []
            if content.startswith("---"):
                block = content[3:].split("\n---", 1)
                try:
                    meta = yaml.safe_load(block[0]) if len(block) == 2 else None
                    if len(block) != 2:
                        errors.append("metadata block not closed by ---")
                    elif meta is not None and not isinstance(meta, dict):
                        errors.append("metadata must be a mapping")
                except yaml.YAMLError as exc:
                    errors.append(f"invalid YAML: {exc}")
            status = 400 if errors else 200
            self._json(status, {"errors": [{"message": m} for m in errors], "warnings": []})

        def _info(self, repo_id: str, repo_type: str, revision: str) -> None:
            if self._fault("info"):
                return
            repo = self._repo_or_404(repo_id, repo_type)
            if repo is None or not self._can_read(repo):
                return
            commit = self._head(repo, revision)
            if commit is None:
                return
            files = repo["commits"][commit]
            self._json(200, {"id": repo_id, "author": repo_id.split("/")[0], "sha": commit,
                             "private": repo["private"], "gated": bool(repo["token"]),
                             "lastModified": "2026-01-01T00:00:00.000Z", "tags": [],
                             "siblings": [{"rfilename": p} for p in sorted(files)]})

        def _tree(self, repo_id: str, repo_type: str, revision: str, path: str) -> None:
            if self._fault("tree", path):
                return
            repo = self._repo_or_404(repo_id, repo_type)
            if repo is None or not self._can_read(repo):
                return
            commit = self._head(repo, revision)
            if commit is None:
                return
            files = repo["commits"][commit]
            recursive = self.query.get("recursive", "false").lower() in ("1", "true")
            base = path.strip("/")
            under = {p: b for p, b in files.items() if not base or p.startswith(base + "/")}
            if base and not under:
                return self._error(404, "EntryNotFound",
                                   f"{base} does not exist on {revision}")
            entries: dict[str, dict] = {}
            for p, b in sorted(under.items()):
                rel = p[len(base) + 1:] if base else p
                segs = rel.split("/")
                for i in range(1, len(segs)):
                    d = "/".join(([base] if base else []) + segs[:i])
                    if recursive or i == 1:
                        entries.setdefault(d, {"type": "directory", "oid": git_oid(d.encode()),
                                               "size": 0, "path": d})
                if recursive or len(segs) == 1:
                    e = {"type": "file", "oid": b.oid, "size": len(b.data), "path": p}
                    if b.lfs:
                        e["lfs"] = {"oid": b.sha256, "size": len(b.data),
                                    "pointerSize": len(b.pointer)}
                    entries[p] = e
            listing = sorted(entries.values(), key=lambda e: e["path"])
            start = int(self.query.get("cursor", 0))
            page = listing[start:start + state.page_size]
            headers = {}
            if start + state.page_size < len(listing):
                q = dict(self.query, cursor=str(start + state.page_size))
                headers["Link"] = (f"<{base_url()}{self.path.partition('?')[0]}?{urlencode(q)}>"
                                   '; rel="next"')
            self._json(200, page, headers)

        def _resolve(self, repo_id: str, repo_type: str, revision: str, filename: str) -> None:
            repo = self._repo_or_404(repo_id, repo_type)
            if repo is None or not self._can_read(repo):
                return
            commit = self._head(repo, revision)
            if commit is None:
                return
            blob = repo["commits"][commit].get(filename)
            if blob is None:
                return self._error(404, "EntryNotFound", f"{filename} does not exist")
            if self.command == "GET" and self._fault("resolve", filename):
                return
            self._send(200, blob.data, {"X-Repo-Commit": commit, "ETag": f'"{blob.etag}"'},
                       ctype="application/octet-stream")

        # -------------------------------------------------------------- uploads
        def _preupload(self, repo_id: str, repo_type: str, revision: str) -> None:
            body = json.loads(self._body() or b"{}")
            if not self._can_write("upload") or self._fault("preupload"):
                return
            repo = self._repo_or_404(repo_id, repo_type)
            if repo is None:
                return
            commit = self._head(repo, revision)
            if commit is None:
                return
            files = repo["commits"][commit]
            out = []
            for f in body.get("files", []):
                sample = base64.b64decode(f.get("sample", ""))
                lfs = f["size"] >= state.lfs_threshold or b"\0" in sample
                have = files.get(f["path"])
                oid = None
                if have is not None:
                    oid = have.sha256 if have.lfs else git_oid(have.data)
                out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": oid})
            self._json(200, {"files": out, "commitOid": commit})

        def _lfs_batch(self, repo_id: str, repo_type: str) -> None:
            body = json.loads(self._body() or b"{}")
            if not self._can_write("upload") or self._fault("lfs_batch"):
                return
            if self._repo_or_404(repo_id, repo_type) is None:
                return
            objects = []
            for o in body.get("objects", []):
                entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                if o["oid"] not in state.lfs:
                    href = f"{base_url()}/_lfs/{o['oid']}"
                    entry["actions"] = {"upload": {"href": href, "header": {}},
                                        "verify": {"href": href + "/verify", "header": {}}}
                objects.append(entry)
            self._json(200, {"transfer": "basic", "objects": objects})

        def _lfs_object(self, parts: list[str]) -> None:
            data = self._body()
            if not parts:
                return self._error(404, None, "no object")
            oid = parts[0]
            if parts[1:] == ["verify"]:
                if oid in state.lfs:
                    return self._json(200, {"success": True})
                return self._error(404, None, f"object {oid} not uploaded")
            if self._fault("lfs_upload"):
                return
            if hashlib.sha256(data).hexdigest() != oid:
                return self._error(400, None, "content does not match its oid")
            state.lfs[oid] = data
            self._send(200)

        def _commit(self, repo_id: str, repo_type: str, revision: str) -> None:
            lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
            if not self._can_write("commit"):
                return
            repo = self._repo_or_404(repo_id, repo_type)
            if repo is None:
                return
            if self._fault("commit"):
                return
            if state.before_commit is not None:
                state.before_commit(state, state.key(repo_id, repo_type))
            head = self._head(repo, revision)
            if head is None:
                return
            header = next((x["value"] for x in lines if x.get("key") == "header"), {})
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent):
                return self._error(412, None, "A commit has happened since. Please refresh "
                                              "and try again.")
            new = dict(repo["commits"][head])
            for item in lines:
                key, value = item.get("key"), item.get("value", {})
                if key == "file":
                    new[value["path"]] = Blob(base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    data = state.lfs.get(value["oid"])
                    if data is None:
                        return self._error(400, None, f"{value['path']}: LFS object "
                                                      f"{value['oid']} was never uploaded")
                    new[value["path"]] = Blob(data, True)
                elif key == "deletedFile":
                    if new.pop(value["path"], None) is None:
                        return self._error(404, "EntryNotFound", "A file with this name "
                                                                 f"doesn't exist: {value['path']}")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    for p in [p for p in new if p.startswith(prefix)]:
                        del new[p]
            summary = header.get("summary", "")
            cid = state.new_commit_id(head, new, summary)
            repo["commits"][cid] = new
            repo["refs"][revision] = cid
            repo["log"].append({"oid": cid, "parent": head, "summary": summary,
                                "description": header.get("description", "")})
            self._json(200, {"success": True, "commitOid": cid,
                             "commitUrl": f"{base_url()}/{PREFIX[repo_type]}{repo_id}/commit/"
                                          f"{cid}", "hookOutput": ""})

    return Handler


class HubServer:
    def __init__(self):
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state, lambda: self.url))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
