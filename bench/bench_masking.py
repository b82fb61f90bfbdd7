"""Throughput of runs.engine.masking.mask on ~1 KB step payloads (a benchmark, not a test).

Run: .venv/bin/python bench/bench_masking.py [seconds]
Prints MB/s of JSON-equivalent payload masked, for clean payloads and for ones holding secrets.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.engine.masking import compile_patterns, mask  # noqa: E402

PROSE = (
    "The customer asked why order 48213 was charged twice on 2024-05-02. I looked up the order "
    "and found two captures 3 minutes apart; the second one came from a retried webhook. "
)


def payload(i: int, secret: bool) -> dict:
    text = PROSE * 3
    if secret:
        text += " use key sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOpQrStUv and password=hunter2"
    return {
        "messages": [
            {"role": "system", "content": "You are a support agent. Be brief and exact."},
            {"role": "user", "content": text},
        ],
        "tool": "lookup_order",
        "arguments": {"order_id": f"ord_{i:08d}", "include": ["payments", "refunds"]},
        "trace": "4bf92f3577b34da6a3ce929d0e0e4736",
        "max_tokens": 512,
        "temperature": 0.2,
    }


def run(label: str, items: list[dict], seconds: float) -> None:
    size = sum(len(json.dumps(item)) for item in items)
    patterns = compile_patterns()
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for item in items:
            mask(item, patterns)
        done += 1
    elapsed = time.perf_counter() - started
    per_item = elapsed / (done * len(items)) * 1e6
    print(
        f"{label:<14} {size / len(items):6.0f} B/payload  "
        f"{size * done / elapsed / 1e6:6.1f} MB/s  {per_item:6.1f} µs/payload"
    )


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    run("clean", [payload(i, False) for i in range(200)], seconds)
    run("with secrets", [payload(i, True) for i in range(200)], seconds)
