"""Model providers: scripted, recorded, and openai against a local chat-completions server."""

import json
import time
from decimal import Decimal

import pytest

from runs.providers import (
    ModelResponse,
    OpenAIProvider,
    ProviderError,
    RecordedProvider,
    RecordingDiverged,
    ReplayProvider,
    ScriptedProvider,
    UnknownProvider,
    get_provider,
)
from runs.providers.base import assistant_message, hidden_input_tokens, tool_message
from tests.fake_http import FakeJsonServer

USER = [{"role": "user", "content": "Where is order A-1001?"}]


# Scripted.


def test_scripted_serves_in_order_with_deterministic_tokens():
    script = [
        {"content": "", "tool_calls": [{"name": "lookup", "arguments": {"id": "A-1"}}]},
        {"content": "It shipped."},
    ]
    first = ScriptedProvider(script).complete(model="m", messages=USER)
    again = ScriptedProvider(script).complete(model="m", messages=USER)
    assert first == again
    assert first.tool_calls == [{"id": "call_0_0", "name": "lookup", "arguments": {"id": "A-1"}}]
    assert first.finish_reason == "tool_calls"
    payload = json.dumps([USER, []], ensure_ascii=False, separators=(",", ":"))
    assert first.input_tokens == len(payload.encode()) // 4 + 1
    provider = ScriptedProvider(script)
    provider.complete(model="m", messages=USER)
    second = provider.complete(model="m", messages=USER)
    assert (second.content, second.output_tokens, second.model) == ("It shipped.", 3, "m")


def test_scripted_honours_max_tokens_by_truncating():
    provider = ScriptedProvider(
        [{"content": "x" * 1000, "tool_calls": [{"name": "t", "arguments": {"a": 1}}]}], loop=True
    )
    full = provider.complete(model="m", messages=USER)
    assert full.output_tokens > 250
    for limit in (1, 2, 7, 100):
        cut = provider.complete(model="m", messages=USER, max_tokens=limit)
        assert 1 <= cut.output_tokens <= limit
        assert cut.output_tokens == limit  # it uses what it may
        assert cut.finish_reason == "length"
        assert cut.tool_calls == []
        assert full.content.startswith(cut.content)


def test_scripted_exhaustion_loop_and_callable_scripts():
    provider = ScriptedProvider([{"content": "once"}])
    provider.complete(model="m", messages=USER)
    with pytest.raises(ProviderError, match="no response #2"):
        provider.complete(model="m", messages=USER)

    looping = ScriptedProvider([{"content": "a"}, {"content": "b"}], loop=True)
    answers = [looping.complete(model="m", messages=USER).content for _ in range(5)]
    assert answers == ["a", "b", "a", "b", "a"]

    def script(index, messages):
        return None if index == 2 else {"content": f"{index}:{len(messages)}"}

    by_call = ScriptedProvider(script)
    assert by_call.complete(model="m", messages=USER).content == "0:1"
    assert by_call.complete(model="m", messages=USER * 2).content == "1:2"
    with pytest.raises(ProviderError):
        by_call.complete(model="m", messages=USER)

    per_entry = ScriptedProvider([lambda messages: {"content": messages[-1]["content"][::-1]}])
    assert per_entry.complete(model="m", messages=[{"role": "user", "content": "abc"}]).content == (
        "cba"
    )


def test_scripted_delay_never_sleeps_past_the_deadline():
    now, slept = [100.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    provider = ScriptedProvider(
        [{"content": "late", "delay_s": 5}, {"content": "in time", "delay_s": 0.1}],
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(ProviderError, match="deadline"):
        provider.complete(model="m", messages=USER, deadline=100.2)
    assert slept == [pytest.approx(0.2)] and now[0] == pytest.approx(100.2)
    answer = provider.complete(model="m", messages=USER, deadline=now[0] + 1)
    assert answer.content == "in time" and slept[-1] == 0.1


def test_get_provider_builds_by_name():
    assert isinstance(get_provider("scripted", script=[]), ScriptedProvider)
    assert isinstance(get_provider("openai", base_url="http://x/v1"), OpenAIProvider)
    with pytest.raises(UnknownProvider):
        get_provider("nope")


def test_model_response_round_trips():
    response = ModelResponse(
        content="hi",
        tool_calls=[{"id": "1", "name": "t", "arguments": {"a": [1]}}],
        model="m",
        input_tokens=3,
        output_tokens=4,
        cost_usd=Decimal("0.000012"),
        finish_reason="tool_calls",
        raw={"x": 1},
    )
    assert ModelResponse.from_dict(json.loads(json.dumps(response.to_dict()))) == response


# Recorded.


def _recording():
    call = {"id": "c1", "name": "t", "arguments": {}}
    second_messages = USER + [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        tool_message("c1", "t", {"ok": True}),
    ]
    first = ({"messages": USER}, {"content": "", "tool_calls": [call], "output_tokens": 5})
    second = ({"messages": second_messages}, ModelResponse(content="done", output_tokens=2))
    return [first, second], second_messages


def test_recorded_serves_in_order():
    recording, second_messages = _recording()
    provider = RecordedProvider(recording)
    first = provider.complete(model="m", messages=USER)
    assert first.tool_calls[0]["id"] == "c1"
    assert first.raw["recorded_index"] == 0
    assert provider.complete(model="m", messages=second_messages).content == "done"
    with pytest.raises(RecordingDiverged) as info:
        provider.complete(model="m", messages=second_messages)
    assert info.value.index == 2
    assert "only 2 model calls" in info.value.reason
    assert info.value.to_error()["divergence"]["index"] == 2


class Hiding:
    """A live provider that bills 600 input tokens it is not sent when tools are given."""

    def hidden_input_tokens(self, tools):
        return 600 if tools else 0

    def complete(self, **kwargs):
        return ModelResponse(content="live")


def test_a_replay_reserves_the_live_providers_hidden_input_only_when_it_may_go_live():
    recording, _ = _recording()
    tools = [{"name": "t"}]
    stopping = ReplayProvider(RecordedProvider(recording), Hiding, on_divergence="stop")
    assert hidden_input_tokens(stopping, tools) == 0  # never live: a served answer is free
    going_on = ReplayProvider(RecordedProvider(recording), Hiding, on_divergence="continue")
    assert hidden_input_tokens(going_on, tools) == 600
    assert hidden_input_tokens(going_on, None) == 0
    # Asking built the live provider, but the replay still serves the recording.
    assert going_on.complete(model="m", messages=USER).raw["recorded_index"] == 0

    def broken():
        raise ValueError("no base_url")

    failing = ReplayProvider(RecordedProvider(recording), broken, on_divergence="continue")
    assert hidden_input_tokens(failing, tools) == 0  # reported when a call needs it
    assert hidden_input_tokens(object(), tools) == 0  # a provider that says nothing


def test_recorded_detects_different_messages():
    recording, second_messages = _recording()
    provider = RecordedProvider(recording)
    provider.complete(model="m", messages=USER)
    changed = second_messages[:-1] + [tool_message("c1", "t", {"ok": False})]
    with pytest.raises(RecordingDiverged) as info:
        provider.complete(model="m", messages=changed)
    assert info.value.index == 1
    assert "message 3 (tool) content" in info.value.reason
    assert info.value.code == "provider_error"


def test_recorded_detects_a_different_number_of_messages():
    recording, _ = _recording()
    with pytest.raises(RecordingDiverged, match="sent 1 messages, this run sends 2"):
        RecordedProvider(recording).complete(model="m", messages=USER * 2)


def test_recorded_normalize_is_applied_to_live_messages():
    recording = [([{"role": "user", "content": "key ****"}], {"content": "ok"})]
    live = [{"role": "user", "content": "key sk-123"}]
    with pytest.raises(RecordingDiverged):
        RecordedProvider(recording).complete(model="m", messages=live)

    def mask(messages):
        return [{**m, "content": m["content"].replace("sk-123", "****")} for m in messages]

    provider = RecordedProvider(recording, normalize=mask)
    assert provider.complete(model="m", messages=live).content == "ok"


def test_recorded_answer_longer_than_max_tokens_is_a_divergence():
    recording, _ = _recording()
    with pytest.raises(RecordingDiverged, match="used 5 output tokens"):
        RecordedProvider(recording).complete(model="m", messages=USER, max_tokens=4)


# OpenAI-compatible, against a local server speaking the chat-completions wire format.


def completion(content=None, tool_calls=None, usage=(12, 5), finish="stop"):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-test-2025",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


@pytest.fixture
def server():
    fake = FakeJsonServer("/v1")
    yield fake
    fake.close()


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def test_openai_sends_the_wire_format_and_parses_tool_calls(server):
    server.replies.append(
        (
            200,
            {},
            completion(
                tool_calls=[
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'},
                    }
                ],
                finish="tool_calls",
            ),
        )
    )
    provider = OpenAIProvider(server.base_url, "sk-test-key")
    earlier = ModelResponse(
        content="", tool_calls=[{"id": "call_0", "name": "search_kb", "arguments": {"q": "x"}}]
    )
    messages = USER + [assistant_message(earlier), tool_message("call_0", "search_kb", [1, 2])]
    tools = [{"name": "lookup_order", "description": "Find.", "parameters": {"type": "object"}}]
    response = provider.complete(
        model="gpt-test",
        messages=messages,
        tools=tools,
        max_tokens=77,
        params={"temperature": 0, "model": "ignored"},
    )
    assert response.tool_calls == [
        {"id": "call_abc", "name": "lookup_order", "arguments": {"order_id": "A-1"}}
    ]
    assert (response.input_tokens, response.output_tokens) == (12, 5)
    assert response.finish_reason == "tool_calls"
    assert response.model == "gpt-test-2025"
    assert response.content == ""

    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test-key"
    body = sent["body"]
    assert body["model"] == "gpt-test" and body["max_tokens"] == 77 and body["temperature"] == 0
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find.",
                "parameters": {"type": "object"},
            },
        }
    ]
    assistant, tool_reply = body["messages"][1], body["messages"][2]
    assert assistant["tool_calls"][0]["type"] == "function"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"q": "x"}
    assert tool_reply == {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"}


def test_openai_plain_answer_and_reported_cost(server):
    body = completion(content="Hello!")
    body["usage"]["cost"] = 0.00042
    server.replies.append((200, {}, body))
    response = OpenAIProvider(server.base_url).complete(model="m", messages=USER)
    assert response.content == "Hello!" and response.tool_calls == []
    assert response.cost_usd == Decimal("0.00042")
    assert "Authorization" not in server.requests[0]["headers"]
    assert "max_tokens" not in server.requests[0]["body"]


def test_openai_retries_429_honouring_retry_after(server):
    server.replies += [
        (429, {"Retry-After": "0.25"}, {"error": {"message": "Rate limit reached"}}),
        (200, {}, completion(content="ok")),
    ]
    sleeps = Sleeps()
    provider = OpenAIProvider(server.base_url, "k", sleep=sleeps)
    assert provider.complete(model="m", messages=USER).content == "ok"
    assert len(server.requests) == 2
    assert sleeps == [0.25]


def test_openai_backs_off_exponentially_then_gives_up(server):
    server.replies += [(503, {}, {"error": {"message": "overloaded"}})] * 4
    sleeps = Sleeps()
    provider = OpenAIProvider(
        server.base_url, "sk-secret", max_retries=3, backoff_s=0.5, sleep=sleeps
    )
    with pytest.raises(ProviderError) as info:
        provider.complete(model="m", messages=USER)
    assert len(server.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert info.value.code == "provider_error" and info.value.retryable
    assert "HTTP 503" in info.value.message and "overloaded" in info.value.message
    assert "sk-secret" not in info.value.message


def test_openai_does_not_retry_a_client_error(server):
    server.replies.append((401, {}, {"error": {"message": "Incorrect API key provided"}}))
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        OpenAIProvider(server.base_url, "bad", sleep=sleeps).complete(model="m", messages=USER)
    assert len(server.requests) == 1 and sleeps == []
    assert not info.value.retryable
    assert "Incorrect API key" in info.value.message


def test_openai_never_sleeps_past_the_deadline(server):
    server.replies.append((429, {"Retry-After": "5"}, {"error": {"message": "slow down"}}))
    sleeps = Sleeps()
    provider = OpenAIProvider(server.base_url, sleep=sleeps)
    with pytest.raises(ProviderError, match="would pass the run's deadline"):
        provider.complete(model="m", messages=USER, deadline=time.monotonic() + 1)
    assert sleeps == [] and len(server.requests) == 1
    with pytest.raises(ProviderError, match="deadline passed"):
        provider.complete(model="m", messages=USER, deadline=time.monotonic() - 1)
    assert len(server.requests) == 1


def test_openai_connection_failures_are_retried_then_reported():
    fake = FakeJsonServer("/v1")
    base_url = fake.base_url
    fake.close()  # nothing listens there now
    sleeps = Sleeps()
    provider = OpenAIProvider(base_url, max_retries=2, sleep=sleeps)
    with pytest.raises(ProviderError, match="could not reach") as info:
        provider.complete(model="m", messages=USER)
    assert sleeps == [0.5, 1.0] and info.value.retryable


def test_openai_bad_arguments_and_missing_usage(server):
    bad_call = {"id": "c", "type": "function", "function": {"name": "t", "arguments": "{oops"}}
    server.replies.append((200, {}, completion(content=None, tool_calls=[bad_call], usage=None)))
    response = OpenAIProvider(server.base_url).complete(model="m", messages=USER)
    assert response.tool_calls[0]["arguments"] == {"_raw_arguments": "{oops"}
    assert response.raw["usage_estimated"] is True
    assert response.input_tokens > 0 and response.output_tokens > 0


def test_openai_rejects_a_body_that_is_not_a_completion(server):
    server.replies.append((200, {}, b"<html>proxy error</html>"))
    with pytest.raises(ProviderError, match="not a chat-completions answer") as info:
        OpenAIProvider(server.base_url).complete(model="m", messages=USER)
    assert not info.value.retryable
