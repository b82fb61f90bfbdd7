"""OTLP/HTTP into runs and events: the wire format (``wire``), traces (``traces``), log records
(``logs``), and one module per convention family that reads what a span means (``genai``,
``openinference``, ``traceloop``, ``logfire``, behind the interface in ``fields``)."""

from .traces import (
    OtlpResult,
    run_id_for_trace,
    should_replace_run,
    step_id_for_span,
    translate,
    translate_request,
)
from .wire import (
    DEFAULT_MAX_BYTES,
    JSON,
    PROTOBUF,
    OtlpBodyTooLarge,
    OtlpDecodeError,
    OtlpUnsupportedMediaType,
    encode_response,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "JSON",
    "PROTOBUF",
    "OtlpBodyTooLarge",
    "OtlpDecodeError",
    "OtlpResult",
    "OtlpUnsupportedMediaType",
    "encode_response",
    "run_id_for_trace",
    "should_replace_run",
    "step_id_for_span",
    "translate",
    "translate_request",
]
