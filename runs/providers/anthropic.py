"""Anthropic's Messages API, over the standard library's HTTP client. The caller supplies base_url
and api_key (from ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY); nothing here reads the environment.

The neutral messages and tools (see base) are translated to the Messages API's shape on the way
out and its answer back into a ModelResponse, so agents, recording, replay and the budget see
the same thing whichever provider a run uses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from .base import ModelResponse, ProviderError, estimated_tokens
from .http import JsonEndpoint, error_message, snippet

API_VERSION = "2023-06-01"
# The API will not answer without max_tokens; this is sent when the caller sets no limit.
DEFAULT_MAX_TOKENS = 4096
# Params that the request body owns; an agent's **params cannot replace them. The system prompt
# comes from the system messages.
RESERVED = frozenset(
    {"model", "messages", "tools", "system", "max_tokens", "max_completion_tokens"}
)
# stop_reason → the finish_reason every provider reports; others pass through unchanged.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# tool_choice as chat-completions spells it → as the Messages API does.
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# With tools, the API puts a system prompt of its own before the request and bills its tokens as
# input: 264 to 530 depending on the model and tool_choice, by Anthropic's pricing page. This
# bound keeps the spend cap exact (see base.Provider).
TOOL_USE_SYSTEM_TOKENS = 600


class AnthropicProvider:
    """Calls `{base_url}/v1/messages` (base_url like "https://api.anthropic.com"; one that already
    ends in /v1 is accepted too).

    Retries, backoff, Retry-After and the deadline work as for the openai provider (see
    `JsonEndpoint`): 408/409/429/5xx answers (529 "overloaded" included) and connection failures
    are retried, other answers are not. Every failure becomes ProviderError("provider_error",
    ...), naming the API's error type; the API key never appears in a message.

    `max_tokens` is always sent, since the API requires it: the caller's limit, or
    `default_max_tokens` when there is none. `max_output_tokens`, when set, lowers whatever would
    be sent to it (for models whose output limit is below what the budget may allow).

    Translation: system (and developer) messages become the top-level `system`, joined by blank
    lines wherever they stood; an assistant message's tool calls become `tool_use` blocks; tool
    messages become `tool_result` blocks in a user message; consecutive messages of one role are
    merged so roles alternate, with tool results first in their message. Params pass through,
    except that chat-completions' `tool_choice` and `stop` are translated.

    Usage: `input_tokens` is the answer's input_tokens plus its cache_creation_input_tokens and
    cache_read_input_tokens, every input token the model processed, so the budget counts them
    all; priced at the model's input price, cache reads are over-charged and cache writes
    under-charged by a quarter. The full answer, usage included, stays in `raw`.
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
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        max_output_tokens: int | None = None,
        api_version: str = API_VERSION,
        extra_headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not base_url:
            raise ValueError("the anthropic provider needs a base_url (ANTHROPIC_BASE_URL)")
        base = base_url.rstrip("/")
        self.url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self.api_key = api_key
        self.default_max_tokens = default_max_tokens
        self.max_output_tokens = max_output_tokens
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": api_version,
        }
        if api_key:
            headers["x-api-key"] = api_key
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
            error_detail=_error_detail,
            sleep=sleep,
            clock=clock,
        )

    def hidden_input_tokens(self, tools) -> int:
        """Input tokens the API bills without being sent them: its tool-use system prompt."""
        return TOOL_USE_SYSTEM_TOKENS if tools else 0

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
        body = wire_params(params or {})
        body["model"] = model
        system, body["messages"] = wire_messages(messages)
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [wire_tool(t) for t in tools]
        limit = self.default_max_tokens if max_tokens is None else max_tokens
        if self.max_output_tokens is not None:
            limit = min(limit, self.max_output_tokens)
        body["max_tokens"] = limit
        payload = self.endpoint.post(body, deadline=deadline)
        return parse_response(payload, model=model, messages=messages)


def wire_messages(messages: list[dict]) -> tuple[str, list[dict]]:
    """(system, messages) for the Messages API from neutral messages (see the class)."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text(message.get("content"))
            if text:
                system.append(text)
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            blocks += [_tool_use(call) for call in message.get("tool_calls") or []]
        else:
            blocks = _content_blocks(message.get("content"))
        if not blocks:
            continue  # the API refuses empty messages
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        blocks = turn["content"]
        # A user message answering tool calls must start with their results.
        blocks.sort(key=lambda b: b.get("type") != "tool_result")
        if len(blocks) == 1 and blocks[0].get("type") == "text":
            turn["content"] = blocks[0]["text"]
    return "\n\n".join(system), turns


def wire_tool(tool: dict) -> dict:
    """A neutral tool spec as a Messages API tool; one already in that form (or a server tool,
    which has a type) passes through, a chat-completions one is translated."""
    if "input_schema" in tool or tool.get("type") not in (None, "function"):
        return tool
    if tool.get("type") == "function":
        tool = tool.get("function") or {}
    out = {
        "name": tool["name"],
        "input_schema": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        out["description"] = tool["description"]
    return out


def wire_params(params: dict) -> dict:
    """An agent's params for the request body, minus the RESERVED ones, with chat-completions'
    `tool_choice` strings and function choice, and `stop`, in the Messages API's terms."""
    body = {k: v for k, v in params.items() if k not in RESERVED}
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        body["tool_choice"] = dict(TOOL_CHOICES[choice])
    elif isinstance(choice, dict) and choice.get("type") == "function":
        body["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    if "stop" in body:
        stop = body.pop("stop")
        if stop:
            body.setdefault("stop_sequences", [stop] if isinstance(stop, str) else list(stop))
    return body


def parse_response(payload: bytes, *, model: str, messages: list[dict]) -> ModelResponse:
    """A Messages API answer as a ModelResponse: text blocks joined, tool_use blocks as tool
    calls (an input that is not an object arrives as {"_raw_arguments": input}), stop_reason
    as a finish_reason (FINISH_REASONS). Other blocks (thinking, ...) stay in `raw` only. When
    the answer reports no usage, tokens are estimated (generously) and raw["usage_estimated"]
    is set."""
    try:
        data = json.loads(payload)
        blocks = data["content"]
        if not isinstance(blocks, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ProviderError(
            "provider_error", f"not a Messages API answer: {snippet(payload)}", False
        ) from None
    texts = []
    calls = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                arguments = {"_raw_arguments": arguments}
            calls.append(
                {
                    "id": block.get("id") or f"toolu_{len(calls)}",
                    "name": block.get("name", ""),
                    "arguments": arguments,
                }
            )
    content = "".join(texts)
    usage = data.get("usage") or {}
    raw = data
    if usage.get("input_tokens") is None or usage.get("output_tokens") is None:
        # Over-estimate rather than let untracked tokens slip past the caps.
        raw = {**data, "usage_estimated": True}
        input_tokens, output_tokens = estimated_tokens(messages, content, calls)
    else:
        input_tokens = sum(
            int(usage.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        output_tokens = int(usage["output_tokens"])
    stop_reason = data.get("stop_reason") or "end_turn"
    return ModelResponse(
        content=content,
        tool_calls=calls,
        model=data.get("model") or model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=FINISH_REASONS.get(stop_reason, stop_reason),
        raw=raw,
    )


def _content_blocks(content) -> list[dict]:
    """A user's or assistant's content as blocks: a string or text part becomes a text block
    (none when blank: the API refuses those); other blocks pass through."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        return [{"type": "text", "text": json.dumps(content, default=str)}]
    blocks = []
    for part in content:
        if part is None:
            continue
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        elif not isinstance(part, dict):
            part = {"type": "text", "text": json.dumps(part, default=str)}
        if part.get("type") != "text" or str(part.get("text") or "").strip():
            blocks.append(part)
    return blocks


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(b["text"] for b in _content_blocks(content) if b.get("type") == "text")


def _tool_use(call: dict) -> dict:
    if "function" in call:  # chat-completions form
        function = call["function"] or {}
        name, arguments = function.get("name", ""), function.get("arguments")
    else:
        name, arguments = call.get("name", ""), call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            arguments = {"_raw_arguments": arguments}
    if not isinstance(arguments, dict):
        arguments = {} if arguments is None else {"_raw_arguments": arguments}
    return {"type": "tool_use", "id": call.get("id"), "name": name, "input": arguments}


def _tool_result(message: dict) -> dict:
    content = message.get("content")
    block = {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id"),
        "content": content if isinstance(content, str) else json.dumps(content, default=str),
    }
    if message.get("is_error"):
        block["is_error"] = True
    return block


def _error_detail(payload: bytes) -> str:
    """`error.type: error.message` of a Messages API error body, else what error_message finds."""
    try:
        error = json.loads(payload).get("error")
        if isinstance(error, dict) and error.get("type") and error.get("message"):
            return f"{error['type']}: {error['message']}"[:300]
    except (ValueError, AttributeError):
        pass
    return error_message(payload)
