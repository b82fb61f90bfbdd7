"""Each common instrumentation library, for real, around a real client of a local fake model
server, exporting with the official OTLP exporter to a served instance: one agent run with one
tool round trip must come out complete (agent name, input, output, two priced model calls, the
tool call with its arguments and result, all nested under the agent).

Every library runs in its own process (`instrumented/run_agent.py`): each patches its client and
sets OpenTelemetry's global providers once per process, as in a user's program. OpenLLMetry up to
0.52 cannot be installed beside the current version (one distribution name), so its export was
recorded once from opentelemetry-instrumentation-openai 0.52.6 running that same agent, and is
replayed (`instrumented/openllmetry_0_52_6.json`)."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from runs.models import Event, ModelPrice, Run
from tests.ingest.conftest import bearer
from tests.ingest.instrumented.model_server import (
    ANSWER,
    MODEL,
    QUESTION,
    TOOL,
    TOOL_ARGUMENTS,
    TOOL_RESULT,
    USAGE,
    FakeModelServer,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "instrumented"
# USD per million tokens: 1 in, 4 out.
COST = [Decimal(i) / 10**6 + Decimal(4 * o) / 10**6 for i, o in USAGE]

# library → the environment its user sets (beyond the OTLP endpoint and headers)
LIBRARIES = {
    "openinference-openai": {},
    "openinference-openai-agents": {},
    # A LangChain run has no agent span: the service names the agent.
    "openinference-langchain": {"OTEL_SERVICE_NAME": "support-bot"},
    "traceloop": {},
    "openllmetry": {},
    "openai-v2-span-only": {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
    },
    "openai-v2-event-only": {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY",
    },
    "pydantic-ai": {},
}


@pytest.fixture
def model_server():
    server = FakeModelServer()
    yield server
    server.close()


@pytest.fixture
def priced():
    ModelPrice.objects.create(
        model=MODEL,
        input_per_mtok=1,
        output_per_mtok=4,
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
    )


def run_library(library: str, endpoint: str, key: str, model_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))},
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{key}",
        "TRACELOOP_BASE_URL": endpoint,
        "TRACELOOP_HEADERS": f"Authorization=Bearer%20{key}",
        "TRACELOOP_TELEMETRY": "false",
        **LIBRARIES[library],
    }
    script = library.removesuffix("-span-only").removesuffix("-event-only")
    done = subprocess.run(
        [sys.executable, "-m", "tests.ingest.instrumented.run_agent", script, model_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def assert_complete_run() -> None:
    [run] = Run.objects.all()
    assert run.agent == "support-bot"
    assert run.status == "succeeded"
    assert run.input == QUESTION
    assert run.output == ANSWER
    steps = {step.id: step for step in Event.objects.filter(run=run)}
    calls = sorted(
        (s for s in steps.values() if s.kind == "model_call"), key=lambda s: s.started_at
    )
    assert [(c.model, c.input_tokens, c.output_tokens) for c in calls] == [
        (MODEL, *usage) for usage in USAGE
    ]
    assert [c.cost_usd for c in calls] == COST
    [tool] = [s for s in steps.values() if s.kind == "tool_call"]
    assert tool.name == TOOL
    assert tool.input == TOOL_ARGUMENTS
    assert tool.output == TOOL_RESULT
    assert (run.model_calls, run.tool_calls) == (2, 1)
    assert (run.input_tokens, run.output_tokens) == (130, 22)
    assert run.cost_usd == sum(COST)
    agent_span = run.metadata["otlp"]["span_id"]
    [agent] = [s for s in steps.values() if s.attributes.get("otel.span_id") == agent_span]
    for step in [*calls, tool]:
        assert agent in _ancestors(step, steps), step.name


def _ancestors(step, steps):
    out = []
    while step.parent_id is not None:
        step = steps[step.parent_id]
        out.append(step)
    return out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_an_instrumented_agent_gives_one_complete_run(
    library, live_server, make_key, model_server, priced
):
    run_library(
        library, f"{live_server.url}/api/v1/otlp", make_key("ingest"), model_server.base_url
    )
    assert_complete_run()


@pytest.mark.django_db
def test_a_recorded_openllmetry_0_52_export_gives_one_complete_run(client, ingest_key, priced):
    body = (HERE / "openllmetry_0_52_6.json").read_bytes()
    response = client.post(
        "/api/v1/otlp/v1/traces", data=body, content_type="application/json", **bearer(ingest_key)
    )
    assert response.status_code == 200 and json.loads(response.content) == {}
    assert_complete_run()
    question = Event.objects.get(model=MODEL, input_tokens=USAGE[0][0])
    assert question.input == [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": QUESTION},
    ]
    assert question.output == [
        {
            "role": "assistant",
            "finish_reason": "tool_calls",
            "tool_calls": [{"id": "call_1", "name": TOOL, "arguments": TOOL_ARGUMENTS}],
        }
    ]
