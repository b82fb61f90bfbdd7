"""Asking a person, in the database: the engine's `Approvals` port for a run executed here
(`DbApprovals`), a person's decision (`approval_decide`), and closing what a run left waiting
when it ends without its worker.

A question is an `Approval` row, open while `closed_at` is empty. The worker's run writes it and
sets the run `awaiting_approval`; a person's decision fills in `decision` (once: a conditional
UPDATE, so two people answering at once cannot both win); the waiting run reads it, then closes
the row and runs again (or ends). Between its looks the waiting run holds no database
connection. Every decision a person makes is also kept in the caps audit trail.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from ..engine.approvals import (
    CANCELLED,
    DECISIONS,
    EXTEND,
    LOST,
    TIMEOUT,
    ApprovalPolicy,
    Decision,
    check_extension,
)
from ..engine.budget import COUNTERS
from ..engine.caps import BY_NAME, CapError, CapRaiseNotAllowed, Caps
from ..engine.webhooks import RUN_AWAITING_APPROVAL
from ..errors import Conflict, Forbidden, InvalidInput
from ..models import Approval, CapPolicyChange, Run, RunStatus
from .events import masked
from .webhooks import notify_run

AUDIT_SCOPE = "approvals"  # people's decisions, in the caps audit trail


def drop_connection() -> None:
    """Close this thread's database connection (outside a transaction): a run waiting for a
    person may wait for many minutes, and must not hold a connection all that time."""
    if not connection.in_atomic_block:
        connection.close()


class DbApprovals:
    """The engine's Approvals port for one run executed here (see the module doc)."""

    def __init__(self, *, run_id):
        self.run_id = run_id

    def ask(self, *, kind: str, subject: str, request: dict) -> int:
        with transaction.atomic():
            approval = Approval.objects.create(
                run_id=self.run_id, kind=kind, subject=subject[:200], request=masked(request)
            )
            # The counters as the question found them (the run writes them only now and then).
            usage = {k: v for k, v in (request.get("usage") or {}).items() if k in COUNTERS}
            waiting = Run.objects.filter(id=self.run_id, status=RunStatus.RUNNING).update(
                status=RunStatus.AWAITING_APPROVAL, **usage
            )
            if waiting:
                detail = {"kind": kind, "subject": subject[:200]}
                notify_run(
                    RUN_AWAITING_APPROVAL, self.run_id, detail=detail, occurrence=str(approval.id)
                )
        drop_connection()
        return approval.id

    def answer(self, ref: int) -> Decision | None:
        row = Approval.objects.filter(id=ref).values("decision", "actor", "caps").first()
        drop_connection()
        if row is None:  # the run was deleted under us: nobody will answer
            return Decision(LOST, by="deleted")
        if not row["decision"]:
            return None
        return Decision(row["decision"], by=row["actor"], caps=row["caps"] or {})

    def close(self, ref: int, decision: Decision) -> Decision:
        now = timezone.now()
        with transaction.atomic():
            if decision.decision in (TIMEOUT, CANCELLED, LOST):
                # The run's own ending of the wait stands only if nobody answered first.
                Approval.objects.filter(id=ref, decision="").update(
                    decision=decision.decision, actor=decision.by, decided_at=now
                )
            Approval.objects.filter(id=ref).update(closed_at=now)
            row = Approval.objects.filter(id=ref).values("decision", "actor", "caps").first()
            Run.objects.filter(id=self.run_id, status=RunStatus.AWAITING_APPROVAL).update(
                status=RunStatus.RUNNING
            )
        drop_connection()
        if row is None:
            return decision
        return Decision(row["decision"], by=row["actor"], caps=row["caps"] or {})


def approvals_close_run(*, run_id, decision: str = LOST, actor: str = "", now=None) -> int:
    """Close whatever `run_id` still waits on (its worker was lost, or it was retaken): an
    unanswered question gets `decision`. Call inside the transaction that ends the run."""
    now = now or timezone.now()
    Approval.objects.filter(run_id=run_id, closed_at__isnull=True, decision="").update(
        decision=decision, actor=actor, decided_at=now
    )
    return Approval.objects.filter(run_id=run_id, closed_at__isnull=True).update(closed_at=now)


def approval_decide(
    *, run: Run, decision, caps=None, decided_by=None, actor: str = "", now=None
) -> Approval:
    """A person's answer to what `run` waits on: `extend` (with `caps`, new values of askable
    caps, at most the ceilings frozen on the run) or `stop` for a cap; `approve` or `deny` for
    a tool. An extension also raises the caps frozen on the run.

    Raises Conflict (`not_awaiting_approval`) when the run waits on nothing (or someone
    answered first), InvalidInput (`invalid_decision`, `invalid_caps`) for a decision or values
    that do not fit the question, Forbidden (`extension_above_ceiling`) above a ceiling.
    """
    approval = Approval.objects.filter(run=run, closed_at__isnull=True, decision="").first()
    if approval is None or run.status != RunStatus.AWAITING_APPROVAL:
        raise Conflict(
            f"run {run.id} is not awaiting approval (it is {run.status})",
            code="not_awaiting_approval",
        )
    allowed = DECISIONS[approval.kind]
    if decision not in allowed:
        raise InvalidInput(
            f"the run waits on the {approval.kind} {approval.subject}: answer "
            + " or ".join(allowed),
            code="invalid_decision",
        )
    extension = {}
    if decision == EXTEND:
        try:
            values = check_extension(
                ApprovalPolicy.from_dict(run.approval_policy),
                Caps.from_dict(run.caps),
                approval.subject,
                caps,
            )
        except CapRaiseNotAllowed as exc:
            raise Forbidden(
                str(exc),
                code="extension_above_ceiling",
                details={"cap": exc.field, "reason": exc.message},
            ) from None
        except CapError as exc:
            raise InvalidInput(
                str(exc), code="invalid_caps", details={"cap": exc.field, "reason": exc.message}
            ) from None
        extension = {name: BY_NAME[name].to_json(value) for name, value in values.items()}
    elif caps:
        raise InvalidInput("caps go with an extend decision only", code="invalid_caps")
    if not actor and decided_by is not None:
        actor = f"user:{decided_by.get_username()}"
    now = now or timezone.now()
    with transaction.atomic():
        answered = Approval.objects.filter(id=approval.id, decision="").update(
            decision=decision,
            caps=extension,
            decided_by=decided_by,
            actor=actor[:200],
            decided_at=now,
        )
        if not answered:
            raise Conflict("someone answered this question just now", code="not_awaiting_approval")
        if extension:
            frozen = Run.objects.select_for_update().values_list("caps", flat=True).get(id=run.id)
            Run.objects.filter(id=run.id).update(caps={**frozen, **extension})
        CapPolicyChange.objects.create(
            scope=AUDIT_SCOPE,
            changed_at=now,
            changed_by=decided_by,
            actor=actor[:200],
            before={"run": str(run.id), "kind": approval.kind, "subject": approval.subject},
            after={"run": str(run.id), "decision": decision, "caps": extension},
        )
    approval.refresh_from_db()
    return approval
