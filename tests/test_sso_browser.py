"""Single sign-on in a real headless Chromium: from the sign-in page through the identity provider and back."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from aicode.settings import Settings
from tests.browser_support import LiveServer, new_session, screenshot
from tests.fakes.identity_provider import FakeIdentityProvider

# The `browser` fixture.
pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdentityProvider]:
    async with FakeIdentityProvider() as provider:
        provider.user = {**provider.user, "groups": ["aicode-admins"]}
        yield provider


@pytest.fixture
async def sso_live(settings: Settings, idp: FakeIdentityProvider) -> AsyncIterator[LiveServer]:
    """The app on a real port, signing in through the fake provider (no Docker image needed)."""
    server = LiveServer(dataclasses.replace(
        settings, oidc_issuer=idp.issuer, oidc_client_id=idp.client_id, oidc_client_secret=idp.client_secret,
        oidc_admin_groups=("aicode-admins",), oidc_name="Fake IdP"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_signing_in_with_the_provider_lands_on_the_overview_signed_in(
    browser: Browser, sso_live: LiveServer, idp: FakeIdentityProvider
) -> None:
    session = await new_session(browser, sso_live)
    try:
        page = session.page
        await page.goto("/login")
        await screenshot(page, "sso-login")
        await page.get_by_role("link", name="Sign in with Fake IdP").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await expect(page.get_by_title("Signed in as ada")).to_be_visible()
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await expect(page.get_by_role("link", name="Admin")).to_be_visible()  # the admin group made ada an admin
        assert page.url == f"{sso_live.url}/"
        cookies = {cookie["name"]: cookie for cookie in await session.context.cookies()}
        assert cookies["aicode_session"]["httpOnly"] and cookies["aicode_session"]["sameSite"] == "Lax"
        assert "aicode_oidc" not in cookies
        assert idp.tokens_issued == 1 and idp.token_refusals == []
        await screenshot(page, "sso-signed-in")
    finally:
        await session.api.aclose()
        await session.close()
    assert session.errors == []


async def test_a_signed_out_deep_link_comes_back_to_its_page_after_signing_in_with_the_provider(
    browser: Browser, sso_live: LiveServer
) -> None:
    session = await new_session(browser, sso_live)
    try:
        page = session.page
        await page.goto("/settings")
        await expect(page).to_have_url(f"{sso_live.url}/login?next=/settings")
        await page.get_by_role("link", name="Sign in with Fake IdP").click()
        await expect(page).to_have_url(f"{sso_live.url}/settings")
        await expect(page.get_by_title("Signed in as ada")).to_be_visible()
    finally:
        await session.api.aclose()
        await session.close()
    assert session.errors == []
