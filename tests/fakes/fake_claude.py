#!/usr/bin/env python3
"""A fake `claude` CLI for tests: the real one's flags and stream-json output, scripted by the prompt.

Runs anywhere Python 3 (stdlib only) runs; in the fake workspace image it is
/usr/local/bin/claude. It behaves like `claude -p PROMPT --output-format stream-json
--verbose`: a system/init line, one assistant line per content block (blocks of one
"API message" share message.id), user lines carrying tool_result blocks, and a final
result line; sessions live in $CLAUDE_CONFIG_DIR/projects/<cwd>/<session_id>.jsonl
and --resume continues them.

What the "model" does is scripted by the prompt, one directive per line, run in
order; consecutive other lines are echoed back as one assistant text block (an
unknown @word is plain text too). Tools really run in the current directory.

  @write PATH CONTENT    Write tool_use + tool_result; writes the file (\n, \t, \\ escapes)
  @delete PATH           Bash `rm PATH` tool_use + result; really deletes
  @bash COMMAND          Bash tool_use; runs /bin/sh -c, result is its output, is_error on exit != 0
  @read PATH             Read tool_use; the file with line numbers, is_error when missing
  @think TEXT            a thinking block             @say TEXT     a text block
  @sleep SECONDS         output flushed, then sleep (an interrupt over stdin cuts it short)
  @huge N                one text block of N chars    @huge_tool N  a tool_result of N chars
  @noise TEXT            a non-JSON stdout line       @stderr TEXT  a stderr line
  @unknown               the line {"type":"mystery_event","foo":1}
  @tool_error            a Read of a missing file: tool_result with is_error true
  @api_error STATUS      API-error assistant line, then result is_error (subtype success,
                         api_error_status STATUS, result "API Error: STATUS {...}"), exit 1
  @max_turns             result error_max_turns, is_error, exit 1 (as does --max-turns N)
  @no_result             exit 0 without a result line
  @exit CODE             exit CODE at once, no result line
  @env NAME              text "NAME is set" / "NAME is not set" (never the value)
  @whoami                text "uid=U gid=G cwd=DIR"
  @alloc MB              allocate and touch MB megabytes in this process (memory-limit tests)
  @burst N [MS]          N text blocks "burst I at T" (T = wall-clock seconds when printed), MS apart

After a tool call the "model" closes with a text "Done." unless text follows.
A resumed session's first text is "resumed session with N earlier turn(s)".
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid

VERSION = "2.1.0-fake"
DEFAULT_MODEL = "claude-fake"
TOOLS = ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "NotebookEdit", "WebFetch",
         "TodoWrite", "WebSearch"]
VALUE_FLAGS = {
    "--output-format", "--input-format", "--resume", "-r", "--session-id", "--model",
    "--max-turns", "--max-budget-usd", "--permission-mode", "--append-system-prompt",
    "--system-prompt", "--allowedTools", "--allowed-tools", "--disallowedTools",
    "--disallowed-tools", "--mcp-config", "--add-dir", "--settings", "--fallback-model",
    "--agents", "--setting-sources", "--betas", "--plugin-dir", "--json-schema", "--tools",
    "--permission-prompt-tool",
}
DIRECTIVES = ("write", "delete", "bash", "read", "think", "say", "sleep", "huge", "huge_tool",
              "noise", "stderr", "unknown", "tool_error", "api_error", "max_turns", "no_result",
              "exit", "env", "whoami", "alloc", "burst")
# HTTP status -> (the assistant line's `error`, the API's error type)
API_ERRORS = {400: ("invalid_request", "invalid_request_error"), 401: ("authentication_failed", "authentication_error"),
              402: ("billing_error", "billing_error"), 403: ("authentication_failed", "permission_error"),
              429: ("rate_limit", "rate_limit_error"), 529: ("server_error", "overloaded_error")}
COST_PER_TURN = 0.0012
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

_out_lock = threading.Lock()
_interrupted = threading.Event()


class EndTurn(Exception):
    """Stop the turn with this result subtype / error (exit code 1 when it is an error)."""

    def __init__(self, subtype: str, errors: list[str] | None = None, terminal_reason: str = "",
                 **fields: object) -> None:
        super().__init__(subtype)
        self.subtype, self.errors, self.terminal_reason, self.fields = subtype, errors, terminal_reason, fields


class Quit(Exception):
    """Exit the process at once with this code, no result line."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --- output -------------------------------------------------------------------
class Output:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def emit(self, obj: dict) -> None:
        if self.fmt == "stream-json":
            self.raw(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def raw(self, line: str) -> None:
        with _out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def final(self, result: dict) -> None:
        """The single answer of the text/json formats (stream-json already printed everything)."""
        if self.fmt == "json":
            self.raw(json.dumps(result))
        elif self.fmt == "text":
            self.raw(str(result.get("result") or "; ".join(result.get("errors") or [])))


def die(message: str, code: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


# --- arguments -------------------------------------------------------------------
def parse_args(argv: list[str]) -> dict:
    opts: dict = {"output_format": "text", "input_format": "text", "verbose": False,
                  "skip_permissions": False, "continue": False, "fork": False, "persist": True,
                  "positional": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in VALUE_FLAGS:
            if not has_value:
                i += 1
                if i >= len(argv):
                    die(f"error: option '{name} <value>' argument missing")
                value = argv[i]
            opts[name.lstrip("-").replace("-", "_")] = value
        elif name in ("-p", "--print"):
            # The real CLI's -p is a switch and the prompt a positional argument.
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                opts["positional"].append(argv[i])
        elif name == "--verbose":
            opts["verbose"] = True
        elif name == "--include-partial-messages":
            opts["partial"] = True
        elif name == "--dangerously-skip-permissions":
            opts["skip_permissions"] = True
        elif name in ("-c", "--continue"):
            opts["continue"] = True
        elif name == "--fork-session":
            opts["fork"] = True
        elif name == "--no-session-persistence":
            opts["persist"] = False
        elif name in ("-v", "--version"):
            print(f"{VERSION} (Claude Code)")
            sys.exit(0)
        elif arg.startswith("-") and arg != "-":
            pass  # an unknown switch: ignored, like the options this fake does not model
        else:
            opts["positional"].append(arg)
        i += 1
    opts["resume"] = opts.pop("r", None) or opts.get("resume")
    return opts


def check_invocation(opts: dict) -> None:
    """The real CLI's refusals, with its messages."""
    if opts["skip_permissions"] and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        die("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons")
    if opts["output_format"] == "stream-json" and not opts["verbose"]:
        die("Error: When using --print, --output-format=stream-json requires --verbose")
    if opts["output_format"] not in ("text", "json", "stream-json"):
        die(f"error: option '--output-format <format>' argument '{opts['output_format']}' is invalid.")


# --- sessions ---------------------------------------------------------------------
class Session:
    """A conversation stored as JSONL under the config dir, keyed by cwd and id."""

    def __init__(self, session_id: str, cwd: str, persist: bool) -> None:
        self.id, self.cwd, self.persist = session_id, cwd, persist
        self.earlier_turns = 0
        self.resumed = False  # announce the earlier turns in the next turn's first text

    @staticmethod
    def project_dir(cwd: str) -> str:
        config = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
        return os.path.join(config, "projects", re.sub(r"[^a-zA-Z0-9]", "-", cwd))

    @property
    def path(self) -> str:
        return os.path.join(self.project_dir(self.cwd), f"{self.id}.jsonl")

    def load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
        self.earlier_turns = sum(1 for e in entries if e.get("type") == "user"
                                 and isinstance(e.get("message", {}).get("content"), str))

    def record(self, kind: str, message: dict) -> None:
        if not self.persist:
            return
        entry = {"type": kind, "message": message, "sessionId": self.id, "cwd": self.cwd,
                 "uuid": str(uuid.uuid4()), "timestamp": now_iso(), "version": VERSION}
        try:
            os.makedirs(self.project_dir(self.cwd), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as exc:
            sys.stderr.write(f"fake claude: cannot save the session: {exc}\n")
            self.persist = False


def open_session(opts: dict, cwd: str, out: Output) -> Session:
    """The session this run continues or starts; a missing one ends the run like the real CLI."""
    wanted = opts.get("resume")
    if opts["continue"] and not wanted:
        folder = Session.project_dir(cwd)
        files = sorted((os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".jsonl")),
                       key=os.path.getmtime) if os.path.isdir(folder) else []
        if not files:
            fail_start(out, str(uuid.uuid4()), "No conversation found to continue")
        wanted = os.path.basename(files[-1])[:-6]
    if wanted:
        session = Session(wanted, cwd, opts["persist"])
        if not os.path.exists(session.path):
            if not UUID_RE.match(wanted):
                fail_start(out, str(uuid.uuid4()),
                           "Error: --resume requires a valid session ID or session title when used with --print. "
                           f"Usage: claude -p --resume <session-id|title>. Provided value \"{wanted}\" is not a "
                           "UUID and does not match any session title.")
            fail_start(out, wanted, f"No conversation found with session ID: {wanted}")
        session.load()
        session.resumed = True
        if opts["fork"]:
            forked = Session(str(uuid.uuid4()), cwd, opts["persist"])
            forked.earlier_turns, forked.resumed = session.earlier_turns, True
            if forked.persist:
                os.makedirs(os.path.dirname(forked.path), exist_ok=True)
                with open(session.path, encoding="utf-8") as src, open(forked.path, "w", encoding="utf-8") as dst:
                    dst.write(src.read())
            session = forked
        return session
    chosen = opts.get("session_id")
    if chosen:
        if not UUID_RE.match(chosen):
            die("Error: Invalid session ID. Must be a valid UUID.")
        if os.path.exists(Session(chosen, cwd, True).path):
            die(f"Error: Session ID {chosen} is already in use.")
    return Session(chosen or str(uuid.uuid4()), cwd, opts["persist"])


def fail_start(out: Output, session_id: str, message: str) -> None:
    result = {"type": "result", "subtype": "error_during_execution", "duration_ms": 0,
              "duration_api_ms": 0, "is_error": True, "num_turns": 0, "stop_reason": None,
              "session_id": session_id, "total_cost_usd": 0, "usage": usage_totals(0, 0),
              "modelUsage": {}, "permission_denials": [], "errors": [message], "uuid": str(uuid.uuid4())}
    out.emit(result)
    out.final(result)
    die(message)


def usage_totals(input_tokens: int, output_tokens: int) -> dict:
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": output_tokens, "service_tier": "standard"}


def pattern(size: int) -> str:
    """`size` characters of a recognisable repeating pattern."""
    return ("0123456789" * (size // 10 + 1))[:size]


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), m.group(0)), value)


# --- one user turn ------------------------------------------------------------------
class Turn:
    """Plays the model for one prompt: each directive becomes blocks, tool calls and results."""

    def __init__(self, opts: dict, session: Session, out: Output, model: str) -> None:
        self.opts, self.session, self.out, self.model = opts, session, out, model
        self.cwd = session.cwd
        self.max_turns = int(opts["max_turns"]) if opts.get("max_turns") else None
        self.num_turns = 0  # API messages so far, as the real CLI counts turns
        self.message_id: str | None = None  # the open API message, None after a tool call
        self.last_text = ""
        self.input_tokens = self.output_tokens = 0
        self.started = time.monotonic()

    # -- emitting ------------------------------------------------------------------
    def _open_message(self) -> str:
        if self.max_turns is not None and self.num_turns >= self.max_turns:
            raise EndTurn("error_max_turns", [f"Reached maximum number of turns ({self.max_turns})"],
                          "max_turns", num_turns=self.num_turns + 1, stop_reason="tool_use")
        self.num_turns += 1
        self.input_tokens += 100 + 10 * self.num_turns
        self.output_tokens += 20
        self.message_id = f"msg_fake_{self.session.id[:8]}_{self.session.earlier_turns}_{self.num_turns:03d}"
        self.last_text = ""
        return self.message_id

    def block(self, content: dict) -> None:
        message_id = self.message_id or self._open_message()
        message = {"id": message_id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [content], "stop_reason": None, "stop_sequence": None,
                   "usage": usage_totals(100 + 10 * self.num_turns, 20)}
        self.out.emit({"type": "assistant", "message": message, "parent_tool_use_id": None,
                       "session_id": self.session.id, "uuid": str(uuid.uuid4())})
        self.session.record("assistant", message)
        if content["type"] == "text":
            self.last_text = content["text"]

    def text(self, value: str) -> None:
        if self.opts.get("partial"):
            self._stream_deltas(value)
        self.block({"type": "text", "text": value})

    def _stream_deltas(self, value: str) -> None:
        """What --include-partial-messages adds before the whole block: the raw API stream's text deltas."""
        if self.message_id is None:
            message_id = self._open_message()
            self.out.emit({"type": "stream_event", "session_id": self.session.id, "parent_tool_use_id": None,
                           "event": {"type": "message_start", "message": {
                               "id": message_id, "type": "message", "role": "assistant", "content": []}}})
        size = max(1, len(value) // 3)
        for start in range(0, len(value), size):
            self.out.emit({"type": "stream_event", "session_id": self.session.id, "parent_tool_use_id": None,
                           "event": {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": value[start:start + size]}}})

    def tool(self, name: str, tool_input: dict, run) -> None:
        """A tool_use block, the tool really run by `run() -> (content, is_error, tool_use_result)`."""
        call_id = f"toolu_fake_{uuid.uuid4().hex[:20]}"
        self.block({"type": "tool_use", "id": call_id, "name": name, "input": tool_input})
        try:
            content, is_error, detail = run()
        except OSError as exc:  # e.g. a path the agent user may not write: the model sees the error
            content, is_error, detail = f"Error: {exc}", True, f"Error: {exc}"
        message = {"role": "user", "content": [{"tool_use_id": call_id, "type": "tool_result",
                                                "content": content, "is_error": is_error}]}
        self.out.emit({"type": "user", "message": message, "parent_tool_use_id": None,
                       "session_id": self.session.id, "uuid": str(uuid.uuid4()),
                       "tool_use_result": detail})
        self.session.record("user", message)
        self.message_id = None  # the model answers a tool result in a new API message

    # -- tools -----------------------------------------------------------------------
    def path(self, value: str) -> str:
        return os.path.normpath(os.path.join(self.cwd, value))

    def write(self, rest: str) -> None:
        target, _, content = rest.partition(" ")
        path, content = self.path(target), unescape(content)

        def run():
            existed = os.path.exists(path)
            original = open(path, encoding="utf-8", errors="replace").read() if existed else None
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
            message = (f"The file {path} has been updated successfully." if existed
                       else f"File created successfully at: {path}")
            return message, False, {"type": "update" if existed else "create", "filePath": path,
                                    "content": content, "structuredPatch": [], "originalFile": original}

        self.tool("Write", {"file_path": path, "content": content}, run)

    def bash(self, command: str) -> None:
        def run():
            done = subprocess.run(["/bin/sh", "-c", command], cwd=self.cwd, capture_output=True,
                                  text=True, errors="replace", stdin=subprocess.DEVNULL)
            output = "\n".join(s.rstrip("\n") for s in (done.stdout, done.stderr) if s.strip())
            if done.returncode != 0:
                text = f"Exit code {done.returncode}" + (f"\n{output}" if output else "")
                return text, True, f"Error: {text}"
            return (output or "(Bash completed with no output)"), False, {
                "stdout": done.stdout.rstrip("\n"), "stderr": done.stderr.rstrip("\n"),
                "interrupted": False, "isImage": False}

        self.tool("Bash", {"command": command}, run)

    def read(self, target: str) -> None:
        path = self.path(target)

        def run():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                text = f"File does not exist. Note: your current working directory is {self.cwd}."
                return text, True, f"Error: {text}"
            numbered = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, 1))
            return numbered, False, {"type": "text", "file": {"filePath": path, "numLines": len(lines)}}

        self.tool("Read", {"file_path": path}, run)

    def huge_tool(self, size: int) -> None:
        # Not executed: the point is the size of the result line, not the command.
        output = pattern(size)
        self.tool("Bash", {"command": f"fake-huge-output {size}"}, lambda: (output, False, {
            "stdout": output, "stderr": "", "interrupted": False, "isImage": False}))

    def sleep(self, seconds: float) -> None:
        if _interrupted.wait(seconds):
            raise EndTurn("error_during_execution", ["[Request interrupted by user]"], "aborted_streaming")

    def burst(self, count: int, interval_s: float) -> None:
        # Benchmarks measure delivery latency against the time stamped here (host and container share a clock).
        for index in range(count):
            self.text(f"burst {index} at {time.time():.6f}")
            if interval_s:
                time.sleep(interval_s)

    def alloc(self, megabytes: int) -> None:
        # Touch every page so the memory is really used, as a runaway agent would.
        self.hoard = [b"\x01" * (1024 * 1024) for _ in range(megabytes)]
        self.text(f"allocated {megabytes} MB")

    def api_error(self, status: int) -> None:
        kind, api_type = API_ERRORS.get(status, ("server_error", "api_error") if status >= 500 else ("unknown", "api_error"))
        body = {"type": "error", "error": {"type": api_type, "message": "fake API error"}}
        text = f"API Error: {status} {json.dumps(body, separators=(',', ':'))}"
        message = {"id": str(uuid.uuid4()), "type": "message", "role": "assistant", "model": "<synthetic>",
                   "content": [{"type": "text", "text": text}], "stop_reason": "stop_sequence",
                   "stop_sequence": "", "usage": usage_totals(0, 0)}
        self.out.emit({"type": "assistant", "message": message, "parent_tool_use_id": None,
                       "session_id": self.session.id, "uuid": str(uuid.uuid4()), "error": kind,
                       "is_api_error_message": True, "api_error_status": status, "api_error_type": api_type})
        raise EndTurn("success", None, "api_error", api_error_status=status, result=text,
                      num_turns=self.num_turns + 1, stop_reason="stop_sequence")

    # -- the script --------------------------------------------------------------------
    def directive(self, name: str, rest: str) -> None:
        if name == "write":
            self.write(rest)
        elif name == "delete":
            self.bash(f"rm {shlex.quote(rest)}")
        elif name == "bash":
            self.bash(rest)
        elif name == "read":
            self.read(rest)
        elif name == "think":
            self.block({"type": "thinking", "thinking": rest, "signature": "fake-signature"})
        elif name == "say":
            self.text(rest)
        elif name == "sleep":
            self.sleep(float(rest or 1))
        elif name == "huge":
            self.text(pattern(int(rest)))
        elif name == "huge_tool":
            self.huge_tool(int(rest))
        elif name == "noise":
            self.out.raw(rest)
        elif name == "stderr":
            sys.stderr.write(rest + "\n")
            sys.stderr.flush()
        elif name == "unknown":
            self.out.raw('{"type":"mystery_event","foo":1}')
        elif name == "tool_error":
            self.read(".fake-claude-missing-file")
        elif name == "api_error":
            self.api_error(int(rest or 500))
        elif name == "max_turns":
            raise EndTurn("error_max_turns", [f"Reached maximum number of turns ({self.max_turns or self.num_turns})"],
                          "max_turns", num_turns=self.num_turns + 1, stop_reason="tool_use")
        elif name == "no_result":
            raise Quit(0)
        elif name == "exit":
            raise Quit(int(rest or 0))
        elif name == "env":
            self.text(f"{rest} is set" if rest in os.environ else f"{rest} is not set")
        elif name == "whoami":
            self.text(f"uid={os.getuid()} gid={os.getgid()} cwd={os.getcwd()}")
        elif name == "alloc":
            self.alloc(int(rest))
        elif name == "burst":
            count, _, interval = rest.partition(" ")
            self.burst(int(count), float(interval or 0) / 1000)

    def play(self, prompt: str) -> None:
        if self.session.resumed:
            self.session.resumed = False
            self.text(f"resumed session with {self.session.earlier_turns} earlier turn(s)")
        pending: list[str] = []
        for line in prompt.splitlines() + ["@"]:  # a sentinel flushes the last text lines
            stripped = line.strip()
            name, _, rest = stripped[1:].partition(" ")
            if stripped.startswith("@") and (name in DIRECTIVES or stripped == "@"):
                if "\n".join(pending).strip():
                    self.text("\n".join(pending).strip())
                pending = []
                if _interrupted.is_set():
                    raise EndTurn("error_during_execution", ["[Request interrupted by user]"], "aborted_streaming")
                if name:
                    self.directive(name, rest.strip() if name not in ("write", "say", "noise", "stderr") else rest)
            else:
                pending.append(line)
        if self.message_id is None or not self.last_text:
            self.text("Done.")  # the model's closing words after its last tool call

    def run(self, prompt: str) -> int:
        """Play the prompt and print the result line; the process exit code."""
        self.session.record("user", {"role": "user", "content": prompt})
        try:
            self.play(prompt)
            outcome = EndTurn("success", None, "completed", result=self.last_text, stop_reason="end_turn")
        except EndTurn as end:
            outcome = end
        is_error = outcome.subtype != "success" or "api_error_status" in outcome.fields
        if outcome.terminal_reason == "aborted_streaming":
            self.out.emit({"type": "user", "message": {"role": "user", "content": [
                {"type": "text", "text": "[Request interrupted by user]"}]},
                "parent_tool_use_id": None, "session_id": self.session.id, "uuid": str(uuid.uuid4())})
        result = self.result(outcome, is_error)
        self.out.emit(result)
        self.out.final(result)
        return 1 if is_error and outcome.terminal_reason != "aborted_streaming" else 0

    def result(self, outcome: EndTurn, is_error: bool) -> dict:
        num_turns = outcome.fields.get("num_turns", self.num_turns)
        cost = round(COST_PER_TURN * self.num_turns, 6)
        result = {"type": "result", "subtype": outcome.subtype, "is_error": is_error,
                  "duration_ms": int((time.monotonic() - self.started) * 1000), "duration_api_ms": 5 * self.num_turns,
                  "num_turns": num_turns, "stop_reason": outcome.fields.get("stop_reason"),
                  "session_id": self.session.id, "total_cost_usd": cost,
                  "usage": usage_totals(self.input_tokens, self.output_tokens),
                  "modelUsage": {self.model: {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
                                              "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0,
                                              "webSearchRequests": 0, "costUSD": cost}} if self.num_turns else {},
                  "permission_denials": [], "api_error_status": outcome.fields.get("api_error_status"),
                  "terminal_reason": outcome.terminal_reason, "uuid": str(uuid.uuid4())}
        if "result" in outcome.fields:
            result["result"] = outcome.fields["result"]
        if outcome.errors:
            result["errors"] = outcome.errors
        return result


# --- main ---------------------------------------------------------------------------
def init_line(opts: dict, session: Session, model: str) -> dict:
    mode = "bypassPermissions" if opts["skip_permissions"] else opts.get("permission_mode") or "default"
    return {"type": "system", "subtype": "init", "cwd": session.cwd, "session_id": session.id,
            "tools": TOOLS, "mcp_servers": [], "model": model, "permissionMode": mode,
            "slash_commands": [], "apiKeySource": "ANTHROPIC_API_KEY" if os.environ.get("ANTHROPIC_API_KEY") else "none",
            "claude_code_version": VERSION, "output_style": "default", "agents": [], "skills": [],
            "plugins": [], "uuid": str(uuid.uuid4())}


def stdin_turns(out: Output) -> "queue.Queue[str | None]":
    """Read stream-json user turns from stdin in a thread; answer interrupts at once."""
    turns: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("type") == "user":
                content = message.get("message", {}).get("content", "")
                if isinstance(content, list):
                    content = "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
                turns.put(content)
            elif message.get("type") == "control_request":
                if message.get("request", {}).get("subtype") == "interrupt":
                    _interrupted.set()
                out.emit({"type": "control_response", "response": {
                    "subtype": "success", "request_id": message.get("request_id"), "response": {}}})
        turns.put(None)

    threading.Thread(target=reader, daemon=True).start()
    return turns


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Explicit handlers: as PID 1 in a container the default action would be ignored.
        signal.signal(signum, lambda num, _frame: os._exit(128 + num))
    opts = parse_args(argv)
    check_invocation(opts)
    out = Output(opts["output_format"])
    cwd = os.getcwd()
    model = opts.get("model") or os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL
    prompt = " ".join(opts["positional"])
    if opts["input_format"] != "stream-json" and not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    if opts["input_format"] != "stream-json" and not prompt:
        die("Error: Input must be provided either through stdin or as a prompt argument when using --print")
    session = open_session(opts, cwd, out)
    try:
        if opts["input_format"] != "stream-json":
            out.emit(init_line(opts, session, model))
            return Turn(opts, session, out, model).run(prompt)
        code, turns = 0, stdin_turns(out)
        while (next_prompt := turns.get()) is not None:
            _interrupted.clear()
            out.emit(init_line(opts, session, model))
            code = Turn(opts, session, out, model).run(next_prompt)
            session.earlier_turns += 1
        return code
    except Quit as stop:
        return stop.code


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        os._exit(1)  # the reader went away; nothing left to tell it
    sys.exit(code)
