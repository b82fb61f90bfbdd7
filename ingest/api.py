"""The one NinjaAPI, mounted at /api/v1/. Every error leaves as
{"error": {"code": ..., "message": ..., "details": ...}} with its status; nothing leaves as a 500
page. Routers for each area are added here."""

import functools
import json
import logging
import re

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.parser import Parser

from agentops import health
from runs.errors import AppError

from .approvals_api import router as approvals_router
from .batch_api import router as batch_router
from .batch_body import finite_float, not_json
from .otlp_api import router as otlp_router
from .replay_api import router as replay_router
from .runs_api import router as runs_router

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER = 2  # seconds a client waits before retrying while the database is down


class StrictJsonParser(Parser):
    """Request bodies as RFC 8259 JSON: Python's parser also takes NaN and Infinity, which
    PostgreSQL's jsonb refuses and no other client could read back (answered 400), and a number
    too large for a float (1e400), which it would read as infinity."""

    def parse_body(self, request):
        return json.loads(request.body, parse_constant=not_json, parse_float=finite_float)


_ERROR_DESCRIPTIONS = {
    400: "Bad Request (the body is not JSON)",
    401: "Unauthorized",
    403: "Forbidden",
    413: "Request Entity Too Large",
    422: "Unprocessable Entity",
    405: "Method Not Allowed (a parameter value that names another path)",
    503: "Service Unavailable (database unreachable)",
}


class AgentopsAPI(NinjaAPI):
    """The one API, with two additions to django-ninja:

    - its schema also documents the errors any operation may answer, whether or not its
      `response=` lists them: 503 (database down), 401/403 when it needs auth, 400/413/422 when
      it takes a body or parameters, and 405 where a path parameter can take a value that names
      a fixed path (PUT /caps/changes reaches GET /caps/changes);
    - a 405 leaves in the error shape like every other error (ninja answers it in plain text).
    """

    def get_openapi_schema(self, **kwargs):
        schema = super().get_openapi_schema(**kwargs)
        paths = schema["paths"]
        for path, methods in paths.items():
            shadowed = _shadowing_paths(path, paths)
            for method, operation in methods.items():
                codes = {503}
                if operation.get("security"):
                    codes |= {401, 403}
                if "requestBody" in operation:
                    codes |= {400, 413, 422}
                if operation.get("parameters"):
                    codes.add(422)
                if any(method not in paths[other] for other in shadowed):
                    codes.add(405)
                _document_errors(operation.setdefault("responses", {}), codes)
        return schema

    def _get_urls(self):
        # ninja's private hook for its URL patterns: wrap each view so its 405 is JSON.
        return [_json_405(p) if isinstance(p, URLPattern) else p for p in super()._get_urls()]


def _shadowing_paths(path: str, paths: dict) -> list[str]:
    """Other paths that a value of one of `path`'s parameters would spell."""
    if "{" not in path:
        return []
    template = re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
    return [other for other in paths if other != path and template.match(other)]


def _document_errors(responses: dict, codes: set) -> None:
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for code in sorted(codes):
        if code not in responses and str(code) not in responses:
            responses[code] = {
                "description": _ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": error}},
            }


def _json_405(pattern: URLPattern) -> URLPattern:
    view = pattern.callback

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            message = f"{request.method} is not allowed here (allowed: {allowed})."
            return error_response(
                request, 405, "method_not_allowed", message, headers={"Allow": allowed}
            )
        return response

    return URLPattern(pattern.pattern, wrapped, pattern.default_args, pattern.name)


api = AgentopsAPI(
    parser=StrictJsonParser(),
    title="agentops API",
    version="1",
    urls_namespace="api",
    docs_url="/docs",
    description="Run agents under hard limits, ingest steps from agents elsewhere, read runs.",
)


api.add_router("/", runs_router)
api.add_router("/", replay_router)
api.add_router("/", approvals_router)
api.add_router("/", batch_router)
api.add_router("/", otlp_router)
api.add_router("/", "ingest.caps_api.router")
api.add_router("/", "ingest.webhooks_api.router")


def error_response(request, status: int, code: str, message: str, details=None, headers=None):
    response = api.create_response(
        request,
        {"error": {"code": code, "message": message, "details": details}},
        status=status,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(AppError)
def _app_error(request, exc: AppError):
    return error_response(
        request, exc.status, exc.code, exc.message, exc.details, headers=exc.headers
    )


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors
    ]
    return error_response(request, 422, "invalid_input", "The request is not valid.", details)


@api.exception_handler(Throttled)
def _throttled(request, exc: Throttled):
    headers = {"Retry-After": str(int(exc.wait or 1))}
    return error_response(request, 429, "throttled", "Too many requests.", None, headers)


@api.exception_handler(RecursionError)
def _too_deep(request, exc: RecursionError):
    # JSON nested deeper than the code that walks it (masking, encoding) can follow.
    return error_response(request, 422, "invalid_input", "The input is nested too deeply.")


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc: AuthenticationError):
    return error_response(
        request, 401, "unauthenticated", "A valid API key is required (Authorization: Bearer …)."
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
}


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(request, exc.status_code, code, str(exc))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error_response(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error_response(request, 413, "too_large", "The request body is too large.")


@api.exception_handler(DatabaseError)
def _database_error(request, exc):
    if isinstance(exc, OperationalError | InterfaceError):
        log.warning("database unavailable: %s", exc)
        return error_response(
            request,
            503,
            "database_unavailable",
            "The database is unavailable; retry shortly.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if isinstance(exc, DataError):
        # A value the database refuses (a NUL in text, an out-of-range time): bad input that a
        # check upstream missed. Answer as such, and log it so the check gets written.
        log.warning("input refused by the database at %s: %s", request.path, exc)
        reason = str(exc).splitlines()[0][:200]
        return error_response(
            request, 422, "invalid_input", "A value cannot be stored.", {"reason": reason}
        )
    log.exception("database error")
    return error_response(request, 500, "internal_error", "An internal error occurred.")


class ComponentStatus(Schema):
    ok: bool
    detail: str


class HealthOut(Schema):
    status: str
    database: ComponentStatus
    broker: ComponentStatus
    cache: ComponentStatus


@api.get("/health", auth=None, response={200: HealthOut, 503: HealthOut}, tags=["health"])
def get_health(request):
    """Database, broker and cache reachability, answered within 2 s. 503 names what is down
    when the database or the broker is; with only the cache down the service works (throttling
    is off meanwhile): 200 `degraded`."""
    found = health.statuses()
    body = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in found.items()}
    if not (found["database"][0] and found["broker"][0]):
        return Status(503, {"status": "unavailable", **body})
    return Status(200, {"status": "ok" if found["cache"][0] else "degraded", **body})


@csrf_exempt  # API clients send no CSRF token: a POST would get Django's HTML 403 page
def not_found_view(request, *args, **kwargs):
    """Any /api/ path that matches no operation, whatever the method: the §9 error shape, not
    an HTML page."""
    return error_response(request, 404, "not_found", f"No API endpoint at {request.path}.")
