"""Agents and tools that exist only for tests. The suite's worker process imports this module too
(AGENTOPS_AGENT_MODULES is set by tests/isolation.py). Names start with `test-`/`test_`."""

import time

from runs.agents import agent
from runs.engine.tools import tool


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
def sleep_step(seconds: float, step: int) -> dict:
    time.sleep(seconds)
    return {"step": step}


def _steps(ctx, input):
    steps = int(input.get("steps", 3))
    seconds = float(input.get("seconds", 0.0))
    for step in range(steps):
        ctx.tool("test_sleep", {"seconds": seconds, "step": step})
    return {"steps": steps}


@agent("test-steps", description="Calls test_sleep `steps` times, `seconds` each.")
def steps_agent(ctx, input):
    return _steps(ctx, input)


@agent(
    "test-steps-retryable",
    description="Like test-steps, but declares itself safe to run again after a lost worker.",
    safe_to_retry=True,
)
def steps_agent_retryable(ctx, input):
    return _steps(ctx, input)


@tool(
    name="test_read_setting",
    description="Reads a text file: its content stands for a tool whose behaviour can change.",
    schema={
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    },
)
def read_setting(path: str) -> dict:
    with open(path) as f:
        return {"value": f.read().strip()}


def _setting_script(index, messages):
    results = [m for m in messages if m.get("role") == "tool"]
    if not results:
        path = next(m["content"] for m in messages if m.get("role") == "user")
        return {
            "content": "Reading the setting.",
            "tool_calls": [{"name": "test_read_setting", "arguments": {"path": path}}],
        }
    return {"content": f"The setting says {results[-1]['content']}"}


@agent(
    "test-setting",
    description="Reads a file through a tool and reports it: its answer follows the tool.",
    tools=["test_read_setting"],
    provider_config={"script": _setting_script},
)
def setting_agent(ctx, input):
    from runs.agents.generic import make_tool_agent

    return make_tool_agent(system_prompt="Report the setting.", tools=["test_read_setting"])(
        ctx, {"question": input["path"]}
    )


WINDOW_MODEL = "test-window-model"  # priced by the tests that use it


@agent(
    "test-spend",
    description="Makes `calls` model calls of `max_tokens` each on the test window model.",
    model=WINDOW_MODEL,
    provider_config={"script": [{"content": "x" * 400, "delay_s": 0.05}], "loop": True},
)
def spend_agent(ctx, input):
    for i in range(int(input.get("calls", 2))):
        messages = [{"role": "user", "content": f"part {i}"}]
        ctx.model(messages, max_tokens=int(input.get("max_tokens", 50)))
    return {"calls": int(input.get("calls", 2))}


@agent(
    "test-hang-model",
    description="One model call that hangs (its worker is killed in the test).",
    model=WINDOW_MODEL,
    provider_config={"script": [{"content": "late", "delay_s": 120}]},
)
def hang_model_agent(ctx, input):
    ctx.model([{"role": "user", "content": "hello"}], max_tokens=50)


@tool(
    name="test_refund",
    description="Moves money: appends the amount to a file, one line per refund made.",
    schema={
        "type": "object",
        "properties": {"path": {"type": "string"}, "amount": {"type": "integer"}},
        "required": ["path", "amount"],
        "additionalProperties": False,
    },
    requires_approval=True,
)
def refund(path: str, amount: int) -> dict:
    with open(path, "a") as f:
        f.write(f"{amount}\n")
    return {"refunded": amount}


@agent(
    "test-refund",
    description="Refunds through test_refund, which waits for a person each call.",
    tools=["test_refund"],
)
def refund_agent(ctx, input):
    result = ctx.tool("test_refund", {"path": input["path"], "amount": input.get("amount", 5)})
    return {"refund": result}


@agent("test-logs", description="Logs `steps` times: steps that end as they start.")
def logs_agent(ctx, input):
    for step in range(int(input.get("steps", 3))):
        ctx.log(f"step {step}")
    return {"steps": input.get("steps", 3)}
