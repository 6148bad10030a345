"""A local stand-in for the Hugging Face Hub: the few HTTP endpoints huggingface_hub's
``create_repo``, ``upload_folder`` (legacy single-commit path: preupload, LFS batch + basic transfer,
commit, README validation) and ``snapshot_download`` (repo info, tree, resolve) call.

Run on 127.0.0.1 on a free port, in memory, with real git-like bookkeeping: every commit is a full
snapshot of the repo, oids are git blob sha1s (regular files) or sha256s (LFS files), as the Hub
reports them. Point ``HfApi(endpoint=standin.url)`` (or ``HF_ENDPOINT``) at it. Nothing here
imports mucomp: it speaks the Hub's protocol as huggingface_hub expects it, so the client code
under test is the real one.

Set ``huggingface_hub.constants.HF_HUB_DISABLE_XET = True`` while using it: with ``hf_xet``
installed, huggingface_hub would upload LFS files through the Xet storage protocol, which this
stand-in does not implement (the Hub then answers the same preupload/commit calls, so everything
above the transfer is exercised either way).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

#: What the Hub writes into a new repo's .gitattributes: which files go to LFS.
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.zip filter=lfs diff=lfs merge=lfs -text\n"
#: Files above this size go to LFS whatever their name (the Hub's limit for regular files is 10 MB).
REGULAR_LIMIT = 10 * 1024 * 1024
DATE = "2025-01-01T00:00:00.000Z"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        """The oid the Hub reports for preupload no-op checks: sha256 for LFS files, git sha1 else."""
        return hashlib.sha256(self.content).hexdigest() if self.lfs else git_blob_sha1(self.content)

    @property
    def etag(self) -> str:
        return self.oid


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision in ("main", "refs/heads/main"):
            return self.head
        return next((c for c in self.commits if c.oid == revision), None)


class HubStandIn:
    """The stand-in server. ``tokens`` maps accepted tokens to user names; ``requests`` records
    ``(method, path)`` of every request, in order."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {"hf_standin_write_token": "tester"})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # --- what the tests read ---------------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        """``{path: bytes}`` at the head of a repo."""
        return {path: f.content for path, f in self.repo(repo_id, repo_type).head.files.items()}

    def lfs_paths(self, repo_id: str, repo_type: str = "dataset") -> set[str]:
        return {path for path, f in self.repo(repo_id, repo_type).head.files.items() if f.lfs}

    # --- state changes (under the lock) -------------------------------------------------------------
    def create(self, repo_type: str, repo_id: str, private: bool) -> bool:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return False
            repo = Repo(repo_id, repo_type, private)
            repo.commits.append(_commit(None, "initial commit", {".gitattributes": StoredFile(GITATTRIBUTES, False)}))
            self.repos[(repo_type, repo_id)] = repo
            return True

    def is_lfs(self, repo: Repo, path: str, sample: bytes, size: int) -> bool:
        patterns = [line.split()[0] for line in repo.head.files[".gitattributes"].content.decode().splitlines()
                    if "filter=lfs" in line] if ".gitattributes" in repo.head.files else []
        name = path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns) or size > REGULAR_LIMIT:
            return True
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return b"\0" in sample


def _commit(parent: Commit | None, message: str, files: dict[str, StoredFile]) -> Commit:
    digest = hashlib.sha1((parent.oid if parent else "").encode() + message.encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].oid.encode())
    return Commit(digest.hexdigest(), message, files)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubStandIn

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    # --- plumbing ----------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return self.hub.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo | None:
        """The repo, or None after answering the error (unknown repo, missing or bad token)."""
        user = self._user()
        if self.headers.get("Authorization") and user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if write and user != repo_id.split("/")[0]:
            self._error(403, "You don't have the rights to write to this repo")
            return None
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit | None:
        commit = repo.at(unquote(revision))
        if commit is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # --- routing -----------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        split = urlsplit(self.path)
        path, query = unquote(split.path), parse_qs(split.query)
        self.hub.requests.append((self.command, path))
        body = self._body() if self.command in ("POST", "PUT") else b""
        parts = path.strip("/").split("/")
        try:
            self._dispatch(parts, query, body)
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            self._error(400, f"bad request: {err}")

    def _dispatch(self, parts: list[str], query: dict, body: bytes) -> None:
        method = self.command
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create(json.loads(body))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if method == "GET" and parts[:2] == ["api", "whoami-v2"]:
            user = self._user()
            return self._json(200, {"type": "user", "name": user}) if user else self._error(401, "Invalid credentials in Authorization header")
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("datasets", "models", "spaces"):
            repo_type, repo_id, rest = parts[1][:-1], "/".join(parts[2:4]), parts[4:]
            if method == "GET" and (not rest or rest[0] == "revision"):
                return self._info(repo_type, repo_id, rest[1] if len(rest) > 1 else "main")
            if method == "GET" and rest and rest[0] == "tree":
                return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), query)
            if method == "POST" and rest and rest[0] == "preupload":
                return self._preupload(repo_type, repo_id, rest[1], json.loads(body))
            if method == "POST" and rest and rest[0] == "commit":
                return self._commit(repo_type, repo_id, rest[1], body)
        if method == "PUT" and parts[0] == "lfs" and len(parts) == 2:
            return self._lfs_put(parts[1], body)
        if method == "POST" and parts[0] == "lfs" and len(parts) == 3 and parts[2] == "verify":
            return self._lfs_verify(parts[1], json.loads(body))
        prefix = parts[0] in ("datasets", "spaces")
        repo_type = parts[0][:-1] if prefix else "model"
        rest = parts[1:] if prefix else parts
        if len(rest) >= 2 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}", json.loads(body))
        if method in ("GET", "HEAD") and len(rest) >= 5 and rest[2] == "resolve":
            return self._resolve(repo_type, "/".join(rest[:2]), rest[3], "/".join(rest[4:]))
        self._error(404, f"no such endpoint: {method} /{'/'.join(parts)}")

    # --- endpoints ---------------------------------------------------------------------------------
    def _create(self, payload: dict) -> None:
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        owner = payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        repo_id = f"{owner}/{payload['name']}"
        if owner != user:
            return self._error(403, "You don't have the rights to create a repo in this namespace")
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        if not self.hub.create(repo_type, repo_id, payload.get("visibility") == "private" or bool(payload.get("private"))):
            return self._json(409, {"error": "You already created this repo", "url": url})
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        import yaml

        content = payload["content"]
        if not content.startswith("---\n"):
            return self._json(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        end = content.find("\n---\n", 4)
        try:
            data = yaml.safe_load(content[4:end]) if end > 0 else None
        except yaml.YAMLError as err:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}]})
        if not isinstance(data, dict):
            return self._json(400, {"errors": [{"message": "the metadata must be a YAML mapping"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        commit = self._revision(repo, revision)
        if commit is None:
            return
        self._json(200, {"id": repo_id, "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "author": repo_id.split("/")[0],
                         "sha": commit.oid, "private": repo.private, "disabled": False, "gated": False,
                         "lastModified": DATE, "createdAt": DATE, "tags": [], "downloads": 0, "likes": 0,
                         "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    def _tree(self, repo_type: str, repo_id: str, revision: str, under: str, query: dict) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        commit = self._revision(repo, revision)
        if commit is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{under.strip('/')}/" if under.strip("/") else ""
        entries, folders = [], set()
        for path in sorted(commit.files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if folder not in folders and (recursive or depth == 1):
                    folders.add(folder)
                    entries.append({"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                    "size": 0, "path": folder})
            if len(rest) > 1 and not recursive:
                continue
            stored = commit.files[path]
            entry = {"type": "file", "oid": git_blob_sha1(stored.content), "size": len(stored.content), "path": path}
            if stored.lfs:
                entry["lfs"] = {"oid": hashlib.sha256(stored.content).hexdigest(), "size": len(stored.content),
                                "pointerSize": 134}
            entries.append(entry)
        self._json(200, entries)

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        if repo is None or self._revision(repo, revision) is None:
            return
        files = []
        for item in payload["files"]:
            sample = base64.b64decode(item["sample"])
            existing = repo.head.files.get(item["path"])
            files.append({"path": item["path"], "shouldIgnore": False,
                          "uploadMode": "lfs" if self.hub.is_lfs(repo, item["path"], sample, int(item["size"])) else "regular",
                          "oid": existing.oid if existing is not None else None})
        self._json(200, {"files": files, "commitOid": repo.head.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        if self._repo(repo_type, repo_id, write=True) is None:
            return
        objects = []
        for item in payload["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.hub.lfs:  # already stored: no actions, the client skips it
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs/{item['oid']}"},
                                    "verify": {"href": f"{self.hub.url}/lfs/{item['oid']}/verify"}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, "the uploaded content does not match its oid")
        with self.hub.lock:
            self.hub.lfs[oid] = body
        self._send(200, b"", content_type="text/plain")

    def _lfs_verify(self, oid: str, payload: dict) -> None:
        stored = self.hub.lfs.get(oid)
        if stored is None or len(stored) != int(payload["size"]):
            return self._error(404, "object not found")
        self._json(200, {"success": True})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        if repo is None:
            return
        parent = self._revision(repo, revision)
        if parent is None:
            return
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        with self.hub.lock:
            if header.get("parentCommit") and header["parentCommit"] != repo.head.oid:
                return self._error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.head.files)
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = StoredFile(base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    content = self.hub.lfs.get(value["oid"])
                    if content is None:
                        return self._error(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    files[value["path"]] = StoredFile(content, True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(folder)}
            commit = _commit(repo.head, header.get("summary", ""), files)
            repo.commits.append(commit)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._json(200, {"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                         "commitUrl": f"{self.hub.url}/{prefix}{repo_id}/commit/{commit.oid}"})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        commit = self._revision(repo, revision)
        if commit is None:
            return
        stored = commit.files.get(path)
        if stored is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.etag}"', "Accept-Ranges": "bytes"}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{stored.etag}"', "X-Linked-Size": str(len(stored.content))})
        self._send(200, stored.content, headers, content_type="application/octet-stream")
