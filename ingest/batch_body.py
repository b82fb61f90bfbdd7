"""Reading the body of POST /ingest: `{"runs": [...], "events": [...]}`, each item decoded on
its own so its size as sent is known without encoding it again (the per-item limit), and a bad
item can be rejected alone. Strict RFC 8259 JSON: NaN and Infinity are refused, and so are
numbers too large for a float."""

import json
import math
import re
from json.decoder import scanstring

from runs.errors import AppError, InvalidInput
from runs.services.events import MAX_JSON_DEPTH, nesting_depth

LISTS = ("runs", "events")
# Deeper items are rejected (each alone): agents' JSON is far shallower, and walking deeper
# structures (masking, encoding) would exhaust Python's recursion limit.
MAX_DEPTH = MAX_JSON_DEPTH
_SPACE = re.compile(r"[ \t\n\r]*")


class TooDeep:
    """Stands in for an item nested deeper than MAX_DEPTH; `validate_items` rejects it."""

    def __init__(self, item):
        self.id = item.get("id") if isinstance(item, dict) else None
        self.reason = f"item is nested more than {MAX_DEPTH} levels deep"


class BadBody(AppError):
    """The body is not JSON (answered 400)."""

    code = "bad_request"


def not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent as a float; one too large for a float (1e400)
    would become infinity, which is not JSON either (refused like NaN)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large a number")
    return value


_DECODER = json.JSONDecoder(parse_constant=not_json, parse_float=finite_float)


def read_batch(body: bytes) -> dict[str, list[tuple[object, int]]]:
    """{"runs": [(item, size)], "events": [(item, size)]} where size is the item's length in
    bytes as sent. Raises BadBody for text that is not JSON, InvalidInput for JSON that is not a
    batch (not an object, or `runs`/`events` not arrays). Other keys are ignored."""
    try:
        text = body.decode("utf-8")
        return _read(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadBody(f"the body is not valid JSON: {exc}") from None


def _read(text: str) -> dict:
    out: dict = {name: [] for name in LISTS}
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        _DECODER.raw_decode(text, pos)  # a JSON error if it is not JSON at all
        raise InvalidInput("the body must be a JSON object with `runs` and/or `events`")
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return _end(text, pos + 1, out)
    while True:
        if not text.startswith('"', pos):
            raise ValueError(f"expected a key at character {pos}")
        key, pos = scanstring(text, pos + 1)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise ValueError(f"expected ':' at character {pos}")
        pos = _skip(text, pos + 1)
        if key in LISTS:
            if not text.startswith("[", pos):
                _DECODER.raw_decode(text, pos)
                raise InvalidInput(f"`{key}` must be an array")
            pos = _items(text, pos + 1, out[key])
        else:
            pos = _DECODER.raw_decode(text, pos)[1]
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            return _end(text, pos + 1, out)
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or '}}' at character {pos}")
        pos = _skip(text, pos + 1)


def _items(text: str, pos: int, into: list) -> int:
    pos = _skip(text, pos)
    if text.startswith("]", pos):
        return pos + 1
    while True:
        item, end = _DECODER.raw_decode(text, pos)
        chunk = text[pos:end]
        # Only an item with that many brackets at all can be that deep: count (C speed) first.
        if chunk.count("[") + chunk.count("{") > MAX_DEPTH and nesting_depth(item) > MAX_DEPTH:
            item = TooDeep(item)
        into.append((item, len(chunk.encode())))
        pos = _skip(text, end)
        if text.startswith("]", pos):
            return pos + 1
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or ']' at character {pos}")
        pos = _skip(text, pos + 1)


def _end(text: str, pos: int, out: dict) -> dict:
    if _skip(text, pos) != len(text):
        raise ValueError(f"extra data at character {pos}")
    return out


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()
