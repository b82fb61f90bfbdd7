"""Agents the runner benchmark executes (loaded by its worker via AGENTOPS_AGENT_MODULES)."""

import asyncio

from runs.agents import agent
from runs.engine.tools import tool


@tool(
    name="bench_noop",
    description="Returns at once.",
    schema={"type": "object", "properties": {"i": {"type": "integer"}}},
)
def bench_noop(i: int = 0) -> dict:
    return {"i": i}


@tool(
    name="bench_wait",
    description="Awaits `seconds` (an I/O-bound call: an HTTP request, a database query).",
    schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
    timeout=30,
)
async def bench_wait(seconds: float = 1.0) -> dict:
    await asyncio.sleep(seconds)
    return {"waited": seconds}


@agent("bench-steps", description="`steps` instant tool calls: measures recording overhead.")
def bench_steps(ctx, input):
    for i in range(int(input.get("steps", 100))):
        ctx.tool("bench_noop", {"i": i})
    return {"steps": input.get("steps", 100)}


@agent("bench-io", description="`calls` tool calls that each await `seconds`.")
def bench_io(ctx, input):
    for _ in range(int(input.get("calls", 3))):
        ctx.tool("bench_wait", {"seconds": float(input.get("seconds", 1.0))})
    return {"ok": True}


BENCH_MODEL = "bench-model"  # priced by the benchmark that uses it


@agent(
    "bench-model",
    description="`calls` model calls of 50 ms each (I/O, as a real model call is mostly waiting).",
    model=BENCH_MODEL,
    provider_config={"script": [{"content": "ok", "delay_s": 0.05}], "loop": True},
)
def bench_model(ctx, input):
    for i in range(int(input.get("calls", 20))):
        ctx.model([{"role": "user", "content": f"call {i}"}], max_tokens=20)
    return {"calls": input.get("calls", 20)}
