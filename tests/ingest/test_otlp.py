import base64
import gzip
import json
import uuid

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from ingest.otlp import (
    OtlpBodyTooLarge,
    OtlpDecodeError,
    OtlpUnsupportedMediaType,
    encode_response,
    run_id_for_trace,
    should_replace_run,
    step_id_for_span,
    translate,
)

PB = "application/x-protobuf"
JS = "application/json"
TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
AGENT, CHAT, TOOL, OTHER, CHAT2 = (bytes([0, 0, 0, 0, 0, 0, 0, n]) for n in range(1, 6))
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
MS = 1_000_000

INPUT_MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]}]
OUTPUT_MESSAGES = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Shipped."}],
        "finish_reason": "stop",
    }
]


def anyvalue(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[anyvalue(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=keyvalues(value)))
    return AnyValue(string_value=value)


def keyvalues(attrs: dict) -> list[KeyValue]:
    return [KeyValue(key=k, value=anyvalue(v)) for k, v in attrs.items()]


def span(
    span_id, name, start_ms, end_ms, attrs=None, parent=b"", trace=TRACE, error=None, events=()
):
    status = Status(code=Status.STATUS_CODE_ERROR, message=error) if error is not None else Status()
    result = Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start_ms * MS,
        end_time_unix_nano=T0 + end_ms * MS if end_ms is not None else 0,
        attributes=keyvalues(attrs or {}),
        status=status,
    )
    for event_name, event_attrs in events:
        result.events.add(name=event_name, time_unix_nano=T0, attributes=keyvalues(event_attrs))
    return result


def request(*spans, service="support-svc") -> ExportTraceServiceRequest:
    resource = Resource(attributes=keyvalues({"service.name": service}) if service else [])
    scope = ScopeSpans(scope=InstrumentationScope(name="test.genai"), spans=spans)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])]
    )


def agent_trace():
    """invoke_agent (root) > chat > execute_tool (error), and a plain span under the agent."""
    return [
        span(
            AGENT,
            "invoke_agent weather-bot",
            0,
            900,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "weather-bot",
                "gen_ai.agent.id": "asst_1",
                "gen_ai.input.messages": json.dumps(INPUT_MESSAGES),
                "gen_ai.usage.input_tokens": 999,
                "user.id": "cust-42",
                "gen_ai.conversation.id": "conv-9",
            },
        ),
        span(
            CHAT,
            "chat gpt-4o",
            10,
            400,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.input.messages": json.dumps(INPUT_MESSAGES),
                "gen_ai.output.messages": json.dumps(OUTPUT_MESSAGES),
                "gen_ai.request.temperature": 0.2,
            },
            parent=AGENT,
        ),
        span(
            TOOL,
            "execute_tool lookup_order",
            420,
            500,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"order_id": 7}',
                "gen_ai.tool.call.result": "not found",
            },
            parent=CHAT,
            error="order service down",
        ),
        span(OTHER, "format answer", 510, 520, {"app.step": "format", "app.retry": False}, AGENT),
    ]


def events_by_name(result):
    return {event["name"]: event for event in result.events}


def step(span_id):
    return step_id_for_span(TRACE, span_id)


def test_an_invoke_agent_span_becomes_the_run():
    result = translate(request(*agent_trace()).SerializeToString(), PB)
    assert result.rejected == []
    [run] = result.runs
    assert run["id"] == str(uuid.UUID(bytes=TRACE)) == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    assert run["agent"] == "weather-bot"
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["started_at"] == "2023-11-14T22:13:20+00:00"
    assert run["finished_at"] == "2023-11-14T22:13:20.900000+00:00"
    assert run["input"] == {"messages": INPUT_MESSAGES}
    assert run["user_ref"] == "cust-42" and run["session_ref"] == "conv-9"
    assert run["metadata"]["otlp"] == {
        "trace_id": TRACE.hex(),
        "span_id": AGENT.hex(),
        "basis": "root_invoke_agent",
        "scope": "test.genai",
    }
    assert run["metadata"]["resource"] == {"service.name": "support-svc"}
    assert run["metadata"]["attributes"]["gen_ai.agent.id"] == "asst_1"
    assert run["tags"] == []


def test_every_span_becomes_a_step_in_start_order_with_its_nesting():
    result = translate(request(*reversed(agent_trace())).SerializeToString(), PB)
    assert [e["id"] for e in result.events] == [step(s) for s in (AGENT, CHAT, TOOL, OTHER)]
    assert {e["run_id"] for e in result.events} == {result.runs[0]["id"]}
    parents = {e["id"]: e["parent_id"] for e in result.events}
    assert parents == {
        step(AGENT): None,
        step(CHAT): step(AGENT),
        step(TOOL): step(CHAT),
        step(OTHER): step(AGENT),
    }
    agent_step = result.events[0]
    # The agent's own step is a log step; its token total stays an attribute so sums never double.
    assert agent_step["kind"] == "log" and agent_step["input_tokens"] is None
    assert agent_step["attributes"]["gen_ai.usage.input_tokens"] == 999


def test_a_chat_span_becomes_a_model_call():
    chat = events_by_name(translate(request(*agent_trace()).SerializeToString(), PB))[
        "gpt-4o-2024-08-06"
    ]
    assert chat["kind"] == "model_call"
    assert chat["model"] == "gpt-4o-2024-08-06"
    assert (chat["input_tokens"], chat["output_tokens"]) == (120, 30)
    assert chat["input"] == INPUT_MESSAGES and chat["output"] == OUTPUT_MESSAGES
    assert chat["status"] == "ok" and chat["error"] is None
    assert chat["started_at"] == "2023-11-14T22:13:20.010000+00:00"
    assert chat["ended_at"] == "2023-11-14T22:13:20.400000+00:00"
    assert chat["cost_usd"] is None  # priced by the write path
    # Mapped attributes leave `attributes`; the rest stay, the requested model too as it differs.
    assert chat["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "otel.span_id": CHAT.hex(),
        "otel.parent_span_id": AGENT.hex(),
    }


@pytest.mark.parametrize("operation", ["text_completion", "generate_content", "embeddings"])
def test_other_model_operations_are_model_calls_with_structured_content(operation):
    messages = [{"role": "user", "content": "hi"}]
    attrs = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": "gemini-2.0-flash",
        "gen_ai.input.messages": messages,
        "gen_ai.usage.input_tokens": "7",
    }
    [event] = translate(request(span(CHAT, "call", 0, 5, attrs)).SerializeToString(), PB).events
    assert event["kind"] == "model_call" and event["name"] == event["model"] == "gemini-2.0-flash"
    assert event["input"] == messages and event.get("output") is None
    assert event["input_tokens"] == 7
    assert "gen_ai.request.model" not in event["attributes"]


def test_content_from_genai_span_events_is_used_when_attributes_lack_it():
    events = [
        (
            "gen_ai.client.inference.operation.details",
            {"gen_ai.output.messages": json.dumps(OUTPUT_MESSAGES)},
        ),
        ("retry", {"attempt": 2}),
    ]
    chat = span(
        CHAT,
        "chat",
        0,
        5,
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
        events=events,
    )
    [event] = translate(request(chat).SerializeToString(), PB).events
    assert event["output"] == OUTPUT_MESSAGES
    assert event["attributes"]["otel.events"] == [
        {"name": "retry", "time": "2023-11-14T22:13:20+00:00", "attributes": {"attempt": 2}}
    ]


def test_an_execute_tool_span_becomes_a_tool_call_and_its_error_status_an_error():
    tool = events_by_name(translate(request(*agent_trace()).SerializeToString(), PB))[
        "lookup_order"
    ]
    assert tool["kind"] == "tool_call"
    assert tool["input"] == {"order_id": 7}
    assert tool["output"] == "not found"  # not JSON: kept as text
    assert tool["status"] == "error"
    assert tool["error"] == {"code": "span_error", "message": "order service down"}
    assert tool["attributes"]["gen_ai.tool.call.id"] == "call_1"
    assert "gen_ai.tool.name" not in tool["attributes"]


def test_other_spans_become_log_steps_keeping_their_attributes():
    other = events_by_name(translate(request(*agent_trace()).SerializeToString(), PB))[
        "format answer"
    ]
    assert other["kind"] == "log" and other["status"] == "ok"
    assert other.get("input") is None and other["model"] == ""
    assert other["attributes"]["app.step"] == "format" and other["attributes"]["app.retry"] is False


def test_error_message_falls_back_to_the_exception_event_and_error_type():
    exception = ("exception", {"exception.type": "TimeoutError", "exception.message": "took 10s"})
    spans = [
        span(
            TOOL,
            "execute_tool a",
            0,
            5,
            {"gen_ai.operation.name": "execute_tool"},
            error="",
            events=[exception],
        ),
        span(OTHER, "b", 0, 5, {"error.type": "rate_limited"}, error=""),
    ]
    events = events_by_name(translate(request(*spans).SerializeToString(), PB))
    assert events["execute_tool a"]["error"] == {"code": "span_error", "message": "took 10s"}
    assert events["b"]["error"] == {
        "code": "span_error",
        "message": "rate_limited",
        "type": "rate_limited",
    }


def test_a_failed_agent_span_fails_the_run_and_an_unended_span_is_running():
    spans = [
        span(
            AGENT, "invoke_agent", 0, 50, {"gen_ai.operation.name": "invoke_agent"}, error="gave up"
        ),
        span(CHAT, "chat", 1, None, {"gen_ai.operation.name": "chat"}, AGENT),
    ]
    result = translate(request(*spans).SerializeToString(), PB)
    [run] = result.runs
    assert run["status"] == "failed"
    assert run["error"] == {"code": "agent_error", "message": "gave up"}
    # No gen_ai.agent.name: the service name names the agent.
    assert run["agent"] == "support-svc"
    chat = events_by_name(result)["chat"]
    assert chat["status"] == "running" and chat["ended_at"] is None


def test_without_an_agent_span_the_root_span_is_the_run():
    spans = [
        span(OTHER, "POST /chat", 0, 100),
        span(
            CHAT,
            "chat",
            5,
            50,
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
            OTHER,
        ),
    ]
    [run] = translate(request(*spans).SerializeToString(), PB).runs
    assert run["agent"] == "support-svc" and run["status"] == "succeeded"
    assert run["metadata"]["otlp"]["basis"] == "root_span"
    assert run["metadata"]["otlp"]["span_id"] == OTHER.hex()
    [run] = translate(request(*spans, service="").SerializeToString(), PB).runs
    assert run["agent"] == "POST /chat"  # no service name either: the span's name


def test_the_outermost_of_nested_agent_spans_is_the_run():
    spans = [
        span(OTHER, "POST /chat", 0, 100),
        span(
            AGENT,
            "invoke_agent triage",
            1,
            90,
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"},
            OTHER,
        ),
        span(
            CHAT2,
            "invoke_agent billing",
            0,
            50,
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing"},
            AGENT,
        ),
    ]
    [run] = translate(request(*spans).SerializeToString(), PB).runs
    assert run["agent"] == "triage"
    assert run["metadata"]["otlp"]["basis"] == "invoke_agent"


def test_an_export_with_only_children_gives_a_running_stand_in_that_never_overwrites():
    first, second = agent_trace()[1:], agent_trace()[:1]  # children end, and are exported, first
    partial = translate(request(*first).SerializeToString(), PB)
    final = translate(request(*second).SerializeToString(), PB)
    [stand_in], [run] = partial.runs, final.runs
    assert stand_in["id"] == run["id"] == run_id_for_trace(TRACE.hex())
    assert stand_in["status"] == "running" and stand_in["finished_at"] is None
    assert stand_in["agent"] == "support-svc"
    assert stand_in["metadata"]["otlp"]["basis"] == "partial"
    assert should_replace_run(None, stand_in) is False
    assert should_replace_run(None, run) is True
    assert should_replace_run(stand_in["metadata"], run) is True
    assert should_replace_run(run["metadata"], stand_in) is False
    # A later root span does not undo an agent span; the same span sent again does replace.
    root = translate(request(span(OTHER, "POST /chat", 0, 1000)).SerializeToString(), PB).runs[0]
    nested = dict(run, metadata={"otlp": {"basis": "invoke_agent"}})
    assert should_replace_run(nested["metadata"], root) is False
    assert should_replace_run(run["metadata"], run) is True


def test_ids_are_the_same_whichever_export_a_span_arrives_in():
    together = translate(request(*agent_trace()).SerializeToString(), PB)
    spans = agent_trace()
    apart = [translate(request(s).SerializeToString(), PB) for s in spans]
    assert [r.events[0]["id"] for r in apart] == [step(s) for s in (AGENT, CHAT, TOOL, OTHER)]
    assert sorted(e["id"] for e in together.events) == sorted(r.events[0]["id"] for r in apart)
    assert {r.runs[0]["id"] for r in apart} == {together.runs[0]["id"]}
    # A child sent alone already points at the step its parent will get.
    assert apart[2].events[0]["parent_id"] == apart[1].events[0]["id"]
    again = translate(request(*agent_trace()).SerializeToString(), PB)
    assert again == together


def test_token_counts_that_do_not_fit_stay_as_attributes():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": -5,
        "gen_ai.usage.output_tokens": 2**40,
    }
    [event] = translate(request(span(CHAT, "c", 0, 1, attrs)).SerializeToString(), PB).events
    assert event["input_tokens"] is None and event["output_tokens"] is None
    assert event["attributes"]["gen_ai.usage.input_tokens"] == -5
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 2**40


def test_step_ids_accept_bytes_or_hex_and_depend_on_the_trace():
    assert step_id_for_span(TRACE, CHAT) == step_id_for_span(TRACE.hex().upper(), CHAT.hex())
    assert step_id_for_span(TRACE, CHAT) != step_id_for_span(bytes(15) + b"\x01", CHAT)


def test_spans_of_several_traces_become_several_runs():
    other_trace = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    spans = [span(AGENT, "a", 0, 5), span(AGENT, "b", 0, 5, trace=other_trace)]
    result = translate(request(*spans).SerializeToString(), PB)
    assert [r["id"] for r in result.runs] == [
        run_id_for_trace(TRACE),
        run_id_for_trace(other_trace),
    ]
    assert {e["run_id"] for e in result.events} == {r["id"] for r in result.runs}


def test_spans_that_cannot_be_mapped_are_rejected_by_index_and_the_rest_kept():
    spans = [
        span(AGENT, "ok", 0, 5),
        span(CHAT, "short trace id", 0, 5, trace=b"\x01" * 8),
        span(bytes(8), "zero span id", 0, 5),
        span(TOOL, "bad parent", 0, 5, parent=b"\x01\x02"),
        span(OTHER, "ok too", 0, 5),
    ]
    spans[-1].start_time_unix_nano = 0
    result = translate(request(*spans).SerializeToString(), PB)
    assert [index for index, _ in result.rejected] == [1, 2, 3, 4]
    assert "trace_id" in result.rejected[0][1] and "span_id" in result.rejected[1][1]
    assert "parent_span_id" in result.rejected[2][1] and "start_time" in result.rejected[3][1]
    assert [e["name"] for e in result.events] == ["ok"]
    assert result.error_message.startswith("span 1: invalid trace_id")


def test_attribute_values_of_every_type_become_json_values():
    attrs = {
        "s": "x",
        "i": 3,
        "d": 1.5,
        "nan": float("nan"),
        "b": True,
        "raw": b"\x00\xff",
        "list": ["a", 1],
        "map": {"k": {"deep": [True]}},
    }
    [event] = translate(request(span(OTHER, "x", 0, 1, attrs)).SerializeToString(), PB).events
    got = event["attributes"]
    assert got["s"] == "x" and got["i"] == 3 and got["d"] == 1.5 and got["b"] is True
    assert got["nan"] == "nan" and got["raw"] == base64.b64encode(b"\x00\xff").decode()
    assert got["list"] == ["a", 1] and got["map"] == {"k": {"deep": [True]}}
    json.dumps(event, allow_nan=False)  # storable as-is


# -- the JSON encoding -------------------------------------------------------------------------


def json_anyvalue(value):
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 travels as a string
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_anyvalue(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": json_keyvalues(value)}}
    return {"stringValue": value}


def json_keyvalues(attrs):
    return [{"key": k, "value": json_anyvalue(v)} for k, v in attrs.items()]


def json_body(spans: list[Span]) -> dict:
    """The OTLP JSON encoding of `spans`, written by hand from the specification."""
    out = []
    for s in spans:
        item = {
            "traceId": s.trace_id.hex().upper(),  # hex, case-insensitive
            "spanId": s.span_id.hex(),
            "name": s.name,
            "kind": int(s.kind),
            "startTimeUnixNano": str(s.start_time_unix_nano),
            "endTimeUnixNano": str(s.end_time_unix_nano),
            "attributes": [
                {"key": kv.key, "value": json_anyvalue(_py(kv.value))} for kv in s.attributes
            ],
            "status": {"code": int(s.status.code), "message": s.status.message},
            "events": [
                {
                    "timeUnixNano": str(e.time_unix_nano),
                    "name": e.name,
                    "attributes": [
                        {"key": kv.key, "value": json_anyvalue(_py(kv.value))}
                        for kv in e.attributes
                    ],
                }
                for e in s.events
            ],
            "someFutureField": {"ignored": True},
        }
        if s.parent_span_id:
            item["parentSpanId"] = s.parent_span_id.hex()
        out.append(item)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": json_keyvalues({"service.name": "support-svc"})},
                "scopeSpans": [{"scope": {"name": "test.genai"}, "spans": out}],
            }
        ]
    }


def _py(value: AnyValue):
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_py(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _py(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def test_the_json_encoding_maps_exactly_like_protobuf():
    spans = agent_trace()
    from_protobuf = translate(request(*spans).SerializeToString(), PB)
    from_json = translate(json.dumps(json_body(spans)).encode(), "application/json; charset=utf-8")
    assert from_json == from_protobuf
    assert len(from_json.events) == 4 and from_json.rejected == []


def test_gzip_bodies_of_either_encoding_are_read():
    spans = agent_trace()
    expected = translate(request(*spans).SerializeToString(), PB)
    pb = gzip.compress(request(*spans).SerializeToString())
    js = gzip.compress(json.dumps(json_body(spans)).encode())
    assert translate(pb, PB, "gzip") == expected
    assert translate(js, JS, "GZIP") == expected


def test_a_json_span_with_an_id_that_is_not_hex_is_rejected_alone():
    body = json_body(agent_trace())
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["spanId"] = "not-hex!"
    result = translate(json.dumps(body).encode(), JS)
    assert [index for index, _ in result.rejected] == [2]
    assert len(result.events) == 3


@pytest.mark.parametrize(
    "body, content_type, encoding",
    [
        (b"\xff\xff\xff\xff", PB, None),
        (b"{not json", JS, None),
        (b"[1, 2]", JS, None),
        (b'{"resourceSpans": "nope"}', JS, None),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            JS,
            None,
        ),
        (b"\xc3\x28", JS, None),
        (gzip.compress(b"{}")[:-6], JS, "gzip"),
        (b"plain, not gzip", JS, "gzip"),
    ],
)
def test_malformed_bodies_raise_a_decode_error(body, content_type, encoding):
    with pytest.raises(OtlpDecodeError):
        translate(body, content_type, encoding)


def test_unsupported_media_types_and_encodings_are_told_apart():
    with pytest.raises(OtlpUnsupportedMediaType):
        translate(b"{}", "text/plain")
    with pytest.raises(OtlpUnsupportedMediaType):
        translate(b"{}", JS, "br")


def test_a_body_that_inflates_past_the_limit_is_refused():
    bomb = gzip.compress(b"\x00" * 200_000)
    assert len(bomb) < 1_000
    with pytest.raises(OtlpBodyTooLarge):
        translate(bomb, PB, "gzip", max_bytes=100_000)
    with pytest.raises(OtlpBodyTooLarge):
        translate(b"{}" + b" " * 200, JS, max_bytes=100)


def test_an_empty_export_maps_to_nothing():
    assert translate(b"", PB).runs == []
    assert translate(b"{}", JS).events == []


# -- the response ------------------------------------------------------------------------------


def test_the_response_reports_partial_success_in_the_request_encoding():
    body, content_type = encode_response(PB, rejected_spans=2, error_message="span 1: bad")
    assert content_type == PB
    parsed = ExportTraceServiceResponse.FromString(body)
    assert parsed.partial_success.rejected_spans == 2
    assert parsed.partial_success.error_message == "span 1: bad"

    body, content_type = encode_response(
        "application/json; charset=utf-8", rejected_spans=2, error_message="x"
    )
    assert content_type == JS
    assert json.loads(body) == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "x"}}


def test_a_full_success_is_an_empty_response():
    assert encode_response(JS) == (b"{}", JS)
    assert encode_response(PB) == (b"", PB)


# -- real spans from the OpenTelemetry SDK -----------------------------------------------------


def test_spans_recorded_by_the_opentelemetry_sdk_are_mapped():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status as SdkStatus
    from opentelemetry.trace import StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "sdk-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my.agent.framework")

    with tracer.start_as_current_span("invoke_agent helper") as agent:
        agent.set_attributes(
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}
        )
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 50,
                    "gen_ai.usage.output_tokens": 12,
                    "gen_ai.output.messages": json.dumps(OUTPUT_MESSAGES),
                }
            )
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attributes(
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "search",
                        "gen_ai.tool.call.arguments": '{"q": "refund"}',
                    }
                )
                tool.set_status(SdkStatus(StatusCode.ERROR, "index offline"))
    sdk_spans = exporter.get_finished_spans()
    body = encode_spans(sdk_spans).SerializeToString()

    result = translate(gzip.compress(body), PB, "gzip")
    trace_id = sdk_spans[0].context.trace_id.to_bytes(16, "big")
    [run] = result.runs
    assert run["id"] == str(uuid.UUID(bytes=trace_id))
    assert (run["agent"], run["status"]) == ("helper", "succeeded")
    kinds = {e["name"]: (e["kind"], e["status"]) for e in result.events}
    assert kinds == {
        "invoke_agent helper": ("log", "ok"),
        "gpt-4o-mini": ("model_call", "ok"),
        "search": ("tool_call", "error"),
    }
    by_name = events_by_name(result)
    assert by_name["gpt-4o-mini"]["output_tokens"] == 12
    assert by_name["gpt-4o-mini"]["output"] == OUTPUT_MESSAGES
    assert by_name["search"]["input"] == {"q": "refund"}
    assert by_name["search"]["error"] == {"code": "span_error", "message": "index offline"}
    assert by_name["search"]["parent_id"] == by_name["gpt-4o-mini"]["id"]
    assert by_name["gpt-4o-mini"]["parent_id"] == by_name["invoke_agent helper"]["id"]
    assert run["metadata"]["otlp"]["scope"] == "my.agent.framework"
