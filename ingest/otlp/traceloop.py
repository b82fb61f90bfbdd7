"""Traceloop and OpenLLMetry's own attributes: the traceloop-sdk decorators (``@workflow``,
``@agent``, ``@task``, ``@tool``: ``traceloop.span.kind``, ``traceloop.entity.*``) and the
indexed prompt and completion keys of OpenLLMetry up to 0.52 (``gen_ai.prompt.N.role`` /
``.content`` / ``.tool_calls.N.*``, ``gen_ai.completion.N.*``). Everything else on these spans is
GenAI. No Django.
"""

from .fields import Family, StepFields, content, count, indexed
from .genai import step as genai_step

SPAN_KIND = "traceloop.span.kind"
_LEGACY = ("gen_ai.prompt.", "gen_ai.completion.")


def claims(attrs: dict) -> bool:
    return SPAN_KIND in attrs or any(key.startswith(_LEGACY) for key in attrs)


def step(name: str, attrs: dict, content_events: dict) -> StepFields:
    kind = attrs.pop(SPAN_KIND, None)
    fields = genai_step(name, attrs, content_events)
    if fields.kind == "model_call":
        if fields.input_tokens is None:
            fields.input_tokens = count(attrs, "gen_ai.usage.prompt_tokens")
        if fields.output_tokens is None:
            fields.output_tokens = count(attrs, "gen_ai.usage.completion_tokens")
    prompt = _messages(indexed(attrs, "gen_ai.prompt"))
    completion = _messages(indexed(attrs, "gen_ai.completion"))
    if fields.input is None and prompt:
        fields.input = prompt
    if fields.output is None and completion:
        fields.output = completion
    if kind is None:
        return fields
    entity = str(attrs.pop("traceloop.entity.name", None) or "")
    value_in = _entity_input(attrs.pop("traceloop.entity.input", None))
    value_out = _decoded(attrs.pop("traceloop.entity.output", None))
    if kind == "tool":
        fields.kind = "tool_call"
        fields.name = fields.name or str(attrs.pop("gen_ai.tool.name", None) or entity)
    elif kind in ("agent", "workflow"):
        fields.agent = True
        fields.agent_guess = entity
        fields.run_input, fields.run_output = value_in, value_out
    if value_in is not None:
        fields.input = value_in
    if value_out is not None:
        fields.output = value_out
    return fields


def _entity_input(value):
    """The decorated function's call, ``{"args": [...], "kwargs": {...}}``, as what it was
    called with: the keyword arguments, or the one positional argument."""
    value = _decoded(value)
    if isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
        args, kwargs = value.get("args") or [], value.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            return value
        if not args:
            return kwargs
        if not kwargs:
            return args[0] if len(args) == 1 else args
    return value


def _decoded(value):
    """A value Traceloop serialized as JSON, perhaps a JSON string holding JSON text."""
    for _ in range(2):
        value = content(value)
    return value


def _messages(items: list) -> list[dict]:
    messages = []
    for item in items:
        if not isinstance(item, dict):
            continue
        message = dict(item)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [
                {**call, "arguments": content(call.get("arguments"))}
                if isinstance(call, dict)
                else call
                for call in calls
            ]
        messages.append(message)
    return messages


FAMILY = Family("traceloop", claims, step)
