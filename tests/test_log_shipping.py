"""The log-shipping examples in deploy/ read the fields aicode's JSON log lines really have."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import tomllib
from datetime import datetime
from pathlib import Path

import structlog

from aicode.logging import configure_logging

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _a_log_line() -> dict[str, object]:
    """One line exactly as the server writes it (JSON renderer), captured from the root handler."""
    configure_logging("json", "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        structlog.get_logger("aicode.example").info("task.turn_finished", task_id="t-1", request_id="r-1")
    finally:
        handler.setStream(sys.stderr)
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


def test_vector_and_fluent_bit_read_the_fields_aicode_writes() -> None:
    line = _a_log_line()
    assert {"event", "timestamp", "level", "logger", "task_id", "request_id"} <= set(line)
    vector = tomllib.loads((DEPLOY / "vector" / "vector.toml").read_text())
    remap = vector["transforms"]["aicode_json"]["source"]
    for field in re.findall(r"\.(event|timestamp|level|message)\b", remap):
        assert field == "message" or field in line, field
    assert vector["sinks"]["loki"]["inputs"] == ["aicode_json"]
    parsers = (DEPLOY / "fluent-bit" / "parsers.conf").read_text()
    time_key = re.search(r"Time_Key\s+(\S+)", parsers)
    time_format = re.search(r"Time_Format\s+(\S+)", parsers)
    assert time_key and time_key.group(1) in line and time_format
    # Fluent Bit's %L is the fraction of a second, which Python's strptime calls %f.
    datetime.strptime(str(line[time_key.group(1)]), time_format.group(1).replace("%L", "%f"))
    conf = (DEPLOY / "fluent-bit" / "fluent-bit.conf").read_text()
    assert "Rename  event message" in conf and "event" in line
