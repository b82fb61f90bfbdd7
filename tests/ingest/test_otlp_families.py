"""The convention families one by one, on hand-written spans (no database): which family reads
a span, what it takes, and that what it does not take stays in the step's attributes."""

import json

from ingest.otlp import translate
from tests.ingest.test_otlp import AGENT, CHAT, OTHER, TOOL, request, span, step

PB = "application/x-protobuf"


def mapped(*spans, service="support-svc"):
    result = translate(request(*spans, service=service).SerializeToString(), PB)
    assert result.rejected == []
    return result.runs[0], {e["id"]: e for e in result.events}


def test_openinference_kinds_messages_and_the_real_tool_arguments():
    schema = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}}})
    run, steps = mapped(
        span(
            AGENT,
            "support-bot",
            0,
            100,
            {
                "openinference.span.kind": "AGENT",
                "input.value": "Where is order 7?",
                "output.value": "Shipped.",
            },
        ),
        span(
            CHAT,
            "ChatCompletion",
            1,
            40,
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o",
                "llm.token_count.prompt": "50",
                "llm.token_count.completion": 10,
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Where is order 7?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                    '{"order_id": "7"}'
                ),
                "llm.custom.flag": True,
            },
            parent=AGENT,
        ),
        span(
            TOOL,
            "lookup",
            41,
            50,
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "lookup",
                "input.value": '{"order_id": "7"}',
                "output.value": '{"status": "shipped"}',
                # OpenInference copies the tool's schema here; the real arguments are above.
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.call.arguments": schema,
            },
            parent=AGENT,
        ),
        span(OTHER, "turn", 51, 60, {"openinference.span.kind": "CHAIN"}, parent=AGENT),
    )
    assert (run["agent"], run["input"], run["output"]) == (
        "support-bot",
        "Where is order 7?",
        "Shipped.",
    )
    assert run["metadata"]["otlp"]["basis"] == "root_invoke_agent"
    chat, tool = steps[step(CHAT)], steps[step(TOOL)]
    assert (chat["kind"], chat["model"], chat["input_tokens"], chat["output_tokens"]) == (
        "model_call",
        "gpt-4o",
        50,
        10,
    )
    assert chat["input"] == [{"role": "user", "content": "Where is order 7?"}]
    assert chat["output"] == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"order_id": "7"}}],
        }
    ]
    assert chat["attributes"]["llm.custom.flag"] is True  # unknown: kept
    assert not any(key.startswith("llm.input_messages") for key in chat["attributes"])
    assert (tool["kind"], tool["name"], tool["input"], tool["output"]) == (
        "tool_call",
        "lookup",
        {"order_id": "7"},
        {"status": "shipped"},
    )
    assert steps[step(OTHER)]["kind"] == "log"


def test_an_explicit_agent_name_beats_an_agent_spans_name_which_beats_the_service():
    outer = {"openinference.span.kind": "AGENT"}
    inner = {"openinference.span.kind": "AGENT", "agent.name": "billing"}
    run, _ = mapped(span(AGENT, "Agent workflow", 0, 9, outer), span(CHAT, "x", 1, 2, inner, AGENT))
    assert run["agent"] == "billing"
    run, _ = mapped(span(AGENT, "Agent workflow", 0, 9, outer))
    assert run["agent"] == "Agent workflow"
    run, _ = mapped(span(OTHER, "chain", 0, 9, {"openinference.span.kind": "CHAIN"}))
    assert run["agent"] == "support-svc"


def test_traceloop_decorators_make_the_run_and_the_tool_call():
    run, steps = mapped(
        span(
            AGENT,
            "support-bot.agent",
            0,
            100,
            {
                "traceloop.span.kind": "agent",
                "traceloop.entity.name": "support-bot",
                "traceloop.entity.input": json.dumps({"args": ["Where is order 7?"], "kwargs": {}}),
                "traceloop.entity.output": json.dumps("Shipped."),
            },
        ),
        span(
            TOOL,
            "lookup.tool",
            1,
            9,
            {
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "lookup",
                "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"order_id": "7"}}),
                "traceloop.entity.output": json.dumps(json.dumps({"status": "shipped"})),
            },
            parent=AGENT,
        ),
    )
    assert (run["agent"], run["input"], run["output"]) == (
        "support-bot",
        "Where is order 7?",
        "Shipped.",
    )
    tool = steps[step(TOOL)]
    assert (tool["kind"], tool["name"], tool["input"], tool["output"]) == (
        "tool_call",
        "lookup",
        {"order_id": "7"},
        {"status": "shipped"},
    )


def test_openllmetry_indexed_prompt_and_completion_keys_are_messages():
    _, steps = mapped(
        span(
            CHAT,
            "openai.chat",
            0,
            9,
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 7,
                "gen_ai.usage.completion_tokens": 3,
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "hi",
                "gen_ai.prompt.1.role": "tool",
                "gen_ai.prompt.1.content": "ok",
                "gen_ai.prompt.1.tool_call_id": "c1",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.tool_calls.0.name": "lookup",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"order_id": "7"}',
            },
        )
    )
    chat = steps[step(CHAT)]
    assert (chat["kind"], chat["input_tokens"], chat["output_tokens"]) == ("model_call", 7, 3)
    assert chat["input"] == [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]
    assert chat["output"] == [
        {"role": "assistant", "tool_calls": [{"name": "lookup", "arguments": {"order_id": "7"}}]}
    ]
    assert not any(key.startswith("gen_ai.prompt") for key in chat["attributes"])


def test_pydantic_ai_run_span_gives_the_question_and_the_final_result():
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Shipped."}]},
    ]
    run, steps = mapped(
        span(
            AGENT,
            "invoke_agent support-bot",
            0,
            9,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support-bot",
                "logfire.msg": "support-bot run",
                "pydantic_ai.all_messages": json.dumps(messages),
                "final_result": "Shipped.",
            },
        )
    )
    assert (run["agent"], run["input"], run["output"]) == (
        "support-bot",
        "Where is order 7?",
        "Shipped.",
    )
    assert steps[step(AGENT)]["attributes"]["logfire.msg"] == "support-bot run"


def test_without_an_agent_input_the_model_calls_give_the_runs_question_and_answer():
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]},
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Shipped."}]}]
        ),
    }
    run, _ = mapped(
        span(AGENT, "invoke_agent", 0, 9, {"gen_ai.operation.name": "invoke_agent"}),
        span(CHAT, "chat m", 1, 5, chat, parent=AGENT),
    )
    assert (run["input"], run["output"]) == ("Where is order 7?", "Shipped.")


MALFORMED = [
    {"gen_ai.operation.name": {"a": 1}, "gen_ai.request.model": "m"},
    {"openinference.span.kind": "LLM", "llm.output_messages.0.message.tool_calls": "x"},
    {
        "openinference.span.kind": "LLM",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function": [{"a": 1}],
    },
    {"traceloop.span.kind": "tool", "traceloop.entity.input": '{"args": 5}'},
    {"traceloop.span.kind": True, "gen_ai.prompt.0.tool_calls": "x", "gen_ai.prompt.a.b": 1},
    {"final_result": {"a": 1}, "pydantic_ai.all_messages": '[{"role": "user", "parts": 5}]'},
]


def test_malformed_family_attributes_are_mapped_without_failing_and_kept():
    for attrs in MALFORMED:
        run, steps = mapped(span(AGENT, "agent", 0, 9, attrs))
        assert steps[step(AGENT)]["kind"] in ("log", "model_call", "tool_call")
        assert run["agent"]
