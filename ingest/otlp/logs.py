"""OTLP log records → message content of the steps their spans became. No Django.

GenAI instrumentations may send prompts and answers as log records (events) instead of span
attributes: the official OpenAI instrumentation in ``event_only`` mode, and the GenAI
conventions' events. A record names its span by trace and span id, so its content belongs to that
span's step (``step_id_for_span``). Records and spans arrive in either order:

- each span with GenAI records gives one step item holding only what the records say (``input``:
  the prompt messages, ``output``: the answer), to be merged into the stored step's content (see
  ``ingest_batch(content_only=True)``); when the span has not arrived yet, the item creates the
  step as a ``log`` step named after the record, which the span fills in when it comes (a span
  item leaves out content it does not have, so the records' content stays);
- each trace gives a ``partial`` stand-in run (never overwrites the run its spans make).

The records understood: ``gen_ai.client.inference.operation.details`` (or any record carrying
``gen_ai.input.messages`` / ``gen_ai.output.messages``), the per-message
``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``. Other records (no GenAI
event, no span) are accepted and not stored.
"""

from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from .fields import content
from .traces import run_id_for_trace, step_id_for_span
from .wire import DEFAULT_MAX_BYTES, any_value_to_python, attributes_to_dict, decode_request
from .wire import unix_nano_to_iso as iso

_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


@dataclass
class LogsResult:
    """Stand-in runs and content-only step items to write; ``ignored`` counts records that are
    not GenAI events of a span."""

    runs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    ignored: int = 0


def translate_logs(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LogsResult:
    """Decode an OTLP/HTTP logs export body and map it; raises ``OtlpDecodeError`` if malformed."""
    request = decode_request(
        body, content_type, content_encoding, max_bytes=max_bytes, message=ExportLogsServiceRequest
    )
    return translate_logs_request(request)


def translate_logs_request(request: ExportLogsServiceRequest) -> LogsResult:
    result = LogsResult()
    steps: dict[tuple[bytes, bytes], dict] = {}
    runs: dict[bytes, dict] = {}
    for resource_logs in request.resource_logs:
        resource = attributes_to_dict(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = attributes_to_dict(record.attributes)
                name = record.event_name or str(attrs.get("event.name") or "")
                found = _content(name, attrs, record)
                trace, span = record.trace_id, record.span_id
                if found is None or not _valid_ids(trace, span):
                    result.ignored += 1
                    continue
                when = iso(record.time_unix_nano or record.observed_time_unix_nano)
                item = steps.get((trace, span))
                if item is None:
                    item = steps[(trace, span)] = _step(trace, span, name, when)
                for key, messages in found.items():
                    item.setdefault(key, []).extend(messages)
                runs.setdefault(trace, _stand_in(trace, resource, when, scope_logs.scope.name))
    result.runs = list(runs.values())
    result.events = list(steps.values())
    return result


def _valid_ids(trace: bytes, span: bytes) -> bool:
    return len(trace) == 16 and any(trace) and len(span) == 8 and any(span)


def _content(name: str, attrs: dict, record) -> dict | None:
    """{"input": [messages], "output": [messages]} from one record; None if it is not a GenAI
    content record."""
    if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
        found = {}
        for key, target in (
            ("gen_ai.input.messages", "input"),
            ("gen_ai.output.messages", "output"),
        ):
            value = content(attrs.get(key))
            if value is not None:
                found[target] = value if isinstance(value, list) else [value]
        return found
    body = content(any_value_to_python(record.body))
    if name in _ROLES:
        message = {"role": _ROLES[name]}
        message.update(body if isinstance(body, dict) else {"content": body})
        return {"input": [message]}
    if name == "gen_ai.choice":
        choice = body if isinstance(body, dict) else {"message": {"content": body}}
        message = {"role": "assistant"}
        if isinstance(choice.get("message"), dict):
            message.update(choice["message"])
        if choice.get("finish_reason"):
            message["finish_reason"] = choice["finish_reason"]
        return {"output": [message]}
    return None


def _step(trace: bytes, span: bytes, name: str, when: str | None) -> dict:
    return {
        "id": step_id_for_span(trace, span),
        "run_id": run_id_for_trace(trace),
        "kind": "log",
        "name": name[:200],
        "started_at": when,
        "attributes": {"otel.span_id": span.hex()},
    }


def _stand_in(trace: bytes, resource: dict, when: str | None, scope: str) -> dict:
    service = resource.get("service.name")
    named = isinstance(service, str) and service and not service.startswith("unknown_service")
    return {
        "id": run_id_for_trace(trace),
        "agent": (service if named else "unknown")[:100],
        "status": "running",
        "started_at": when,
        "metadata": {
            "otlp": {"trace_id": trace.hex(), "span_id": None, "basis": "partial", "scope": scope},
            "resource": resource,
            "attributes": {},
        },
    }
