"""POST /api/v1/otlp/v1/{traces,logs,metrics}: OTLP/HTTP exports (protobuf or JSON, gzip
accepted).

Spans (and the GenAI content of log records) are mapped by `ingest.otlp` to the items of an
ingest batch and stored through the same checks and write path as POST /ingest. The answer is an
Export*ServiceResponse in the request's encoding; items that could not be stored are counted in
`partial_success`. Metrics are accepted and not stored, so an exporter pointed at the base
endpoint logs no errors. Errors that fail the whole export (400 malformed, 413 too large, 415
wrong media type, 401/403/429/503) use the API's JSON error shape; OTLP exporters only read the
status code of those.
"""

from django.conf import settings
from django.http import HttpResponse
from ninja import Router

from runs.errors import AppError, TooLarge
from runs.services.ingest import external_runs_fill_io, ingest_batch

from .auth import api_auth, require_scope
from .items import EventItem, RunItem, validate_items
from .otlp import (
    DEFAULT_MAX_BYTES,
    JSON,
    PROTOBUF,
    OtlpBodyTooLarge,
    OtlpDecodeError,
    OtlpUnsupportedMediaType,
    encode_response,
    should_replace_run,
    translate,
)
from .otlp.fields import last_text
from .otlp.logs import translate_logs
from .otlp.wire import media_type
from .schemas import ErrorOut
from .throttle import throttle

router = Router(auth=api_auth, tags=["ingest"])


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


_REQUEST_BODY = {
    "required": True,
    "content": {
        PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        JSON: {
            "schema": {
                "type": "object",
                "description": "ExportTraceServiceRequest in the OTLP JSON encoding.",
                "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
            }
        },
    },
}
_EXPORT_RESPONSE = {
    "description": "Stored. `partialSuccess` counts the spans that were not, and says why.",
    "content": {
        PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "partialSuccess": {
                        "type": "object",
                        "properties": {
                            # int64 in protobuf's JSON mapping: a decimal string
                            "rejectedSpans": {"type": ["string", "integer"]},
                            "errorMessage": {"type": "string"},
                        },
                    }
                },
            }
        },
    },
}
ERRORS = {code: ErrorOut for code in (400, 401, 403, 413, 415, 429, 503)}


def _store(result, who, *, content_only: bool = False) -> list[dict]:
    """Validate a translated export's runs and steps, store what passes through the one ingest
    path and fill in its runs' input and output; returns what was rejected. `content_only`
    (log records) only adds content to steps, and stores nothing without steps."""
    rejected: list[dict] = []
    max_bytes = settings.AGENTOPS_INGEST_MAX_ITEM_BYTES
    runs = validate_items("run", RunItem, result.runs, max_bytes, rejected)
    events = validate_items("event", EventItem, result.events, max_bytes, rejected)
    if events or (runs and not content_only):
        _, refused = ingest_batch(
            runs=runs,
            events=events,
            replace_run=should_replace_run,
            api_key=who.key,
            content_only=content_only,
        )
        rejected.extend(refused)
        if content_only:
            _fill_io({event["run_id"] for event in events})
        else:
            _fill_io({run["id"] for run in runs})
    return rejected


@router.post(
    "/otlp/v1/traces",
    response=ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY, "responses": {200: _EXPORT_RESPONSE}},
)
def otlp_traces(request):
    """Receive an OTLP/HTTP trace export. Each trace becomes one run (its id is the trace id),
    each span one step; spans of one trace may arrive over several exports."""
    who = require_scope(request, "ingest")
    throttle(request, who)
    content_type = request.headers.get("Content-Type")
    result = _decoded(translate, request)
    spans = len(result.events) + len(result.rejected)
    if spans > settings.AGENTOPS_INGEST_MAX_ITEMS:
        raise TooLarge(
            f"an export holds at most {settings.AGENTOPS_INGEST_MAX_ITEMS} spans; "
            f"this one has {spans}"
        )
    rejected = _store(result, who)
    refused_spans = [r for r in rejected if r["type"] == "event"]
    messages = [result.error_message] if result.rejected else []
    messages += [f"step {r['id']}: {r['reason']}" for r in refused_spans[:5]]
    messages += [f"run {r['id']}: {r['reason']}" for r in rejected if r["type"] == "run"][:2]
    body, media_type = encode_response(
        content_type,
        rejected_spans=len(result.rejected) + len(refused_spans),
        error_message="; ".join(messages),
    )
    return HttpResponse(body, content_type=media_type)


@router.post(
    "/otlp/v1/logs",
    response=ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY, "responses": {200: _EXPORT_RESPONSE}},
)
def otlp_logs(request):
    """Receive an OTLP/HTTP logs export. GenAI events (prompts and answers sent as log records)
    become the content of their span's step, whether the span arrives before or after them;
    other records are accepted and not stored."""
    who = require_scope(request, "ingest")
    throttle(request, who)
    content_type = request.headers.get("Content-Type")
    result = _decoded(translate_logs, request)
    if len(result.events) > settings.AGENTOPS_INGEST_MAX_ITEMS:
        raise TooLarge(
            f"an export holds at most {settings.AGENTOPS_INGEST_MAX_ITEMS} spans' records; "
            f"this one has {len(result.events)}"
        )
    rejected = _store(result, who, content_only=True)
    refused = [r for r in rejected if r["type"] == "event"]
    body, media = encode_response(
        content_type,
        rejected_spans=len(refused),
        error_message="; ".join(f"span {r['id']}: {r['reason']}" for r in refused[:5]),
        signal="logs",
    )
    return HttpResponse(body, content_type=media)


@router.post(
    "/otlp/v1/metrics",
    response=ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY, "responses": {200: _EXPORT_RESPONSE}},
)
def otlp_metrics(request):
    """Accept an OTLP/HTTP metrics export and store nothing (runs carry their own usage)."""
    who = require_scope(request, "ingest")
    throttle(request, who)
    content_type = request.headers.get("Content-Type")
    try:
        media_type(content_type)
    except OtlpUnsupportedMediaType as exc:
        raise UnsupportedMediaType(str(exc)) from None
    body, media = encode_response(content_type, signal="metrics")
    return HttpResponse(body, content_type=media)


def _decoded(translator, request):
    try:
        return translator(
            request.body,
            request.headers.get("Content-Type"),
            request.headers.get("Content-Encoding"),
            max_bytes=max(DEFAULT_MAX_BYTES, settings.AGENTOPS_INGEST_MAX_BODY_BYTES),
        )
    except OtlpUnsupportedMediaType as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except OtlpBodyTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except OtlpDecodeError as exc:
        raise AppError(str(exc), code="invalid_otlp") from None


def _fill_io(run_ids) -> None:
    """A run whose agent span did not say its input or output gets the first model call's last
    user message and the last model call's answer, once they are stored (they may come in
    another export, or as log records)."""
    external_runs_fill_io(
        run_ids=run_ids,
        input_of=lambda messages: last_text(messages, "user"),
        output_of=lambda messages: last_text(messages, "assistant"),
    )
