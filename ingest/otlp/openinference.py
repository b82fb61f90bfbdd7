"""OpenInference (Arize Phoenix's conventions: ``openinference.span.kind``, ``llm.*``,
``input.value`` / ``output.value``), as its OpenAI, OpenAI Agents SDK and LangChain
instrumentations write them. No Django.

``LLM`` (and ``EMBEDDING``) spans are model calls, ``TOOL`` spans tool calls, ``AGENT`` spans
agents (the run), ``CHAIN`` and the rest log steps. Messages come from the flattened
``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*`` keys. Where a span also
carries GenAI attributes, the OpenInference value wins when it has one: the OpenInference
instrumentations copy a tool's JSON schema into ``gen_ai.tool.call.arguments``, while the real
arguments are in ``input.value``.
"""

from .fields import Family, StepFields, count, indexed, take
from .genai import step as genai_step

KIND = "openinference.span.kind"


def claims(attrs: dict) -> bool:
    return KIND in attrs


def step(name: str, attrs: dict, content: dict) -> StepFields:
    kind = str(attrs.pop(KIND, "")).upper()  # any value, read as text
    fallback = genai_step(name, attrs, content)
    fields = StepFields(agent_name=str(attrs.pop("agent.name", None) or fallback.agent_name))
    if kind in ("LLM", "EMBEDDING"):
        model = attrs.pop("llm.model_name", None) or attrs.pop("embedding.model_name", None)
        fields.kind, fields.model = "model_call", str(model or fallback.model)
        fields.name = fields.model
        fields.input_tokens = _first(count(attrs, "llm.token_count.prompt"), fallback.input_tokens)
        fields.output_tokens = _first(
            count(attrs, "llm.token_count.completion"), fallback.output_tokens
        )
        inputs = _messages(indexed(attrs, "llm.input_messages"))
        outputs = _messages(indexed(attrs, "llm.output_messages"))
        fields.input = inputs or _first(fallback.input, take(attrs, "input.value"))
        fields.output = outputs or _first(fallback.output, take(attrs, "output.value"))
        return fields
    value_in, value_out = take(attrs, "input.value"), take(attrs, "output.value")
    if kind == "TOOL":
        fields.kind = "tool_call"
        fields.name = str(attrs.pop("tool.name", None) or fallback.name)
        fields.input = _first(value_in, fallback.input)
        fields.output = _first(value_out, fallback.output)
        return fields
    if kind != "AGENT" and fallback.kind != "log":
        return fallback  # a CHAIN span that the GenAI attributes say is a call
    fields.input = _first(value_in, fallback.input)
    fields.output = _first(value_out, fallback.output)
    fields.run_input = _first(value_in, fallback.run_input)
    fields.run_output = _first(value_out, fallback.run_output)
    fields.agent = kind == "AGENT" or fallback.agent
    if kind == "AGENT":
        fields.agent_guess = name
    return fields


def _first(*values):
    return next((value for value in values if value is not None), None)


def _messages(items: list) -> list[dict]:
    """OpenInference's ``{"message": {...}}`` items as plain chat messages: role, content,
    tool calls as ``{id, name, arguments}``, tool_call_id."""
    messages = []
    for item in items:
        message = item.get("message") if isinstance(item, dict) else None
        if not isinstance(message, dict):
            continue
        out = {key: message[key] for key in ("role", "content", "name") if key in message}
        contents = message.get("contents")
        if "content" not in out and isinstance(contents, list):
            out["content"] = [c.get("message_content", c) for c in contents if isinstance(c, dict)]
        calls = []
        listed = message.get("tool_calls")
        for call in listed if isinstance(listed, list) else []:
            call = call.get("tool_call", call) if isinstance(call, dict) else {}
            call = call if isinstance(call, dict) else {}
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            calls.append(
                {
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": take(dict(function), "arguments"),
                }
            )
        if calls:
            out["tool_calls"] = calls
        if "tool_call_id" in message:
            out["tool_call_id"] = message["tool_call_id"]
        messages.append(out)
    return messages


FAMILY = Family("openinference", claims, step)
