"""The server's own metrics, one set per process in prometheus-client's default registry (which
Litestar's Prometheus middleware, measuring HTTP requests by route template, uses too).

Counters and histograms are updated where the thing happens; the gauges of shared state (the queue,
this node's running turns, the Docker engine, the data disk) are read when Prometheus scrapes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CONTAINER_START", "DATA_DISK_FREE", "DOCKER_UP", "EVENTS", "MODEL_COST", "MODEL_TOKENS", "QUEUED",
           "RUNNING", "STREAM_CLIENTS", "TURNS", "TURN_DURATION", "TURN_FAILURES"]

TURNS = Counter("aicode_tasks", "Turns ended on this node, by how they ended", ["status"])
TURN_FAILURES = Counter("aicode_turn_failures", "Turns that failed on this node, by cause", ["cause"])
TURN_DURATION = Histogram("aicode_turn_duration_seconds", "How long a turn took, from claim to its record closed",
                          buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600))
CONTAINER_START = Histogram("aicode_container_start_seconds", "How long a turn's container took to be ready",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
EVENTS = Counter("aicode_events", "Task events stored by this node")
MODEL_TOKENS = Counter("aicode_model_tokens", "Model tokens metered by this node's gateway", ["kind"])
MODEL_COST = Counter("aicode_model_cost_usd", "Model spend metered by this node's gateway, in US dollars")
STREAM_CLIENTS = Gauge("aicode_stream_clients", "Clients following task events here (SSE and WebSocket)")
RUNNING = Gauge("aicode_tasks_running", "Turns running on this node")
QUEUED = Gauge("aicode_tasks_queued", "Turns waiting in the queue, for every node")
DOCKER_UP = Gauge("aicode_docker_up", "1 when this node's Docker engine answers, else 0")
DATA_DISK_FREE = Gauge("aicode_data_disk_free_bytes", "Free space on the disk of this node's data dir")
