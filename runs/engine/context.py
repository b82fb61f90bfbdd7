"""The context an agent gets (DESIGN §7) and the machinery behind it: recording each step,
checking the caps before it, and waiting for tools and models without ever hanging. Plain Python.
Tools and model calls run off the runner's thread (`runs.threads`), which waits for them in
slices, checking the deadline and `recorder.cancel_requested()` between them. Stopping the run is
an exception derived from BaseException raised inside ctx calls."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..providers import Provider, ProviderError, RecordingDiverged
from ..providers.base import ModelResponse, hidden_input_tokens
from .approvals import APPROVE, EXTEND, TOOL, Asker, tool_denied
from .budget import Budget, BudgetExceeded, Remaining, RepeatedCall, cost_of
from .caps import REPEATS
from .recorder import Recorder, format_traceback, json_value
from .stops import (
    BUDGET_EXCEEDED,
    CANCELLED,
    FAILED,
    GuardedRecorder,
    RecorderFailed,
    Stop,
    guarded,
)
from .threads import Call, call_async, call_in_thread
from .tools import (
    Tool,
    UnknownToolError,
    call_key,
    get_tool,
    repeated_call,
    tool_error,
    tool_timeout,
    unknown_tool,
)
from .windows import SpendGuard, WindowRefused

if TYPE_CHECKING:
    from ..agents import AgentSpec

# A wait's slices: between them a cancel (which the heartbeat brings each second) is seen. A
# thousand waiting runs wake seldom; what they record is written by their recorder, not on their
# wake-ups (services.recording).
POLL_S = 1.0


class Context:
    """What an agent gets: `model`, `tool`, `decide`, `log`, `checkpoint` and `budget`
    (DESIGN §7). The runner also reads `stopped` and calls `record_agent_error`."""

    def __init__(
        self,
        spec,
        budget,
        recorder: Recorder,
        price_for,
        provider_factory,
        clock,
        spend_guard: SpendGuard | None = None,
        asker: Asker | None = None,
    ):
        self._asker = asker
        self._spec: AgentSpec = spec
        self._budget: Budget = budget
        self._recorder = GuardedRecorder(recorder)
        self._spend_guard = spend_guard
        self._price_for = price_for
        self._provider_factory = provider_factory
        self._clock = clock
        self._provider: Provider | None = None
        self._stopped: Stop | None = None

    @property
    def budget(self) -> Remaining:
        """What is left of each cap right now."""
        return self._budget.remaining()

    def model(
        self,
        messages: list[dict],
        tools: list | None = None,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        **params,
    ) -> ModelResponse:
        """Call the run's model provider and return its answer. `tools` are registered tool
        names or {"name", "description", "parameters"} dicts. `max_tokens` may come back lower
        (clamped to the budget). A refused call, a provider failure, the deadline or a cancel
        end the run instead of returning."""
        self.checkpoint()
        model = model or self._spec.model
        messages = json_value(messages, "messages")
        tool_specs = self._tool_specs(tools)
        params = json_value(params, "params")
        price = guarded(self._price_for, model)
        provider, setup_error = self._provider, None
        if provider is None:
            try:
                provider = self._provider = self._provider_factory(self._spec)
            except Exception as exc:
                setup_error = exc
        hidden = hidden_input_tokens(provider, tool_specs) if provider is not None else 0
        held = []  # what the call holds of the spend windows covering the run
        reserve = (lambda worst: held.append(self._reserve(worst))) if self._spend_guard else None
        send_max = self._admit(
            lambda: self._budget.check_model_call(
                model, messages, max_tokens, price, tool_specs, hidden, reserve=reserve
            ),
            "model_call",
            model,
            {"messages": messages},
            model=model,
        )
        request = {"messages": messages, "tools": tool_specs, "max_tokens": send_max}
        if params:
            request["params"] = params
        attributes = {"requested_max_tokens": max_tokens} if send_max != max_tokens else None
        ref = self._recorder.step_started(
            "model_call", model, input=request, model=model, attributes=attributes
        )
        self._usage_changed()
        if setup_error is not None:
            self._settle(held, 0)
            message = f"could not set up the provider: {setup_error}"
            error = {"code": "provider_error", "message": message}
            self._recorder.step_ended(ref, "error", error=error)
            self._halt(FAILED, error)
        deadline = time.monotonic() + self._budget.deadline_remaining()
        kwargs = {
            "model": model,
            "messages": messages,
            "tools": tool_specs or None,
            "max_tokens": send_max,
            "params": params,
            "deadline": deadline,
        }
        call = call_in_thread(provider.complete, kwargs, thread_name=f"agentops-model-{model}")
        waited = self._wait(call, None)
        if waited == "done" and call.exc is not None and self._budget.deadline_remaining() <= 0:
            waited = "deadline"  # the provider gave up because of our deadline: that is the cause
        if waited != "done" or call.exc is not None or not isinstance(call.value, ModelResponse):
            self._settle(held, 0)  # abandoned or failed: nothing is known to have been spent
        if waited != "done":
            self._abandon(ref, waited)
        if call.exc is not None or not isinstance(call.value, ModelResponse):
            self._provider_failed(ref, call.exc)
        response: ModelResponse = call.value
        cost = response.cost_usd
        if cost is None and price is not None:
            cost = cost_of(response.input_tokens, response.output_tokens, price)
        self._settle(held, cost or 0)
        self._budget.add_tokens(response.input_tokens, response.output_tokens, cost or 0)
        self._recorder.step_ended(
            ref,
            "ok",
            output=response.to_dict(),
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost_usd=cost,
            attributes=None if price is not None or cost is not None else {"price_unknown": True},
        )
        self._usage_changed()
        divergence = response.raw.get("divergence") if isinstance(response.raw, dict) else None
        if divergence:
            # A replay left its recording here and went on live: say where and why.
            step = self._recorder.step_started(
                "error", "recording_diverged", input={**divergence, "then": "live"}
            )
            error = {"code": "recording_diverged", "message": divergence.get("reason", "")}
            self._recorder.step_ended(step, "error", error=error)
        return response

    def tool(self, name: str, args: dict | None = None) -> Any:
        """Call a tool and return its (JSON) result, or a structured error dict: tool_timeout,
        tool_error (bad arguments or the tool raised), unknown_tool, or repeated_call (the same
        call made more often than the repeated-call cap allows: not executed). Never raises into
        the agent and never waits past the tool's timeout; the tool-call cap, a second refused
        repeat, the deadline and a cancel end the run instead of returning."""
        self.checkpoint()
        # The tool gets the arguments exactly as recorded, so a replay can give it the same.
        args = json_value({} if args is None else args, "args", strict=False)
        key = call_key(name, args)
        try:
            self._budget.check_repeat(key, repeatable=_repeatable(name))
        except RepeatedCall as exc:
            return self._repeat_refused(name, args, key, exc)
        self._admit(self._budget.check_tool_call, "tool_call", name, args)
        self._usage_changed()
        ref = self._recorder.step_started(
            "tool_call", name, input=args, attributes={"call_key": key}
        )
        tool_, problem = self._resolve_tool(name, args)
        if problem is not None:
            self._recorder.step_ended(ref, "error", output=problem, error=problem)
            return problem
        if self._asker is not None and self._asker.needs_approval(tool_):
            decided = self._asker.wait(kind=TOOL, subject=name, request={"args": args}, parent=ref)
            if decided.decision == CANCELLED:
                self._abandon(ref, "cancel")
            if decided.decision != APPROVE:  # denied, or nobody answered in time
                denied = tool_denied(name, decided.by)
                self._recorder.step_ended(ref, "error", output=denied, error=denied)
                return denied
        timeout = self._budget.caps.timeout_for(name, tool_.timeout)
        end = self._clock() + timeout  # counted from the call's start
        if tool_.is_async:
            call = call_async(tool_.fn, args)
        else:
            call = call_in_thread(tool_.fn, args, thread_name=f"agentops-tool-{name}")
        waited = self._wait(call, end)
        if waited == "timeout":
            call.cancel()
            result = tool_timeout(name, timeout)
            self._recorder.step_ended(
                ref,
                "timeout",
                output=result,
                error=result,
                attributes={"timeout_s": timeout},
            )
            return result
        if waited != "done":
            self._abandon(ref, waited, call)
        if call.exc is not None:
            result = tool_error(name, f"{type(call.exc).__name__}: {call.exc}")
            self._recorder.step_ended(
                ref,
                "error",
                output=result,
                error=result,
                attributes={"traceback": format_traceback(call.exc)},
            )
            return result
        result = json_value(call.value, "result", strict=False)
        self._recorder.step_ended(ref, "ok", output=result)
        return result

    def decide(self, label: str, choice: Any, reason: str | None = None) -> None:
        """Record a decision point: which `choice` was made at `label`, and why."""
        self.checkpoint()
        output = json_value({"choice": choice, "reason": reason}, "choice", strict=False)
        ref = self._recorder.step_started("decision", str(label)[:200])
        self._recorder.step_ended(ref, "ok", output=output)

    def log(self, message: str, **data) -> None:
        """Record a note on the run's timeline, with optional JSON data."""
        self.checkpoint()
        payload = json_value({"message": str(message), "data": data}, "data", strict=False)
        ref = self._recorder.step_started("log", str(message)[:200], input=payload)
        self._recorder.step_ended(ref, "ok")

    def checkpoint(self) -> None:
        """Stop here if the run must end: a cancel, the deadline, or a stop the agent swallowed.
        Every ctx call does this first; an agent that computes for long without calling ctx may
        call it between steps."""
        if self._stopped is not None:
            raise self._stopped
        if self._recorder.cancel_requested():
            self._halt_cancelled()
        try:
            self._budget.check_deadline()
        except BudgetExceeded as exc:
            self._halt_budget(exc)

    @property
    def stopped(self) -> Stop | None:
        """How the run was stopped from inside a ctx call, if it was (even if the agent caught
        the Stop)."""
        return self._stopped

    # Stopping.

    def _halt(self, status: str, error: dict):
        self._stopped = Stop(status, error)
        raise self._stopped

    def _halt_budget(self, exc: BudgetExceeded):
        cap_input = {"cap": exc.cap, "limit": exc.limit, "used": exc.used}
        ref = self._recorder.step_started("lifecycle", exc.cap, input=cap_input)
        self._recorder.step_ended(ref, "error", error=exc.to_error())
        self._halt(BUDGET_EXCEEDED, exc.to_error())

    def _halt_cancelled(self):
        error = {"code": "cancelled", "message": "The run was cancelled while running."}
        ref = self._recorder.step_started("lifecycle", "cancelled")
        self._recorder.step_ended(ref, "cancelled", error=error)
        self._halt(CANCELLED, error)

    def _admit(self, check, kind: str, name: str, input, model: str = ""):
        """`check()`; when it refuses the call at a cap the policy asks about, the call is held
        until a person extends the cap (then checked again) or says stop (the run ends)."""
        while True:
            try:
                return check()
            except BudgetExceeded as exc:
                if self._asker is None or not self._asker.asks_on(exc.cap):
                    self._refused(kind, name, input, exc, model=model)
                decided = self._asker.hold_at_cap(exc, kind, name, input)
                if decided.decision == CANCELLED:
                    self._halt_cancelled()
                if decided.decision != EXTEND:
                    self._refused(kind, name, input, exc, model=model)
                self._budget.extend(decided.caps)

    def _refused(self, kind: str, name: str, input, exc: BudgetExceeded, model: str = ""):
        ref = self._recorder.step_started(
            kind,
            name,
            input=input,
            model=model,
            attributes={"refused": True, "cap": exc.cap},
        )
        self._recorder.step_ended(ref, "cancelled", error=exc.to_error())
        self._halt_budget(exc)

    def _reserve(self, amount: Decimal):
        try:
            return self._spend_guard.reserve(amount)
        except WindowRefused:
            raise  # refuses the call like a cap
        except Exception as exc:
            raise RecorderFailed(exc) from exc

    def _settle(self, held: list, cost) -> None:
        if held:
            guarded(self._spend_guard.settle, held.pop(), Decimal(cost))

    def _repeat_refused(self, name: str, args, key: str, exc: RepeatedCall) -> dict:
        """A repeated call, not executed: the agent is told the first time; after that the run
        ends. Either way a refused step on the timeline says so."""
        attributes = {"refused": True, "cap": REPEATS.name, "call_key": key}
        ref = self._recorder.step_started("tool_call", name, input=args, attributes=attributes)
        if exc.ends_run:
            self._recorder.step_ended(ref, "cancelled", error=exc.exceeded.to_error())
            self._halt_budget(exc.exceeded)
        refusal = repeated_call(name, exc.count)
        self._recorder.step_ended(ref, "error", output=refusal, error=refusal)
        return refusal

    def _abandon(self, ref, why: str, call: Call | None = None):
        """Give up on an in-flight call because the run is ending; close its step, then stop."""
        if call is not None:
            call.cancel()
        if why == "cancel":
            error = {"code": "cancelled", "message": "Abandoned: the run was cancelled."}
            self._recorder.step_ended(ref, "cancelled", error=error)
            self._halt_cancelled()
        try:
            self._budget.check_deadline()
        except BudgetExceeded as exc:
            error = {
                **exc.to_error(),
                "message": "Abandoned: the run reached its wall-clock limit.",
            }
            self._recorder.step_ended(ref, "timeout", error=error)
            self._halt_budget(exc)
        raise AssertionError(f"abandoned a call for no reason: {why}")  # pragma: no cover

    def _provider_failed(self, ref, exc: BaseException | None):
        if isinstance(exc, ProviderError):
            error = exc.to_error()
            error["code"] = "provider_error"
        elif exc is None:
            error = {"code": "provider_error", "message": "the provider did not return a response"}
        else:
            error = {"code": "provider_error", "message": f"{type(exc).__name__}: {exc}"}
        self._recorder.step_ended(ref, "error", error=error)
        if isinstance(exc, RecordingDiverged):
            step = self._recorder.step_started(
                "error",
                "recording_diverged",
                input={"index": exc.index, "reason": exc.reason},
            )
            self._recorder.step_ended(step, "error", error=error)
        self._halt(FAILED, error)

    def record_agent_error(self, exc: Exception) -> dict:
        """Record the exception that ended the agent as an error step; return the run's error."""
        error = {
            "code": "agent_error",
            "message": str(exc) or type(exc).__name__,
            "type": type(exc).__name__,
        }
        ref = self._recorder.step_started("error", type(exc).__name__)
        self._recorder.step_ended(
            ref, "error", error=error, attributes={"traceback": format_traceback(exc)}
        )
        return error

    # Waiting.

    def _wait(self, call: Call, end: float | None) -> str:
        """Wait for `call` in slices; "done", or why we stopped waiting: "cancel", "deadline"
        (the run's wall clock) or "timeout" (the clock reached `end`)."""
        while True:
            slice_s = min(POLL_S, max(0.0, self._budget.deadline_remaining()))
            if end is not None:
                slice_s = min(slice_s, max(0.0, end - self._clock()))
            if call.wait(slice_s):
                return "done"
            if self._recorder.cancel_requested():
                return "cancel"
            if self._budget.deadline_remaining() <= 0:
                return "deadline"
            if end is not None and self._clock() >= end:
                return "timeout"

    # Plumbing.

    def _resolve_tool(self, name: str, args) -> tuple[Tool | None, dict | None]:
        allowed = self._spec.tools
        if allowed and name not in allowed:
            return None, unknown_tool(name, f"tool {name!r} is not available to this agent")
        try:
            tool_ = get_tool(name)
        except UnknownToolError:
            return None, unknown_tool(name)
        problems = tool_.validate(args)
        if problems:
            return None, tool_error(name, "invalid arguments: " + "; ".join(problems))
        return tool_, None

    def _tool_specs(self, tools) -> list[dict]:
        specs = []
        for item in tools or []:
            if isinstance(item, str):
                if self._spec.tools and item not in self._spec.tools:
                    raise ValueError(f"tool {item!r} is not available to this agent")
                specs.append(get_tool(item).spec())
            else:
                specs.append(json_value(item, "tools"))
        return specs

    def _usage_changed(self) -> None:
        self._budget.usage.wall_ms = int(self._budget.elapsed() * 1000)
        self._recorder.usage_changed(self._budget.usage.copy())


def _repeatable(name: str) -> bool:
    try:
        return get_tool(name).repeatable
    except UnknownToolError:
        return False
