"""A real git server over smart HTTP: `git http-backend` run as a CGI behind aiohttp, for push and fetch tests.

Nothing about git is faked: every request spawns `git http-backend` with the CGI environment, streams the
request body to it and answers with the headers and body it prints, so clients (the git CLI, libgit2) speak
the real protocol (v2 for fetches, report-status for pushes) to a real repository. What the server adds is
what a hosted forge puts in front of git:

- HTTP Basic auth with one user and token (`401` + `WWW-Authenticate: Basic realm="git"` otherwise, which is
  what makes git ask its credential helper); `anonymous_read=True` lets fetches through without it, as a
  public repository does; `read_only=True` refuses pushes with 403, as a read-only token does.
- `protect(name, branch)`: updates of that branch are refused as GitHub refuses them, `! [remote rejected]
  main -> main (protected branch hook declined)` after `remote: error: GH006: Protected branch update
  failed ...`. A pre-receive hook can only make git print "pre-receive hook declined", so the refusal is a
  proc-receive hook (git >= 2.29), which may give the reason of each refused ref itself.

Repositories are bare, under `root`, served at `{server.url}/{name}.git`; a name may have slashes
(`acme/widgets` -> `{url}/acme/widgets.git`, as GitHub's clone URLs). The helpers change them from the
outside (someone else pushing, the base branch moving) without going through HTTP or hooks.

    async with GitHttpServer(tmp_path / "srv", username="bot", token="s3cret") as git:
        git.create_repo("acme/widgets", {"README.md": "hi\\n"})
        git.protect("acme/widgets", "main")
        ...  # push to f"{git.url}/acme/widgets.git" with user bot and password s3cret
        assert git.ref("acme/widgets", "refs/heads/aicode/task-1") is not None

It runs in a thread of its own (see `threaded_server`), as root like the tests, so the backend is given
`safe.directory=*` (and `http.receivepack=true`) through GIT_CONFIG_* variables.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BasicAuth, web

from tests.fakes.threaded_server import ThreadedServer

__all__ = ["GitHttpServer", "GitRequest", "PROTECTED_REASON"]

PROTECTED_REASON = "protected branch hook declined"
AUTHOR = ("Someone Else", "someone@example.com")
_BACKEND_CONFIG = {"safe.directory": "*", "http.receivepack": "true", "http.uploadpack": "true"}
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}

# The proc-receive hook behind protect(): receive-pack hands it the commands on refs listed in
# receive.procReceiveRefs (pkt-line protocol, see githooks(5)) and reports "ng <ref> <reason>" to the client.
_PROC_RECEIVE = '''#!{python}
"""proc-receive hook installed by tests.fakes.git_http.GitHttpServer.protect: refuses every update routed here."""
import sys

IN, OUT = sys.stdin.buffer, sys.stdout.buffer


def packets():
    """The payloads up to the next flush packet."""
    while True:
        head = IN.read(4)
        if len(head) < 4 or head == b"0000":
            return
        yield IN.read(int(head, 16) - 4).rstrip(b"\\n")


def send(lines):
    for line in lines:
        OUT.write(b"%04x" % (len(line) + 4) + line)
    OUT.write(b"0000")
    OUT.flush()


list(packets())  # version=1 and the features receive-pack offers
send([b"version=1"])
refs = [line.split(b" ", 2)[2] for line in packets()]
for ref in refs:
    sys.stderr.write("error: GH006: Protected branch update failed for %s.\\n" % ref.decode())
    sys.stderr.write("error: Changes must be made through a pull request.\\n")
sys.stderr.flush()
send([b"ng " + ref + b" {reason}" for ref in refs])
'''


@dataclass
class GitRequest:
    """One HTTP request the server received. `status` is filled in once the answer is known."""

    method: str
    path: str  # e.g. /acme/widgets.git/info/refs
    service: str | None  # git-upload-pack (fetch), git-receive-pack (push), or None (dumb HTTP)
    user: str | None  # the Basic-auth user that was accepted; None if none was (anonymous or refused)
    encoding: str | None = None  # the request body's Content-Encoding (git gzips larger fetch requests)
    status: int | None = None


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: bytes | None = None,  # noqa: A002
         check: bool = True) -> str:
    """Run the git CLI (no user or system config, fixed identity) and return its stdout, stripped."""
    full_env = {**_clean_env(), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, **(env or {})}
    done = subprocess.run(
        ["git", "-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}", *args],
        cwd=cwd, env=full_env, input=input, capture_output=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return done.stdout.decode().strip()


def _clean_env() -> dict[str, str]:
    """This process's environment without GIT_* variables (a GIT_DIR from outside must not leak in)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}


def _config_env(config: dict[str, str]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _service(request: web.Request) -> str | None:
    path = request.path
    if path.endswith("/git-upload-pack"):
        return "git-upload-pack"
    if path.endswith("/git-receive-pack"):
        return "git-receive-pack"
    if path.endswith("/info/refs"):
        return request.query.get("service")
    return None


class GitHttpServer(ThreadedServer):
    """Smart-HTTP git server over the bare repositories under `root` (created if missing)."""

    thread_name = "fake-git-http"

    def __init__(self, root: Path | str, *, username: str = "git-user", token: str = "git-token",
                 anonymous_read: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.token = token
        self.anonymous_read = anonymous_read
        self.read_only = False  # refuse pushes (403), as a token without write access does
        self.requests: list[GitRequest] = []
        self.backend_errors: list[str] = []  # what git http-backend printed on stderr, one entry per request

    # -- addresses -----------------------------------------------------------------
    def repo_url(self, name: str, *, auth: bool = False) -> str:
        """`{url}/{name}.git`; with `auth`, the user and token in it (`http://user:token@host:port/...`)."""
        if not auth:
            return f"{self.url}/{name}.git"
        return f"http://{self.username}:{self.token}@{self.host}:{self.port}/{name}.git"

    def path(self, name: str) -> Path:
        """The bare repository of `name` on disk."""
        return self.root / f"{name}.git"

    # -- repositories ----------------------------------------------------------------
    def create_repo(self, name: str, files: dict[str, str | bytes], branch: str = "main",
                    message: str = "Initial commit") -> Path:
        """A bare repository `name` whose `branch` (also its HEAD) has one commit with `files` (path -> content)."""
        path = self.path(name)
        if path.exists():
            raise FileExistsError(f"repository {name} exists already")
        path.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--bare", "--quiet", f"--initial-branch={branch}", str(path))
        self._commit(path, f"refs/heads/{branch}", None, files, message)
        return path

    def commit_to(self, name: str, branch: str, files: dict[str, str | bytes | None], message: str) -> str:
        """Add a commit to `branch` of `name` from the outside and return its id.

        `files` maps paths to new contents (None deletes the path); the rest of the tree is kept. A branch
        that does not exist yet starts from HEAD's commit (the default branch)."""
        path = self._existing(name)
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        parent = self.ref(name, ref) or self.ref(name, "HEAD")
        return self._commit(path, ref, parent, files, message)

    def ref(self, name: str, refname: str) -> str | None:
        """The commit id `refname` points at (`main`, `refs/heads/main`, `HEAD`, a tag), or None if it doesn't exist."""
        path = self._existing(name)
        candidates = [refname] if refname.startswith("refs/") or refname == "HEAD" else [
            f"refs/heads/{refname}", f"refs/tags/{refname}", refname]
        for candidate in candidates:
            found = _git("--git-dir", str(path), "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}",
                         check=False)
            if found:
                return found
        return None

    def set_ref(self, name: str, refname: str, commit: str | None) -> None:
        """Point `refname` (e.g. refs/heads/x) at `commit`, or delete it when `commit` is None."""
        path = str(self._existing(name))
        if commit is None:
            _git("--git-dir", path, "update-ref", "-d", refname)
        else:
            _git("--git-dir", path, "update-ref", refname, commit)

    def branches(self, name: str) -> dict[str, str]:
        """Every branch of `name`: short name -> commit id."""
        out = _git("--git-dir", str(self._existing(name)), "for-each-ref", "--format=%(refname:short) %(objectname)",
                   "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def read_file(self, name: str, rev: str, file: str) -> str | None:
        """The content of `file` at `rev` (a branch name or commit id), or None if it isn't there."""
        commit = self.ref(name, rev) or rev
        done = subprocess.run(["git", "--git-dir", str(self._existing(name)), "show", f"{commit}:{file}"],
                              env=_clean_env(), capture_output=True, timeout=60)
        return done.stdout.decode() if done.returncode == 0 else None

    def is_ancestor(self, name: str, ancestor: str, descendant: str) -> bool:
        """Whether commit `ancestor` is reachable from `descendant` (both commit ids or branch names)."""
        done = subprocess.run(["git", "--git-dir", str(self._existing(name)), "merge-base", "--is-ancestor",
                               ancestor, descendant], env=_clean_env(), capture_output=True, timeout=60)
        return done.returncode == 0

    def log(self, name: str, rev: str) -> list[str]:
        """The subjects of the commits reachable from `rev`, newest first."""
        return _git("--git-dir", str(self._existing(name)), "log", "--format=%s", rev, "--").splitlines()

    def protect(self, name: str, branch: str) -> None:
        """Refuse every push that updates, creates or deletes `refs/heads/<branch>` (PROTECTED_REASON)."""
        path = self._existing(name)
        hook = path / "hooks" / "proc-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_PROC_RECEIVE.replace("{python}", sys.executable).replace("{reason}", PROTECTED_REASON))
        hook.chmod(0o755)
        ref = f"refs/heads/{branch}"
        current = _git("--git-dir", str(path), "config", "--get-all", "receive.procReceiveRefs", check=False)
        if ref not in current.splitlines():
            _git("--git-dir", str(path), "config", "--add", "receive.procReceiveRefs", ref)

    def unprotect(self, name: str, branch: str) -> None:
        """Undo protect() for `branch`."""
        path = self._existing(name)
        _git("--git-dir", str(path), "config", "--fixed-value", "--unset-all", "receive.procReceiveRefs",
             f"refs/heads/{branch}", check=False)

    def _existing(self, name: str) -> Path:
        path = self.path(name)
        if not path.is_dir():
            raise FileNotFoundError(f"no repository {name} under {self.root}")
        return path

    def _commit(self, path: Path, ref: str, parent: str | None, files: dict[str, Any], message: str) -> str:
        """Commit `files` over `parent`'s tree with plumbing (no work tree) and move `ref` to it."""
        with tempfile.TemporaryDirectory(prefix="fake-git-index-") as scratch:
            env = {"GIT_DIR": str(path), "GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if parent:
                _git("read-tree", parent, env=env)
            entries = []
            for file, content in files.items():
                if content is None:  # mode 0: drop the path from the index
                    entries.append(f"0 {'0' * 40}\t{file}\n")
                    continue
                data = content.encode() if isinstance(content, str) else content
                blob = _git("hash-object", "-w", "--stdin", env=env, input=data)
                entries.append(f"100644 {blob}\t{file}\n")
            if entries:
                _git("update-index", "--index-info", env=env, input="".join(entries).encode())
            tree = _git("write-tree", env=env)
            commit = _git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, env=env)
            _git("update-ref", ref, commit, env=env)
        return commit

    # -- HTTP --------------------------------------------------------------------
    def _runner_options(self) -> dict[str, Any]:
        # git gzips some request bodies: the backend inflates them itself (HTTP_CONTENT_ENCODING).
        return {"auto_decompress": False}

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def _authorized_user(self, request: web.Request) -> str | None:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return None
        login, password = str(auth.login), str(auth.password)
        if login == self.username and hmac.compare_digest(password.encode(), self.token.encode()):
            return login
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        service = _service(request)
        user = self._authorized_user(request)
        record = GitRequest(request.method, request.path, service, user, request.headers.get("Content-Encoding"))
        self.requests.append(record)
        if user is None and not (self.anonymous_read and service == "git-upload-pack"):
            record.status = 401
            return web.Response(status=401, text="Authentication required\n",
                                headers={"WWW-Authenticate": 'Basic realm="git"'})
        if self.read_only and service == "git-receive-pack":
            record.status = 403
            name = request.path.split(".git/", 1)[0].lstrip("/")
            return web.Response(status=403, text=f"Permission to {name}.git denied to {user}.\n")
        response = await self._run_backend(request, user)
        record.status = response.status
        return response

    def _cgi_env(self, request: web.Request, user: str | None) -> dict[str, str]:
        env = {
            **_clean_env(),
            **_config_env(_BACKEND_CONFIG),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": str(self.root.resolve()),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": request.remote or "",
        }
        if "Content-Length" in request.headers:
            env["CONTENT_LENGTH"] = request.headers["Content-Length"]
        if user is not None:
            env["REMOTE_USER"] = user
            env["AUTH_TYPE"] = "Basic"
        if "Content-Encoding" in request.headers:
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        return env

    async def _run_backend(self, request: web.Request, user: str | None) -> web.StreamResponse:
        git = shutil.which("git") or "git"
        proc = await asyncio.create_subprocess_exec(
            git, "http-backend", env=self._cgi_env(request, user),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeding = asyncio.create_task(self._feed(request, proc.stdin))
        errors = asyncio.create_task(proc.stderr.read())
        try:
            status, reason, headers = await self._cgi_headers(proc.stdout)
            if status is None:
                await feeding
                await proc.wait()
                stderr = (await errors).decode(errors="replace")
                self.backend_errors.append(stderr)
                return web.Response(status=502, text=f"git http-backend printed no headers: {stderr}")
            response = web.StreamResponse(status=status, reason=reason)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            while chunk := await proc.stdout.read(65536):
                await response.write(chunk)
            await response.write_eof()
            await feeding
            await proc.wait()
            stderr = (await errors).decode(errors="replace")
            if stderr:
                self.backend_errors.append(stderr)
            return response
        finally:
            for task in (feeding, errors):
                if not task.done():
                    task.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            # Leave no task with an exception nobody retrieved.
            await asyncio.gather(feeding, errors, return_exceptions=True)

    @staticmethod
    async def _feed(request: web.Request, stdin: asyncio.StreamWriter) -> None:
        """Stream the request body to the backend, then close its stdin."""
        try:
            async for chunk in request.content.iter_chunked(65536):
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the backend stopped reading (it answered an error): its answer says why
        finally:
            stdin.close()
            try:
                await stdin.wait_closed()
            except (BrokenPipeError, ConnectionResetError):
                pass

    @staticmethod
    async def _cgi_headers(stdout: asyncio.StreamReader) -> tuple[int | None, str | None, list[tuple[str, str]]]:
        """The CGI response headers: (status, reason, other headers); status None when there were none."""
        headers: list[tuple[str, str]] = []
        status: int = 200
        reason: str | None = None
        seen = False
        while True:
            line = await stdout.readline()
            if not line:
                return (status if seen else None), reason, headers
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return status, reason, headers
            seen = True
            key, _, value = text.partition(":")
            value = value.strip()
            if key.lower() == "status":
                code, _, said = value.partition(" ")
                status, reason = int(code), said or None
            else:
                headers.append((key, value))
