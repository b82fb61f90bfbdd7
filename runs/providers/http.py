"""POSTing JSON to a remote model API, with the retry rules every remote provider shares: which
answers are worth another attempt, exponential backoff, Retry-After, and never waiting past the
run's deadline. Standard library only."""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

from .base import ProviderError

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class JsonEndpoint:
    """One URL that takes a JSON body by POST and answers JSON.

    `post` retries `RETRY_STATUSES` answers and connection failures up to `max_retries` times
    with exponential backoff (`backoff_s` doubling, at most `max_backoff_s`), waiting what a
    Retry-After header asks instead when there is one (giving up when it asks more than
    `max_retry_after_s`). It never sleeps or waits on the network past the `deadline` it is
    given. Every failure becomes ProviderError("provider_error", ...), retryable unless the
    server refused the request itself; `error_detail(body)` says what a failed answer's body
    reports. `secret` (the API key) is blanked out of every message, even one a server echoes.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        secret: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        max_retry_after_s: float = 60.0,
        error_detail: Callable[[bytes], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.headers = dict(headers)
        self.secret = secret
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.error_detail = error_detail or error_message
        self._sleep = sleep
        self._clock = clock

    def post(self, body: dict, *, deadline: float | None = None) -> bytes:
        """The body of the first 2xx answer to POSTing `body`. `deadline` is a value of the
        endpoint's clock (time.monotonic unless another was given); None: no deadline."""
        try:
            return self._post_with_retries(json.dumps(body, default=str).encode("utf-8"), deadline)
        except ProviderError as exc:
            if not self.secret or self.secret not in exc.message:
                raise
            message = exc.message.replace(self.secret, "[api key]")
            raise ProviderError(exc.code, message, exc.retryable) from None

    def _post_with_retries(self, data: bytes, deadline: float | None) -> bytes:
        failure = ""
        for attempt in range(self.max_retries + 1):
            timeout = self.timeout_s
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock())
                if timeout <= 0:
                    raise ProviderError(
                        "provider_error", _join(failure, "the run's deadline passed"), True
                    )
            retry_after = None
            try:
                status, headers, payload = self._send(data, timeout)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                failure = f"could not reach {self.url}: {_reason(exc)}"
            else:
                if 200 <= status < 300:
                    return payload
                failure = f"HTTP {status} from {self.url}: {self.error_detail(payload)}"
                if status not in RETRY_STATUSES:
                    raise ProviderError("provider_error", failure, False)
                retry_after = _retry_after(headers.get("retry-after"))
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            if retry_after is not None:
                if retry_after > self.max_retry_after_s:
                    raise ProviderError(
                        "provider_error", f"{failure}; asked to retry after {retry_after:g} s", True
                    )
                delay = retry_after
            if deadline is not None and self._clock() + delay >= deadline:
                raise ProviderError(
                    "provider_error",
                    f"{failure}; a retry in {delay:g} s would pass the run's deadline",
                    True,
                )
            self._sleep(delay)
        raise ProviderError(
            "provider_error", f"{failure} (gave up after {self.max_retries + 1} attempts)", True
        )

    def _send(self, data: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body) of one POST."""
        request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _lower(exc.headers), exc.read()


def error_message(payload: bytes) -> str:
    """What an error answer's body says: `error.message` (or `error` itself when a string) of a
    JSON body, else the start of the body."""
    try:
        error = json.loads(payload).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except (ValueError, AttributeError):
        pass
    return snippet(payload)


def snippet(payload: bytes, limit: int = 200) -> str:
    """The start of a body, for a message."""
    text = payload.decode("utf-8", "replace").strip()
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")


def _lower(headers) -> dict[str, str]:
    # Header names are case-insensitive, and many servers send them in lower case.
    return {str(k).lower(): v for k, v in (headers or {}).items()}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _join(failure: str, what: str) -> str:
    return f"{failure}; {what}" if failure else what
