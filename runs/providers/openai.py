"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM),
over the standard library's HTTP client. The caller supplies base_url and api_key (from
OPENAI_BASE_URL / OPENAI_API_KEY); nothing here reads the environment."""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from .base import ModelResponse, ProviderError

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
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
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.max_tokens_field = max_tokens_field
        self.extra_headers = dict(extra_headers or {})
        self._sleep = sleep
        self._clock = clock

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
        data = json.dumps(body, default=str).encode("utf-8")

        failure = ""
        for attempt in range(self.max_retries + 1):
            timeout = self.timeout_s
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock())
                if timeout <= 0:
                    raise ProviderError(
                        "provider_error", _join(failure, "the run's deadline passed"), True
                    )
            retry_after = None
            try:
                status, headers, payload = self._post(data, timeout)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                failure = f"could not reach {self.url}: {_reason(exc)}"
            else:
                if 200 <= status < 300:
                    return parse_response(payload, model=model, messages=messages)
                failure = f"HTTP {status} from {self.url}: {_error_message(payload)}"
                if status not in RETRY_STATUSES:
                    raise ProviderError("provider_error", failure, False)
                retry_after = _retry_after(headers.get("Retry-After"))
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            if retry_after is not None:
                if retry_after > self.max_retry_after_s:
                    raise ProviderError(
                        "provider_error", f"{failure}; asked to retry after {retry_after:g} s", True
                    )
                delay = retry_after
            if deadline is not None and self._clock() + delay >= deadline:
                raise ProviderError(
                    "provider_error",
                    f"{failure}; a retry in {delay:g} s would pass the run's deadline",
                    True,
                )
            self._sleep(delay)
        raise ProviderError(
            "provider_error", f"{failure} (gave up after {self.max_retries + 1} attempts)", True
        )

    def _post(self, data: bytes, timeout: float) -> tuple[int, dict, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self.extra_headers)
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers or {}), exc.read()


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
            "provider_error", f"not a chat-completions answer: {_snippet(payload)}", False
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
        input_tokens = len(json.dumps(messages, default=str).encode("utf-8")) // 2 + 1
        output_tokens = (len(content) + len(json.dumps(calls))) // 2 + 1
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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(payload: bytes) -> str:
    try:
        error = json.loads(payload).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except (ValueError, AttributeError):
        pass
    return _snippet(payload)


def _snippet(payload: bytes, limit: int = 200) -> str:
    text = payload.decode("utf-8", "replace").strip()
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _join(failure: str, what: str) -> str:
    return f"{failure}; {what}" if failure else what
