"""Re-execution of a finished run (DESIGN §8): a new run of the same agent and input, linked by
`replay_of`, either `live` or `recorded_model` (the original's model answers served in order
while tools run live)."""

from dataclasses import replace

from .agents import AgentSpec, get_agent
from .errors import Conflict, InvalidInput
from .models import Event, EventKind, ReplayMode, Run, RunSource
from .providers import RecordedProvider, ReplayProvider

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
) -> Run:
    """Queue a re-execution of `original`. Caps resolve like a new run's (current policy, then
    `caps`); `model` replaces the agent's default model. Raises Conflict (`not_replayable`) for
    a run whose agent is not registered here (an external run), InvalidInput for a bad mode."""
    from .services import run_create  # services imports nothing from here; keep it one-way

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


def recording_of(run: Run) -> list[tuple[dict, dict]]:
    """The (request, response) of each completed model call of `run`, in order."""
    steps = Event.objects.filter(run=run, kind=EventKind.MODEL_CALL, status="ok").order_by("seq")
    return [(step.input or {}, step.output or {}) for step in steps.only("input", "output")]


def spec_and_provider_for(run: Run, spec: AgentSpec, live_factory):
    """The agent spec (model override applied) and the provider factory to execute `run` with."""
    options = (run.metadata or {}).get("replay") or {}
    if options.get("model"):
        spec = replace(spec, model=options["model"])
    if run.replay_mode != ReplayMode.RECORDED_MODEL or run.replay_of_id is None:
        return spec, live_factory
    from .services import masked

    recording = recording_of(Run(id=run.replay_of_id))

    def factory(agent_spec):
        recorded = RecordedProvider(recording, normalize=masked)
        return ReplayProvider(
            recorded,
            lambda: live_factory(agent_spec),
            on_divergence=options.get("on_divergence", "stop"),
        )

    return spec, factory
