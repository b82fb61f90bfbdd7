"""POST /api/v1/otlp/v1/logs and /metrics: GenAI content sent as log records reaches its span's
step whichever arrives first; metrics are accepted and not stored; unknown /api paths are JSON."""

import gzip
import json
import uuid

import pytest
from django.test import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from runs.models import Event, Run
from tests.ingest.conftest import bearer
from tests.ingest.test_otlp import (
    AGENT,
    CHAT,
    MS,
    T0,
    TRACE,
    anyvalue,
    json_anyvalue,
    keyvalues,
    request,
    span,
    step,
)

pytestmark = pytest.mark.django_db

PB = "application/x-protobuf"
RUN_ID = uuid.UUID(bytes=TRACE)
PROMPT = [{"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]}]
ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "Shipped."}]}]


def spans():
    """An agent span (no content of its own) around a chat span whose content is in records."""
    return [
        span(AGENT, "invoke_agent bot", 0, 900, {"gen_ai.operation.name": "invoke_agent"}),
        span(
            CHAT,
            "chat m",
            10,
            400,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 5,
            },
            parent=AGENT,
        ),
    ]


def record(name, attrs=None, body=None, span_id=CHAT, trace=TRACE) -> LogRecord:
    result = LogRecord(
        time_unix_nano=T0 + 20 * MS,
        event_name=name,
        trace_id=trace,
        span_id=span_id,
        attributes=keyvalues(attrs or {}),
    )
    if body is not None:
        result.body.CopyFrom(anyvalue(body))
    return result


def logs(*records) -> bytes:
    resource = Resource(attributes=keyvalues({"service.name": "support-svc"}))
    scope = ScopeLogs(scope=InstrumentationScope(name="test.genai"), log_records=records)
    message = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[scope])]
    )
    return message.SerializeToString()


def details():
    return record(
        "gen_ai.client.inference.operation.details",
        {"gen_ai.input.messages": json.dumps(PROMPT), "gen_ai.output.messages": json.dumps(ANSWER)},
    )


def post(client, path, body, key, content_type=PB, **headers):
    return client.post(path, data=body, content_type=content_type, **bearer(key), **headers)


def chat_step():
    return Event.objects.get(id=step(CHAT))


@pytest.mark.parametrize("logs_first", [False, True])
def test_content_records_reach_their_spans_step_in_either_order(client, ingest_key, logs_first):
    sends = [
        ("/api/v1/otlp/v1/traces", request(*spans()).SerializeToString()),
        ("/api/v1/otlp/v1/logs", logs(details())),
    ]
    for path, body in reversed(sends) if logs_first else sends:
        response = post(client, path, body, ingest_key)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == PB
    chat = chat_step()
    assert (chat.kind, chat.name, chat.input_tokens) == ("model_call", "m", 5)
    assert chat.input == PROMPT and chat.output == ANSWER
    assert Event.objects.filter(run_id=RUN_ID).count() == 2
    run = Run.objects.get(id=RUN_ID)
    # The agent span said neither: the model call's question and answer are the run's.
    assert (run.agent, run.status) == ("support-svc", "succeeded")
    assert (run.input, run.output) == ("Where is order 7?", "Shipped.")
    assert run.model_calls == 1


def test_per_message_events_add_up_and_a_resent_export_adds_nothing(client, ingest_key):
    post(client, "/api/v1/otlp/v1/traces", request(*spans()).SerializeToString(), ingest_key)
    first = logs(
        record("gen_ai.system.message", body={"content": "Be brief."}),
        record("gen_ai.user.message", body={"content": "Where is order 7?"}),
    )
    second = logs(
        record(
            "gen_ai.choice",
            body={"index": 0, "finish_reason": "stop", "message": {"content": "Shipped."}},
        )
    )
    for body in (first, second, first, second):
        assert post(client, "/api/v1/otlp/v1/logs", body, ingest_key).status_code == 200
    chat = chat_step()
    assert chat.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 7?"},
    ]
    assert chat.output == [{"role": "assistant", "content": "Shipped.", "finish_reason": "stop"}]
    assert (Run.objects.get(id=RUN_ID).output) == "Shipped."


def test_json_gzip_logs_answer_json_and_records_without_a_span_are_ignored(client, ingest_key):
    body = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "eventName": "gen_ai.user.message",
                                "traceId": TRACE.hex(),
                                "spanId": CHAT.hex(),
                                "timeUnixNano": str(T0),
                                "body": json_anyvalue({"content": "hi"}),
                            },
                            {"body": {"stringValue": "a plain log line"}},
                        ]
                    }
                ]
            }
        ]
    }
    response = post(
        client,
        "/api/v1/otlp/v1/logs",
        gzip.compress(json.dumps(body).encode()),
        ingest_key,
        "application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200 and response.json() == {}
    # The span has not arrived: a log step holds the content, under a stand-in run.
    placeholder = chat_step()
    assert (placeholder.kind, placeholder.input) == ("log", [{"role": "user", "content": "hi"}])
    assert Run.objects.get(id=RUN_ID).status == "running"
    assert Event.objects.count() == 1


def test_a_logs_export_answers_partial_success_in_kind(client, ingest_key):
    response = post(client, "/api/v1/otlp/v1/logs", logs(details()), ingest_key)
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()


@pytest.mark.parametrize(
    "body, content_type, status, code",
    [
        (b"\x0a\xff", PB, 400, "invalid_otlp"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_malformed_logs_exports_fail_whole(client, ingest_key, body, content_type, status, code):
    response = post(client, "/api/v1/otlp/v1/logs", body, ingest_key, content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("content_type, answer", [(PB, b""), ("application/json", b"{}")])
def test_metrics_are_accepted_and_not_stored(client, ingest_key, content_type, answer):
    response = post(client, "/api/v1/otlp/v1/metrics", b"\x0a\x00", ingest_key, content_type)
    assert (response.status_code, response.content) == (200, answer)
    assert Run.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/v1/otlp/v1/logs", "/api/v1/otlp/v1/metrics"])
def test_logs_and_metrics_need_the_ingest_scope(client, make_key, path):
    assert client.post(path, data=b"", content_type=PB).status_code == 401
    response = post(client, path, b"", make_key("runs:read"))
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_an_unknown_api_path_is_a_json_404_whatever_the_method(method):
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/v1/otlp/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
