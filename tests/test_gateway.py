"""The model gateway: token swap, refusals, byte-exact unbuffered streaming, metering and the price table."""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from aicode.gateway.forwarding import REFUSAL_STATUS
from aicode.gateway.listener import GatewayListener, GatewayStartError
from aicode.gateway.metering import UsageMeter
from aicode.gateway.models import GatewayBackend, ModelCredential, ModelUsage, TurnGrant
from aicode.gateway.prices import PriceTable
from tests.fakes.mock_anthropic import MockAnthropic, error, reply

TOKEN = "cap-token-0123456789"
REAL_KEY = "sk-ant-real-key"
API_KEY = ModelCredential("api_key", REAL_KEY)
PROMPT = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 64,
          "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class InMemoryGatewayBackend:
    """A GatewayBackend over dicts: grants by token, a settable refusal, and what the gateway reported."""

    grants: dict[str, TurnGrant] = field(default_factory=dict)
    refusal: str | None = None
    usages: list[tuple[TurnGrant, ModelUsage]] = field(default_factory=list)
    egress_refusals: list[tuple[TurnGrant | None, str, str]] = field(default_factory=list)

    def add_grant(self, token: str, credential: ModelCredential | None = API_KEY,
                  egress_allow: tuple[str, ...] = ()) -> TurnGrant:
        grant = TurnGrant(token_hash=token.encode(), task_id=uuid.uuid4(), user_id=uuid.uuid4(),
                          workspace_id=uuid.uuid4(), credentials={"anthropic": credential} if credential else {},
                          egress_allow=egress_allow)
        self.grants[token] = grant
        return grant

    async def grant_for(self, token: str) -> TurnGrant | None:
        return self.grants.get(token)

    async def refusal_for(self, grant: TurnGrant) -> str | None:
        return self.refusal

    async def record_usage(self, grant: TurnGrant, usage: ModelUsage) -> None:
        self.usages.append((grant, usage))

    def egress_refused(self, grant: TurnGrant | None, target: str, reason: str) -> None:
        self.egress_refusals.append((grant, target, reason))


def test_in_memory_backend_has_the_ports_methods() -> None:
    names = [name for name in vars(GatewayBackend) if not name.startswith("_")]
    assert sorted(names) == ["egress_refused", "grant_for", "record_usage", "refusal_for"]
    for name in names:
        assert inspect.iscoroutinefunction(getattr(InMemoryGatewayBackend, name)) == \
            inspect.iscoroutinefunction(getattr(GatewayBackend, name)), name


async def wait_for_usages(backend: InMemoryGatewayBackend, count: int = 1, timeout: float = 5.0) -> None:
    """Usage is recorded after the answer's last byte went out: give the gateway a moment, then some more."""
    async with asyncio.timeout(timeout):
        while len(backend.usages) < count:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # a second record would land within this


@pytest.fixture
def backend() -> InMemoryGatewayBackend:
    backend = InMemoryGatewayBackend()
    backend.add_grant(TOKEN)
    return backend


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return PriceTable.load()


@pytest.fixture
async def mock() -> AsyncIterator[MockAnthropic]:
    async with MockAnthropic() as mock:
        yield mock


async def started(backend: GatewayBackend, prices: PriceTable, upstream: str) -> GatewayListener:
    listener = GatewayListener(backend, prices, upstream=upstream)
    await listener.start("127.0.0.1")
    return listener


@pytest.fixture
async def client(backend: InMemoryGatewayBackend, prices: PriceTable,
                 mock: MockAnthropic) -> AsyncIterator[httpx.AsyncClient]:
    listener = await started(backend, prices, mock.url)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}", timeout=30) as http:
            yield http
    finally:
        await listener.stop()


# -- credentials -------------------------------------------------------------------------------------


async def test_real_key_reaches_upstream_and_capability_token_does_not(client: httpx.AsyncClient,
                                                                       mock: MockAnthropic) -> None:
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    assert response.status_code == 200, response.text
    headers = {name.lower(): value for name, value in mock.request_headers[0].items()}
    assert headers["x-api-key"] == REAL_KEY
    assert "authorization" not in headers
    assert TOKEN not in json.dumps(mock.request_headers) + json.dumps(mock.requests)


async def test_bearer_capability_token_is_accepted(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    response = await client.post("/v1/messages", json=PROMPT, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert {k.lower(): v for k, v in mock.request_headers[0].items()}["x-api-key"] == REAL_KEY


async def test_unknown_token_is_401_and_upstream_sees_nothing(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": "not-a-token"})
    assert response.status_code == 401
    assert response.headers["x-should-retry"] == "false"
    assert response.json()["error"]["type"] == "authentication_error"
    assert mock.requests == [] and mock.other_requests == []


async def test_oauth_credential_is_sent_as_bearer_with_the_oauth_beta(backend: InMemoryGatewayBackend,
                                                                     client: httpx.AsyncClient,
                                                                     mock: MockAnthropic) -> None:
    backend.add_grant("oauth-turn", ModelCredential("oauth_token", "sk-ant-oat-secret"))
    headers = {"x-api-key": "oauth-turn", "anthropic-beta": "claude-code-20250219,fine-grained-tool-streaming"}
    response = await client.post("/v1/messages", json=PROMPT, headers=headers)
    assert response.status_code == 200, response.text
    seen = {name.lower(): value for name, value in mock.request_headers[0].items()}
    assert seen["authorization"] == "Bearer sk-ant-oat-secret"
    assert "x-api-key" not in seen
    assert seen["anthropic-beta"].split(",") == ["claude-code-20250219", "fine-grained-tool-streaming",
                                                 "oauth-2025-04-20"]


async def test_requester_without_anthropic_credential_is_401(backend: InMemoryGatewayBackend,
                                                            client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    backend.add_grant("no-key", credential=None)
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": "no-key"})
    assert response.status_code == 401
    assert "no Anthropic credential" in response.json()["error"]["message"]
    assert mock.requests == []


async def test_query_string_and_path_are_forwarded(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    response = await client.get("/v1/models?limit=5&after_id=model_x", headers={"x-api-key": TOKEN})
    assert response.status_code == 200, response.text
    assert [(r.method, r.path, r.query) for r in mock.other_requests] == [("GET", "/v1/models",
                                                                           "limit=5&after_id=model_x")]


# -- refusals and errors -----------------------------------------------------------------------------


async def test_refusal_ends_the_call_without_reaching_upstream(backend: InMemoryGatewayBackend,
                                                               client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    backend.refusal = "the workspace's monthly budget of $5.00 is spent"
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    assert response.status_code == REFUSAL_STATUS == 402
    assert response.headers["x-should-retry"] == "false"
    assert "monthly budget of $5.00 is spent" in response.json()["error"]["message"]
    assert mock.requests == []
    assert backend.grants[TOKEN].refusal == "the workspace's monthly budget of $5.00 is spent"


async def test_upstream_error_answer_passes_through(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    mock.script([error(429, "slow down", should_retry=True)])
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "true"
    assert response.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}


async def test_unreachable_upstream_is_502_naming_it(backend: InMemoryGatewayBackend, prices: PriceTable) -> None:
    closed = socket.socket()  # bound but never listening: every connect to it is refused
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    listener = await started(backend, prices, f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}") as http:
            response = await http.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    finally:
        await listener.stop()
        closed.close()
    assert response.status_code == 502
    body = response.json()["error"]
    assert body["type"] == "api_error" and f"127.0.0.1:{port}" in body["message"]
    assert REAL_KEY not in response.text and TOKEN not in response.text


async def test_path_outside_v1_is_404_in_api_shape(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    response = await client.get("/healthz", headers={"x-api-key": TOKEN})
    assert response.status_code == 404
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "not_found_error"
    assert mock.other_requests == []


async def test_request_body_over_limit_is_413(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    response = await client.post("/v1/messages", content=b"x" * (33 * 1024 * 1024),
                                 headers={"x-api-key": TOKEN, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert mock.requests == []


# -- streaming -----------------------------------------------------------------------------------------

FIXED_SSE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_fixed","model":"claude-haiku-4-5",'
    b'"usage":{"input_tokens":1000,"cache_read_input_tokens":2000,"cache_creation_input_tokens":300,'
    b'"output_tokens":1}}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,',
    b'"delta":{"type":"text_delta","text":"h\\u00e9llo \\"usage\\""}}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":500}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
]


@asynccontextmanager
async def upstream_serving(answer: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A one-route upstream (POST /v1/messages) of our own, for answers the mock cannot give."""
    app = web.Application()
    app.router.add_post("/v1/messages", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fixed_upstream() -> AsyncIterator[str]:
    """An upstream that answers every POST with the same SSE bytes, in the same pieces."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": "req_fixed"})
        await response.prepare(request)
        for piece in FIXED_SSE:
            await response.write(piece)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async with upstream_serving(answer) as url:
        yield url


@pytest.fixture
async def breaking_upstream() -> AsyncIterator[str]:
    """An upstream whose connection drops after the first event of its answer."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(FIXED_SSE[0])
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    async with upstream_serving(answer) as url:
        yield url


async def test_stream_bytes_arrive_identical_to_upstream(backend: InMemoryGatewayBackend, prices: PriceTable,
                                                         fixed_upstream: str) -> None:
    listener = await started(backend, prices, fixed_upstream)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}") as http:
            async with http.stream("POST", "/v1/messages", json={**PROMPT, "stream": True},
                                   headers={"x-api-key": TOKEN}) as response:
                received = b"".join([chunk async for chunk in response.aiter_raw()])
                assert response.headers["content-type"] == "text/event-stream"
                assert response.headers["request-id"] == "req_fixed"
    finally:
        await listener.stop()
    assert received == b"".join(FIXED_SSE)


async def test_upstream_breaking_mid_stream_ends_with_an_error_event(backend: InMemoryGatewayBackend,
                                                                    prices: PriceTable, breaking_upstream: str) -> None:
    listener = await started(backend, prices, breaking_upstream)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}") as http:
            response = await http.post("/v1/messages", json={**PROMPT, "stream": True}, headers={"x-api-key": TOKEN})
        await wait_for_usages(backend)
    finally:
        await listener.stop()
    assert response.text.startswith(FIXED_SSE[0].decode())
    last_event = response.text.strip().split("\n\n")[-1]
    assert last_event.startswith("event: error\ndata: ")
    assert json.loads(last_event.split("data: ", 1)[1])["error"]["type"] == "api_error"
    [(_, usage)] = backend.usages
    assert usage.input_tokens == 1000


@pytest.mark.serial  # times the chunks to fractions of a second
async def test_stream_is_not_buffered(client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    mock.script([reply("one two three four", chunk_delay=0.2)])  # 8 events, ~1.6 s in all
    started_at = time.monotonic()
    async with client.stream("POST", "/v1/messages", json={**PROMPT, "stream": True},
                             headers={"x-api-key": TOKEN}) as response:
        arrivals = [time.monotonic() - started_at async for _ in response.aiter_raw()]
    assert arrivals[0] < 0.5, arrivals
    assert arrivals[-1] > 1.2, arrivals
    assert len(arrivals) >= 6, arrivals


async def test_stream_usage_is_recorded_once_at_table_price(backend: InMemoryGatewayBackend, prices: PriceTable,
                                                            fixed_upstream: str) -> None:
    listener = await started(backend, prices, fixed_upstream)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}") as http:
            await http.post("/v1/messages", json={**PROMPT, "stream": True}, headers={"x-api-key": TOKEN})
        await wait_for_usages(backend)
    finally:
        await listener.stop()
    assert len(backend.usages) == 1
    grant, usage = backend.usages[0]
    assert grant is backend.grants[TOKEN]
    expected_cost = (1000 * 1.0 + 500 * 5.0 + 2000 * 0.1 + 300 * 1.25) / 1_000_000
    assert usage == ModelUsage("anthropic", "claude-haiku-4-5", input_tokens=1000, output_tokens=500,
                               cache_read_tokens=2000, cache_write_tokens=300, cost_usd=pytest.approx(expected_cost))


async def test_plain_json_usage_is_recorded(backend: InMemoryGatewayBackend, client: httpx.AsyncClient,
                                            mock: MockAnthropic, prices: PriceTable) -> None:
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    await wait_for_usages(backend)
    body = response.json()
    [(_, usage)] = backend.usages
    assert (usage.model, usage.input_tokens, usage.output_tokens) == (
        PROMPT["model"], body["usage"]["input_tokens"], body["usage"]["output_tokens"])
    assert usage.cost_usd == pytest.approx(prices.cost(usage.model, usage.input_tokens, usage.output_tokens))


async def test_usage_is_recorded_when_client_leaves_mid_stream(backend: InMemoryGatewayBackend,
                                                               client: httpx.AsyncClient, mock: MockAnthropic) -> None:
    mock.script([reply("a long answer that the client will not wait for", chunk_delay=0.3)])
    async with client.stream("POST", "/v1/messages", json={**PROMPT, "stream": True},
                             headers={"x-api-key": TOKEN}) as response:
        async for _ in response.aiter_raw():
            break  # message_start (with the input tokens) has arrived; hang up
    await wait_for_usages(backend)
    [(_, usage)] = backend.usages
    assert usage.input_tokens > 0
    assert usage.output_tokens == 1  # message_start's count: the answer was cut before message_delta


async def test_error_answer_records_no_usage(backend: InMemoryGatewayBackend, client: httpx.AsyncClient,
                                             mock: MockAnthropic) -> None:
    mock.script([error(500, "boom")])
    response = await client.post("/v1/messages", json=PROMPT, headers={"x-api-key": TOKEN})
    assert response.status_code == 500
    await asyncio.sleep(0.2)
    assert backend.usages == []


# -- listener ------------------------------------------------------------------------------------------


async def test_listener_leaves_the_process_signal_handlers_alone(backend: InMemoryGatewayBackend,
                                                                 prices: PriceTable, mock: MockAnthropic) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    listener = await started(backend, prices, mock.url)
    try:
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        await listener.stop()


async def test_listener_stop_is_idempotent_and_frees_the_ports(backend: InMemoryGatewayBackend,
                                                               prices: PriceTable, mock: MockAnthropic) -> None:
    listener = await started(backend, prices, mock.url)
    ports = listener.http_port, listener.proxy_port
    await listener.stop()
    await listener.stop()
    for port in ports:
        with pytest.raises(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()


async def test_listener_on_a_foreign_address_fails_clearly(backend: InMemoryGatewayBackend,
                                                           prices: PriceTable) -> None:
    listener = GatewayListener(backend, prices, upstream="http://127.0.0.1:9")
    with pytest.raises(GatewayStartError, match=r"cannot listen on 192\.0\.2\.1"):
        await listener.start("192.0.2.1")  # TEST-NET-1: never an address of this machine
    await listener.stop()


# -- metering ------------------------------------------------------------------------------------------


def test_meter_reads_usage_split_at_every_byte(prices: PriceTable) -> None:
    meter = UsageMeter(prices)
    for byte in b"".join(FIXED_SSE):
        meter.feed(bytes([byte]))
    usage = meter.finish()
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        1000, 500, 2000, 300)


def test_meter_takes_cumulative_counts_from_message_delta(prices: PriceTable) -> None:
    meter = UsageMeter(prices)
    meter.feed(b'data: {"type":"message_start","message":{"model":"claude-opus-4-5","usage":{"input_tokens":10,'
               b'"output_tokens":1}}}\r\n\r\n')
    meter.feed(b'data: {"type":"message_delta","usage":{"output_tokens":40}}\n\n')
    meter.feed(b'data: {"type":"message_delta","usage":{"input_tokens":25,"output_tokens":90}}\n\n')
    usage = meter.finish()
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (25, 90)


def test_meter_reads_a_json_body_without_final_newline(prices: PriceTable) -> None:
    meter = UsageMeter(prices)
    meter.feed(b'{"type":"message","model":"claude-3-5-haiku-20241022",')
    meter.feed(b'"usage":{"input_tokens":7,"output_tokens":3}}')
    usage = meter.finish()
    assert usage is not None and (usage.model, usage.input_tokens, usage.output_tokens) == (
        "claude-3-5-haiku-20241022", 7, 3)


@pytest.mark.parametrize("garbage", [b"", b"\xff\xfe\x00", b'data: {"usage": [1,2]\n', b'{"usage": "lots"}',
                                     b'data: {"type":"message_start","message":"x","usage":1}\n',
                                     b"\n" * 100, b'{"usage":{"input_tokens":-5,"output_tokens":true}}'])
def test_meter_never_raises_on_garbage(prices: PriceTable, garbage: bytes) -> None:
    meter = UsageMeter(prices)
    meter.feed(garbage)
    usage = meter.finish()
    assert usage is None or (usage.input_tokens, usage.output_tokens) == (0, 0)


def test_meter_without_usage_reports_none(prices: PriceTable) -> None:
    meter = UsageMeter(prices)
    meter.feed(b'{"input_tokens": 1234}')  # count_tokens answers are no model call
    assert meter.finish() is None


# -- prices --------------------------------------------------------------------------------------------


def test_longest_prefix_wins(prices: PriceTable) -> None:
    assert prices.price_for("claude-opus-4-5-20251101").output == 25.0
    assert prices.price_for("claude-opus-4-1-20250805").output == 75.0
    assert prices.price_for("claude-opus-4-20250514").output == 75.0
    assert prices.price_for("claude-3-5-haiku-20241022").input == 0.8
    assert prices.price_for("claude-3-haiku-20240307").input == 0.25


def test_unknown_model_is_priced_as_the_most_expensive(prices: PriceTable) -> None:
    unknown = prices.cost("gpt-9-ultra", 1_000_000, 1_000_000)
    assert unknown == pytest.approx(15.0 + 75.0)
    assert all(unknown >= prices.cost(family, 1_000_000, 1_000_000) for family in prices.families)


def test_cost_counts_every_kind_of_token(prices: PriceTable) -> None:
    cost = prices.cost("claude-sonnet-4-5", 1_000_000, 100_000, cache_read_tokens=1_000_000,
                       cache_write_tokens=10_000, cache_write_1h_tokens=10_000)
    # A prompt of 2.02M tokens is past 200K: the long-context rates apply to the whole call.
    assert cost == pytest.approx(6.0 + 2.25 + 0.6 + 0.075 + 0.12)


def test_override_file_replaces_and_adds_families(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({
        "claude-sonnet-4": {"input": 1, "output": 2, "cache_write": 3, "cache_read": 4},
        "Claude-Internal": {"input": 0, "output": 0, "cache_write": 0, "cache_read": 0},
    }))
    table = PriceTable.load(override)
    assert table.price_for("claude-sonnet-4-5").input == 1.0
    assert table.price_for("claude-internal-7").output == 0.0
    assert table.price_for("claude-opus-4-1").output == 75.0  # untouched families stay


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot be read"),
    ("{not json", "not valid JSON"),
    ('["claude"]', "expected an object"),
    ('{"claude-x": {"input": -1, "output": 1, "cache_write": 1, "cache_read": 1}}', "entry 'claude-x'.*>= 0"),
    ('{"claude-x": {"input": 1, "output": 1, "cache_write": 1}}', "entry 'claude-x'.*cache_read"),
    ('{"claude-x": {"input": 1, "ouput": 1, "output": 1, "cache_write": 1, "cache_read": 1}}', "ouput"),
])
def test_bad_override_file_names_file_and_entry(tmp_path: Path, content: str | None, expected: str) -> None:
    override = tmp_path / "operator-prices.json"
    if content is not None:
        override.write_text(content)
    with pytest.raises(ValueError, match=expected) as raised:
        PriceTable.load(override)
    assert str(override) in str(raised.value)
