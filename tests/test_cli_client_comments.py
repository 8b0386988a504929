"""The `aicode comment` and `aicode comments` client commands against a live server."""

from __future__ import annotations

import json

import pytest

from aicode.cli.client.comment_commands import parse_location
from aicode.cli.client.errors import ClientError
from tests.cli_support import Account, aicode, assert_one_error_line

# The `live_server` and `account` fixtures.
pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.timeout(120)


def test_comment_lists_and_sends_review_comments_as_one_follow_up(account: Account) -> None:
    task = account.wait(account.submit("@write notes.md first line\\nsecond line\\n")["id"])
    posted = aicode(account.env(), "comment", task["id"], "notes.md:2", "make this the title")
    assert posted.returncode == 0, posted.stderr
    assert "notes.md:2" in posted.stdout
    listed = json.loads(aicode(account.env(), "comments", "--json", task["id"]).stdout)
    assert [(c["path"], c["line"], c["side"], c["quote"], c["sent_at"]) for c in listed] == [
        ("notes.md", 2, "new", "second line", None)]
    table = aicode(account.env(), "comments", task["id"]).stdout
    assert "notes.md:2" in table and "open" in table and "make this the title" in table
    sent = aicode(account.env(), "comment", task["id"], "--send")
    assert sent.returncode == 0, sent.stderr
    assert "sent 1 comment" in sent.stdout
    assert account.wait(task["id"])["turns"] == 2
    assert "sent" in aicode(account.env(), "comments", task["id"]).stdout


def test_sending_with_nothing_open_fails_with_one_line(account: Account) -> None:
    task = account.wait(account.submit("@write notes.md a")["id"])
    assert_one_error_line(aicode(account.env(), "comment", task["id"], "--send"), 1, "no open comments")


@pytest.mark.parametrize("location", ["notes.md", "notes.md:0", ":3", "notes.md:x"])
def test_a_location_that_is_not_path_colon_line_is_a_usage_error(location: str) -> None:
    with pytest.raises(ClientError, match="is not PATH:LINE"):
        parse_location(location)
