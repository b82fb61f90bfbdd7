"""Re-execution of a finished run (DESIGN §8): a new run of the same agent and input, linked by
`replay_of`, either `live` or `recorded_model` (the original's model answers served in order
while tools run live; `runs.worker` sets that provider up)."""

from ..agents import get_agent
from ..errors import Conflict, InvalidInput
from ..models import ReplayMode, Run, RunSource
from .runs import run_create

DIVERGENCE_ACTIONS = ("stop", "continue")


def run_replay(
    *,
    original: Run,
    mode: str,
    caps: dict | None = None,
    model: str = "",
    on_divergence: str = "stop",
    may_raise_caps: bool = False,
    created_by=None,
    api_key=None,
) -> Run:
    """Queue a re-execution of `original`. Caps resolve like a new run's (current policy, then
    `caps`); `model` replaces the agent's default model. Raises Conflict (`not_replayable`) for
    a run whose agent is not registered here (an external run), InvalidInput for a bad mode."""
    if mode not in ReplayMode.values:
        raise InvalidInput(
            f"mode must be one of {', '.join(ReplayMode.values)}", code="invalid_mode"
        )
    if on_divergence not in DIVERGENCE_ACTIONS:
        raise InvalidInput("on_divergence must be 'stop' or 'continue'")
    reason = not_replayable_reason(original)
    if reason:
        raise Conflict(reason, code="not_replayable")
    replay = {"mode": mode, "on_divergence": on_divergence}
    if model:
        replay["model"] = model[:200]
    return run_create(
        agent=original.agent,
        input=original.input,
        caps=caps,
        may_raise_caps=may_raise_caps,
        user_ref=original.user_ref,
        session_ref=original.session_ref,
        tags=original.tags,
        metadata={**(original.metadata or {}), "replay": replay},
        created_by=created_by,
        api_key=api_key,
        replay_of=original,
        replay_mode=mode,
    )


def not_replayable_reason(run: Run) -> str:
    """Why `run` cannot be re-executed here ("" when it can)."""
    if run.source == RunSource.EXTERNAL:
        return (
            "this run was reported by an agent that runs elsewhere; it cannot be re-executed here"
        )
    if get_agent(run.agent) is None:
        return f"no agent named {run.agent!r} is registered here"
    if not run.is_finished:
        return "the run has not finished yet"
    return ""
