"""What a convention family reads from one span: the step's fields, and whether the span is an
agent's (a candidate for the run). Plus the small value helpers every family shares. No Django.

A family module has two functions, exported together as its ``FAMILY``:

- ``claims(attrs) -> bool``: whether the span carries that family's attributes;
- ``step(name, attrs, content) -> StepFields``: the fields, from the span's name, its attributes
  (``attrs``, a copy the family pops every attribute it took from, so what is left is kept in
  the step's ``attributes``) and ``content`` (message content found in its GenAI span events).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

MAX_COUNT = 2**31 - 1  # the token columns are 32-bit


@dataclass
class StepFields:
    """One span as a step. ``kind`` is ``model_call``, ``tool_call`` or ``log``; an empty
    ``name`` means the span's name. ``agent_name`` is an explicit agent name the span carries;
    ``agent_guess`` a weaker one (the name of an agent span). ``run_input``/``run_output`` are the
    run's own input and output when the span says them (only read from the span chosen as the run).
    """

    kind: str = "log"
    name: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    input: Any = None
    output: Any = None
    agent: bool = False
    agent_name: str = ""
    agent_guess: str = ""
    run_input: Any = None
    run_output: Any = None


class Family(NamedTuple):
    """A convention family: its name and its two functions (see the module's docstring)."""

    name: str
    claims: Callable[[dict], bool]
    step: Callable[[str, dict, dict], "StepFields"]


def content(value):
    """Content as structure: instrumentations record it as a JSON string or as a value."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            return json.loads(value)
        except ValueError:
            pass  # not JSON after all: keep the text
    return value


def take(attrs: dict, *keys: str, lookup: dict | None = None):
    """The first of ``keys`` present (in ``lookup``, default ``attrs``) as structure, popped from
    ``attrs``; None when none is."""
    source = attrs if lookup is None else lookup
    for key in keys:
        if key in source:
            value = source[key]
            attrs.pop(key, None)
            return content(value)
    return None


def count(attrs: dict, key: str) -> int | None:
    """A token count, popped from ``attrs`` when usable; one that is not stays visible there."""
    value = attrs.get(key)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        del attrs[key]
        return value
    return None


def indexed(attrs: dict, prefix: str) -> list[dict]:
    """Flattened lists (``prefix.0.role``, ``prefix.0.tool_calls.1.name`` ...) as nested lists
    and dicts, popped from ``attrs``; index order, gaps closed."""
    found = {key: attrs[key] for key in attrs if key.startswith(prefix + ".")}
    if not found:
        return []
    tree: dict = {}
    for key, value in found.items():
        del attrs[key]
        node = tree
        parts = key[len(prefix) + 1 :].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return _as_lists(tree)


def _as_lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_as_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _as_lists(value) for key, value in node.items()}


def message_text(message) -> str | None:
    """The text of one chat message in any of the shapes the conventions use (``content`` as
    text or parts, GenAI ``parts``); None when it has no text."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return None
    pieces = []
    for key in ("content", "parts", "contents"):
        value = message.get(key)
        if isinstance(value, str):
            pieces.append(value)
        elif isinstance(value, list):
            for part in value:
                if isinstance(part, str):
                    pieces.append(part)
                elif isinstance(part, dict) and part.get("type", "text") in ("text", "output_text"):
                    text = part.get("content", part.get("text"))
                    if isinstance(text, str):
                        pieces.append(text)
    return "\n".join(pieces) if pieces else None


def last_text(messages, role: str | None) -> str | None:
    """The text of the last message (of ``role``, if given) that has text."""
    if isinstance(messages, dict):
        messages = messages.get("messages", [messages])
    if not isinstance(messages, list):
        return messages if isinstance(messages, str) and role != "user" else None
    for message in reversed(messages):
        if role and isinstance(message, dict) and message.get("role") != role:
            continue
        text = message_text(message)
        if text:
            return text
    return None


def tool_call_arguments(messages, tool: str) -> list:
    """The arguments of each call of ``tool`` that ``messages`` ask for, in the shapes the
    conventions use (``tool_calls`` with or without ``function``, GenAI ``tool_call`` parts)."""
    found = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        calls = list(message.get("tool_calls") or [])
        calls += [p for p in message.get("parts") or [] if isinstance(p, dict)]
        for call in calls:
            if not isinstance(call, dict) or call.get("type", "tool_call") not in (
                "tool_call",
                "function",
            ):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else call
            if function.get("name") == tool:
                found.append(content(function.get("arguments")))
    return found
