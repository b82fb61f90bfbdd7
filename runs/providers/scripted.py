"""A deterministic, offline provider that answers from a script. For the demo agents and tests.

Token counts are computed, not measured, so the same script always costs the same:
input = UTF-8 bytes of the JSON of [messages, tools] // 4 + 1;
output = characters of content plus the JSON of the tool calls // 4 + 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from .base import ModelResponse, ProviderError

# A script entry: {"content": str, "tool_calls": [{"name", "arguments", "id"?}],
# "finish_reason"?: str, "delay_s"?: float}, or a callable(messages) -> such a dict.
Entry = dict | Callable[[list[dict]], dict]
Script = Sequence[Entry] | Callable[[int, list[dict]], dict | None]


class ScriptedProvider:
    """Serves `script` one entry per call, in order.

    `script` is a list of entries (see `Entry`) or a callable(index, messages) returning an entry
    dict or None when it has nothing more to say. With `loop=True` a list starts over when it
    runs out; otherwise running out raises ProviderError. `max_tokens` is honoured by truncating
    the answer (dropping tool calls that no longer fit) and reporting finish_reason "length".
    An entry's `delay_s` is waited with `sleep`, measured on `clock` against the deadline.
    """

    def __init__(
        self,
        script: Script,
        *,
        loop: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not callable(script) and not isinstance(script, Sequence):
            raise TypeError("script must be a list of responses or a callable")
        self.script = script
        self.loop = loop
        self.calls = 0
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
        index = self.calls
        self.calls += 1
        entry = self._entry(index, messages)
        if max_tokens is not None and max_tokens < 1:
            raise ProviderError(
                "provider_error", f"max_tokens must be at least 1, not {max_tokens}"
            )
        delay = float(entry.get("delay_s") or 0)
        if delay > 0:
            self._sleep_until_deadline(delay, deadline)

        content = str(entry.get("content") or "")
        calls = [
            {
                "id": call.get("id") or f"call_{index}_{j}",
                "name": call["name"],
                "arguments": dict(call.get("arguments") or {}),
            }
            for j, call in enumerate(entry.get("tool_calls") or [])
        ]
        finish = entry.get("finish_reason") or ("tool_calls" if calls else "stop")
        output_tokens = _output_tokens(content, calls)
        if max_tokens is not None and output_tokens > max_tokens:
            # Cut like a real model that ran out of tokens: half a tool call is no tool call.
            calls = []
            content = content[: (max_tokens - 1) * 4 + 3]
            output_tokens = _output_tokens(content, calls)
            finish = "length"
        return ModelResponse(
            content=content,
            tool_calls=calls,
            model=model,
            input_tokens=input_tokens(messages, tools),
            output_tokens=output_tokens,
            finish_reason=finish,
            raw={"provider": "scripted", "index": index},
        )

    def _sleep_until_deadline(self, delay: float, deadline: float | None) -> None:
        if deadline is not None and self._clock() + delay > deadline:
            self._sleep(max(0.0, deadline - self._clock()))
            raise ProviderError(
                "provider_error", "the scripted response was slower than the deadline"
            )
        self._sleep(delay)

    def _entry(self, index: int, messages: list[dict]) -> dict:
        if callable(self.script):
            entry = self.script(index, messages)
        elif index < len(self.script) or (self.loop and self.script):
            entry = self.script[index % len(self.script)]
        else:
            entry = None
        if callable(entry):
            entry = entry(messages)
        if entry is None:
            raise ProviderError(
                "provider_error", f"the scripted provider has no response #{index + 1}"
            )
        return entry


def input_tokens(messages, tools=None) -> int:
    payload = json.dumps([messages, tools or []], ensure_ascii=False, separators=(",", ":"))
    return len(payload.encode("utf-8")) // 4 + 1


def _output_tokens(content: str, calls: list[dict]) -> int:
    extra = len(json.dumps([[c["name"], c["arguments"]] for c in calls])) if calls else 0
    return (len(content) + extra) // 4 + 1
