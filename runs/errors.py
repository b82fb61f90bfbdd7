"""One application-error hierarchy. Services raise these; the API edge maps each to its status
and the error shape {"error": {"code", "message", "details"}}; pages map them to messages."""


class AppError(Exception):
    status = 400
    code = "bad_request"
    headers: dict | None = None  # sent with the answer (Retry-After, say)

    def __init__(self, message: str, *, code: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class InvalidInput(AppError):
    status = 422
    code = "invalid_input"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Unavailable(AppError):
    status = 503
    code = "unavailable"


class TooLarge(AppError):
    status = 413
    code = "too_large"
