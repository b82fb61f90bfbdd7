"""Replays the model responses of an earlier run, in order, for re-execution in `recorded_model`
mode. Tools still run live, so when a tool now answers differently the conversation drifts from
the recording; that is detected here and raised, never papered over."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal

from .base import ModelResponse, ProviderError, hidden_input_tokens


class RecordingDiverged(ProviderError):
    """The run asked for something the recording cannot answer: call `index` (0-based) sent other
    messages than recorded, or the recording ran out. `reason` says how, for the divergence step."""

    def __init__(self, index: int, reason: str):
        super().__init__(
            "provider_error", f"replay diverged at model call {index + 1}: {reason}", False
        )
        self.index = index
        self.reason = reason

    def to_error(self) -> dict:
        error = super().to_error()
        error["divergence"] = {"index": self.index, "reason": self.reason}
        return error


class RecordedProvider:
    """Serves `recording`, a list of (request, response) pairs from an earlier run, one per call.

    A request is the recorded model-call input (a dict with "messages") or the messages list
    itself; a response is a `ModelResponse` or its `to_dict()`. Each call's messages must equal
    the recorded ones after JSON normalisation; pass `normalize` (e.g. the secret masker the
    recording went through) to apply to the live messages before comparing. A recorded answer
    longer than this run's `max_tokens` also counts as a divergence.
    """

    def __init__(
        self,
        recording: Sequence,
        *,
        normalize: Callable[[list[dict]], list[dict]] | None = None,
    ):
        self.recording = [(_messages_of(req), _response_of(resp)) for req, resp in recording]
        self.normalize = normalize
        self.calls = 0

    def complete(
        self,
        *,
        model: str,
        messages: list[dict],
        tools: list[dict] | None = None,
        max_tokens: int | None = None,
        params: dict | None = None,
        deadline: float | None = None,
    ) -> ModelResponse:
        index = self.calls
        self.calls += 1
        if index >= len(self.recording):
            raise RecordingDiverged(
                index, f"the recording has only {len(self.recording)} model calls"
            )
        recorded_messages, response = self.recording[index]
        live = _plain(self.normalize(messages) if self.normalize else messages)
        if recorded_messages is not None:
            difference = _first_difference(_plain(recorded_messages), live)
            if difference:
                raise RecordingDiverged(index, difference)
        if max_tokens is not None and response.output_tokens > max_tokens:
            raise RecordingDiverged(
                index,
                f"the recorded answer used {response.output_tokens} output tokens; "
                f"this run allows {max_tokens}",
            )
        served = ModelResponse.from_dict(response.to_dict())
        served.raw = {**served.raw, "recorded_index": index}
        return served


def _messages_of(request):
    if isinstance(request, dict):
        return request.get("messages")
    return request


def _response_of(response) -> ModelResponse:
    return response if isinstance(response, ModelResponse) else ModelResponse.from_dict(response)


def _plain(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _first_difference(recorded: list, live: list) -> str | None:
    for i, (old, new) in enumerate(zip(recorded, live, strict=False)):
        if old == new:
            continue
        keys = (
            sorted(set(old) | set(new)) if isinstance(old, dict) and isinstance(new, dict) else []
        )
        for key in keys:
            if old.get(key) != new.get(key):
                return (
                    f"message {i + 1} ({new.get('role', '?')}) {key} was "
                    f"{_short(old.get(key))}, now {_short(new.get(key))}"
                )
        return f"message {i + 1} differs"
    if len(recorded) != len(live):
        return f"the recording sent {len(recorded)} messages, this run sends {len(live)}"
    return None


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ReplayProvider:
    """`recorded_model` re-execution: serves the recording while the run follows it, at no cost.

    When the run asks for something the recording cannot answer, `on_divergence` decides:
    "stop" raises RecordingDiverged (the run ends provider_error with a divergence step);
    "continue" switches to the live provider from `live_factory()` for this and every later call
    and marks the first live answer with raw["divergence"] = {"index", "reason"}, which the
    runner records as a step.
    """

    def __init__(
        self,
        recorded: RecordedProvider,
        live_factory: Callable[[], object],
        *,
        on_divergence: str = "stop",
    ):
        if on_divergence not in ("stop", "continue"):
            raise ValueError("on_divergence must be 'stop' or 'continue'")
        self.recorded = recorded
        self.live_factory = live_factory
        self.on_divergence = on_divergence
        self.live = None  # the live provider, once the run has left the recording
        self._built = None

    def hidden_input_tokens(self, tools) -> int:
        """The live provider's, when a call may reach it (a served answer costs nothing)."""
        if self.live is None and self.on_divergence == "stop":
            return 0
        try:
            live = self._live_provider()
        except Exception:
            return 0  # it fails again, and is reported, when a call needs it
        return hidden_input_tokens(live, tools)

    def _live_provider(self):
        if self._built is None:
            self._built = self.live_factory()
        return self._built

    def complete(self, **kwargs) -> ModelResponse:
        if self.live is not None:
            return self.live.complete(**kwargs)
        try:
            served = self.recorded.complete(**kwargs)
        except RecordingDiverged as diverged:
            if self.on_divergence == "stop":
                raise
            self.live = self._live_provider()
            response = self.live.complete(**kwargs)
            response.raw = {
                **response.raw,
                "divergence": {"index": diverged.index, "reason": diverged.reason},
            }
            return response
        # The model was not called: a served answer costs nothing.
        served.cost_usd = Decimal("0")
        return served
