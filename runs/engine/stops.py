"""How a run stops from inside the agent's code: a `Stop` raised through the agent (a
BaseException, so an agent's `except Exception` cannot swallow it), and `RecorderFailed` for a
failure of the recording itself, which is not the agent's business and is re-raised by the
runner. Plain Python."""

from __future__ import annotations

from .budget import Usage
from .recorder import Recorder

SUCCEEDED, FAILED, BUDGET_EXCEEDED, CANCELLED = (
    "succeeded",
    "failed",
    "budget_exceeded",
    "cancelled",
)


class Stop(BaseException):
    """Ends the run from inside a ctx call. A BaseException so an agent's `except Exception`
    cannot swallow it; if the agent swallows it anyway, the run still ends as this says."""

    def __init__(self, status: str, error: dict):
        super().__init__(error.get("message", status))
        self.status = status
        self.error = error


class RecorderFailed(BaseException):
    """The recorder (or price lookup) raised: not the agent's business; re-raised by execute."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


class GuardedRecorder:
    """A Recorder whose failures reach the runner as RecorderFailed, past the agent's code."""

    def __init__(self, recorder: Recorder):
        self._inner = recorder

    def step_started(self, kind: str, name: str, **fields):
        return guarded(self._inner.step_started, kind, name, **fields)

    def step_ended(self, ref, status: str, **fields) -> None:
        guarded(self._inner.step_ended, ref, status, **fields)

    def usage_changed(self, usage: Usage) -> None:
        guarded(self._inner.usage_changed, usage)

    def cancel_requested(self) -> bool:
        return guarded(self._inner.cancel_requested)


def guarded(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, any exception wrapped in RecorderFailed."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise RecorderFailed(exc) from exc
