"""Time-ordered UUIDs (RFC 9562 version 7) and run-id prefix parsing. Plain Python."""

import os
import re
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 8


def uuid7() -> uuid.UUID:
    """A version-7 UUID: 48 bits of Unix milliseconds, then random bits.

    Ids made by one process in the same millisecond still sort in creation order (the 12-bit
    rand_a field carries a counter), so ordering by id is ordering by creation time.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # room to count upward
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= rand_b
    return uuid.UUID(int=value)


def uuid_range_for_prefix(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The lowest and highest UUID starting with a hex prefix (dashes ignored).

    Returns None unless `text` is at least MIN_PREFIX hex digits. A range lookup on the primary key
    finds prefix matches through the index on any database.
    """
    digits = text.strip().lower().replace("-", "")
    if len(digits) < MIN_PREFIX or len(digits) > 32 or not _HEX.match(digits):
        return None
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    return low, high
