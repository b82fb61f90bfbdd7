"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM),
over the standard library's HTTP client. The caller supplies base_url and api_key (from
OPENAI_BASE_URL / OPENAI_API_KEY); nothing here reads the environment."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from .base import ModelResponse, ProviderError, estimated_tokens
from .http import JsonEndpoint, snippet

# Params that the request body owns; an agent's **params cannot replace them.
RESERVED = frozenset({"model", "messages", "tools", "max_tokens", "max_completion_tokens"})


class OpenAIProvider:
    """Calls `{base_url}/chat/completions` (base_url like "https://api.openai.com/v1").

    Retries 408/409/429/5xx answers and connection failures up to `max_retries` times with
    exponential backoff (`backoff_s` doubling, at most `max_backoff_s`), waiting what a
    Retry-After header asks instead when there is one (giving up when it asks more than
    `max_retry_after_s`). It never sleeps or waits on the network past the `deadline` given to
    `complete`. Every failure becomes ProviderError("provider_error", ...); the API key never
    appears in a message. `max_tokens_field` names the body key for the output limit (newer
    OpenAI models want "max_completion_tokens").
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        max_retry_after_s: float = 60.0,
        max_tokens_field: str = "max_tokens",
        extra_headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not base_url:
            raise ValueError("the openai provider needs a base_url (OPENAI_BASE_URL)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.max_tokens_field = max_tokens_field
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(extra_headers or {})
        self.endpoint = JsonEndpoint(
            self.url,
            headers,
            secret=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            max_retry_after_s=max_retry_after_s,
            sleep=sleep,
            clock=clock,
        )

    def complete(
        self,
        *,
        model: str,
        messages: list[dict],
        tools: list[dict] | None = None,
        max_tokens: int | None = None,
        params: dict | None = None,
        deadline: float | None = None,
    ) -> ModelResponse:
        body = {k: v for k, v in (params or {}).items() if k not in RESERVED}
        body["model"] = model
        body["messages"] = [wire_message(m) for m in messages]
        if tools:
            body["tools"] = [wire_tool(t) for t in tools]
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        payload = self.endpoint.post(body, deadline=deadline)
        return parse_response(payload, model=model, messages=messages)


def wire_message(message: dict) -> dict:
    """A neutral message (see base) in chat-completions form: tool call arguments as JSON
    strings, tool results as strings. Messages already in wire form pass through."""
    out = dict(message)
    if message.get("tool_calls"):
        out["tool_calls"] = [_wire_call(c) for c in message["tool_calls"]]
        if not out.get("content"):
            out["content"] = None
    if message.get("role") == "tool":
        content = message.get("content")
        out["content"] = content if isinstance(content, str) else json.dumps(content, default=str)
        out.pop("name", None)
    return out


def _wire_call(call: dict) -> dict:
    if "function" in call:
        return call
    arguments = call.get("arguments") or {}
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {
            "name": call["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def wire_tool(tool: dict) -> dict:
    if tool.get("type") == "function":
        return tool
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        },
    }


def parse_response(payload: bytes, *, model: str, messages: list[dict]) -> ModelResponse:
    """A chat-completions answer as a ModelResponse. Tool call arguments that are not valid JSON
    arrive as {"_raw_arguments": text} so the tool's validation reports them to the agent. When
    the server reports no usage, tokens are estimated (generously) and raw["usage_estimated"]
    is set."""
    try:
        data = json.loads(payload)
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProviderError(
            "provider_error", f"not a chat-completions answer: {snippet(payload)}", False
        ) from None
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        text = function.get("arguments") or "{}"
        try:
            arguments = json.loads(text) if isinstance(text, str) else dict(text)
        except ValueError:
            arguments = {"_raw_arguments": text}
        if not isinstance(arguments, dict):
            arguments = {"_raw_arguments": text}
        calls.append(
            {
                "id": call.get("id") or f"call_{i}",
                "name": function.get("name", ""),
                "arguments": arguments,
            }
        )
    content = message.get("content") or ""
    if isinstance(content, list):  # some servers send content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    usage = data.get("usage") or {}
    raw = data
    if usage.get("prompt_tokens") is None or usage.get("completion_tokens") is None:
        # Over-estimate rather than let untracked tokens slip past the caps.
        raw = {**data, "usage_estimated": True}
        input_tokens, output_tokens = estimated_tokens(messages, content, calls)
    else:
        input_tokens, output_tokens = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    return ModelResponse(
        content=content,
        tool_calls=calls,
        model=data.get("model") or model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=_reported_cost(usage.get("cost")),
        finish_reason=choice.get("finish_reason") or "stop",
        raw=raw,
    )


def _reported_cost(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None
