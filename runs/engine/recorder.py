"""Where a run's steps go: the `Recorder` protocol the runner writes through, and
`MemoryRecorder`, which keeps them in memory (tests, benchmarks, trying an agent out without a
database). The worker's recorder writes to the database
(`runs.services.recording.DbRecorder`). Plain Python.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from .budget import Usage


class Recorder(Protocol):
    """Where a run's steps go. Kinds: model_call, tool_call, decision, log, error, lifecycle.
    Statuses: running, ok, error, timeout, cancelled. Payloads are JSON-safe (Decimals as
    Decimal in `cost_usd` only); masking secrets is the recorder's job. Every method is called
    from the thread that runs the agent, never from a tool's or a model call's thread."""

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
        """Whether the run should stop. Called every ctx call and between the slices of a wait, so
        it must be cheap; it doubles as the heartbeat hook."""


@dataclass
class Step:
    seq: int
    kind: str
    name: str
    status: str = "running"
    input: Any = None
    output: Any = None
    error: dict | None = None
    model: str = ""
    parent: Any = None
    attributes: dict = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Any = None
    started_at: float = 0.0
    ended_at: float | None = None


class MemoryRecorder:
    """A `Recorder` in memory. A cancel is asked for with `request_cancel()` (from any
    thread), or by `cancel_when(recorder)` returning True, checked at each `cancel_requested()`.
    A step's ref is its `seq`; its times are read from `clock` (give it the run's)."""

    def __init__(
        self,
        *,
        cancel_when: Callable[[MemoryRecorder], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self.steps: list[Step] = []
        self.usage_updates: list[Usage] = []
        self._cancel = threading.Event()
        self._cancel_when = cancel_when

    # The Recorder protocol.

    def step_started(self, kind, name, *, input=None, model="", parent=None, attributes=None):
        step = Step(
            seq=len(self.steps),
            kind=kind,
            name=name,
            input=input,
            model=model,
            parent=parent,
            attributes=dict(attributes or {}),
            started_at=self._clock(),
        )
        self.steps.append(step)
        return step.seq

    def step_ended(
        self,
        ref,
        status,
        *,
        output=None,
        error=None,
        input_tokens=None,
        output_tokens=None,
        cost_usd=None,
        attributes=None,
    ):
        step = self.steps[ref]
        if step.status != "running":
            raise AssertionError(f"step {ref} ended twice ({step.status}, then {status})")
        step.status = status
        step.output = output
        step.error = error
        step.input_tokens = input_tokens
        step.output_tokens = output_tokens
        step.cost_usd = cost_usd
        step.attributes.update(attributes or {})
        step.ended_at = self._clock()

    def usage_changed(self, usage: Usage) -> None:
        self.usage_updates.append(usage)

    def cancel_requested(self) -> bool:
        if self._cancel_when is not None and not self._cancel.is_set() and self._cancel_when(self):
            self._cancel.set()
        return self._cancel.is_set()

    # For tests.

    def request_cancel(self) -> None:
        self._cancel.set()

    def of_kind(self, kind: str, name: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.kind == kind and (name is None or s.name == name)]

    def running(self) -> list[Step]:
        """Steps started and not ended: after a run, always empty."""
        return [s for s in self.steps if s.status == "running"]


# What gets recorded is exactly what the agent, a tool or a model saw.


def json_value(value, what: str, *, strict: bool = True):
    """A JSON round trip: what gets recorded is exactly what the callee sees. Non-JSON values
    (and NaN/Infinity, which databases reject) raise ValueError when `strict`, else become
    their str()."""
    if not strict:
        return _finite(json.loads(json.dumps(value, default=str)))
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_decimal))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serializable: {exc}") from None


def _decimal(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _finite(value):
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-8000:]
