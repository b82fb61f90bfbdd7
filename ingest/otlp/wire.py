"""OTLP/HTTP on the wire: request bodies in, Export*ServiceRequest messages out (traces, logs),
the Export*ServiceResponse body back, and OTLP values (AnyValue, timestamps) as JSON-able Python.
No Django; the mapping to runs and events is in traces.py and logs.py.

Both OTLP encodings end as the same protobuf message. JSON is read with protobuf's own JSON parser
after one fix-up the OTLP JSON encoding requires: trace and span ids are hex strings there, where
the standard protobuf JSON mapping expects base64 (in spans, links and log records). Everything
else (lowerCamelCase keys, int64 as strings or numbers, enums as integers, AnyValue) is what that
parser accepts; unknown fields are ignored, as the OTLP specification asks of receivers.
"""

import base64
import json
import math
import zlib
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# After decompression: a small gzip body may expand a thousandfold.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024

_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}


class OtlpDecodeError(ValueError):
    """The body cannot be read as an OTLP trace export; the message says why (answer 400)."""


class OtlpUnsupportedMediaType(OtlpDecodeError):
    """Neither protobuf nor JSON, or a content encoding other than gzip (answer 415)."""


class OtlpBodyTooLarge(OtlpDecodeError):
    """The (decompressed) body is larger than allowed (answer 413)."""


def media_type(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` for a Content-Type header value (parameters such as charset are
    ignored); raises ``OtlpUnsupportedMediaType`` for anything else."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _MEDIA_TYPES[base]
    except KeyError:
        raise OtlpUnsupportedMediaType(
            f"unsupported content type {content_type!r}: send {PROTOBUF} or {JSON}"
        ) from None


def decode_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    message=ExportTraceServiceRequest,
):
    """Parse an OTLP/HTTP export body (protobuf or JSON, optionally gzip-compressed) as
    ``message`` (a trace export unless told otherwise).

    Raises ``OtlpDecodeError`` (or one of its subclasses) when the body is malformed. Ids in a JSON
    body that are not valid hex come out empty, so the mapping rejects just those spans.
    """
    kind = media_type(content_type)
    body = _decompress(body, content_encoding, max_bytes)
    if kind == PROTOBUF:
        try:
            return message.FromString(body)
        except (DecodeError, RecursionError) as exc:
            raise OtlpDecodeError(f"body is not a valid OTLP protobuf message: {exc}") from None
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpDecodeError("body must be a JSON object")
    _hex_ids_to_base64(data)
    try:
        return json_format.ParseDict(data, message(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"body is not a valid OTLP JSON export: {exc}") from None


def _decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > max_bytes:
            raise OtlpBodyTooLarge(f"body is larger than {max_bytes} bytes")
        return body
    if encoding != "gzip":
        raise OtlpUnsupportedMediaType(f"unsupported content encoding {content_encoding!r}")
    out = bytearray()
    data = body
    try:
        # Bounded output per step, so a gzip bomb stops at max_bytes instead of filling memory.
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, max_bytes + 1 - len(out))
            if len(out) > max_bytes or inflater.unconsumed_tail:
                raise OtlpBodyTooLarge(f"decompressed body is larger than {max_bytes} bytes")
            if not inflater.eof:
                raise OtlpDecodeError("gzip body is truncated")
            data = inflater.unused_data  # a gzip file may hold several members
    except zlib.error as exc:
        raise OtlpDecodeError(f"body is not valid gzip: {exc}") from None
    return bytes(out)


def _hex_ids_to_base64(data: dict) -> None:
    """Rewrite the hex ids of spans, span links and log records in place as protobuf JSON's
    base64."""
    for resource_logs in _items(data.get("resourceLogs")):
        for scope_logs in _items(resource_logs.get("scopeLogs")):
            for record in _items(scope_logs.get("logRecords")):
                _fix_ids(record, ("traceId", "spanId"))
    for resource_spans in _items(data.get("resourceSpans")):
        for scope_spans in _items(resource_spans.get("scopeSpans")):
            for span in _items(scope_spans.get("spans")):
                _fix_ids(span, ("traceId", "spanId", "parentSpanId"))
                for link in _items(span.get("links")):
                    _fix_ids(link, ("traceId", "spanId"))


def _items(value) -> list[dict]:
    # A wrongly typed part is left for the protobuf parser to report.
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _fix_ids(obj: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            obj[key] = base64.b64encode(raw).decode("ascii")


_RESPONSES = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
}


def encode_response(
    content_type: str | None,
    *,
    rejected_spans: int = 0,
    error_message: str = "",
    signal: str = "traces",
) -> tuple[bytes, str]:
    """The Export*ServiceResponse body of ``signal`` (traces, logs, metrics) and its
    Content-Type, in the request's encoding; ``rejected_spans`` counts the rejected items.

    ``partial_success`` is set only when items were rejected or there is a message, as the OTLP
    specification asks; a full success is an empty message (``{}`` in JSON).
    """
    message, rejected_field = _RESPONSES[signal]
    response = message()
    if rejected_spans or error_message:
        setattr(response.partial_success, rejected_field, rejected_spans)
        response.partial_success.error_message = error_message
    try:
        kind = media_type(content_type)
    except OtlpUnsupportedMediaType:
        kind = PROTOBUF  # the specification's default encoding
    if kind == JSON:
        body = json_format.MessageToJson(response, indent=None).encode("utf-8")
        return body, JSON
    return response.SerializeToString(), PROTOBUF


def attributes_to_dict(key_values) -> dict:
    """OTLP KeyValue attributes as a dict of JSON-able values."""
    return {kv.key: any_value_to_python(kv.value) for kv in key_values}


def any_value_to_python(value):
    """An OTLP AnyValue as a JSON-able Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value_to_python(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)  # JSON (and PostgreSQL's jsonb) has no NaN or infinity
    return getattr(value, which)


def unix_nano_to_iso(unix_nano: int) -> str | None:
    """An OTLP timestamp as ISO 8601 in UTC at microsecond precision; None for 0 (unset)."""
    if not unix_nano:
        return None
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanos // 1000)
    return moment.isoformat()
