"""OTLP traces → runs and events. No Django.

The output items have the shape of the JSON ingest batch (``POST /ingest``), so both doors share
one write path. The mapping:

- one trace is one run; its id is the 16-byte trace id read as a UUID, so the trace id a developer
  sees in their tracing tool, dashes or not, opens the run (prefix search ignores dashes);
- every span is one step (event); its id is ``uuid5(STEP_NAMESPACE, trace_hex + span_hex)`` and its
  parent is the parent span's step, so a re-sent span lands on the same row and a child may arrive
  (in an earlier export) before its parent;
- what a span means (model call, tool call, agent, log) is read by the first convention family
  that claims it (``FAMILIES``: OpenInference, Pydantic AI/Logfire, Traceloop/OpenLLMetry, and
  the GenAI semantic conventions, which take every other span); see ``fields.py``;
- the run's own fields come from the trace's outermost agent span, else from its root span; an
  export that holds neither (children are exported as they end, often before their root) yields
  a ``running`` stand-in run, marked so the write path never lets it overwrite a better one (see
  ``should_replace_run``). The run's input and output are the agent span's, else the first model
  call's last user message and the last model call's answer;
- ``seq`` is left to the write path; events come sorted by start time (then span id) and carry
  ``started_at`` at microsecond precision, which orders steps across several exports.

Attributes a field took are dropped from ``attributes``; the others are kept there.
"""

import uuid
from dataclasses import dataclass, field
from functools import cached_property

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from .fields import StepFields, last_text, tool_call_arguments
from .genai import FAMILY as GENAI
from .logfire import FAMILY as LOGFIRE
from .openinference import FAMILY as OPENINFERENCE
from .traceloop import FAMILY as TRACELOOP
from .wire import (
    DEFAULT_MAX_BYTES,
    attributes_to_dict,
    decode_request,
    unix_nano_to_iso,
)

# Fixed forever: changing it would give every re-sent span a new step id.
STEP_NAMESPACE = uuid.UUID("5b0f3a52-5c8e-4c39-9d6e-3f1f0c6a7e21")

# How good a source of the run's fields a span was (an agent span of any family counts as
# "invoke_agent"); see should_replace_run.
RUN_BASIS_RANK = {"partial": 0, "root_span": 1, "invoke_agent": 2, "root_invoke_agent": 3}

# Convention families, most specific first; GenAI claims every span.
FAMILIES = (OPENINFERENCE, LOGFIRE, TRACELOOP, GENAI)
_STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
# Span events that only carry message content (newer and older GenAI conventions).
_CONTENT_EVENTS = frozenset(
    {
        "gen_ai.client.inference.operation.details",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    }
)
_CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.prompt",
    "gen_ai.completion",
)


@dataclass
class OtlpResult:
    """Runs and events to write, and the spans that could not be mapped.

    ``rejected`` holds ``(span_index, reason)``; the index counts spans in the order they appear
    in the request, across all resource and scope groups, from 0.
    """

    runs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        """A short summary of the rejections for the OTLP partial_success answer ("" if none)."""
        shown = "; ".join(f"span {index}: {reason}" for index, reason in self.rejected[:5])
        more = len(self.rejected) - 5
        return shown + (f"; and {more} more" if more > 0 else "")


def run_id_for_trace(trace_id: bytes | str) -> str:
    """The run id of a trace (bytes or hex): the trace id itself, read as a UUID."""
    raw = bytes.fromhex(trace_id) if isinstance(trace_id, str) else trace_id
    return str(uuid.UUID(bytes=raw))


def step_id_for_span(trace_id: bytes | str, span_id: bytes | str) -> str:
    """The event id of a span: a UUIDv5 of the trace and span ids in lowercase hex."""
    trace_hex = trace_id.hex() if isinstance(trace_id, bytes) else trace_id.lower()
    span_hex = span_id.hex() if isinstance(span_id, bytes) else span_id.lower()
    return str(uuid.uuid5(STEP_NAMESPACE, trace_hex + span_hex))


def should_replace_run(existing_metadata: dict | None, incoming: dict) -> bool:
    """Whether an OTLP run item may overwrite the stored run with the same id.

    Exports of one trace arrive in any order. An item built from a better span wins (an
    ``invoke_agent`` span that is the trace's root beats a nested one, which beats a plain root
    span); an equal one replaces (it ended later, or is the same span sent again); a ``partial``
    stand-in only ever creates. A stored run without OTLP metadata counts as a stand-in.
    """
    new_rank = RUN_BASIS_RANK[incoming["metadata"]["otlp"]["basis"]]
    if new_rank == 0:
        return False
    old_basis = ((existing_metadata or {}).get("otlp") or {}).get("basis")
    return new_rank >= RUN_BASIS_RANK.get(old_basis, 0)


def translate(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> OtlpResult:
    """Decode an OTLP/HTTP trace export body and map it; raises ``OtlpDecodeError`` if malformed."""
    return translate_request(
        decode_request(body, content_type, content_encoding, max_bytes=max_bytes)
    )


@dataclass
class _Span:
    index: int
    span: trace_pb2.Span
    attrs: dict
    resource: dict
    scope: str
    parent: bytes | None

    @cached_property
    def mapped(self) -> tuple[StepFields, dict, list[dict]]:
        """The span's step fields (by the first family that claims it), the attributes no field
        took, and the span events worth keeping."""
        kept_events, found = _span_events(self.span)
        attrs = dict(self.attrs)
        family = next(f for f in FAMILIES if f.claims(attrs))
        return family.step(self.span.name, attrs, found), attrs, kept_events

    @property
    def fields(self) -> StepFields:
        return self.mapped[0]


def translate_request(request: ExportTraceServiceRequest) -> OtlpResult:
    """Map a decoded ExportTraceServiceRequest to runs, events and rejected spans."""
    result = OtlpResult()
    traces: dict[bytes, list[_Span]] = {}
    index = 0
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                reason = _invalid(span)
                if reason:
                    result.rejected.append((index, reason))
                else:
                    parent = span.parent_span_id if any(span.parent_span_id) else None
                    attrs = attributes_to_dict(span.attributes)
                    item = _Span(index, span, attrs, resource, scope_spans.scope.name, parent)
                    traces.setdefault(span.trace_id, []).append(item)
                index += 1
    for trace_id, spans in traces.items():
        result.runs.append(_run(trace_id, spans))
        events = [_event(trace_id, item) for item in spans]
        _arguments_from_model_calls(events)
        result.events.extend(events)
    result.events.sort(key=lambda event: (event["_start"], event["attributes"]["otel.span_id"]))
    for event in result.events:
        del event["_start"]
    return result


def _invalid(span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid trace_id (need 16 bytes, not all zero)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid span_id (need 8 bytes, not all zero)"
    if len(span.parent_span_id) not in (0, 8):
        return "invalid parent_span_id (need 8 bytes or none)"
    if not span.start_time_unix_nano:
        return "missing start_time_unix_nano"
    try:
        unix_nano_to_iso(span.start_time_unix_nano), unix_nano_to_iso(span.end_time_unix_nano)
    except (OverflowError, ValueError, OSError):
        return "timestamp out of range"
    return None


def _run(trace_id: bytes, spans: list[_Span]) -> dict:
    by_id = {item.span.span_id: item for item in spans}
    agents = [item for item in spans if item.fields.agent]
    # The outermost agent span: a sub-agent's span has another agent span above it.
    outer = [item for item in agents if not _has_agent_ancestor(item, by_id)]
    roots = [item for item in spans if item.parent is None]
    chosen = min(outer or roots, key=_start_key, default=None)
    if chosen is None:
        basis = "partial"
    elif chosen.fields.agent:
        basis = "root_invoke_agent" if chosen.parent is None else "invoke_agent"
    else:
        basis = "root_span"
    source = chosen or min(spans, key=_start_key)
    resource = source.resource
    attrs = dict(chosen.mapped[1]) if chosen else {}
    for key in ("gen_ai.agent.name", "agent.name", "agent_name"):
        attrs.pop(key, None)
    run = {
        "id": run_id_for_trace(trace_id),
        "agent": _agent_name(chosen, spans, resource)[:100],
        "status": "running",
        "started_at": unix_nano_to_iso(source.span.start_time_unix_nano),
        "finished_at": None,
        "error": None,
        "user_ref": _ref(attrs, resource, "user.id", "enduser.id"),
        "session_ref": _ref(attrs, resource, "session.id", "gen_ai.conversation.id"),
        "metadata": {
            "otlp": {
                "trace_id": trace_id.hex(),
                "span_id": chosen.span.span_id.hex() if chosen else None,
                "basis": basis,
                "scope": source.scope,
            },
            "resource": resource,
            "attributes": attrs,
        },
        "tags": [],
    }
    if chosen is None:
        return run
    # Left out when unknown: a run filled in from its stored steps keeps what it has.
    run_input, run_output = _run_input_output(chosen, spans)
    if run_input is not None:
        run["input"] = run_input
    if run_output is not None:
        run["output"] = run_output
    if chosen.span.end_time_unix_nano:
        run["finished_at"] = unix_nano_to_iso(chosen.span.end_time_unix_nano)
        error = _error(chosen, "agent_error")
        run["status"] = "failed" if error else "succeeded"
        run["error"] = error
    return run


def _agent_name(chosen: _Span | None, spans: list[_Span], resource: dict) -> str:
    """An explicit agent name (the run's span's, else the first span's that has one), else an
    agent span's name, else the service's name, else the run's span's name."""
    ordered = ([chosen] if chosen else []) + sorted(spans, key=_start_key)
    for attribute in ("agent_name", "agent_guess"):
        for item in ordered:
            if item.fields.agent or attribute == "agent_name":
                name = getattr(item.fields, attribute)
                if name:
                    return str(name)
    service = resource.get("service.name")
    if isinstance(service, str) and service and not service.startswith("unknown_service"):
        return service
    return (chosen.span.name if chosen else "") or "unknown"


def _run_input_output(chosen: _Span, spans: list[_Span]) -> tuple:
    """The run's span's own input and output, else the first model call's last user message
    and the last model call's answer (when this export holds them)."""
    run_input, run_output = chosen.fields.run_input, chosen.fields.run_output
    calls = sorted((i for i in spans if i.fields.kind == "model_call"), key=_start_key)
    if run_input is None and calls:
        run_input = last_text(calls[0].fields.input, "user")
    if run_output is None and calls:
        run_output = last_text(calls[-1].fields.output, "assistant")
    return run_input, run_output


def _has_agent_ancestor(item: _Span, by_id: dict) -> bool:
    seen = set()
    parent = by_id.get(item.parent)
    while parent is not None and parent.span.span_id not in seen:  # a cycle is malformed input
        if parent.fields.agent:
            return True
        seen.add(parent.span.span_id)
        parent = by_id.get(parent.parent)
    return False


def _start_key(item: _Span):
    return (item.span.start_time_unix_nano, item.span.span_id)


def _ref(attrs: dict, resource: dict, *keys: str) -> str:
    for key in keys:
        value = attrs.pop(key, None) or resource.get(key)
        if value not in (None, ""):
            return str(value)[:200]
    return ""


def _event(trace_id: bytes, item: _Span) -> dict:
    span = item.span
    fields, remaining, kept_events = item.mapped
    attrs = dict(remaining)
    event = {
        "id": step_id_for_span(trace_id, span.span_id),
        "run_id": run_id_for_trace(trace_id),
        "parent_id": step_id_for_span(trace_id, item.parent) if item.parent else None,
        "kind": fields.kind,
        "name": (fields.name or span.name)[:200],
        "status": "ok",
        "started_at": unix_nano_to_iso(span.start_time_unix_nano),
        "ended_at": unix_nano_to_iso(span.end_time_unix_nano),
        "model": fields.model[:200],
        "input_tokens": fields.input_tokens if fields.kind == "model_call" else None,
        "output_tokens": fields.output_tokens if fields.kind == "model_call" else None,
        "cost_usd": None,
        "error": None,
        "_start": span.start_time_unix_nano,
    }
    # Content left out is content not sent: a step that got it from log records keeps it.
    if fields.input is not None:
        event["input"] = fields.input
    if fields.output is not None:
        event["output"] = fields.output
    if not span.end_time_unix_nano:
        event["status"] = "running"
    else:
        event["error"] = _error(item, "span_error")
        if event["error"]:
            event["status"] = "error"
    attrs["otel.span_id"] = span.span_id.hex()
    if item.parent:
        attrs["otel.parent_span_id"] = item.parent.hex()
    if kept_events:
        attrs["otel.events"] = kept_events
    event["attributes"] = attrs
    return event


def _arguments_from_model_calls(events: list[dict]) -> None:
    """Give a tool call recorded without its arguments as an object (OpenInference's LangChain
    instrumentation records a one-argument tool's bare value) the arguments the model asked for:
    those of the latest model call before it, of the same parent, that called that tool once.
    The recorded value stays in the attributes (``tool.recorded_input``)."""
    calls = sorted((e for e in events if e["kind"] == "model_call"), key=lambda e: e["_start"])
    for tool in events:
        if tool["kind"] != "tool_call" or isinstance(tool.get("input"), dict):
            continue
        asked = [
            call
            for call in calls
            if call["parent_id"] == tool["parent_id"] and call["_start"] <= tool["_start"]
        ]
        found = tool_call_arguments(asked[-1].get("output"), tool["name"]) if asked else []
        if len(found) == 1 and isinstance(found[0], dict):
            if "input" in tool:
                tool["attributes"]["tool.recorded_input"] = tool["input"]
            tool["input"] = found[0]


def _span_events(span) -> tuple[list[dict], dict]:
    """Span events worth keeping, and message content found in GenAI content events."""
    kept, content = [], {}
    for span_event in span.events:
        attrs = attributes_to_dict(span_event.attributes)
        if span_event.name in _CONTENT_EVENTS:
            for key in _CONTENT_KEYS:
                if key in attrs:
                    content.setdefault(key, attrs[key])
            continue
        kept.append(
            {
                "name": span_event.name,
                "time": unix_nano_to_iso(span_event.time_unix_nano),
                "attributes": attrs,
            }
        )
    return kept, content


def _error(item: _Span, code: str) -> dict | None:
    status = item.span.status
    if status.code != _STATUS_ERROR:
        return None
    message = status.message
    for span_event in item.span.events:
        if not message and span_event.name == "exception":
            message = attributes_to_dict(span_event.attributes).get("exception.message") or ""
    error_type = item.attrs.get("error.type")
    error = {"code": code, "message": str(message or error_type or "span ended with an error")}
    if error_type:
        error["type"] = str(error_type)
    return error
