"""How the pages write durations and dollar amounts. Plain Python (the template filters in
runs_extras and the timeline's prepared rows both use these)."""

from decimal import Decimal, InvalidOperation


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
