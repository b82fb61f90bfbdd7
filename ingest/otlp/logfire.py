"""Pydantic AI as instrumented through Logfire (``logfire.*``, ``pydantic_ai.*``, ``final_result``):
its spans follow the GenAI conventions; the agent run span also holds the whole conversation
(``pydantic_ai.all_messages``) and the answer (``final_result``), which are the run's input (the
last user message) and output. No Django.
"""

from .fields import Family, StepFields, content, last_text
from .genai import step as genai_step

_MARKERS = ("logfire.span_type", "logfire.msg", "pydantic_ai.all_messages", "final_result")


def claims(attrs: dict) -> bool:
    return any(key in attrs for key in _MARKERS)


def step(name: str, attrs: dict, content_events: dict) -> StepFields:
    fields = genai_step(name, attrs, content_events)
    if "agent_name" in attrs and not fields.agent_name:
        fields.agent_name = str(attrs["agent_name"])
    if attrs.get("gen_ai.operation.name") == "invoke_agent" or "final_result" in attrs:
        fields.agent = True
        messages = content(attrs.pop("pydantic_ai.all_messages", None))
        question = last_text(messages, "user")
        if fields.run_input is None and question is not None:
            fields.run_input = question
        if "final_result" in attrs:
            fields.run_output = content(attrs.pop("final_result"))
        if fields.input is None and messages is not None:
            fields.input = messages
        if fields.output is None:
            fields.output = fields.run_output
    return fields


FAMILY = Family("logfire", claims, step)
