"""OpenTelemetry traces: spans for HTTP requests (Litestar's OpenTelemetry plugin) and for each turn's
phases, exported over OTLP/HTTP when the standard OTEL_* variables ask for it; off (and free) otherwise.

Enabled by `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`; the exporter reads the rest (headers,
timeouts) and the resource `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` as the specification
says. Each app has its own provider, so nothing global is replaced. Log lines written inside a span
carry its `trace_id` and `span_id` (see `add_trace_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer

__all__ = ["Tracing", "add_trace_ids", "name_span_by_route", "route_span_details"]


def _wanted(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


class Tracing:
    """The app's tracer: exporting over OTLP, or a no-op one when tracing is off."""

    def __init__(self, provider: Any | None) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("aicode") if provider is not None else trace.NoOpTracer()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Tracing:
        if not _wanted(env):
            return cls(None)
        # Imported only when wanted: the SDK and its exporter cost start-up time for nothing otherwise.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "aicode"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def shutdown(self) -> None:
        """Send what is buffered and stop (at server shutdown)."""
        if self.provider is not None:
            self.provider.shutdown()


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's ids on the log line, as collectors correlate them."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def route_span_details(scope: Any) -> tuple[str, dict[str, Any]]:
    """A request span's first name: its method only, as the span starts before routing (never the raw
    path: ids would make a span name per task). `name_span_by_route` completes it once routed."""
    return str(scope.get("method") or "WEBSOCKET"), {}


def name_span_by_route(scope: Any) -> None:
    """Name the current request span by its route template (`GET /api/tasks/{task_id}`), as the
    semantic conventions ask; a no-op when tracing is off."""
    span = trace.get_current_span()
    route = scope.get("path_template")
    if route and span.is_recording():
        span.update_name(f"{scope.get('method') or 'WEBSOCKET'} {route}")
        span.set_attribute("http.route", route)
