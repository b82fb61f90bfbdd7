"""The one NinjaAPI, mounted at /api/v1/. Every error leaves as
{"error": {"code": ..., "message": ..., "details": ...}} with its status; nothing leaves as a 500
page. Routers for each area are added here."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from ninja import NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from agentops import health
from runs.errors import AppError

from .batch_api import router as batch_router
from .replay_api import router as replay_router
from .runs_api import router as runs_router

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="agentops API",
    version="1",
    urls_namespace="api",
    docs_url="/docs",
    description="Run agents under hard limits, ingest steps from agents elsewhere, read runs.",
)


api.add_router("/", runs_router)
api.add_router("/", replay_router)
api.add_router("/", batch_router)


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
    return error_response(request, exc.status, exc.code, exc.message, exc.details)


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
        return error_response(request, 503, "database_unavailable", "The database is unavailable.")
    log.exception("database error")
    return error_response(request, 500, "internal_error", "An internal error occurred.")


class ComponentStatus(Schema):
    ok: bool
    detail: str


class HealthOut(Schema):
    status: str
    database: ComponentStatus
    broker: ComponentStatus


@api.get("/health", auth=None, response={200: HealthOut, 503: HealthOut}, tags=["health"])
def get_health(request):
    """Database and broker reachability. 503 names what is down."""
    db_ok, db_detail = health.database_status()
    broker_ok, broker_detail = health.broker_status()
    ok = db_ok and broker_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
    }
    return Status(200 if ok else 503, body)


def not_found_view(request, *args, **kwargs):
    """Any /api/ path that matches no operation: the §9 error shape, not an HTML page."""
    return error_response(request, 404, "not_found", f"No API endpoint at {request.path}.")
