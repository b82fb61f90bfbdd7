"""POST /api/v1/otlp/v1/traces: the official OpenTelemetry exporter against a served instance,
both OTLP encodings, partial success, and the errors that fail a whole export."""

import gzip
import json
import uuid
from decimal import Decimal

import pytest
from django.test import override_settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from runs.models import Event, ModelPrice, Run
from tests.ingest.conftest import bearer
from tests.ingest.test_otlp import (
    AGENT,
    CHAT,
    OTHER,
    TOOL,
    TRACE,
    agent_trace,
    json_body,
    request,
    step,
)

URL = "/api/v1/otlp/v1/traces"
PB = "application/x-protobuf"
RUN_ID = uuid.UUID(bytes=TRACE)

pytestmark = pytest.mark.django_db


def post(client, body: bytes, secret, content_type=PB, **headers):
    return client.post(URL, data=body, content_type=content_type, **bearer(secret), **headers)


def partial_success(response) -> tuple[int, str]:
    assert response.status_code == 200, response.content
    if response["Content-Type"] == PB:
        message = ExportTraceServiceResponse.FromString(response.content).partial_success
        return message.rejected_spans, message.error_message
    data = response.json().get("partialSuccess", {})
    return int(data.get("rejectedSpans", 0)), data.get("errorMessage", "")


# --- the official exporter ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_opentelemetry_exporter_reports_an_agent_run_over_several_exports(
    live_server, make_key
):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.trace import Status, StatusCode

    ModelPrice.objects.create(model="gpt-4o-mini-test", input_per_mtok=1, output_per_mtok=4)
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}{URL}",
        headers={"Authorization": f"Bearer {make_key('ingest')}"},
        compression=Compression.Gzip,
    )
    results = []
    export = exporter.export
    exporter.export = lambda spans: results.append(export(spans)) or results[-1]
    provider = TracerProvider(resource=Resource.create({"service.name": "support-svc"}))
    # Each span is exported as it ends: children reach the server before their root.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my.agent.framework")

    with tracer.start_as_current_span("invoke_agent support-bot") as agent:
        agent.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support-bot",
                "user.id": "cust-42",
            }
        )
        trace_id = agent.get_span_context().trace_id
        run_id = uuid.UUID(int=trace_id)
        with tracer.start_as_current_span("chat gpt-4o-mini-test") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini-test",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 250,
                }
            )
            with tracer.start_as_current_span("execute_tool lookup_order") as tool:
                tool.set_attributes(
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "lookup_order",
                        "gen_ai.tool.call.arguments": '{"order": 7, '
                        '"api_key": "sk-live-abcdef1234567890abcd"}',
                        "gen_ai.tool.call.result": '{"status": "shipped"}',
                    }
                )
        # The first exports are in: the run exists already, as a running stand-in.
        stand_in = Run.objects.get(id=run_id)
        assert (stand_in.status, stand_in.source) == ("running", "external")
        assert Event.objects.filter(run_id=run_id).count() == 2
        with tracer.start_as_current_span("execute_tool search_kb") as failing:
            failing.set_attributes(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search_kb",
                    "http.request.header.authorization": "Bearer abc.def.ghi",
                }
            )
            failing.set_status(Status(StatusCode.ERROR, "index offline"))
    provider.shutdown()

    assert results == [SpanExportResult.SUCCESS] * 4
    run = Run.objects.get(id=run_id)
    assert (run.agent, run.status, run.user_ref) == ("support-bot", "succeeded", "cust-42")
    assert (run.model_calls, run.tool_calls) == (1, 2)
    assert (run.input_tokens, run.output_tokens) == (1000, 250)
    assert run.cost_usd == Decimal("0.002")  # priced from ModelPrice: 1000 × $1/M + 250 × $4/M
    steps = {e.name: e for e in Event.objects.filter(run_id=run_id)}
    assert set(steps) == {
        "invoke_agent support-bot",
        "gpt-4o-mini-test",
        "lookup_order",
        "search_kb",
    }
    root = steps["invoke_agent support-bot"]
    assert root.parent_id is None
    assert steps["gpt-4o-mini-test"].parent_id == root.id
    assert steps["lookup_order"].parent_id == steps["gpt-4o-mini-test"].id
    assert steps["search_kb"].parent_id == root.id
    assert steps["lookup_order"].input == {"order": 7, "api_key": "[masked:field]"}
    assert steps["lookup_order"].output == {"status": "shipped"}
    assert steps["search_kb"].status == "error"
    assert steps["search_kb"].error["message"] == "index offline"
    assert steps["search_kb"].attributes["http.request.header.authorization"] == "[masked:field]"
    # seq is the order of arrival (a stored step keeps its place); the root span came last.
    assert sorted(e.seq for e in steps.values()) == [0, 1, 2, 3] and root.seq == 3


# --- encodings and partial success -------------------------------------------------------


@pytest.mark.parametrize("encoding", ["protobuf", "json", "protobuf+gzip", "json+gzip"])
def test_both_encodings_store_the_trace_and_answer_in_kind(client, ingest_key, encoding):
    if encoding.startswith("json"):
        body, content_type = json.dumps(json_body(agent_trace())).encode(), "application/json"
    else:
        body, content_type = request(*agent_trace()).SerializeToString(), PB
    headers = {}
    if encoding.endswith("gzip"):
        body, headers = gzip.compress(body), {"HTTP_CONTENT_ENCODING": "gzip"}

    response = post(client, body, ingest_key, content_type, **headers)

    assert response["Content-Type"] == content_type
    assert partial_success(response) == (0, "")
    if content_type == "application/json":
        assert response.json() == {}
    run = Run.objects.get(id=RUN_ID)
    assert (run.agent, run.status, run.user_ref) == ("weather-bot", "succeeded", "cust-42")
    stored = {e.id: e for e in Event.objects.filter(run_id=RUN_ID)}
    assert set(stored) == {uuid.UUID(step(s)) for s in (AGENT, CHAT, TOOL, OTHER)}
    assert stored[uuid.UUID(step(TOOL))].parent_id == uuid.UUID(step(CHAT))
    assert (run.model_calls, run.tool_calls, run.input_tokens) == (1, 1, 120)


def test_resending_an_export_adds_nothing(client, ingest_key):
    body = request(*agent_trace()).SerializeToString()
    for _ in range(3):
        assert partial_success(post(client, body, ingest_key)) == (0, "")
    assert Event.objects.filter(run_id=RUN_ID).count() == 4
    assert sorted(Event.objects.values_list("seq", flat=True)) == [0, 1, 2, 3]


def test_a_stand_in_never_overwrites_the_run_its_root_span_made(client, ingest_key):
    root, chat, tool, other = agent_trace()
    post(client, request(root, other).SerializeToString(), ingest_key)
    post(client, request(chat, tool, service="another-svc").SerializeToString(), ingest_key)

    run = Run.objects.get(id=RUN_ID)
    assert (run.agent, run.status) == ("weather-bot", "succeeded")
    assert run.metadata["otlp"]["basis"] == "root_invoke_agent"
    assert Event.objects.filter(run_id=RUN_ID).count() == 4


def test_a_trace_whose_id_is_a_run_executed_here_is_refused_span_by_span(client, ingest_key):
    Run.objects.create(id=RUN_ID, agent="demo-support")

    rejected, message = partial_success(
        post(client, request(*agent_trace()).SerializeToString(), ingest_key)
    )

    assert rejected == 4
    assert "belongs to a run executed here" in message
    assert not Event.objects.exists()
    assert Run.objects.get(id=RUN_ID).source == "internal"


def test_spans_that_cannot_be_mapped_are_counted_and_the_rest_stored(client, ingest_key):
    body = json_body(agent_trace())
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][3]["spanId"] = "not-hex"

    response = post(client, json.dumps(body).encode(), ingest_key, "application/json")

    rejected, message = partial_success(response)
    assert rejected == 1 and "span 3: invalid span_id" in message
    assert Event.objects.filter(run_id=RUN_ID).count() == 3


@override_settings(AGENTOPS_INGEST_MAX_ITEM_BYTES=700)
def test_a_span_over_the_item_limit_is_counted_as_rejected(client, ingest_key):
    response = post(client, request(*agent_trace()).SerializeToString(), ingest_key)

    rejected, message = partial_success(response)
    assert rejected == 1 and "the limit is 700" in message  # the chat span with its messages
    assert Event.objects.filter(run_id=RUN_ID).count() == 3


# --- whole-export errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, content_type, headers, status, code",
    [
        (b"\xff\xff\xff", PB, {}, 400, "invalid_otlp"),
        (b"{not json", "application/json", {}, 400, "invalid_otlp"),
        (b"not gzip", PB, {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_otlp"),
        (b"{}", "text/plain", {}, 415, "unsupported_media_type"),
        (b"{}", "application/json", {"HTTP_CONTENT_ENCODING": "br"}, 415, "unsupported_media_type"),
        (
            gzip.compress(b"\0" * (33 * 2**20)),
            PB,
            {"HTTP_CONTENT_ENCODING": "gzip"},
            413,
            "too_large",
        ),
    ],
)
def test_malformed_exports_fail_whole(
    client, ingest_key, body, content_type, headers, status, code
):
    response = post(client, body, ingest_key, content_type, **headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not Run.objects.exists()


@override_settings(AGENTOPS_INGEST_MAX_ITEMS=3)
def test_an_export_with_more_spans_than_a_batch_may_hold_is_413(client, ingest_key):
    response = post(client, request(*agent_trace()).SerializeToString(), ingest_key)
    assert response.status_code == 413
    assert not Run.objects.exists()


def test_exports_need_a_key_with_the_ingest_scope(client, make_key):
    body = request(*agent_trace()).SerializeToString()
    assert client.post(URL, data=body, content_type=PB).status_code == 401
    assert post(client, body, make_key("runs:read")).status_code == 403
    assert not Run.objects.exists()
