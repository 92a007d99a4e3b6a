"""A local HTTP server that answers like the Hugging Face hub's resolve endpoint.

Enough of the protocol for `huggingface_hub.hf_hub_download`: HEAD/GET on
``/{repo_id}/resolve/{revision}/{filename}`` with X-Repo-Commit, ETag, Content-Length; 404s
carry X-Error-Code (RepoNotFound / RevisionNotFound / EntryNotFound); gated repos answer 401
GatedRepo unless the request carries the right bearer token.  Only 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []

    def add(self, repo_id: str, commit: str, files: dict[str, bytes], *, branch: str = "main",
            token: str | None = None) -> None:
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}, "token": token})
        repo["commits"][commit] = files
        repo["refs"][branch] = commit
        repo["token"] = token


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _error(self, status: int, code: str, message: str) -> None:
            body = message.encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _serve(self) -> None:
            state.requests.append((self.command, self.path))
            path = unquote(self.path.split("?", 1)[0])
            parts = path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "RepoNotFound", "not a resolve URL")
            repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            repo = state.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if repo["token"] and self.headers.get("Authorization") != f"Bearer {repo['token']}":
                return self._error(401, "GatedRepo", f"Access to {repo_id} is restricted")
            commit = repo["refs"].get(revision, revision)
            files = repo["commits"].get(commit)
            if files is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if filename not in files:
                return self._error(404, "EntryNotFound", f"{filename} does not exist")
            body = files[filename]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        do_GET = do_HEAD = _serve

    return Handler


class HubServer:
    def __init__(self):
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
