"""The anthropic provider against a local server speaking the Messages API wire format: the
translation both ways, retries, errors, max_tokens and the deadline, and a generic agent's tool
round trip through the runner. No network, no database."""

import json
import urllib.request
from decimal import Decimal

import pytest

from runs.agents import AgentSpec
from runs.agents.generic import make_tool_agent
from runs.engine.budget import UNASKED_MAX_TOKENS, cost_of, input_token_bound
from runs.engine.caps import Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.engine.tools import register_tool, unregister_tool
from runs.providers import AnthropicProvider, ProviderError, RecordedProvider, get_provider
from runs.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    TOOL_USE_SYSTEM_TOKENS,
    wire_messages,
    wire_params,
)
from runs.providers.base import ModelResponse, assistant_message, tool_message
from runs.worker import provider_factory
from tests.fake_http import FakeJsonServer

KEY = "sk-ant-test-0123456789abcdef"
USER = [{"role": "user", "content": "Where is order A-1001?"}]
SONNET_PRICE = (Decimal("3.00"), Decimal("15.00"))


@pytest.fixture
def server():
    fake = FakeJsonServer()
    yield fake
    fake.close()


def message(*blocks, stop="end_turn", usage=None, model="claude-sonnet-4-5-20250929"):
    """A Messages API answer; blocks are strings (text) or dicts."""
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": b} if isinstance(b, str) else b for b in blocks],
        "stop_reason": stop,
        "stop_sequence": None,
    }
    if usage is not False:
        body["usage"] = usage or {"input_tokens": 21, "output_tokens": 6}
    return body


def tool_use(id, name, input):
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def api_error(kind, text):
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_1"}


class Clock:
    """A monotonic clock that only moves when the provider sleeps."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def provider(server, clock=None, **kwargs):
    clock = clock or Clock()
    return AnthropicProvider(server.base_url, KEY, sleep=clock.sleep, clock=clock, **kwargs)


# One call.


def test_a_text_answer_uses_the_wire_format(server):
    server.replies.append((200, {}, message("It shipped ", "on Monday.")))
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    response = provider(server).complete(
        model="claude-sonnet-4-5", messages=messages, params={"temperature": 0}
    )
    assert response.content == "It shipped on Monday."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert (response.input_tokens, response.output_tokens) == (21, 6)
    assert response.cost_usd is None

    sent = server.requests[0]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["content-type"] == "application/json"
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {
        "model": "claude-sonnet-4-5",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Where is order A-1001?"}],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "temperature": 0,
    }


def test_a_tool_use_answer_becomes_tool_calls(server):
    server.replies.append(
        (
            200,
            {},
            message(
                "Let me look.",
                tool_use("toolu_01", "lookup_order", {"order_id": "A-1001"}),
                tool_use("toolu_02", "odd", ["not", "an", "object"]),
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                stop="tool_use",
            ),
        )
    )
    tools = [{"name": "lookup_order", "description": "Find.", "parameters": {"type": "object"}}]
    response = provider(server).complete(model="m", messages=USER, tools=tools)
    assert response.content == "Let me look."
    assert response.tool_calls == [
        {"id": "toolu_01", "name": "lookup_order", "arguments": {"order_id": "A-1001"}},
        {"id": "toolu_02", "name": "odd", "arguments": {"_raw_arguments": ["not", "an", "object"]}},
    ]
    assert response.finish_reason == "tool_calls"
    assert server.requests[0]["body"]["tools"] == [
        {"name": "lookup_order", "description": "Find.", "input_schema": {"type": "object"}}
    ]


@pytest.mark.parametrize(
    "stop, finish",
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "pause_turn")],
)  # fmt: skip
def test_stop_reasons_become_finish_reasons(server, stop, finish):
    server.replies.append((200, {}, message("x", stop=stop)))
    assert provider(server).complete(model="m", messages=USER).finish_reason == finish


def test_usage_counts_cache_tokens_as_input(server):
    usage = {
        "input_tokens": 100,
        "output_tokens": 7,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
    }
    server.replies.append((200, {}, message("ok", usage=usage)))
    response = provider(server).complete(model="m", messages=USER)
    assert (response.input_tokens, response.output_tokens) == (150, 7)
    assert response.raw["usage"] == usage and "usage_estimated" not in response.raw


def test_missing_usage_is_estimated_generously(server):
    server.replies.append((200, {}, message("ok", usage=False)))
    response = provider(server).complete(model="m", messages=USER)
    assert response.raw["usage_estimated"] is True
    assert response.input_tokens > len(json.dumps(USER)) // 4
    assert response.output_tokens >= 1


def test_a_body_that_is_not_a_message_is_not_retried(server):
    server.replies.append((200, {}, b"<html>proxy error</html>"))
    clock = Clock()
    with pytest.raises(ProviderError, match="not a Messages API answer") as info:
        provider(server, clock).complete(model="m", messages=USER)
    assert not info.value.retryable and clock.sleeps == [] and len(server.requests) == 1


# max_tokens.


def test_max_tokens_is_always_sent(server):
    server.replies += [(200, {}, message("ok"))] * 5
    provider(server).complete(model="m", messages=USER)
    provider(server).complete(model="m", messages=USER, max_tokens=77)
    provider(server, default_max_tokens=1000).complete(model="m", messages=USER)
    provider(server, max_output_tokens=8192).complete(model="m", messages=USER, max_tokens=16384)
    provider(server, max_output_tokens=512).complete(model="m", messages=USER)
    sent = [r["body"]["max_tokens"] for r in server.requests]
    assert sent == [DEFAULT_MAX_TOKENS, 77, 1000, 8192, 512]


def test_params_cannot_replace_what_the_body_owns(server):
    server.replies.append((200, {}, message("ok")))
    params = {
        "model": "other",
        "max_tokens": 99999,
        "max_completion_tokens": 99999,
        "system": "ignored",
        "messages": [],
        "top_k": 5,
    }
    provider(server).complete(model="m", messages=USER, max_tokens=10, params=params)
    body = server.requests[0]["body"]
    assert (body["model"], body["max_tokens"], body["top_k"]) == ("m", 10, 5)
    assert "system" not in body and "max_completion_tokens" not in body
    assert body["messages"] == USER


# Retries, errors, the deadline.


@pytest.mark.parametrize("header", ["retry-after", "Retry-After"])
def test_429_waits_what_retry_after_asks_then_succeeds(server, header):
    server.replies += [
        (429, {header: "7"}, api_error("rate_limit_error", "Number of requests exceeded")),
        (200, {}, message("ok")),
    ]
    clock = Clock()
    response = provider(server, clock).complete(model="m", messages=USER)
    assert response.content == "ok"
    assert clock.sleeps == [7.0]
    assert len(server.requests) == 2
    assert server.requests[0]["body"] == server.requests[1]["body"]


def test_529_overloaded_is_retried_with_backoff(server):
    overloaded = (529, {}, api_error("overloaded_error", "Overloaded"))
    server.replies += [overloaded, overloaded, (200, {}, message("ok"))]
    clock = Clock()
    assert provider(server, clock).complete(model="m", messages=USER).content == "ok"
    assert clock.sleeps == [0.5, 1.0] and len(server.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_retried_until_the_attempts_run_out(server, status):
    server.replies += [(status, {}, api_error("api_error", "Internal server error"))] * 3
    clock = Clock()
    with pytest.raises(ProviderError) as info:
        provider(server, clock, max_retries=2).complete(model="m", messages=USER)
    assert len(server.requests) == 3 and clock.sleeps == [0.5, 1.0]
    assert info.value.code == "provider_error" and info.value.retryable
    assert f"HTTP {status}" in info.value.message
    assert "api_error: Internal server error" in info.value.message
    assert "gave up after 3 attempts" in info.value.message


@pytest.mark.parametrize(
    "status, kind",
    [(400, "invalid_request_error"), (401, "authentication_error"),
     (403, "permission_error"), (404, "not_found_error"), (413, "request_too_large")],
)  # fmt: skip
def test_client_errors_are_not_retried_and_never_show_the_key(server, status, kind):
    # A server (or a proxy) that echoes the key it was sent.
    server.replies.append((status, {}, api_error(kind, f"refused x-api-key {KEY}")))
    clock = Clock()
    with pytest.raises(ProviderError) as info:
        provider(server, clock).complete(model="m", messages=USER)
    assert len(server.requests) == 1 and clock.sleeps == []
    assert info.value.code == "provider_error" and not info.value.retryable
    assert f"HTTP {status}" in info.value.message and kind in info.value.message
    assert KEY not in info.value.message and KEY not in str(info.value)
    assert "[api key]" in info.value.message


def test_connection_failures_are_retried_then_reported():
    fake = FakeJsonServer()
    fake.close()  # nothing listens there now
    clock = Clock()
    with pytest.raises(ProviderError, match="could not reach") as info:
        provider(fake, clock, max_retries=2).complete(model="m", messages=USER)
    assert clock.sleeps == [0.5, 1.0] and info.value.retryable


def test_a_retry_after_past_the_deadline_is_not_waited_for(server):
    server.replies.append((429, {"retry-after": "5"}, api_error("rate_limit_error", "slow down")))
    clock = Clock()
    with pytest.raises(ProviderError, match="would pass the run's deadline") as info:
        provider(server, clock).complete(model="m", messages=USER, deadline=clock.now + 4)
    assert clock.sleeps == [] and len(server.requests) == 1
    assert info.value.retryable


def test_backoff_stops_at_the_deadline(server):
    server.replies += [(529, {}, api_error("overloaded_error", "Overloaded"))] * 4
    clock = Clock()
    with pytest.raises(ProviderError, match="a retry in 2 s would pass the run's deadline"):
        provider(server, clock).complete(model="m", messages=USER, deadline=clock.now + 2)
    assert clock.sleeps == [0.5, 1.0] and len(server.requests) == 3


def test_a_passed_deadline_sends_nothing(server):
    clock = Clock()
    with pytest.raises(ProviderError, match="deadline passed"):
        provider(server, clock).complete(model="m", messages=USER, deadline=clock.now - 0.1)
    assert server.requests == []


def test_the_network_wait_is_bounded_by_the_deadline(server, monkeypatch):
    timeouts = []
    real_urlopen = urllib.request.urlopen

    def urlopen(request, timeout):
        timeouts.append(timeout)
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    server.replies += [(200, {}, message("ok"))] * 2
    clock = Clock()
    anthropic = provider(server, clock, timeout_s=30)
    anthropic.complete(model="m", messages=USER, deadline=clock.now + 2.5)
    anthropic.complete(model="m", messages=USER)
    assert timeouts == [2.5, 30]


# Translating the conversation.


def test_roles_alternate_and_tool_results_come_first():
    call = {"id": "toolu_1", "name": "lookup", "arguments": {"id": 1}}
    wire_call = {
        "id": "toolu_2",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"id": 2}'},
    }
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi."},
        {"role": "user", "content": [{"type": "text", "text": " "}, "Two orders."]},
        {"role": "assistant", "content": "", "tool_calls": [call, wire_call]},
        {"role": "user", "content": "Quickly, please."},
        tool_message("toolu_1", "lookup", {"status": "shipped"}),
        {**tool_message("toolu_2", "lookup", "timed out"), "is_error": True},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "assistant", "content": "   "},
    ]
    system, wire = wire_messages(messages)
    assert system == "Be brief.\n\nAnswer in English."
    assert wire == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi."}, {"type": "text", "text": "Two orders."}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": 1}},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"id": 2}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": '{"status": "shipped"}',
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "timed out",
                    "is_error": True,
                },
                {"type": "text", "text": "Quickly, please."},
            ],
        },
    ]
    assert messages[3]["content"] == ""  # the caller's messages are not changed


def test_an_answer_goes_back_as_it_came():
    earlier = ModelResponse(
        content="Checking.", tool_calls=[{"id": "toolu_9", "name": "t", "arguments": {"a": [1]}}]
    )
    _, wire = wire_messages([*USER, assistant_message(earlier)])
    assert wire[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "t", "input": {"a": [1]}},
        ],
    }


def test_chat_completions_params_are_translated():
    assert wire_params({"tool_choice": "required"}) == {"tool_choice": {"type": "any"}}
    assert wire_params({"tool_choice": "auto"}) == {"tool_choice": {"type": "auto"}}
    assert wire_params({"tool_choice": {"type": "function", "function": {"name": "t"}}}) == {
        "tool_choice": {"type": "tool", "name": "t"}
    }
    native = {"tool_choice": {"type": "tool", "name": "t"}, "stop_sequences": ["END"]}
    assert wire_params(native) == native
    assert wire_params({"stop": "END"}) == {"stop_sequences": ["END"]}
    assert wire_params({"stop": ["A", "B"], "temperature": 0.2}) == {
        "stop_sequences": ["A", "B"],
        "temperature": 0.2,
    }


# Configuration.


def test_built_by_name_and_from_the_deployment_settings(settings):
    built = get_provider("anthropic", base_url="http://proxy.internal/", api_key="k")
    assert isinstance(built, AnthropicProvider)
    assert built.url == "http://proxy.internal/v1/messages"
    assert AnthropicProvider("http://proxy.internal/v1").url == "http://proxy.internal/v1/messages"
    with pytest.raises(ValueError, match="ANTHROPIC_BASE_URL"):
        get_provider("anthropic", base_url="")

    settings.ANTHROPIC_BASE_URL = "http://anthropic.internal:8080"
    settings.ANTHROPIC_API_KEY = KEY
    spec = AgentSpec(name="t", fn=lambda ctx, input: None, provider="anthropic")
    from_settings = provider_factory(spec)
    assert from_settings.url == "http://anthropic.internal:8080/v1/messages"
    assert from_settings.api_key == KEY
    own = AgentSpec(
        name="t",
        fn=spec.fn,
        provider="anthropic",
        provider_config={"base_url": "http://own:1", "max_output_tokens": 8192},
    )
    assert provider_factory(own).url == "http://own:1/v1/messages"
    assert provider_factory(own).max_output_tokens == 8192


# A generic agent through the runner.


@pytest.fixture
def order_tool():
    """Registers test_lookup_order; yields its argument schema."""

    def find_order(order_id: str) -> dict:
        return {"order_id": order_id, "status": "shipped"}

    schema = {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    }
    register_tool(find_order, name="test_lookup_order", description="Find an order.", schema=schema)
    yield schema
    unregister_tool("test_lookup_order")


def support_agent():
    fn = make_tool_agent(system_prompt="You answer order questions.", tools=["test_lookup_order"])
    return AgentSpec(
        name="t-claude",
        fn=fn,
        provider="anthropic",
        model="claude-sonnet-4-5",
        tools=("test_lookup_order",),
    )


def run_agent(spec, caps=None, factory=provider_factory):
    recorder = MemoryRecorder()
    outcome = execute(
        spec,
        {"question": "Where is order A-1001?"},
        caps or Caps(),
        recorder,
        price_for={"claude-sonnet-4-5": SONNET_PRICE}.get,
        provider_factory=factory,
    )
    return outcome, recorder


def test_a_generic_agent_round_trip(server, settings, order_tool):
    settings.ANTHROPIC_BASE_URL = server.base_url
    settings.ANTHROPIC_API_KEY = KEY
    server.replies += [
        (
            200,
            {},
            message(
                "Let me check.",
                tool_use("toolu_01", "test_lookup_order", {"order_id": "A-1001"}),
                stop="tool_use",
                usage={"input_tokens": 400, "output_tokens": 30},
            ),
        ),
        (200, {}, message("It shipped.", usage={"input_tokens": 480, "output_tokens": 8})),
    ]
    outcome, recorder = run_agent(support_agent())
    assert outcome.status == "succeeded", outcome.error
    assert outcome.output == {"answer": "It shipped.", "turns": 2, "tool_calls": 1}

    first, second = (r["body"] for r in server.requests)
    for body in (first, second):
        assert body["system"] == "You answer order questions."
        assert body["tools"] == [
            {
                "name": "test_lookup_order",
                "description": "Find an order.",
                "input_schema": order_tool,
            }
        ]
        # A price is known and no max_tokens asked for: the runner's clamp is what is sent.
        assert body["max_tokens"] == UNASKED_MAX_TOKENS
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:], strict=False))
    assert first["messages"] == [{"role": "user", "content": "Where is order A-1001?"}]
    assert second["messages"] == [
        {"role": "user", "content": "Where is order A-1001?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "test_lookup_order",
                    "input": {"order_id": "A-1001"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": json.dumps({"order_id": "A-1001", "status": "shipped"}),
                }
            ],
        },
    ]

    steps = recorder.of_kind("model_call")
    assert [(s.input_tokens, s.output_tokens) for s in steps] == [(400, 30), (480, 8)]
    assert steps[0].cost_usd == Decimal("0.001650")  # 400 × $3/M + 30 × $15/M
    assert outcome.usage.input_tokens == 880 and outcome.usage.output_tokens == 38
    assert outcome.usage.cost_usd == Decimal("0.001650") + Decimal("0.001560")
    assert [s.output for s in recorder.of_kind("tool_call")] == [
        {"order_id": "A-1001", "status": "shipped"}
    ]

    # The recording replays without the server.
    recording = [(s.input, s.output) for s in steps]
    replayed, _ = run_agent(support_agent(), factory=lambda spec: RecordedProvider(recording))
    assert replayed.status == "succeeded" and replayed.output == outcome.output
    assert len(server.requests) == 2


def test_the_budget_clamp_is_what_the_api_gets(server, settings, order_tool):
    settings.ANTHROPIC_BASE_URL = server.base_url
    server.replies.append((200, {}, message("Soon.")))
    outcome, recorder = run_agent(support_agent(), Caps(max_cost_usd=Decimal("0.01")))
    assert outcome.status == "succeeded", outcome.error
    sent = server.requests[0]["body"]["max_tokens"]
    step = recorder.of_kind("model_call")[0]
    assert sent == step.input["max_tokens"]
    # The most output that $0.01 still pays for, after the largest input the call can be billed:
    # what was sent plus the system prompt the API adds for tools, which it was not sent.
    billed = input_token_bound(step.input["messages"], step.input["tools"]) + TOOL_USE_SYSTEM_TOKENS
    assert cost_of(billed, sent, SONNET_PRICE) <= Decimal("0.01")
    assert cost_of(billed, sent + 1, SONNET_PRICE) > Decimal("0.01")


def test_without_tools_no_hidden_input_is_reserved(server):
    provider = AnthropicProvider(server.base_url, KEY)
    assert provider.hidden_input_tokens([]) == 0 and provider.hidden_input_tokens(None) == 0
    assert provider.hidden_input_tokens([{"name": "t"}]) == TOOL_USE_SYSTEM_TOKENS


def test_a_refused_request_fails_the_run_without_the_key(server, settings, order_tool):
    settings.ANTHROPIC_BASE_URL = server.base_url
    settings.ANTHROPIC_API_KEY = KEY
    server.replies.append(
        (400, {}, api_error("invalid_request_error", f"max_tokens too large for key {KEY}"))
    )
    outcome, recorder = run_agent(support_agent())
    assert outcome.status == "failed"
    assert outcome.error["code"] == "provider_error"
    assert "HTTP 400" in outcome.error["message"]
    assert "invalid_request_error" in outcome.error["message"]
    assert KEY not in json.dumps(outcome.error)
    assert len(server.requests) == 1
    step = recorder.of_kind("model_call")[0]
    assert step.status == "error" and KEY not in json.dumps(step.error)
