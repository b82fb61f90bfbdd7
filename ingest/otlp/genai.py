"""The OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``, ``gen_ai.*``): the
fallback family, so it claims every span. No Django.

``chat`` / ``text_completion`` / ``generate_content`` / ``embeddings`` spans (or spans without an
operation name that carry ``gen_ai.request.model``) are model calls, ``execute_tool`` spans tool
calls, ``invoke_agent`` spans agents; every other span is a log step (an agent's may carry the
conversation too). Tokens are only set on model calls, so usage summed over steps never double
counts an agent span that reports the total.
"""

from .fields import Family, StepFields, count, take

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})


def claims(attrs: dict) -> bool:
    return True


def step(name: str, attrs: dict, content: dict) -> StepFields:
    lookup = {**content, **attrs}  # the span's own attributes win over event copies
    operation = attrs.get("gen_ai.operation.name")
    if not isinstance(operation, str):
        operation = None  # malformed: read as absent, kept in the attributes
    fields = StepFields(agent_name=str(attrs.get("gen_ai.agent.name") or ""))
    has_model = "gen_ai.request.model" in attrs or "gen_ai.response.model" in attrs
    if operation in MODEL_OPERATIONS or (operation is None and has_model):
        model = attrs.pop("gen_ai.response.model", None) or attrs.get("gen_ai.request.model")
        if model and attrs.get("gen_ai.request.model") == model:
            del attrs["gen_ai.request.model"]  # only kept when the served model differs
        fields.kind, fields.model, fields.name = "model_call", str(model or ""), str(model or "")
        fields.input_tokens = count(attrs, "gen_ai.usage.input_tokens")
        fields.output_tokens = count(attrs, "gen_ai.usage.output_tokens")
        fields.input = take(attrs, "gen_ai.input.messages", "gen_ai.prompt", lookup=lookup)
        fields.output = take(attrs, "gen_ai.output.messages", "gen_ai.completion", lookup=lookup)
    elif operation == "execute_tool":
        fields.kind = "tool_call"
        fields.name = str(attrs.pop("gen_ai.tool.name", None) or "")
        fields.input = take(attrs, "gen_ai.tool.call.arguments", lookup=lookup)
        fields.output = take(attrs, "gen_ai.tool.call.result", lookup=lookup)
    else:
        fields.input = take(attrs, "gen_ai.input.messages", lookup=lookup)
        fields.output = take(attrs, "gen_ai.output.messages", lookup=lookup)
        if operation in ("invoke_agent", "create_agent"):
            fields.agent = operation == "invoke_agent"
            fields.run_input = {"messages": fields.input} if fields.input is not None else None
            fields.run_output = {"messages": fields.output} if fields.output is not None else None
    return fields


FAMILY = Family("genai", claims, step)
