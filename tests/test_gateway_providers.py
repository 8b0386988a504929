"""The gateway's OpenAI (Responses API) and Gemini routes: the capability token in, the provider's real key
out, errors in each API's own shape, usage metered from each API's answer and priced."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from aicode.gateway.listener import GatewayListener
from aicode.gateway.models import ModelCredential, TurnGrant
from aicode.gateway.prices import PriceTable
from tests.fakes import mock_gemini, mock_openai
from tests.test_gateway import InMemoryGatewayBackend, wait_for_usages

TOKEN = "aicode-turn-providers-token"
OPENAI_KEY = "sk-openai-real-key-123"
GEMINI_KEY = "gm-real-key-456"


@pytest.fixture
async def openai() -> AsyncIterator[mock_openai.MockOpenAI]:
    async with mock_openai.MockOpenAI() as server:
        yield server


@pytest.fixture
async def gemini() -> AsyncIterator[mock_gemini.MockGemini]:
    async with mock_gemini.MockGemini() as server:
        yield server


@pytest.fixture
def backend() -> InMemoryGatewayBackend:
    backend = InMemoryGatewayBackend()
    backend.grants[TOKEN] = TurnGrant(
        token_hash=b"t", task_id=uuid.uuid4(), user_id=uuid.uuid4(), workspace_id=uuid.uuid4(),
        credentials={"openai": ModelCredential("api_key", OPENAI_KEY), "gemini": ModelCredential("api_key", GEMINI_KEY)})
    return backend


@pytest.fixture
async def gateway(backend: InMemoryGatewayBackend, openai: mock_openai.MockOpenAI,
                  gemini: mock_gemini.MockGemini) -> AsyncIterator[httpx.AsyncClient]:
    listener = GatewayListener(backend, PriceTable.load(), upstream="http://127.0.0.1:9",
                               openai_upstream=openai.url + "/v1", gemini_upstream=gemini.url)
    await listener.start("127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}", timeout=30) as http:
            yield http
    finally:
        await listener.stop()


RESPONSES = {"model": "gpt-5.5", "stream": True, "input": [{"role": "user", "content": "hi"}]}
GENERATE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
GEMINI_PATH = "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent"


async def test_openai_calls_carry_the_real_key_as_a_bearer_token(gateway: httpx.AsyncClient,
                                                                 openai: mock_openai.MockOpenAI,
                                                                 backend: InMemoryGatewayBackend) -> None:
    openai.script([mock_openai.reply("hello there", cached_tokens=4)])
    response = await gateway.post("/openai/v1/responses", json=RESPONSES, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert "response.completed" in response.text
    sent = {name.lower(): value for name, value in openai.request_headers[0].items()}
    assert sent["authorization"] == f"Bearer {OPENAI_KEY}"
    assert TOKEN not in json.dumps(openai.request_headers)
    await wait_for_usages(backend)
    usage = backend.usages[0][1]
    assert usage.provider == "openai" and usage.model == "gpt-5.5"
    assert usage.cache_read_tokens == 4 and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.cost_usd > 0


async def test_gemini_calls_carry_the_real_key_and_never_the_token(gateway: httpx.AsyncClient,
                                                                   gemini: mock_gemini.MockGemini,
                                                                   backend: InMemoryGatewayBackend) -> None:
    gemini.script([mock_gemini.reply("hello there")])
    response = await gateway.post(GEMINI_PATH, params={"alt": "sse"}, json=GENERATE,
                                  headers={"x-goog-api-key": TOKEN})
    assert response.status_code == 200, response.text
    sent = {name.lower(): value for name, value in gemini.request_headers[0].items()}
    assert sent["x-goog-api-key"] == GEMINI_KEY
    await wait_for_usages(backend)
    usage = backend.usages[0][1]
    assert usage.provider == "gemini" and usage.model.startswith("gemini-2.5-pro")
    assert usage.input_tokens > 0 and usage.output_tokens > 0 and usage.cost_usd > 0
    # A key given as a query parameter is taken as the token and never forwarded.
    gemini.script([mock_gemini.reply("again")])
    by_query = await gateway.post(GEMINI_PATH, params={"alt": "sse", "key": TOKEN}, json=GENERATE)
    assert by_query.status_code == 200, by_query.text
    assert TOKEN not in json.dumps(gemini.request_headers) + json.dumps([r.query for r in gemini.other_requests])
    assert {name.lower(): value for name, value in gemini.request_headers[1].items()}["x-goog-api-key"] == GEMINI_KEY


async def test_refusals_come_in_each_apis_own_error_shape(gateway: httpx.AsyncClient,
                                                           backend: InMemoryGatewayBackend,
                                                           openai: mock_openai.MockOpenAI) -> None:
    unknown = await gateway.post("/openai/v1/responses", json=RESPONSES, headers={"authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json()["error"]["message"].startswith("aicode gateway:")
    gem = await gateway.post(GEMINI_PATH, json=GENERATE, headers={"x-goog-api-key": "nope"})
    assert gem.status_code == 401 and gem.json()["error"]["status"] == "UNAUTHENTICATED"
    backend.refusal = "the task's max_cost_usd budget of $0.01 is spent"
    spent = await gateway.post("/openai/v1/responses", json=RESPONSES, headers={"authorization": f"Bearer {TOKEN}"})
    assert spent.status_code == 402 and "budget" in spent.json()["error"]["message"]
    assert spent.headers["x-should-retry"] == "false"
    assert openai.requests == []


async def test_a_turn_keyed_for_one_provider_cannot_call_another(backend: InMemoryGatewayBackend,
                                                                  gateway: httpx.AsyncClient,
                                                                  gemini: mock_gemini.MockGemini) -> None:
    backend.grants[TOKEN].credentials.pop("gemini")
    response = await gateway.post(GEMINI_PATH, json=GENERATE, headers={"x-goog-api-key": TOKEN})
    assert response.status_code == 401 and "Google Gemini" in response.json()["error"]["message"]
    assert gemini.requests == []
    escape = await gateway.post("/gemini/../v1/messages", json={}, headers={"x-goog-api-key": TOKEN})
    assert escape.status_code in (401, 404)


@pytest.mark.parametrize(("query", "forwarded"), [
    ("alt=sse&key=aicode-turn-x", "alt=sse"), ("key=aicode-turn-x", ""), ("alt=sse", "alt=sse"),
    ("monkey=1&key=t", "monkey=1"),
])
def test_a_key_in_the_query_string_is_never_forwarded(query: str, forwarded: str) -> None:
    from aicode.gateway.forwarding import _without_key

    assert _without_key(query) == forwarded
