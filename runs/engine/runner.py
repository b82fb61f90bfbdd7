"""Runs an agent function under its caps to an outcome, recording every step. Plain Python: no
database, no queue (`runs.worker` claims a queued run and calls `execute` with a database
recorder).

The agent is `fn(ctx, input) -> output` and reaches the world only through `ctx` (DESIGN §7).
Tools and model calls run in other threads; the run's own thread waits for them in slices
(`context.POLL_S`), checking the deadline and `recorder.cancel_requested()` between slices, so a
hanging call never holds the run. Every recorder method is called from the thread that called
`execute`, never from another thread (a Django recorder can use its connection as usual).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..agents import AgentSpec
from ..providers import Provider, get_provider
from .approvals import ApprovalPolicy, Approvals, Asker
from .budget import Budget, Price, Usage
from .caps import Caps
from .context import Context
from .recorder import Recorder, json_value
from .stops import BUDGET_EXCEEDED, FAILED, SUCCEEDED, GuardedRecorder, RecorderFailed, Stop
from .windows import SpendGuard


@dataclass
class Outcome:
    """How a run ended. `status` is succeeded, failed, budget_exceeded or cancelled; `error` is
    None on success and otherwise {"code", "message", ...} (DESIGN §5)."""

    status: str
    output: Any = None
    error: dict | None = None
    usage: Usage | None = None

    @property
    def cap(self) -> str | None:
        """The cap that stopped the run, if one did."""
        return (self.error or {}).get("cap") if self.status == BUDGET_EXCEEDED else None


PriceLookup = Callable[[str], Price | None]
ProviderFactory = Callable[[AgentSpec], Provider]


def default_provider_factory(spec: AgentSpec) -> Provider:
    """The agent's default provider built from its own `provider_config` (enough for scripted)."""
    return get_provider(spec.provider, **spec.provider_config)


def execute(
    agent_spec: AgentSpec,
    run_input: Any,
    caps: Caps,
    recorder: Recorder,
    *,
    price_for: PriceLookup,
    provider_factory: ProviderFactory = default_provider_factory,
    clock: Callable[[], float] = time.monotonic,
    spend_guard: SpendGuard | None = None,
    approvals: Approvals | None = None,
    approval_policy: ApprovalPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run `agent_spec.fn(ctx, run_input)` to an Outcome.

    Never raises for anything the agent, its tools or its provider do; it raises only what the
    recorder, `price_for` or `spend_guard` raise. The provider is built on the first model call.
    With a `spend_guard`, every priced model call holds its worst case against the spend windows
    covering the run until it ends. With `approvals`, a cap the `approval_policy` asks about
    holds the call for a person, and a tool that requires approval waits for one (without,
    such a tool is denied); waiting looks for an answer between `sleep`s and does not count
    against the wall-clock cap. On return the outcome's usage (with wall_ms) has also been
    passed to `recorder.usage_changed`.
    """
    budget = Budget(caps, clock=clock)
    guarded_recorder = GuardedRecorder(recorder)
    asker = Asker(
        approvals, approval_policy or ApprovalPolicy(), guarded_recorder, budget, clock, sleep
    )
    ctx = Context(
        agent_spec, budget, recorder, price_for, provider_factory, clock, spend_guard, asker
    )
    try:
        try:
            ctx.checkpoint()
            output = agent_spec.fn(ctx, run_input)
            if ctx.stopped is not None:
                raise ctx.stopped
            outcome = Outcome(SUCCEEDED, output=json_value(output, "the agent's output"))
        except Stop as stop:
            outcome = Outcome(stop.status, error=stop.error)
        except RecorderFailed:
            raise
        except Exception as exc:
            if ctx.stopped is not None:  # swallowed our stop, then failed: the stop wins
                outcome = Outcome(ctx.stopped.status, error=ctx.stopped.error)
            else:
                outcome = Outcome(FAILED, error=ctx.record_agent_error(exc))
    except RecorderFailed as failed:
        raise failed.exc from None
    budget.usage.wall_ms = int(budget.elapsed() * 1000)
    outcome.usage = budget.usage.copy()
    recorder.usage_changed(outcome.usage)
    return outcome
