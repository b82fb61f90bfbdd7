"""What a worker process does for a queued run (the `runs.execute` task): claim it, execute the
agent through the engine's runner with a database recorder, record the outcome; and the one
heartbeat thread per process that keeps its runs' liveness and carries cancel requests.

Recording goes through `services.recording` (steps and counters of all the process's runs written
in batches) into `services.events.events_record`, the one write path for steps.
"""

import logging
import threading
import time
from dataclasses import replace

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)

from .agents import AgentSpec, get_agent
from .engine.approvals import ApprovalPolicy
from .engine.caps import Caps
from .engine.runner import execute
from .models import ReplayMode, Run, RunStatus
from .providers import RecordedProvider, ReplayProvider, get_provider
from .selectors.prices import PriceCache
from .selectors.replay import recording_of
from .services.approvals import DbApprovals
from .services.events import masked
from .services.recording import DbRecorder, release_connection, step_writer
from .services.runs import (
    run_claim,
    run_claim_queued,
    run_finish,
    run_scopes,
    runs_heartbeat,
    runs_usage_update,
)
from .services.windows import DbSpendGuard

log = logging.getLogger(__name__)


def provider_factory(spec: AgentSpec):
    """The agent's provider, with the deployment's settings for providers that need them."""
    config = dict(spec.provider_config)
    if spec.provider == "openai":
        config.setdefault("base_url", settings.OPENAI_BASE_URL)
        config.setdefault("api_key", settings.OPENAI_API_KEY)
    elif spec.provider == "anthropic":
        config.setdefault("base_url", settings.ANTHROPIC_BASE_URL)
        config.setdefault("api_key", settings.ANTHROPIC_API_KEY)
    return get_provider(spec.provider, **config)


def spec_and_provider_for(run: Run, spec: AgentSpec, live_factory):
    """The agent spec (a re-execution's model override applied) and the provider factory to
    execute `run` with: for a `recorded_model` re-execution, the original's model answers in
    order, going live (or stopping) where the run leaves them."""
    options = (run.metadata or {}).get("replay") or {}
    if options.get("model"):
        spec = replace(spec, model=options["model"])
    if run.replay_mode != ReplayMode.RECORDED_MODEL or run.replay_of_id is None:
        return spec, live_factory
    recording = recording_of(run_id=run.replay_of_id)

    def factory(agent_spec):
        recorded = RecordedProvider(recording, normalize=masked)
        return ReplayProvider(
            recorded,
            lambda: live_factory(agent_spec),
            on_divergence=options.get("on_divergence", "stop"),
        )

    return spec, factory


def wait_for_connections(seconds: float) -> None:
    """Let this process wait up to `seconds` for a pooled PostgreSQL connection before failing
    (a worker's runs wait; a web request answers 503 sooner)."""
    db = connections[DEFAULT_DB_ALIAS]
    pool_options = db.settings_dict["OPTIONS"].get("pool")
    if db.vendor != "postgresql" or not isinstance(pool_options, dict):
        return
    pool_options["timeout"] = seconds
    pool = type(db)._connection_pools.get(db.alias)
    if pool is not None:  # made before this call: change it in place
        pool.timeout = seconds


def _claim(run_id, worker: str):
    """(agent name, spec, claimed run or None). A connection error is retried once on a new
    connection (a database restart closes the ones a worker holds); a second one is raised, and
    the run, still queued, is sent again by the outbox (services.runs.runs_redispatch)."""
    for attempt in (1, 2):
        try:
            run = run_claim_queued(run_id=run_id, worker=worker)  # the usual case: one statement
            if run is not None:
                return run.agent, get_agent(run.agent), run
            agent_name = Run.objects.filter(id=run_id).values_list("agent", flat=True).first()
            if agent_name is None:
                return None, None, None
            spec = get_agent(agent_name)
            safe = bool(spec and spec.safe_to_retry)
            return agent_name, spec, run_claim(run_id=run_id, worker=worker, safe_to_retry=safe)
        except (OperationalError, InterfaceError) as exc:
            if attempt == 2:
                raise
            log.warning("run %s: database connection failed before the claim, retrying: %s",
                        run_id, exc)  # fmt: skip
            connection.close()


def run_execute(*, run_id, worker: str, clock=time.monotonic, sleep=time.sleep) -> None:
    """Claim and execute one run; a no-op when the run is gone, finished or held elsewhere.
    `clock` and `sleep` are the run's (tests move them)."""
    agent_name, spec, run = _claim(run_id, worker)
    if run is None:
        return
    if spec is None:
        run_finish(
            run_id=run.id,
            status=RunStatus.FAILED,
            error={
                "code": "unknown_agent",
                "message": f"no agent named {agent_name!r} is registered on worker {worker}",
            },
        )
        return

    cancelled = heartbeat.watch(run.id)
    recorder = guard = None
    try:
        spec, factory = spec_and_provider_for(run, spec, provider_factory)
        recorder = DbRecorder(run, cancelled)
        guard = DbSpendGuard(run_id=run.id, scopes=run_scopes(run))
        release_connection()  # not held while the agent works: hundreds of runs share the pool
        outcome = execute(
            spec,
            run.input,
            Caps.from_dict(run.caps),
            recorder,
            price_for=PriceCache(on_read=release_connection),
            provider_factory=factory,
            spend_guard=guard,
            approvals=DbApprovals(run_id=run.id),
            approval_policy=ApprovalPolicy.from_dict(run.approval_policy),
            clock=clock,
            sleep=sleep,
        )
        recorder.flush(counters=False)  # every step is in the table before the run is finished
        finished = run_finish(
            run_id=run.id,
            status=outcome.status,
            output=outcome.output,
            error=outcome.error,
            usage=outcome.usage,
            holds=guard.reserved,
        )
        if not finished and outcome.usage is not None:  # ended meanwhile (cancelled, reaped)
            runs_usage_update({run.id: outcome.usage})
    except Exception as exc:
        # The recording itself failed (database gone, a bug): end the run visibly, not silently.
        log.exception("run %s could not be recorded", run.id)
        if recorder is not None:
            try:  # what was recorded before the failure is kept, if the database takes it
                recorder.flush()
            except Exception:
                log.exception("run %s: its last steps could not be written", run.id)
                recorder.discard()
        run_finish(
            run_id=run.id,
            status=RunStatus.FAILED,
            error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"},
        )
    finally:
        heartbeat.unwatch(run.id)
        release_connection()


class Heartbeat:
    """One thread per worker process for every run it executes. Every interval it stamps
    `heartbeat_at` in one UPDATE on those whose counters no batch wrote within the interval (a
    batch stamps the runs it writes), reads which of them were asked to cancel in one SELECT,
    then sets those runs' cancel events. A run's liveness therefore does not depend
    on what its agent code is doing, and a cancel reaches the runner within about an interval
    without the runner touching the database."""

    def __init__(self, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None

    def watch(self, run_id) -> threading.Event:
        """Start beating for `run_id`; the returned event is set when a cancel is requested."""
        cancelled = threading.Event()
        with self._lock:
            self._watched[str(run_id)] = cancelled
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="agentops-heartbeat", daemon=True
                )
                self._thread.start()
        return cancelled

    def unwatch(self, run_id) -> None:
        with self._lock:
            self._watched.pop(str(run_id), None)
        step_writer.forget(run_id)

    def beat_once(self) -> None:
        with self._lock:
            watched = dict(self._watched)
        if not watched:
            return
        ids = list(watched)
        # A run whose counters a batch wrote within the interval had its heartbeat then.
        stale = [run_id for run_id in ids if not step_writer.written_within(run_id, self.interval)]
        if stale:
            runs_heartbeat(stale)
        asked = Run.objects.filter(id__in=ids, cancel_requested_at__isnull=False).values_list(
            "id", flat=True
        )
        for run_id in asked:
            event = watched.get(str(run_id))
            if event is not None:
                event.set()

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            try:
                close_old_connections()
                self.beat_once()
                release_connection()
            except Exception:  # a database hiccup must not end the heartbeat thread
                log.exception("heartbeat failed; retrying")
                connection.close()


heartbeat = Heartbeat(interval=settings.AGENTOPS_HEARTBEAT_INTERVAL)
