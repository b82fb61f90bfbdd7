"""One support agent (a question, one `lookup_order` round trip, an answer) instrumented by one
library, as a user of that library would set it up: run in its own process, because each
library patches its client and sets OpenTelemetry's global providers once per process.

    python -m tests.ingest.instrumented.run_agent LIBRARY MODEL_BASE_URL

The exporters are the official OTLP/HTTP ones, configured only by the standard variables
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, ...). The agent is
always named `support-bot`.
"""

import asyncio
import json
import os
import sys

from tests.ingest.instrumented.model_server import MODEL, QUESTION, TOOL, lookup_order

AGENT = "support-bot"
SYSTEM = "You answer questions about orders."


def _tracer_provider():
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _logger_provider():
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(provider)
    return provider


def _chat_loop(client, call_tool) -> str:
    """The agent loop over chat completions: ask, run the tool it asks for, ask again."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": TOOL,
                "description": "Look up an order by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    while True:
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = call_tool(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


def openinference_openai(base_url: str) -> None:
    from openai import OpenAI
    from openinference.instrumentation import OITracer, TraceConfig
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = _tracer_provider()
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = OITracer(provider.get_tracer(__name__), config=TraceConfig())
    tool = tracer.tool(name=TOOL)(lookup_order)

    @tracer.agent(name=AGENT)
    def support_bot(question: str) -> str:
        return _chat_loop(OpenAI(base_url=base_url, api_key="test"), tool)

    support_bot(QUESTION)
    provider.shutdown()


def openinference_openai_agents(base_url: str) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    provider = _tracer_provider()
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    client = AsyncOpenAI(base_url=base_url, api_key="test")
    agent = Agent(
        name=AGENT,
        instructions=SYSTEM,
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[function_tool(lookup_order)],
    )
    asyncio.run(Runner.run(agent, QUESTION))
    provider.shutdown()


def openinference_langchain(base_url: str) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider = _tracer_provider()
    LangChainInstrumentor().instrument(tracer_provider=provider)
    lookup = tool(lookup_order)
    model = ChatOpenAI(model=MODEL, base_url=base_url, api_key="test").bind_tools([lookup])

    def support_bot(question: str) -> str:
        messages = [SystemMessage(SYSTEM), HumanMessage(question)]
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return reply.content
            for call in reply.tool_calls:
                result = lookup.invoke(call["args"])
                messages.append(ToolMessage(result, tool_call_id=call["id"]))

    RunnableLambda(support_bot, name=AGENT).invoke(QUESTION)
    provider.shutdown()


def traceloop(base_url: str) -> None:
    from openai import OpenAI
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, tool

    # Traceloop.init exports to TRACELOOP_BASE_URL (+ /v1/traces) with TRACELOOP_HEADERS.
    Traceloop.init(app_name=AGENT, disable_batch=True, telemetry_enabled=False)
    traced_tool = tool(name=TOOL)(lookup_order)

    @agent(name=AGENT)
    def support_bot(question: str) -> str:
        return _chat_loop(OpenAI(base_url=base_url, api_key="test"), traced_tool)

    support_bot(QUESTION)
    from opentelemetry import trace

    trace.get_tracer_provider().shutdown()


def _genai_agent(base_url: str, tracer) -> None:
    """The GenAI conventions' agent and tool spans, written by hand around an instrumented
    client (the official instrumentation covers only the model calls)."""
    from openai import OpenAI

    def call_tool(**arguments):
        with tracer.start_as_current_span(f"execute_tool {TOOL}") as span:
            result = lookup_order(**arguments)
            span.set_attributes(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": TOOL,
                    "gen_ai.tool.call.arguments": json.dumps(arguments),
                    "gen_ai.tool.call.result": result,
                }
            )
            return result

    with tracer.start_as_current_span(f"invoke_agent {AGENT}") as span:
        span.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT})
        _chat_loop(OpenAI(base_url=base_url, api_key="test"), call_tool)


def openai_v2(base_url: str) -> None:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT picks span_only or event_only."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider = _tracer_provider()
    logs = _logger_provider()
    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logs)
    _genai_agent(base_url, provider.get_tracer(__name__))
    provider.shutdown()
    logs.shutdown()


def openllmetry(base_url: str) -> None:
    """OpenLLMetry's OpenAI instrumentation alone (no Traceloop SDK) under GenAI agent spans."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    provider = _tracer_provider()
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    _genai_agent(base_url, provider.get_tracer(__name__))
    provider.shutdown()


def pydantic_ai(base_url: str) -> None:
    import logfire
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    # With OTEL_EXPORTER_OTLP_ENDPOINT set, Logfire exports there as well.
    logfire.configure(send_to_logfire=False, service_name=AGENT, console=False)
    logfire.instrument_pydantic_ai()
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key="test"))
    agent = Agent(model, name=AGENT, instructions=SYSTEM, tools=[lookup_order])
    agent.run_sync(QUESTION)
    logfire.shutdown()


LIBRARIES = {
    "openinference-openai": openinference_openai,
    "openinference-openai-agents": openinference_openai_agents,
    "openinference-langchain": openinference_langchain,
    "traceloop": traceloop,
    "openai-v2": openai_v2,
    "openllmetry": openllmetry,
    "pydantic-ai": pydantic_ai,
}

if __name__ == "__main__":
    os.environ.setdefault("OTEL_SERVICE_NAME", "support-svc")
    LIBRARIES[sys.argv[1]](sys.argv[2])
