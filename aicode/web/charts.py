"""Geometry of the overview's usage chart, computed here so the template only draws rectangles.

Server-rendered SVG: no chart library, no script, and it scales to a phone's width through its viewBox.
"""

from __future__ import annotations

from dataclasses import dataclass

from aicode.web.repo import WorkspaceUsage

__all__ = ["Bar", "UsageChart", "usage_chart"]

WIDTH = 480
LABEL_WIDTH = 110
VALUE_WIDTH = 84
ROW_HEIGHT = 44
BAR_HEIGHT = 14
MAX_ROWS = 8


@dataclass(frozen=True, slots=True)
class Bar:
    """One workspace's row: a task-count bar over a cost bar, both scaled to the busiest workspace."""

    name: str
    href: str
    y: float
    tasks: int
    tasks_width: float
    cost_usd: float
    cost_width: float


@dataclass(frozen=True, slots=True)
class UsageChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    value_x: int
    bars: tuple[Bar, ...]
    total_tasks: int
    total_cost_usd: float


def _scaled(value: float, top: float, span: float) -> float:
    # A non-zero value keeps a sliver of a bar so it is visibly not nothing.
    if top <= 0 or value <= 0:
        return 0.0
    return max(2.0, round(value / top * span, 1))


def usage_chart(usage: list[WorkspaceUsage]) -> UsageChart:
    """Horizontal bars for the busiest workspaces (the rest are counted in the totals only)."""
    shown = usage[:MAX_ROWS]
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    top_tasks = max((u.tasks for u in shown), default=0)
    top_cost = max((u.cost_usd for u in shown), default=0.0)
    bars = tuple(
        Bar(name=u.name, href=f"/workspaces/{u.workspace_id}", y=index * ROW_HEIGHT + 8, tasks=u.tasks,
            tasks_width=_scaled(u.tasks, top_tasks, span), cost_usd=u.cost_usd,
            cost_width=_scaled(u.cost_usd, top_cost, span))
        for index, u in enumerate(shown)
    )
    return UsageChart(
        width=WIDTH, height=max(1, len(bars)) * ROW_HEIGHT + 8, label_width=LABEL_WIDTH, bar_height=BAR_HEIGHT,
        value_x=WIDTH - VALUE_WIDTH + 8, bars=bars, total_tasks=sum(u.tasks for u in usage),
        total_cost_usd=sum(u.cost_usd for u in usage),
    )
