"""Executes one queued run inside a worker: claim it, run the agent through the runner with a
database-backed recorder, record the outcome. Called by the `runs.execute` task."""

import logging
import threading
import time
from decimal import Decimal

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from . import selectors, services
from .agents import AgentSpec, get_agent
from .db import release_connection
from .heartbeat import heartbeat
from .ids import uuid7
from .limits import Caps, Usage
from .models import Event, Run, RunStatus
from .providers import get_provider
from .replay import spec_and_provider_for
from .runner import execute

log = logging.getLogger(__name__)


class DbRecorder:
    """The runner's Recorder, writing through `services.events_record` (the one write path).

    A step that ends quickly is written once, complete. A step still running when the runner next
    checks in (it does every 0.2 s while it waits) is written then with status `running`, and
    rewritten whole when it ends: a hanging call is visible while it hangs, and a fast one costs
    one write instead of two. Cancel requests arrive through the heartbeat thread.
    """

    # Counters on the run row are for people watching; the budget itself is enforced in memory.
    # Writing them at most this often (and at the end) keeps a step to one or two writes.
    USAGE_WRITE_INTERVAL = 0.5

    def __init__(self, run: Run, cancelled: threading.Event):
        self.run_id = run.id
        self._cancelled = cancelled
        last = Event.objects.filter(run_id=run.id).aggregate(m=Max("seq"))["m"]
        self._next_seq = 0 if last is None else last + 1
        self._open: dict = {}  # step id -> its row
        self._unwritten: dict = {}  # started steps not yet in the table
        self._usage_written = 0.0

    def step_started(self, kind, name, *, input=None, model="", parent=None, attributes=None):
        row = {
            "id": uuid7(),
            "run_id": self.run_id,
            "seq": self._next_seq,
            "parent_id": parent,
            "kind": kind,
            "name": (name or "")[:200],
            "status": "running",
            "started_at": timezone.now(),
            "input": input,
            "model": (model or "")[:200],
            "attributes": dict(attributes or {}),
        }
        self._next_seq += 1
        self._open[row["id"]] = row
        self._unwritten[row["id"]] = row
        return row["id"]

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
        row = self._open.pop(ref)
        self._unwritten.pop(ref, None)
        row.update(
            status=status,
            ended_at=timezone.now(),
            output=output,
            error=error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=Decimal(cost_usd) if cost_usd is not None else None,
        )
        if attributes:
            row["attributes"] = {**row["attributes"], **attributes}
        self._write([row])

    def usage_changed(self, usage: Usage) -> None:
        now = time.monotonic()
        if now - self._usage_written >= self.USAGE_WRITE_INTERVAL:
            services.run_usage_update(run_id=self.run_id, usage=usage)
            release_connection()
            self._usage_written = now

    def cancel_requested(self) -> bool:
        # Called before every step and every 0.2 s while a call is awaited: steps still running
        # by now are written, so what hangs is visible.
        if self._unwritten:
            rows = list(self._unwritten.values())
            self._unwritten.clear()
            self._write([dict(row) for row in rows])
        return self._cancelled.is_set()

    def _write(self, rows: list[dict]) -> None:
        services.events_record(events=rows)
        release_connection()


class PriceCache:
    """price_for(model) for one run: the price in effect when each call is made, read from the
    database only at a model's first call and when a price change comes into effect."""

    def __init__(self):
        self._prices: dict = {}  # model -> (price, until)

    def __call__(self, model: str):
        cached = self._prices.get(model)
        if cached is None or (cached[1] is not None and timezone.now() >= cached[1]):
            cached = self._prices[model] = selectors.price_in_effect(model)
            release_connection()
        return cached[0]


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


def run_execute(*, run_id, worker: str) -> None:
    """Claim and execute one run; a no-op when the run is gone, finished or held elsewhere."""
    agent_name = Run.objects.filter(id=run_id).values_list("agent", flat=True).first()
    if agent_name is None:
        return
    spec = get_agent(agent_name)
    run = services.run_claim(
        run_id=run_id, worker=worker, safe_to_retry=bool(spec and spec.safe_to_retry)
    )
    if run is None:
        return
    if spec is None:
        services.run_finish(
            run_id=run.id,
            status=RunStatus.FAILED,
            error={
                "code": "unknown_agent",
                "message": f"no agent named {agent_name!r} is registered on worker {worker}",
            },
        )
        return

    cancelled = heartbeat.watch(run.id)
    try:
        spec, factory = spec_and_provider_for(run, spec, provider_factory)
        recorder = DbRecorder(run, cancelled)
        outcome = execute(
            spec,
            run.input,
            Caps.from_dict(run.caps),
            recorder,
            price_for=PriceCache(),
            provider_factory=factory,
        )
        services.run_finish(
            run_id=run.id,
            status=outcome.status,
            output=outcome.output,
            error=outcome.error,
            usage=outcome.usage,
        )
    except Exception as exc:
        # The recording itself failed (database gone, a bug): end the run visibly, not silently.
        log.exception("run %s could not be recorded", run.id)
        services.run_finish(
            run_id=run.id,
            status=RunStatus.FAILED,
            error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"},
        )
    finally:
        heartbeat.unwatch(run.id)
        release_connection()
