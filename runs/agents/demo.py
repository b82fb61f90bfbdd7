"""The demo agents (DESIGN §12): offline and deterministic on the scripted provider, input
{"question": "..."}. Each shows one ending: a success, a tool timeout survived, a tool error that
fails the run, and each cap being hit (the loop breaker included). Their tools are fakes with
fixed answers."""

from __future__ import annotations

import json
import re
import time

from ..engine.caps import REPEATS, SPEND, TOOL_CALLS, WALL
from ..engine.tools import tool
from . import agent
from .generic import make_tool_agent

MINI = "scripted-mini"
PREMIUM = "scripted-premium"
SLOW_STEP_SECONDS = 20  # > the wall cap / the tool-call cap at the defaults (300 s / 20)
HANG_SECONDS = 60
HANG_TIMEOUT = 2

# Tools.

_ORDERS = {
    "A-1001": {"status": "shipped", "carrier": "DHL", "eta": "2025-03-14", "total_usd": "42.50"},
    "A-1002": {"status": "processing", "carrier": None, "eta": None, "total_usd": "19.99"},
    "A-1003": {"status": "delivered", "carrier": "UPS", "eta": "2025-03-02", "total_usd": "7.00"},
}
_KB = [
    {
        "id": "kb-12",
        "title": "Late deliveries",
        "text": "Orders past their ETA by 3 days or more can be refunded or re-shipped at no cost.",
    },
    {
        "id": "kb-31",
        "title": "Returns",
        "text": "Items can be returned within 30 days of delivery; we email the return label.",
    },
    {
        "id": "kb-07",
        "title": "Shipping times",
        "text": "Standard shipping takes 3-5 business days; express takes 1-2 business days.",
    },
]


@tool(
    description="Look up an order by its id (like A-1001): status, carrier, ETA and total.",
    schema={
        "type": "object",
        "properties": {"order_id": {"type": "string", "maxLength": 20}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
    timeout=5,
)
def lookup_order(order_id: str) -> dict:
    order = _ORDERS.get(order_id.upper())
    if order is None:
        return {"order_id": order_id, "found": False}
    return {"order_id": order_id.upper(), "found": True, **order}


@tool(
    description="Search the help-center articles; returns the best matches first.",
    schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": 500},
            "limit": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    timeout=5,
)
def search_kb(query: str, limit: int = 2) -> list[dict]:
    words = set(re.findall(r"[a-z]+", query.lower()))
    scored = [
        (len(words & set(re.findall(r"[a-z]+", (a["title"] + " " + a["text"]).lower()))), a)
        for a in _KB
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
    return [article for _, article in scored[: int(limit)]]


@tool(
    description="Check stock for a SKU at a warehouse (the main one unless named).",
    schema={
        "type": "object",
        "properties": {
            "sku": {"type": "string", "maxLength": 40},
            "warehouse": {"type": "string", "maxLength": 40},
        },
        "required": ["sku"],
        "additionalProperties": False,
    },
    timeout=5,
)
def check_inventory(sku: str, warehouse: str = "main") -> dict:
    return {"sku": sku, "warehouse": warehouse, "in_stock": 0, "restock_eta": "unknown"}


@tool(
    description="Wait for the nightly batch to finish; answers whether it is done.",
    schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 25}},
        "additionalProperties": False,
    },
    timeout=30,
)
def wait_for_batch(seconds: float = SLOW_STEP_SECONDS) -> dict:
    time.sleep(seconds)
    return {"done": False, "waited_s": seconds}


@tool(
    description="Fetch the monthly sales report from the reporting service (slow).",
    schema={
        "type": "object",
        "properties": {"month": {"type": "string", "maxLength": 7}},
        "additionalProperties": False,
    },
    timeout=HANG_TIMEOUT,
)
def fetch_report(month: str = "2025-02") -> dict:
    time.sleep(HANG_SECONDS)  # the reporting service never answers in time
    return {"month": month, "revenue_usd": "0"}


@tool(
    description="Refund an order through the payment gateway.",
    schema={
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "maxLength": 20},
            "amount_usd": {"type": "number", "minimum": 0},
        },
        "required": ["order_id", "amount_usd"],
        "additionalProperties": False,
    },
    timeout=5,
)
def refund_order(order_id: str, amount_usd: float) -> dict:
    raise RuntimeError(f"payment gateway answered HTTP 502 while refunding {order_id}")


# Scripts: what the scripted "model" answers, given the conversation so far.


def _user_text(messages) -> str:
    return next((m["content"] for m in messages if m.get("role") == "user"), "")


def _tool_results(messages) -> dict:
    return {m.get("name"): json.loads(m["content"]) for m in messages if m.get("role") == "tool"}


def _order_id(messages) -> str:
    match = re.search(r"\b[Aa]-\d{4}\b", _user_text(messages))
    return match.group(0).upper() if match else "A-1001"


def _support_script(index, messages):
    results = _tool_results(messages)
    if not results:
        return {
            "content": "Let me check the order and our policies.",
            "tool_calls": [
                {"name": "lookup_order", "arguments": {"order_id": _order_id(messages)}},
                {
                    "name": "search_kb",
                    "arguments": {"query": _user_text(messages)[:500], "limit": 1},
                },
            ],
        }
    order, articles = results.get("lookup_order") or {}, results.get("search_kb")
    articles = articles if isinstance(articles, list) else []  # a tool error: answer without
    if order.get("found"):
        status = f"Order {order['order_id']} is {order['status']}"
        if order.get("carrier"):
            status += f" with {order['carrier']}, expected {order['eta']}"
    else:
        status = f"I could not find order {order.get('order_id', '?')}"
    policy = f" {articles[0]['text']} (see {articles[0]['id']})" if articles else ""
    return {"content": f"{status}.{policy}"}


def _loop_script(index, messages):
    # Another warehouse each time: never the same call twice, so only the tool-call cap stops it.
    return {
        "content": "Still not in stock; checking the next warehouse.",
        "tool_calls": [
            {"name": "check_inventory", "arguments": {"sku": "SKU-42", "warehouse": f"WH-{index}"}}
        ],
    }


def _repeat_script(index, messages):
    return {
        "content": "Let me check that order once more.",
        "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": _order_id(messages)}}],
    }


def _hang_script(index, messages):
    report = _tool_results(messages).get("fetch_report")
    if report is None:
        return {
            "content": "Fetching the report.",
            "tool_calls": [{"name": "fetch_report", "arguments": {"month": "2025-02"}}],
        }
    if report.get("error") == "tool_timeout":
        return {
            "content": f"The reporting service did not answer within {report['timeout_s']} s, "
            "so I cannot quote February's numbers yet. Please try again later."
        }
    return {"content": f"February revenue: ${report.get('revenue_usd')}."}


def _broken_script(index, messages):
    return {
        "content": "Refunding the order.",
        "tool_calls": [
            {
                "name": "refund_order",
                "arguments": {"order_id": _order_id(messages), "amount_usd": 42.5},
            }
        ],
    }


# An essay of about 1,200 output tokens: at scripted-premium's $75 per 1M that is ~$0.09 a call,
# so the default $0.50 cap stops the agent after about six calls.
_ESSAY = ("Budgets exist because loops do not know when to stop. " * 90).strip()

# Agents.

_SUPPORT_PROMPT = "You are a support agent. Use the tools to answer; cite the policy you used."

_support = make_tool_agent(system_prompt=_SUPPORT_PROMPT, tools=["lookup_order", "search_kb"])


@agent(
    "demo-support",
    description="Answers an order question with lookup_order and search_kb; succeeds.",
    tools=["lookup_order", "search_kb"],
    model=MINI,
    provider_config={"script": _support_script},
)
def demo_support(ctx, input):
    ctx.log("support question received", question=input)
    result = _support(ctx, input)
    ctx.decide("escalate", False, reason="the order was looked up and a policy applies")
    return result


demo_loop = agent(
    "demo-loop",
    description=f"Checks inventory forever; stopped by {TOOL_CALLS.name}.",
    tools=["check_inventory"],
    model=MINI,
    provider_config={"script": _loop_script},
)(
    make_tool_agent(
        system_prompt="Keep checking until the item is in stock.",
        tools=["check_inventory"],
        max_turns=None,
    )
)


demo_repeat = agent(
    "demo-repeat",
    description=f"Looks up the same order with the same arguments forever; stopped by "
    f"{REPEATS.name}.",
    tools=["lookup_order"],
    model=MINI,
    provider_config={"script": _repeat_script},
)(
    make_tool_agent(
        system_prompt="Look the order up until you are sure.",
        tools=["lookup_order"],
        max_turns=None,
    )
)


@agent(
    "demo-spender",
    description=f"Writes ever more essay on an expensive model; stopped by {SPEND.name}.",
    model=PREMIUM,
    provider_config={"script": [{"content": _ESSAY}], "loop": True},
)
def demo_spender(ctx, input):
    question = str(input.get("question", "")) if isinstance(input, dict) else str(input)
    parts = []
    for part in range(1, 1001):
        messages = [
            {"role": "system", "content": "You write long, thorough essays."},
            {"role": "user", "content": f"{question}\nWrite part {part} of the essay."},
        ]
        parts.append(ctx.model(messages).content)
    return {"parts": len(parts)}


@agent(
    "demo-slow",
    description=f"Waits on a slow batch job, step after step; stopped by {WALL.name}.",
    tools=["wait_for_batch"],
    model=MINI,
)
def demo_slow(ctx, input):
    attempt = 0
    while True:
        attempt += 1
        result = ctx.tool("wait_for_batch", {"seconds": SLOW_STEP_SECONDS})
        ctx.log("the batch is not done yet", attempt=attempt, result=result)


demo_hang = agent(
    "demo-hang",
    description="Calls a reporting tool that hangs; gets tool_timeout and still answers.",
    tools=["fetch_report"],
    model=MINI,
    provider_config={"script": _hang_script},
)(
    make_tool_agent(
        system_prompt="Answer questions about sales using the reports.", tools=["fetch_report"]
    )
)


demo_broken = agent(
    "demo-broken",
    description="Calls a refund tool that raises; gets tool_error and fails (agent_error).",
    tools=["refund_order"],
    model=MINI,
    provider_config={"script": _broken_script},
)(
    make_tool_agent(
        system_prompt="Refund orders when asked.", tools=["refund_order"], on_tool_error="fail"
    )
)
