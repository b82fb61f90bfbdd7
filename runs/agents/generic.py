"""The generic tool-calling agent: a model, a system prompt and a set of allowed tools, looping
model → tool calls → tool results → model until the model answers without calling a tool."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ..providers.base import assistant_message, tool_message
from . import AgentSpec, agent, get_agent


class AgentGaveUp(RuntimeError):
    """The loop ended without an answer (max_turns) or on a tool error it was told not to
    tolerate. Raised to the runner, so the run fails with agent_error and this message."""


def make_tool_agent(
    *,
    system_prompt: str,
    tools: Sequence[str] = (),
    model: str | None = None,
    max_turns: int | None = 10,
    params: dict | None = None,
    on_tool_error: str = "continue",
) -> Callable:
    """An agent function `fn(ctx, input)`.

    The user message is `input["question"]` (or `input["message"]`, a plain string input, or
    else the input as JSON). Each turn sends the conversation and `tools` to the model (`model`
    None: the run's model; `params` such as temperature go along); the tool calls it makes are
    executed in order and their results appended. Returns {"answer", "turns", "tool_calls"}.
    `max_turns` None means no limit of its own (the run's caps still apply). With
    `on_tool_error="fail"` any structured tool error (tool_error, tool_timeout, unknown_tool)
    ends the run as agent_error instead of going back to the model.
    """
    if on_tool_error not in ("continue", "fail"):
        raise ValueError("on_tool_error must be 'continue' or 'fail'")
    tool_names = list(tools)
    extra = dict(params or {})

    def run(ctx, input):
        messages = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": _question(input)},
        ]
        calls_made = 0
        turn = 0
        while max_turns is None or turn < max_turns:
            turn += 1
            response = ctx.model(messages, tools=tool_names or None, model=model, **extra)
            messages.append(assistant_message(response))
            if not response.tool_calls:
                return {"answer": response.content, "turns": turn, "tool_calls": calls_made}
            for call in response.tool_calls:
                result = ctx.tool(call["name"], call.get("arguments") or {})
                calls_made += 1
                if on_tool_error == "fail" and _is_tool_error(result):
                    detail = result.get("message") or json.dumps(result)
                    raise AgentGaveUp(f"tool {call['name']} failed: {detail}")
                messages.append(tool_message(call["id"], call["name"], result))
        raise AgentGaveUp(f"no answer after {max_turns} model turns")

    return run


def register_tool_agent(
    name: str,
    *,
    system_prompt: str,
    tools: Sequence[str] = (),
    description: str = "",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    max_turns: int | None = 10,
    params: dict | None = None,
    on_tool_error: str = "continue",
    safe_to_retry: bool = False,
    provider_config: dict | None = None,
) -> AgentSpec:
    """Register a generic tool-calling agent under `name` (see make_tool_agent) and return it.
    Only `tools` may be called by it."""
    fn = make_tool_agent(
        system_prompt=system_prompt,
        tools=tools,
        max_turns=max_turns,
        params=params,
        on_tool_error=on_tool_error,
    )
    # Each generic agent gets its own identity, so two of them cannot silently share a name.
    fn.__qualname__ = f"tool_agent[{name}]"
    agent(
        name,
        description=description,
        provider=provider,
        model=model,
        safe_to_retry=safe_to_retry,
        tools=tools,
        provider_config=provider_config,
    )(fn)
    return get_agent(name)


def _question(input) -> str:
    if isinstance(input, str):
        return input
    if isinstance(input, dict):
        for key in ("question", "message"):
            if isinstance(input.get(key), str):
                return input[key]
    return json.dumps(input, default=str)


def _is_tool_error(result) -> bool:
    return isinstance(result, dict) and result.get("error") in (
        "tool_error",
        "tool_timeout",
        "unknown_tool",
    )
