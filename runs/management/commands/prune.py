import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runs.services.retention import BATCH_STEPS, runs_prune

_AGE = re.compile(r"^\s*(\d+)\s*([dh]?)\s*$")


def parse_age(text: str) -> timedelta:
    """`90d` or `90` → 90 days, `36h` → 36 hours; anything else (or zero) raises ValueError."""
    match = _AGE.match(text)
    if not match or int(match[1]) <= 0:
        raise ValueError(f"{text!r} is not an age: use days like 90d (or hours like 36h)")
    amount = int(match[1])
    return timedelta(hours=amount) if match[2] == "h" else timedelta(days=amount)


class Command(BaseCommand):
    help = (
        "Delete finished runs older than a limit, with their steps, in short transactions. "
        "Queued, running and waiting runs are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            help="e.g. 90d (days) or 36h (hours); default: AGENTOPS_RETENTION_DAYS",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would go, delete nothing"
        )
        parser.add_argument(
            "--batch-steps",
            type=int,
            default=BATCH_STEPS,
            help=f"steps deleted per transaction (default {BATCH_STEPS})",
        )

    def handle(self, *args, older_than, dry_run, batch_steps, **options):
        if older_than is None:
            days = settings.AGENTOPS_RETENTION_DAYS
            if not days:
                raise CommandError(
                    "retention is off: pass --older-than (e.g. 90d) or set AGENTOPS_RETENTION_DAYS"
                )
            age = timedelta(days=days)
        else:
            try:
                age = parse_age(older_than)
            except ValueError as exc:
                raise CommandError(f"--older-than {exc}") from None
        if batch_steps < 1:
            raise CommandError("--batch-steps must be at least 1")
        report = runs_prune(older_than=age, dry_run=dry_run, batch_steps=batch_steps)
        self.stdout.write(report.summary())
