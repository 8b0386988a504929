"""Both colour themes in a real Chromium: WCAG AA contrast measured from the pages' own CSS, the theme
control (remembered, applied before the first paint), and forms that answer with a redirect (a reload
never sends them again)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, expect

from tests.browser_support import (
    TERMINAL,
    LiveServer,
    Session,
    api_headers,
    make_member,
    new_session,
    ready_workspace,
    sign_in,
    wait_for_task,
)

# The `browser` and `live` fixtures.
pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(240)

RGBA = tuple[float, float, float, float]

# -- WCAG 2.x contrast -------------------------------------------------------------------------------


def _linear(channel: float) -> float:
    """An sRGB channel (0–255) as linear light."""
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(rgb: RGBA) -> float:
    """Relative luminance: L = 0.2126 R + 0.7152 G + 0.0722 B of the linear channels."""
    return 0.2126 * _linear(rgb[0]) + 0.7152 * _linear(rgb[1]) + 0.0722 * _linear(rgb[2])


def contrast(a: RGBA, b: RGBA) -> float:
    """(L1 + 0.05) / (L2 + 0.05), L1 the lighter of the two."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def parse(css: str) -> RGBA:
    """A computed colour: `rgb(…)`, `rgba(…)` or `color(srgb r g b / a)`."""
    if found := re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css):
        r, g, b, a = found.groups()
        return float(r), float(g), float(b), float(a) if a is not None else 1.0
    if found := re.fullmatch(r"color\(srgb ([\d.]+) ([\d.]+) ([\d.]+)(?: / ([\d.]+))?\)", css):
        r, g, b, a = found.groups()
        return float(r) * 255, float(g) * 255, float(b) * 255, float(a) if a is not None else 1.0
    raise AssertionError(f"unparsed colour {css!r}")


def over(top: RGBA, below: RGBA) -> RGBA:
    """`top` painted over the opaque `below` (alpha compositing)."""
    a = top[3]
    return (top[0] * a + below[0] * (1 - a), top[1] * a + below[1] * (1 - a), top[2] * a + below[2] * (1 - a), 1.0)


def effective(layers: list[str]) -> RGBA:
    """The colour seen through an element's background and its ancestors' (innermost first)."""
    colours = [parse(layer) for layer in layers]
    opaque = next((i for i, colour in enumerate(colours) if colour[3] >= 1), None)
    assert opaque is not None, f"no opaque background among {layers}"
    seen = colours[opaque]
    for colour in reversed(colours[:opaque]):
        seen = over(colour, seen)
    return seen


def is_large(size_px: float, weight: int) -> bool:
    """WCAG large text: 18 pt (24 px), or 14 pt (18.66 px) bold."""
    return size_px >= 24 or (size_px >= 18.66 and weight >= 700)


# What the page shows, read from getComputedStyle: every visible element with text of its own, and
# form fields; backgrounds from the element up to <html>.
_TEXTS_JS = """() => {
  const layers = (el) => { const out = []; for (let n = el; n; n = n.parentElement) out.push(getComputedStyle(n).backgroundColor); return out; };
  const name = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "")
    + " «" + (el.value || el.textContent || "").trim().slice(0, 30) + "»";
  const rows = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg, [hidden], :disabled, .sr-only, .skip-link") || !el.checkVisibility({checkOpacity: true, visibilityProperty: true})) continue;
    const text = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const field = el.matches("input:not([type=checkbox]):not([type=radio]):not([type=hidden]), select, textarea");
    if (!text && !field) continue;
    const style = getComputedStyle(el);
    rows.push({what: name(el), color: style.color, layers: layers(el), size: parseFloat(style.fontSize), weight: parseInt(style.fontWeight)});
  }
  return rows;
}"""

# Filled buttons: a fill that is not the colour behind them and no border of another colour.
_FILLS_JS = """() => [...document.querySelectorAll("button, .btn")]
  .filter((el) => !el.disabled && el.checkVisibility())
  .map((el) => { const style = getComputedStyle(el); const behind = [];
    for (let n = el.parentElement; n; n = n.parentElement) behind.push(getComputedStyle(n).backgroundColor);
    return {what: el.textContent.trim().slice(0, 30), fill: style.backgroundColor, border: style.borderTopColor, behind}; })"""

_FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el); const behind = [];
  for (let n = el.parentElement; n; n = n.parentElement) behind.push(getComputedStyle(n).backgroundColor);
  return {what: el.tagName.toLowerCase() + " «" + (el.textContent || el.name || "").trim().slice(0, 30) + "»",
          outline: style.outlineColor, outlineStyle: style.outlineStyle, width: parseFloat(style.outlineWidth),
          own: style.backgroundColor, behind};
}"""


async def text_failures(page: Page) -> list[str]:
    failures = []
    for row in await page.evaluate(_TEXTS_JS):
        background = effective(row["layers"])
        ratio = contrast(over(parse(row["color"]), background), background)
        needed = 3.0 if is_large(row["size"], row["weight"]) else 4.5
        if ratio < needed:
            failures.append(f"{row['what']}: text {ratio:.2f} < {needed}")
    return failures


async def fill_failures(page: Page) -> list[str]:
    failures = []
    for row in await page.evaluate(_FILLS_JS):
        fill, behind = parse(row["fill"]), effective(row["behind"])
        if fill[3] < 1 or parse(row["border"]) != fill or fill == behind:
            continue  # transparent, outlined by a border of its own, or not filled
        if (ratio := contrast(fill, behind)) < 3:
            failures.append(f"button {row['what']}: fill against the page {ratio:.2f} < 3")
    return failures


async def focus_failures(page: Page, stops: int = 25) -> list[str]:
    """Tab through the page: each focused control shows an outline of 3:1 against what is behind it and
    against its own fill."""
    await page.mouse.move(0, 0)
    await page.locator("body").focus()
    failures, seen = [], 0
    for _ in range(stops):
        await page.keyboard.press("Tab")
        row = await page.evaluate(_FOCUSED_JS)
        if row is None:
            break
        seen += 1
        if row["outlineStyle"] == "none" or row["width"] < 1:
            failures.append(f"{row['what']}: no focus outline")
            continue
        ring = parse(row["outline"])
        if (ratio := contrast(ring, effective(row["behind"]))) < 3:
            failures.append(f"{row['what']}: focus outline against the page {ratio:.2f} < 3")
        own = parse(row["own"])
        if own[3] >= 1 and (ratio := contrast(ring, own)) < 3:
            failures.append(f"{row['what']}: focus outline against the control {ratio:.2f} < 3")
    assert seen > 0, "the keyboard reached no control"
    return failures


async def page_background(page: Page) -> RGBA:
    return parse(await page.evaluate("() => getComputedStyle(document.body).backgroundColor"))


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
async def alice(browser: Browser, live: LiveServer) -> AsyncIterator[Session]:
    session = await new_session(browser, live)
    await make_member(session.api, "alice")
    await sign_in(session, "alice", "alice-password")
    yield session
    await session.api.aclose()
    await session.close()
    assert session.errors == []


async def task_with_a_diff(session: Session, repo: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = await api_headers(session.api, "alice", "alice-password")
    workspace = await ready_workspace(session.api, headers, repo)
    created = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", headers=headers, json={
        "prompt": "@write notes.md # Notes\\nfirst line\n@write app.py print('hello, world')\n@say Done."})
    assert created.is_success, created.text
    task = await wait_for_task(session.api, headers, created.json()["id"], TERMINAL)
    assert task["status"] == "succeeded", task
    return workspace, task


# -- contrast ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("chosen_by", ["toggle", "system"])
async def test_every_page_meets_wcag_aa_contrast(alice: Session, source_repo: Path, scheme: str,
                                                 chosen_by: str) -> None:
    page = alice.page
    workspace, task = await task_with_a_diff(alice, source_repo)
    if chosen_by == "toggle":
        # The system says the other theme: the choice in the top bar wins.
        await page.emulate_media(color_scheme="dark" if scheme == "light" else "light")
        await page.goto("/settings")
        await page.get_by_label("Theme").select_option(scheme)
        await expect(page.locator("html")).to_have_attribute("data-theme", scheme)
    else:
        await page.emulate_media(color_scheme=scheme)
    failures = []
    for path in ("/", f"/workspaces/{workspace['id']}", f"/tasks/{task['id']}", "/settings", "/login", "/nope"):
        await page.goto(path)
        if path.startswith("/tasks/"):
            await expect(page.locator(".diff-file")).to_have_count(2)
            await page.evaluate("document.querySelectorAll('.diff-file').forEach((file) => { file.open = true; })")
            await expect(page.locator(".dl-add").first).to_be_visible()
            await expect(page.locator(".dl-del").first).to_be_visible()
            await expect(page.locator("[data-status-badge]").first).to_be_visible()
        background = luminance(await page_background(page))
        assert background > 0.8 if scheme == "light" else background < 0.02, f"{path} is not in the {scheme} theme"
        failures += [f"{path}: {failure}" for failure in await text_failures(page)]
        failures += [f"{path}: {failure}" for failure in await fill_failures(page)]
        failures += [f"{path}: {failure}" for failure in await focus_failures(page)]
    assert failures == []


# -- the theme control ------------------------------------------------------------------------------------------


async def test_the_theme_choice_is_remembered_and_set_before_the_first_paint(alice: Session) -> None:
    page = alice.page
    await page.emulate_media(color_scheme="light")
    # What <html> says when the document is parsed: before that the page must already be in the theme.
    await page.add_init_script("""document.addEventListener("DOMContentLoaded", () => {
      window.themeAtParse = document.documentElement.getAttribute("data-theme");
      window.backgroundAtParse = getComputedStyle(document.body).backgroundColor; });""")
    await page.goto("/")
    control = page.get_by_label("Theme")
    await expect(control).to_have_value("system")
    assert await page.evaluate("window.themeAtParse") is None
    # By keyboard: the control is in the tab order and arrow keys choose.
    for _ in range(15):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "theme-choice":
            break
    else:
        raise AssertionError("the theme control is not reachable with Tab")
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await expect(control).to_have_value("dark")
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")

    await page.reload()
    assert await page.evaluate("window.themeAtParse") == "dark"
    assert luminance(parse(await page.evaluate("window.backgroundAtParse"))) < 0.02
    await page.get_by_role("link", name="Settings").click()
    await expect(page).to_have_url(re.compile(r"/settings$"))
    assert await page.evaluate("window.themeAtParse") == "dark"
    await expect(page.get_by_label("Theme")).to_have_value("dark")

    await page.get_by_label("Theme").select_option("system")
    await expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile(".*"))
    await page.reload()
    assert await page.evaluate("window.themeAtParse") is None
    assert luminance(await page_background(page)) > 0.8


# -- post/redirect/get ------------------------------------------------------------------------------------------


async def test_a_reload_after_a_form_never_sends_it_again(alice: Session, source_repo: Path) -> None:
    page = alice.page
    posts: list[str] = []

    def count(request: Request) -> None:
        if request.method == "POST" and request.resource_type == "document":
            posts.append(request.url)

    page.on("request", count)

    async def submitted_then_reloaded(click: Any) -> None:
        async with page.expect_navigation():
            await click()
        before = len(posts)
        assert before > 0, "the form was not posted"
        await page.reload()
        assert len(posts) == before, f"the reload posted again: {posts[before:]}"

    await page.goto("/workspaces")
    await page.locator("#ws-name").fill("prg")
    await page.get_by_label("Repository", exact=True).fill(str(source_repo))
    await submitted_then_reloaded(page.get_by_role("button", name="Create workspace").click)
    headers = await api_headers(alice.api, "alice", "alice-password")
    assert [ws["name"] for ws in (await alice.api.get("/api/workspaces", headers=headers)).json()] == ["prg"]

    await page.goto("/settings")
    await page.get_by_label("Commit author").fill("Alice Example")
    await submitted_then_reloaded(page.get_by_role("button", name="Save git identity").click)
    await expect(page.get_by_label("Commit author")).to_have_value("Alice Example")

    # The new API token shows on the page the redirect leads to, and only there.
    await page.locator("#token-name").fill("laptop")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Create token").click()
    token = await page.get_by_test_id("new-token").input_value()
    assert token.startswith("aic_") and page.url.endswith("/settings#tokens-head")
    created = len(posts)
    await page.reload()
    assert len(posts) == created
    await expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert token not in await page.content()
    await page.goto("/settings")
    assert token not in await page.content()
    assert [t["name"] for t in (await alice.api.get("/api/tokens", headers=headers)).json()] == ["laptop"]
