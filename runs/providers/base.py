"""What every model provider takes and returns. Plain Python.

Messages are chat-completions shaped dicts: `{"role": "system"|"user"|"assistant"|"tool",
"content": ...}`. An assistant message may carry `tool_calls: [{"id", "name", "arguments"}]`
(arguments a dict), and a tool message carries `tool_call_id` and `name`. Tools are
`{"name", "description", "parameters"}` dicts (parameters a JSON schema). Each provider translates
these into its own wire format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


@dataclass
class ModelResponse:
    """One model answer. `tool_calls` are `{"id", "name", "arguments": dict}`; `cost_usd` is
    None unless the provider reported its own cost (the runner then prices the tokens)."""

    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    finish_reason: str = "stop"
    raw: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe; `from_dict` turns it back into an equal response."""
        return {
            "content": self.content,
            "tool_calls": [dict(c) for c in self.tool_calls],
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "finish_reason": self.finish_reason,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelResponse:
        cost = data.get("cost_usd")
        return cls(
            content=data.get("content") or "",
            tool_calls=[dict(c) for c in data.get("tool_calls") or []],
            model=data.get("model") or "",
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cost_usd=None if cost is None else Decimal(str(cost)),
            finish_reason=data.get("finish_reason") or "stop",
            raw=dict(data.get("raw") or {}),
        )


class ProviderError(Exception):
    """A model call that failed for good (after any retries). `code` goes into the run's error."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable

    def to_error(self) -> dict:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class Provider(Protocol):
    """A model provider instance serves one run; it need not be thread-safe.

    `deadline` is a `time.monotonic()` value the call must not outlive (None: no deadline): a
    provider gives up rather than wait or sleep past it. `max_tokens` (when not None) is a hard
    limit on output tokens that the provider must pass on or honour itself.

    A provider whose API bills input tokens it is not sent (Anthropic's tool-use system prompt)
    also has `hidden_input_tokens(tools) -> int`, an upper bound on them: the budget adds it to
    its bound on a call's input, so the spend cap holds (see `hidden_input_tokens` below).
    """

    def complete(
        self,
        *,
        model: str,
        messages: list[dict],
        tools: list[dict] | None = None,
        max_tokens: int | None = None,
        params: dict | None = None,
        deadline: float | None = None,
    ) -> ModelResponse: ...


def hidden_input_tokens(provider, tools) -> int:
    """What `provider` says its API adds to a call's input tokens unseen; 0 when it says
    nothing."""
    declared = getattr(provider, "hidden_input_tokens", None)
    return declared(tools) if declared is not None else 0


def assistant_message(response: ModelResponse) -> dict:
    """The message that puts a model's answer into the conversation."""
    message = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [dict(c) for c in response.tool_calls]
    return message


def tool_message(call_id: str, name: str, result) -> dict:
    """The message that hands a tool's result (any JSON value) back to the model."""
    content = result if isinstance(result, str) else json.dumps(result, default=str)
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def estimated_tokens(messages: list[dict], content: str, calls: list[dict]) -> tuple[int, int]:
    """(input, output) tokens for an answer whose server reported no usage: two bytes of JSON a
    token, an over-estimate, so untracked tokens cannot slip past the caps."""
    input_tokens = len(json.dumps(messages, default=str).encode("utf-8")) // 2 + 1
    output_tokens = (len(content) + len(json.dumps(calls))) // 2 + 1
    return input_tokens, output_tokens
