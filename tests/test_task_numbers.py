"""The task's numbers as people read them: cost the same in the CLI and the pages, and "Elapsed" as the
sum of the turns' run times (aicode/web/turn_clock.py; static/task.js goes on with the same rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aicode.cli.client.event_view import _Meter, format_cost
from aicode.web.templating import template_config
from aicode.web.turn_clock import TurnMark, turn_clock

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("cost", "shown"), [
    (None, "$0.00"), (0.0, "$0.00"), (0.0012, "$0.0012"), (0.5, "$0.5000"), (1.0, "$1.00"), (1234.5, "$1,234.50"),
])
def test_cost_reads_the_same_in_the_cli_and_on_the_pages(cost: float | None, shown: str) -> None:
    pages = template_config().to_engine().engine.from_string("{{ cost | usd }}")
    assert format_cost(cost) == shown
    assert pages.render(cost=cost) == shown


def test_the_cli_status_line_shows_a_turns_cost_as_the_pages_do() -> None:
    meter = _Meter()
    assert meter.text().endswith("tokens · $0.00")
    meter.usage({"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.0036})
    assert meter.text().endswith("tokens · $0.0036")


def test_a_task_counts_its_turns_not_the_idle_time_between_them() -> None:
    marks = [
        TurnMark(1, at(0), "task.status", status="queued"),
        TurnMark(2, at(1), "task.status", status="running"),
        TurnMark(8, at(3), "turn.completed", num_turns=3),
        TurnMark(10, at(4), "task.status", status="succeeded"),
        # Six idle minutes, then a follow-up.
        TurnMark(11, at(364), "notice", code="follow_up"),
        TurnMark(12, at(364), "task.status", status="queued"),
        TurnMark(13, at(366), "task.status", status="running"),
        TurnMark(20, at(370), "turn.completed", num_turns=4),
        TurnMark(22, at(371), "task.status", status="failed"),
    ]
    clock = turn_clock(marks, session=False, first_prompt=True)
    assert (clock.seq, clock.run_s, clock.open_since, clock.model_turns) == (22, 8.0, None, 7)
    assert clock.seconds(at(1000)) == 8.0


def test_a_running_turn_counts_up_from_its_start() -> None:
    marks = [TurnMark(1, at(0), "task.status", status="running"),
             TurnMark(2, at(5), "task.status", status="succeeded"),
             TurnMark(3, at(60), "notice", code="follow_up"),
             TurnMark(4, at(60), "task.status", status="queued"),
             TurnMark(5, at(62), "task.status", status="running")]
    clock = turn_clock(marks, session=False, first_prompt=True)
    assert clock.open_since == at(62)
    assert clock.seconds(at(72)) == 15.0
    assert clock.as_data(at(72))["open_since"] == at(62).isoformat()


def test_a_session_counts_each_prompt_from_its_arrival_to_its_turn_completed() -> None:
    marks = [
        TurnMark(1, at(0), "task.status", status="running"),  # no first prompt: the session waits
        TurnMark(2, at(30), "notice", code="follow_up"),
        TurnMark(5, at(32), "turn.completed", num_turns=1),
        TurnMark(6, at(90), "notice", code="follow_up"),
        TurnMark(7, at(91), "notice", code="follow_up"),  # sent while the turn before runs
        TurnMark(9, at(93), "turn.completed", num_turns=2),
        TurnMark(12, at(96), "turn.completed", num_turns=1),
        TurnMark(13, at(500), "task.status", status="succeeded"),
    ]
    clock = turn_clock(marks, session=True, first_prompt=False)
    assert (clock.run_s, clock.model_turns, clock.running, clock.waiting) == (8.0, 4, False, 0)
