"""How the pages write durations, dollar amounts and errors. Plain Python (the template filters
in runs_extras, the timeline's prepared rows, the receipt and the transcript use these)."""

from datetime import datetime
from decimal import Decimal, InvalidOperation

from ..engine.caps import BY_NAME, SPEND, SPEND_WINDOW
from ..engine.sentences import ERROR_SENTENCES, WINDOW_STOPPED


def duration_text(ms) -> str:
    """`ms` milliseconds for a reader: "<1 ms", "850 ms", "2.35 s", "4 min 12 s", or "—"."""
    if ms is None:
        return "—"
    if ms == 0:
        return "<1 ms"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(int(ms) // 1000, 60)
    return f"{minutes} min {seconds} s"


def silence_text(seconds) -> str:
    """A quiet worker's silence for a reader: "no heartbeat for 12 s", "… for 4 min"."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"no heartbeat for {int(seconds)} s"
    return f"no heartbeat for {int(seconds) // 60} min"


def usd_text(value) -> str:
    """A dollar amount with up to six decimals, at least four: "$0.0125", "$0.000081"."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{amount:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(4, '0')}"


class _Fields(dict):
    """An error's fields for a sentence's placeholders; one it lacks reads "?"."""

    def __missing__(self, key):
        return "?"


def explain(error) -> str:
    """One plain sentence (no final period) for a run's or a tool call's structured error: why
    a cap stopped it, else its code's sentence (both defined beside the cap table), else its own
    code and message. "" for no error."""
    if not isinstance(error, dict) or not error:
        return ""
    cap = error.get("cap")
    if cap == SPEND_WINDOW:
        resets = str(error.get("resets_at") or "")
        try:
            resets = "at " + datetime.fromisoformat(resets).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            resets = "later"
        limit = SPEND.show(_number(error.get("limit")), "?")
        return WINDOW_STOPPED.format_map(_Fields(error, limit=limit, resets_at=resets))
    if isinstance(cap, str) and cap in BY_NAME:
        return BY_NAME[cap].stop_sentence(error.get("limit"), error.get("used"))
    code = str(error.get("code") or error.get("error") or "")
    message = str(error.get("message") or "").strip()
    if code in ERROR_SENTENCES:
        return ERROR_SENTENCES[code].format_map(_Fields(error, message=message or "no message"))
    return f"{message} ({code})" if code and message else code or message or "an error"


def _number(value):
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
