"""The domain's tables. Behaviour lives in services (writes) and selectors (reads), not here."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..engine.ids import uuid7


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    CANCELLED = "cancelled"
    LOST = "lost"


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.BUDGET_EXCEEDED,
        RunStatus.CANCELLED,
        RunStatus.LOST,
    }
)


# A run a worker is executing: running, or holding a call for a person.
ACTIVE_STATUSES = (RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL)


class RunSource(models.TextChoices):
    INTERNAL = "internal"
    EXTERNAL = "external"


class ReplayMode(models.TextChoices):
    LIVE = "live"
    RECORDED_MODEL = "recorded_model"


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agent = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    # {"code": ..., "message": ..., ...}; error_code and cap_hit repeat two of its keys as columns
    # so the run list can filter on them through an index.
    error = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True, default="")
    cap_hit = models.CharField(max_length=40, blank=True, default="")
    caps = models.JSONField(default=dict, blank=True)
    # What the run does at a cap and which tools wait for a person (engine.approvals), frozen
    # on the run with its caps.
    approval_policy = models.JSONField(default=dict, blank=True)

    tool_calls = models.PositiveIntegerField(default=0)
    model_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))
    wall_ms = models.PositiveBigIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The outbox (services.runs): when the broker last took this run's message, and how often.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatches = models.PositiveIntegerField(default=0)

    user_ref = models.CharField(max_length=200, blank=True, default="")
    session_ref = models.CharField(max_length=200, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=RunSource.choices, default=RunSource.INTERNAL)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    replay_mode = models.CharField(max_length=20, choices=ReplayMode.choices, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The API key that started the run (or sent it, for an ingested run): key-scoped spend windows.
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    worker = models.CharField(max_length=200, blank=True, default="")
    attempt = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="run_created"),
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            models.Index(fields=["agent", "-created_at"], name="run_agent_created"),
            models.Index(fields=["user_ref", "-created_at"], name="run_user_created"),
            models.Index(fields=["session_ref", "-created_at"], name="run_session_created"),
            models.Index(fields=["error_code", "-created_at"], name="run_error_created"),
            models.Index(fields=["cap_hit", "-created_at"], name="run_cap_created"),
            # The reaper's query (active runs, then their heartbeat's age) and the overview's count
            # of runs waiting for a person. Not on `heartbeat_at`: a running run's heartbeat and
            # counters are written every second or so, and an UPDATE that changes no indexed
            # column stays on its page (HOT) instead of adding an entry to every index.
            models.Index(
                fields=["status"],
                name="run_active",
                condition=Q(status__in=["running", "awaiting_approval"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="run_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(source__in=RunSource.values), name="run_source_valid"
            ),
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="run_cost_nonnegative"),
        ]

    def __str__(self):
        return f"{self.agent} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def no_heartbeat_seconds(self) -> int | None:
        """For a run executing here whose worker has gone quiet (no heartbeat for a few beats):
        whole seconds since its last heartbeat; else None. Shown at once, before the reaper ends
        the run `lost`."""
        if self.status != RunStatus.RUNNING or self.source != RunSource.INTERNAL:
            return None
        if self.heartbeat_at is None:
            return None
        silent = (timezone.now() - self.heartbeat_at).total_seconds()
        return int(silent) if silent >= settings.AGENTOPS_HEARTBEAT_SILENT_SECONDS else None


class EventKind(models.TextChoices):
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    DECISION = "decision"
    LOG = "log"
    ERROR = "error"
    LIFECYCLE = "lifecycle"


class EventStatus(models.TextChoices):
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class Event(models.Model):
    """One step of a run. Written when it starts, completed when it ends."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No index of its own: the unique (run, seq) index starts with it. Every index costs each of
    # the many step writes an entry.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    # No database constraint: an external agent may send a child before its parent. No index:
    # children are only ever looked up within their run.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    name = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=20, choices=EventStatus.choices, default=EventStatus.OK)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="event_run_seq_unique"),
            models.CheckConstraint(condition=Q(kind__in=EventKind.values), name="event_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=EventStatus.values), name="event_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.run_id}#{self.seq} {self.kind} {self.name}"

    @property
    def duration_ms(self) -> int | None:
        if self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds() * 1000)


GLOBAL_SCOPE = "global"


class CapPolicy(models.Model):
    """Limits for one scope: `global` (every required cap set) or an agent name (a cap left out
    inherits the global value). `values` maps cap names of the cap table (runs.engine.caps) to
    their values as the table writes them (USD as strings); a cap absent is empty."""

    scope = models.CharField(max_length=100, unique=True)
    values = models.JSONField(default=dict, blank=True)
    # {"tool_name": seconds}: per-tool timeouts that win over the tool timeout cap.
    tool_timeouts = models.JSONField(default=dict, blank=True)
    # on_cap, approval_timeout_seconds, max_extension {cap: ceiling}, requires_approval [tools]
    # (engine.approvals); a field absent is empty (an agent inherits it).
    approvals = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "cap policies"

    def __str__(self):
        return f"caps: {self.scope}"


class CapPolicyChange(models.Model):
    """The audit trail of CapPolicy: who changed which scope, when, from what to what."""

    scope = models.CharField(max_length=100)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=200, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-changed_at"]
        indexes = [models.Index(fields=["scope", "-changed_at"], name="capchange_scope_time")]

    def __str__(self):
        return f"{self.scope} @ {self.changed_at:%Y-%m-%d %H:%M}"


class ModelPrice(models.Model):
    """USD per million tokens for a model, in effect from `effective_from` until retired."""

    model = models.CharField(max_length=200)
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=4)
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=4)
    effective_from = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"], name="modelprice_model_from_unique"
            ),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0) & Q(output_per_mtok__gte=0),
                name="modelprice_nonnegative",
            ),
        ]

    def __str__(self):
        return f"{self.model}: ${self.input_per_mtok}/${self.output_per_mtok} per 1M"


class ApiScope(models.TextChoices):
    INGEST = "ingest"
    RUNS_WRITE = "runs:write"
    RUNS_READ = "runs:read"
    ADMIN = "admin"


class ApiKey(models.Model):
    """An API key. Only a SHA-256 of the secret is stored; the secret is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to tell it.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class WindowPeriod(models.TextChoices):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class SpendWindow(models.Model):
    """A spend limit across runs: `limit_usd` per calendar UTC `period` for the runs of a
    `scope` ("global", "agent:NAME", "user:REF", "key:PREFIX"; see runs.engine.windows)."""

    scope = models.CharField(max_length=210)
    period = models.CharField(max_length=10, choices=WindowPeriod.choices)
    limit_usd = models.DecimalField(max_digits=10, decimal_places=4)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["scope", "period"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "period"], name="window_scope_period_unique"),
            models.CheckConstraint(condition=Q(limit_usd__gte=0), name="window_limit_nonnegative"),
            models.CheckConstraint(
                condition=Q(period__in=WindowPeriod.values), name="window_period_valid"
            ),
        ]

    def __str__(self):
        return f"{self.scope}: ${self.limit_usd} per {self.period}"


class SpendWindowPeriod(models.Model):
    """One window's account for one period: what was spent, what calls in flight reserved, and
    how many runs or calls it refused. spent + reserved never passes the window's limit for
    runs executed here (ingested runs, which cannot be stopped, only add to `spent`). Amounts
    are whole micro-dollars, so the database adds and compares them exactly on any backend."""

    window = models.ForeignKey(SpendWindow, on_delete=models.CASCADE, related_name="periods")
    starts_at = models.DateTimeField()
    spent_micros = models.BigIntegerField(default=0)
    reserved_micros = models.BigIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    # When this period first reached 80 % of the limit, and when it was first exhausted (spent to
    # the limit, or a run or call refused): each is told to webhooks once per period.
    warned_at = models.DateTimeField(null=True, blank=True)
    exhausted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["window", "starts_at"], name="window_period_unique"),
            models.CheckConstraint(
                condition=Q(spent_micros__gte=0), name="window_spent_nonnegative"
            ),
            models.CheckConstraint(
                condition=Q(reserved_micros__gte=0), name="window_reserved_nonnegative"
            ),
        ]

    def __str__(self):
        return f"{self.window} from {self.starts_at:%Y-%m-%d %H:%M}"


class SpendReservation(models.Model):
    """What a run's model call in flight holds of a window's period, released when the call
    ends (or by the reaper, when the run's worker died)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    period = models.ForeignKey(SpendWindowPeriod, on_delete=models.CASCADE, related_name="+")
    micros = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.run_id}: {self.micros} micro-USD"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` (or a page form's one-time token) and the run it created, so
    a retry of the same request returns that run instead of starting another. Kept 24 h; a
    `pending` row is a request under way (abandoned after ten seconds)."""

    owner = models.CharField(max_length=100)  # "key:<api key id>" or "user:<user id>"
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of the operation and its body
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, default="pending")  # pending | done
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key} ({self.state})"


# Tables of their own domains, defined beside this module.
from .approvals import Approval, ApprovalKind  # noqa: E402, F401
from .rollups import RunHour, RunHourChange, RunHourDone  # noqa: E402, F401
from .webhooks import DeliveryStatus, Webhook, WebhookDelivery  # noqa: E402, F401
