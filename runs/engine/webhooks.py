"""Outgoing webhooks, the plain part: the events an endpoint may ask for, what a valid endpoint
is, how a body is signed, the Slack-compatible text, and when a failed delivery is tried again.
No Django; `services.webhooks` keeps endpoints and deliveries in the database and sends them.

Signing (documented in the README for receivers): each request carries
`X-Agentops-Timestamp: <unix seconds>` and `X-Agentops-Signature: sha256=<hex>`, the hex being
HMAC-SHA256, keyed with the endpoint's secret, of `<timestamp>.<body>` (the exact bytes sent).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import urlsplit

from ..errors import InvalidInput

RUN_BUDGET_EXCEEDED = "run.budget_exceeded"
RUN_FAILED = "run.failed"
RUN_LOST = "run.lost"
RUN_AWAITING_APPROVAL = "run.awaiting_approval"
WINDOW_80 = "spend_window.80"
WINDOW_EXHAUSTED = "spend_window.exhausted"
EVENTS = {
    RUN_BUDGET_EXCEEDED: "a run was stopped by a cap or a spend window",
    RUN_FAILED: "a run failed (agent or provider error)",
    RUN_LOST: "a run was lost (its worker died)",
    RUN_AWAITING_APPROVAL: "a run waits for a person to approve",
    WINDOW_80: "a spend window reached 80 % of its limit this period",
    WINDOW_EXHAUSTED: "a spend window is exhausted this period",
}
# The run statuses told by the events of the same name.
RUN_STATUS_EVENTS = {
    "budget_exceeded": RUN_BUDGET_EXCEEDED,
    "failed": RUN_FAILED,
    "lost": RUN_LOST,
}

MAX_URL_CHARS = 2000
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 200
TIMESTAMP_HEADER = "X-Agentops-Timestamp"
SIGNATURE_HEADER = "X-Agentops-Signature"
EVENT_HEADER = "X-Agentops-Event"
DELIVERY_HEADER = "X-Agentops-Delivery"


class WebhookInvalid(InvalidInput):
    """Some fields of an endpoint are not valid: `errors` maps each field to its message."""

    code = "invalid_webhook"

    def __init__(self, errors: dict[str, str]):
        message = "; ".join(f"{name}: {why}" for name, why in errors.items())
        super().__init__(message, details={"fields": errors})
        self.errors = errors


def clean_endpoint(*, url, secret, events) -> tuple[str, str, list[str], bool]:
    """(url, secret, events, generated) from raw input, or WebhookInvalid naming every bad field.
    A blank or missing secret is generated (`generated` True: show it once)."""
    errors: dict[str, str] = {}
    clean_url = ""
    if not isinstance(url, str) or not url.strip():
        errors["url"] = "is required: an http:// or https:// URL"
    else:
        clean_url = url.strip()
        try:
            parts = urlsplit(clean_url)
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            parts = None
        if len(clean_url) > MAX_URL_CHARS:
            errors["url"] = f"must be at most {MAX_URL_CHARS} characters"
        elif parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            errors["url"] = "must be an http:// or https:// URL with a host"
        elif any(ord(c) < 33 or ord(c) == 127 for c in clean_url):
            errors["url"] = "must not contain spaces or control characters"
    generated = secret is None or (isinstance(secret, str) and not secret.strip())
    clean_secret = secrets.token_urlsafe(32) if generated else secret
    if not generated:
        if not isinstance(secret, str):
            errors["secret"] = "must be a string"
        elif not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
            errors["secret"] = (
                f"must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters "
                "(or left out, to have one generated)"
            )
        elif not secret.isprintable() or secret != secret.strip():
            errors["secret"] = "must be printable, without spaces around it"
    clean_events: list[str] = []
    if not isinstance(events, list | tuple) or not events:
        errors["events"] = f"must be a non-empty list of: {', '.join(EVENTS)}"
    elif not all(isinstance(e, str) for e in events):
        errors["events"] = "must be a list of event names"
    else:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown:
            errors["events"] = f"unknown: {', '.join(unknown)[:200]}; known: {', '.join(EVENTS)}"
        clean_events = [e for e in EVENTS if e in events]
    if errors:
        raise WebhookInvalid(errors)
    return clean_url, clean_secret, clean_events, generated


def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent (and signed) for a payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `sha256=` and the HMAC-SHA256 hex of `timestamp.body`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(*, secret: str, timestamp: int, body: bytes, event: str, delivery: str):
    return {
        "Content-Type": "application/json",
        "User-Agent": "agentops-webhooks/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def retry_delay(attempts: int, *, base: float, most: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, doubling, at most `most`."""
    return min(most, base * 2 ** min(max(attempts - 1, 0), 40))


# Slack reads `text` as mrkdwn, where &, < and > are control characters: text an agent wrote
# (errors, names) is escaped so it cannot form a link or a mention.
def slack_escape(text) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(text, most: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= most else text[: most - 1] + "…"


def run_text(*, event: str, run: dict) -> str:
    """One line for people (and Slack): which run, what happened, what it cost, where to look."""
    link = f"<{run['url']}|{run['id'][:8]}>"
    agent = slack_escape(_short(run["agent"], 100))
    if event == RUN_AWAITING_APPROVAL:
        what = "is waiting for approval"
    else:
        what = f"ended *{run['status']}*"
    error = run.get("error") or {}
    reason = ""
    if error.get("code") or error.get("message"):
        reason = f": {slack_escape(error.get('code', ''))}"
        if error.get("message"):
            reason += f" ({slack_escape(_short(error['message']))})"
    return f"Run {link} of agent {agent} {what}{reason}. Cost ${run['cost_usd']}."


def window_text(*, event: str, window: dict) -> str:
    scope = slack_escape(_short(window["scope"], 200))
    state = "is exhausted" if event == WINDOW_EXHAUSTED else "has passed 80 % of its limit"
    return (
        f"Spend window <{window['url']}|{scope} per {window['period']}> {state}: "
        f"${window['spent_usd']} spent of ${window['limit_usd']}; "
        f"it resets at {window['resets_at']}."
    )
