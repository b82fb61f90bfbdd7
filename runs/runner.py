"""Executes one run of an agent under its caps, recording every step. Plain Python.

The agent is `fn(ctx, input) -> output` and reaches the world only through `ctx` (DESIGN §7).
Tools and model calls run in worker threads; the run's own thread waits for them in slices of
`POLL_S`, checking the deadline and `recorder.cancel_requested()` between slices, so a hanging
call never holds the run. Every recorder method is called from the thread that called
`execute`, never from a worker thread (a Django recorder can use its connection as usual).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from .agents import AgentSpec
from .budget import Budget, Price, Usage
from .context import BUDGET_EXCEEDED, FAILED, SUCCEEDED, Context, RecorderFailed, Stop
from .limits import Caps
from .providers import Provider, get_provider

__all__ = [
    "Outcome",
    "Recorder",
    "default_provider_factory",
    "execute",
]


class Recorder(Protocol):
    """Where a run's steps go. Kinds: model_call, tool_call, decision, log, error, lifecycle.
    Statuses: running, ok, error, timeout, cancelled. Payloads are JSON-safe (Decimals as
    Decimal in `cost_usd` only); masking secrets is the recorder's job."""

    def step_started(
        self,
        kind: str,
        name: str,
        *,
        input: Any = None,
        model: str = "",
        parent: Any = None,
        attributes: dict | None = None,
    ) -> Any:
        """Write a step with status `running`; return a reference for `step_ended`."""

    def step_ended(
        self,
        ref: Any,
        status: str,
        *,
        output: Any = None,
        error: dict | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd=None,
        attributes: dict | None = None,
    ) -> None:
        """Complete the step; `attributes` add to those given at start."""

    def usage_changed(self, usage: Usage) -> None:
        """The run's counters changed (a snapshot: the recorder may keep it)."""

    def cancel_requested(self) -> bool:
        """Whether the run should stop. Called every ctx call and every POLL_S while waiting, so
        it must be cheap; it doubles as the heartbeat hook."""


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
) -> Outcome:
    """Run `agent_spec.fn(ctx, run_input)` to an Outcome.

    Never raises for anything the agent, its tools or its provider do; it raises only what the
    recorder or `price_for` raise. The provider is built on the first model call. On return the
    outcome's usage (with wall_ms) has also been passed to `recorder.usage_changed`.
    """
    budget = Budget(caps, clock=clock)
    ctx = Context(agent_spec, budget, recorder, price_for, provider_factory, clock)
    try:
        try:
            ctx._checkpoint()
            output = agent_spec.fn(ctx, run_input)
            if ctx._stopped is not None:
                raise ctx._stopped
            outcome = Outcome(SUCCEEDED, output=_json_output(output))
        except Stop as stop:
            outcome = Outcome(stop.status, error=stop.error)
        except RecorderFailed:
            raise
        except Exception as exc:
            if ctx._stopped is not None:  # swallowed our stop, then failed: the stop wins
                outcome = Outcome(ctx._stopped.status, error=ctx._stopped.error)
            else:
                outcome = Outcome(FAILED, error=ctx._agent_failed(exc))
    except RecorderFailed as failed:
        raise failed.exc from None
    budget.usage.wall_ms = int(budget.elapsed() * 1000)
    outcome.usage = budget.usage.copy()
    recorder.usage_changed(outcome.usage)
    return outcome


def _json_output(output):
    try:
        return json.loads(json.dumps(output, allow_nan=False, default=_decimal))
    except (TypeError, ValueError) as exc:
        raise _OutputError(f"the agent's output is not JSON-serializable: {exc}") from None


def _decimal(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


class _OutputError(ValueError):
    pass
