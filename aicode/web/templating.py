"""The Jinja environment of the pages (filters, asset URLs) and the response helper every page goes through."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from aicode.agents.registry import UnknownAgent, driver_for
from aicode.http.security_headers import BASELINE_HEADERS
from aicode.money import usd
from aicode.resources import resource_dir

__all__ = ["SECURITY_HEADERS", "page", "template_config"]

# Pages run no inline script and load nothing from elsewhere: whatever an agent prints cannot execute
# even if it slipped past escaping. Styles are files too (no style attributes), hence style-src 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The baseline (nosniff, Referrer-Policy, X-Frame-Options) is the one every answer gets; pages swap in
# their own CSP, which the app-wide hook then leaves alone.
SECURITY_HEADERS = {
    **BASELINE_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
}


def page(template: str, status_code: int = 200, **context: Any) -> Template:
    """A rendered page with the security headers (and never cached: pages show private data)."""
    return Template(template_name=template, context=context, status_code=status_code, headers=SECURITY_HEADERS)


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    if seconds < 7 * 86400:
        return f"{round(seconds / 86400)} d ago"
    return value.strftime("%Y-%m-%d")


def _duration(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return "—"
    return _seconds(((end or datetime.now(UTC)) - start).total_seconds())


def _seconds(value: float) -> str:
    """A length of time as the task page's counters show it (static/task.js `span` agrees)."""
    seconds = max(0, int(value))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _count(value: int | None) -> str:
    value = value or 0
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,}"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _agent_label(name: str) -> str:
    try:
        return driver_for(name).label
    except UnknownAgent:
        return name


def _asset_versions(folder: Path) -> dict[str, str]:
    """A content hash per static file, so a changed file gets a new URL and browsers never run a stale one."""
    if not folder.is_dir():
        return {}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for path in folder.iterdir() if path.is_file()}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    versions = _asset_versions(resource_dir("static"))

    def asset(name: str) -> str:
        return f"/static/{name}?v={versions.get(name, '0')}"

    def configure(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.filters.update(ago=_ago, duration=_duration, seconds=_seconds, usd=usd, count=_count, iso=_iso,
                           agent_label=_agent_label)
        env.globals["asset"] = asset
        env.trim_blocks = True
        env.lstrip_blocks = True

    return TemplateConfig(directory=resource_dir("templates"), engine=JinjaTemplateEngine, engine_callback=configure)
