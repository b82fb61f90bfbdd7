"""Reads of what runs wait on: the question a run holds open, how long it has waited for people
in all, and how many runs await approval now."""

from decimal import Decimal

from django.utils import timezone

from ..engine.approvals import ApprovalPolicy
from ..engine.caps import BY_NAME, USD
from ..models import Approval, Run, RunStatus


def approval_open(*, run: Run) -> Approval | None:
    """The question `run` waits on (None when it waits on nothing). One query, only for a run
    awaiting approval."""
    if run.status != RunStatus.AWAITING_APPROVAL:
        return None
    return Approval.objects.filter(run=run, closed_at__isnull=True).first()


def waited_seconds(*, run: Run, now=None) -> float:
    """Seconds `run` has spent awaiting people, the wait in progress included."""
    now = now or timezone.now()
    total = 0.0
    for asked, closed in Approval.objects.filter(run=run).values_list("asked_at", "closed_at"):
        total += ((closed or now) - asked).total_seconds()
    return total


def awaiting_count() -> int:
    """How many runs await approval now."""
    return Run.objects.filter(status=RunStatus.AWAITING_APPROVAL).count()


# The Waiting runs page lists at most this many, the longest-waiting first.
WAITING_SHOWN = 200


def waiting_rows(*, now=None) -> tuple[list[dict], int]:
    """(rows, how many runs await approval): for each open question of a waiting run, oldest
    first, what its page would show (`question_rows`), the run, and seconds waited and left.
    Two queries however many runs wait."""
    now = now or timezone.now()
    questions = (
        Approval.objects.filter(closed_at__isnull=True, run__status=RunStatus.AWAITING_APPROVAL)
        .select_related("run")
        .order_by("asked_at", "id")[:WAITING_SHOWN]
    )
    rows = []
    for approval in questions:
        row = question_rows(approval, approval.run)
        waited = max((now - approval.asked_at).total_seconds(), 0.0)
        rows.append({**row, "run": approval.run, "waited_s": waited,
                     "left_s": max(row["timeout_s"] - waited, 0.0)})  # fmt: skip
    return rows, awaiting_count()


def question_rows(approval: Approval, run: Run) -> dict:
    """What a waiting run's page shows of its question: the cap (its ceiling as people read
    it, None when it has none) or the tool, what the held call wants, and the timeout."""
    request = approval.request or {}
    cap = BY_NAME.get(approval.subject) if approval.kind == "cap" else None
    policy = ApprovalPolicy.from_dict(run.approval_policy)
    ceiling = policy.max_extension.get(cap.name) if cap else None
    return {
        "ceiling": cap.show(ceiling) if cap and ceiling is not None else None,
        "used": _shown(cap, request.get("used")),
        "limit": _shown(cap, request.get("limit")),
        "timeout_s": policy.timeout_s,
        "approval": approval,
        "cap": cap,
        "request": request,
        "usage": request.get("usage") or {},
        "spent": usd_exact((request.get("usage") or {}).get("cost_usd", "0")),
        "args": request.get("args"),
    }


def _shown(cap, value) -> str:
    if cap is None or value is None:
        return ""
    if cap.kind != USD:
        return cap.show(value)
    return usd_exact(value)


def usd_exact(value) -> str:
    """Dollars to the micro-dollar, as spent: "$0.002011", "$0.50"."""
    try:
        whole, _, frac = f"{Decimal(str(value)).normalize():f}".partition(".")
    except ArithmeticError:
        return str(value)
    return f"${whole}.{frac.ljust(2, '0')}"
