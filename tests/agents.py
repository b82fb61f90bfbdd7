"""Agents and tools that exist only for tests. The suite's worker process imports this module too
(AGENTOPS_AGENT_MODULES is set by tests/isolation.py). Names start with `test-`/`test_`."""

import time

from runs.agents import agent
from runs.tools import tool


@tool(
    name="test_sleep",
    description="Sleep, then answer with the step number.",
    schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0}, "step": {"type": "integer"}},
        "required": ["seconds", "step"],
        "additionalProperties": False,
    },
    timeout=30,
)
def test_sleep(seconds: float, step: int) -> dict:
    time.sleep(seconds)
    return {"step": step}


def _steps(ctx, input):
    steps = int(input.get("steps", 3))
    seconds = float(input.get("seconds", 0.0))
    for step in range(steps):
        ctx.tool("test_sleep", {"seconds": seconds, "step": step})
    return {"steps": steps}


@agent("test-steps", description="Calls test_sleep `steps` times, `seconds` each.")
def test_steps(ctx, input):
    return _steps(ctx, input)


@agent(
    "test-steps-retryable",
    description="Like test-steps, but declares itself safe to run again after a lost worker.",
    safe_to_retry=True,
)
def test_steps_retryable(ctx, input):
    return _steps(ctx, input)
