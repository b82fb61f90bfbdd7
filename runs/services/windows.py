"""Spend windows: admins define them; every model call of a run executed here holds its worst
case against each window covering the run until it ends; ingested runs add what they spent.

Exact across workers and hosts: a hold is one transaction of conditional UPDATEs, one per
covering window in id order, each `reserved += amount WHERE spent + reserved + amount <= limit`
on that window's account for the current period. The database checks the condition on the row it
locks (PostgreSQL re-reads a row another transaction changed meanwhile; SQLite writes one
transaction at a time), so two workers can never both take the last dollar; if any window has no
room, the transaction is undone and the call is refused. Amounts are whole micro-dollars.
A call that ends turns its hold into its real cost (`windows_settle`); a run that ends, or whose
worker died (the reaper), releases whatever it still holds (`windows_release_run`).
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from ..engine.caps import CapError, usd_text
from ..engine.policy import CapPolicyInvalid
from ..engine.webhooks import WINDOW_80
from ..engine.windows import (
    WindowRefused,
    from_micros,
    parse_limit,
    parse_period,
    parse_scope,
    period_end,
    period_start,
    scopes_of,
    to_micros,
)
from ..errors import AppError, Conflict, NotFound
from ..models import CapPolicyChange, SpendReservation, SpendWindow, SpendWindowPeriod
from .sql import any_of, instances, quoted, read_together
from .webhooks import notify_window, window_exhausted

AUDIT_SCOPE = "spend windows"  # their changes, in the caps audit trail


class SpendWindowExhausted(AppError):
    """A new run is covered by a window with nothing left this period (answered 429)."""

    status = 429
    code = "spend_window_exhausted"

    def __init__(self, refused: WindowRefused, now: datetime):
        super().__init__(refused.message, details=refused.to_error())
        self.headers = {"Retry-After": str(refused.retry_after(now))}


# Defining windows.


def window_create(*, scope, period, limit_usd, created_by=None, actor: str = "") -> SpendWindow:
    """A new window; CapPolicyInvalid naming each bad field, Conflict when the scope already has
    a window of that period. Recorded in the caps audit trail."""
    errors, values = {}, {}
    for field, parse, raw in (
        ("scope", parse_scope, scope),
        ("period", parse_period, period),
        ("limit_usd", parse_limit, limit_usd),
    ):
        try:
            values[field] = parse(raw)
        except CapError as exc:
            errors[field] = exc.message
    if errors:
        raise CapPolicyInvalid(errors)
    try:
        with transaction.atomic():
            window = SpendWindow.objects.create(created_by=created_by, **values)
            _record(None, window, created_by, actor)
    except IntegrityError:
        raise Conflict(
            f"{values['scope']} already has a window per {values['period']}; delete it first",
            code="window_exists",
        ) from None
    return window


def window_delete(*, window_id: int, changed_by=None, actor: str = "") -> None:
    with transaction.atomic():
        window = SpendWindow.objects.select_for_update().filter(id=window_id).first()
        if window is None:
            raise NotFound(f"no spend window {window_id}")
        _record(window, None, changed_by, actor)
        window.delete()


def _record(before, after, changed_by, actor: str) -> None:
    if not actor and changed_by is not None:
        actor = f"user:{changed_by.get_username()}"
    CapPolicyChange.objects.create(
        scope=AUDIT_SCOPE,
        changed_by=changed_by,
        actor=actor[:200],
        before=_window_json(before),
        after=_window_json(after),
    )


def _window_json(window: SpendWindow | None) -> dict | None:
    if window is None:
        return None
    return {
        "id": window.id,
        "scope": window.scope,
        "period": window.period,
        "limit_usd": usd_text(window.limit_usd),
    }


# Accounts.


def _account(window: SpendWindow, now: datetime) -> int:
    """The id of `window`'s account for the period holding `now`, created when missing."""
    starts = period_start(window.period, now)
    found = SpendWindowPeriod.objects.filter(window=window, starts_at=starts).values_list(
        "id", flat=True
    )
    for account_id in found:
        return account_id
    SpendWindowPeriod.objects.bulk_create(
        [SpendWindowPeriod(window=window, starts_at=starts)], ignore_conflicts=True
    )
    return SpendWindowPeriod.objects.get(window=window, starts_at=starts).id


def _refusal(window: SpendWindow, account_id: int, now: datetime) -> WindowRefused:
    spent, reserved = SpendWindowPeriod.objects.filter(id=account_id).values_list(
        "spent_micros", "reserved_micros"
    )[0]
    return WindowRefused(
        scope=window.scope,
        period=window.period,
        limit=window.limit_usd,
        spent=from_micros(spent),
        reserved=from_micros(reserved),
        resets_at=period_end(window.period, period_start(window.period, now)),
    )


def _count_refused(account_id: int) -> None:
    SpendWindowPeriod.objects.filter(id=account_id).update(refused=F("refused") + 1)
    window_exhausted(account_id=account_id)


def _tell_thresholds(accounts) -> None:
    """After spend was added to `accounts` ((id, spent micros, limit USD, warned, exhausted)):
    tell of each period that reached 80 % or its limit for the first time."""
    now = timezone.now()
    for account_id, spent, limit, warned_at, exhausted_at in accounts:
        limit_micros = to_micros(limit)
        if warned_at is None and spent * 5 >= limit_micros * 4:
            with transaction.atomic():
                if SpendWindowPeriod.objects.filter(id=account_id, warned_at__isnull=True).update(
                    warned_at=now
                ):
                    notify_window(WINDOW_80, account_id=account_id)
        if exhausted_at is None and spent >= limit_micros:
            window_exhausted(account_id=account_id, now=now)


def _account_rows(account_ids) -> list:
    return list(
        SpendWindowPeriod.objects.filter(id__in=account_ids).values_list(
            "id", "spent_micros", "window__limit_usd", "warned_at", "exhausted_at"
        )
    )


def windows_covering(scopes: list[str]) -> list[SpendWindow]:
    """The windows of these scopes, oldest first (on every ingest batch that costs anything:
    one statement without the ORM's query compiler)."""
    sql, params = windows_query(scopes)
    return windows_from(read_together([(sql, params)])[0])


_WINDOW_FIELDS = [f.name for f in SpendWindow._meta.concrete_fields]


def windows_query(scopes: list[str]) -> tuple[str, list]:
    """(sql, params) reading `windows_covering(scopes)`, to send with other statements
    (`sql.read_together`); `windows_from` makes the windows of its rows."""
    where, params = any_of(SpendWindow, "scope", scopes)
    columns = ", ".join(quoted(SpendWindow, name) for name in _WINDOW_FIELDS)
    return f"SELECT {columns} FROM {quoted(SpendWindow)} WHERE {where} ORDER BY id", params


def windows_from(rows: list[tuple]) -> list[SpendWindow]:
    return instances(SpendWindow, _WINDOW_FIELDS, rows)


def windows_check_room(*, agent: str, user_ref: str = "", key_prefix: str = "", now=None):
    """Before a run is queued: SpendWindowExhausted (429, Retry-After) when a window covering it
    has nothing left this period. The refusal is counted on that window."""
    now = now or timezone.now()
    for window in windows_covering(
        scopes_of(agent=agent, user_ref=user_ref, key_prefix=key_prefix)
    ):
        account_id = _account(window, now)
        spent, reserved = SpendWindowPeriod.objects.filter(id=account_id).values_list(
            "spent_micros", "reserved_micros"
        )[0]
        if spent + reserved >= to_micros(window.limit_usd):
            _count_refused(account_id)
            raise SpendWindowExhausted(_refusal(window, account_id, now), now)


def windows_reserve(
    *, run_id, windows: list[SpendWindow], amount: Decimal, now=None, accounts: dict | None = None
) -> list:
    """Hold `amount` against each of `windows` for run `run_id`, all or none. Returns the holds
    as (reservation id, account id, micros); raises WindowRefused (the window without room; its
    refusal is counted). `accounts` caches account ids by (window id, period start)."""
    now = now or timezone.now()
    micros = to_micros(amount)
    accounts = {} if accounts is None else accounts
    pairs = []
    for window in windows:
        key = (window.id, period_start(window.period, now))
        if key not in accounts:
            accounts[key] = _account(window, now)
        pairs.append((window, accounts[key]))
    if connection.vendor == "postgresql" and len(pairs) == 1:
        window, account_id = pairs[0]
        hold_id = _hold_in_one_statement(run_id, account_id, micros, window.limit_usd, now)
        if hold_id is not None:
            return [(hold_id, account_id, micros)]
        refused = pairs[0]
    else:
        holds, refused = _hold_in_a_transaction(run_id, pairs, micros)
        if refused is None:
            return holds
    _count_refused(refused[1])
    raise _refusal(refused[0], refused[1], now)


# On PostgreSQL a hold and its settling are each one statement, so an account's row lock (many
# runs share one account) is held only while the server runs it, never across a round trip. They
# commit without waiting for the disk (`synchronous_commit` off for that transaction alone):
# other workers see them at once, and a database crash could lose the last fraction of a second
# of holds and spend (never more than was spent), where waiting for the disk twice per model
# call would cost each call milliseconds.
_ASYNC = "async AS (SELECT set_config('synchronous_commit', 'off', true))"


def _hold_in_one_statement(run_id, account_id: int, micros: int, limit, now) -> int | None:
    accounts = connection.ops.quote_name(SpendWindowPeriod._meta.db_table)
    holds = connection.ops.quote_name(SpendReservation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {_ASYNC}, taken AS (UPDATE {accounts} "
            "SET reserved_micros = reserved_micros + %s "
            "WHERE id = %s AND spent_micros + reserved_micros + %s <= %s RETURNING id) "
            f"INSERT INTO {holds} (run_id, period_id, micros, created_at) "
            "SELECT %s, taken.id, %s, %s FROM taken, async RETURNING id",
            [micros, account_id, micros, to_micros(limit), run_id, micros, now],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _hold_in_a_transaction(run_id, pairs, micros: int):
    """Several windows (or SQLite): each account in window-id order, undone if one has no
    room. Returns (holds, None) or ([], the refusing (window, account id))."""
    refused = None
    with transaction.atomic():
        holds = []
        for window, account_id in pairs:
            room = to_micros(window.limit_usd) - micros
            taken = SpendWindowPeriod.objects.filter(
                id=account_id, spent_micros__lte=room - F("reserved_micros")
            ).update(reserved_micros=F("reserved_micros") + micros)
            if not taken:
                refused = (window, account_id)
                transaction.set_rollback(True)
                break
            holds.append(SpendReservation(run_id=run_id, period_id=account_id, micros=micros))
        else:
            created = SpendReservation.objects.bulk_create(holds)
            return [(r.id, r.period_id, r.micros) for r in created], None
    return [], refused


def windows_settle(*, holds: list[tuple[int, int, int]], cost: Decimal) -> None:
    """A call ended: its holds ((reservation id, account id, micros) as `windows_reserve` gave
    them) are released and `cost` counted as spent in each."""
    _release(holds, spent=to_micros(cost) if cost else 0)


def windows_release_run(*, run_id) -> int:
    """Release whatever run `run_id` still holds (its calls were abandoned or its worker died);
    nothing is counted as spent. Returns how many holds were released."""
    holds = SpendReservation.objects.filter(run_id=run_id).values_list("id", "period_id", "micros")
    return _release(list(holds), spent=0)


def _release(holds, *, spent: int) -> int:
    # Each hold is released by whoever deletes its row: a run's own settle and the reaper can
    # never both give the same hold back.
    if not holds:
        return 0
    if connection.vendor == "postgresql":
        accounts = _release_in_one_statement([hold_id for hold_id, _, _ in holds], spent)
        released = len(accounts)
    else:
        touched = []
        with transaction.atomic():
            for hold_id, account_id, micros in holds:
                if SpendReservation.objects.filter(id=hold_id).delete()[0]:
                    SpendWindowPeriod.objects.filter(id=account_id).update(
                        reserved_micros=F("reserved_micros") - micros,
                        spent_micros=F("spent_micros") + spent,
                    )
                    touched.append(account_id)
        released = len(touched)
        accounts = _account_rows(touched) if spent and touched else []
    if spent:
        _tell_thresholds(accounts)
    return released


def _release_in_one_statement(hold_ids: list[int], spent: int) -> list:
    """The accounts released from, as `_account_rows` gives them (read in the same statement,
    so telling of a threshold costs a call no extra round trip)."""
    accounts = connection.ops.quote_name(SpendWindowPeriod._meta.db_table)
    holds = connection.ops.quote_name(SpendReservation._meta.db_table)
    windows = connection.ops.quote_name(SpendWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {_ASYNC}, "
            f"gone AS (DELETE FROM {holds} WHERE id = ANY(%s) RETURNING period_id, micros) "
            f"UPDATE {accounts} AS a SET reserved_micros = a.reserved_micros - gone.micros, "
            f"spent_micros = a.spent_micros + %s FROM gone, async, {windows} AS w "
            "WHERE a.id = gone.period_id AND w.id = a.window_id "
            "RETURNING a.id, a.spent_micros, w.limit_usd, a.warned_at, a.exhausted_at",
            [hold_ids, spent],
        )
        return cursor.fetchall()


def spend_scopes(spends: list[tuple[list[str], Decimal]]) -> list[str]:
    """The scopes whose windows `windows_add_spend(spends=spends)` reads (none: it reads none)."""
    return sorted({s for scopes, cost in spends if cost for s in scopes})


def windows_add_spend(
    *, spends: list[tuple[list[str], Decimal]], windows: list | None = None, now=None
) -> None:
    """Count what ingested runs spent ([(their scopes, cost)]) in the windows covering them, this
    period. They cannot be stopped: this only fills the windows (and so refuses what comes next
    of runs executed here). A cost may be negative (a step sent again with a lower cost).
    `windows`: those covering `spend_scopes(spends)`, when already read."""
    spends = [(scopes, cost) for scopes, cost in spends if cost]
    if not spends:
        return
    now = now or timezone.now()
    if windows is None:
        windows = windows_covering(spend_scopes(spends))
    added = []
    for window in windows:
        micros = sum(_signed_micros(c) for scopes, c in spends if window.scope in scopes)
        if micros:
            account_id = _account(window, now)
            SpendWindowPeriod.objects.filter(id=account_id).update(
                spent_micros=Greatest(F("spent_micros") + micros, Value(0))
            )
            if micros > 0:
                added.append(account_id)
    if added:
        _tell_thresholds(_account_rows(added))


def _signed_micros(cost: Decimal) -> int:
    return to_micros(cost) if cost > 0 else -to_micros(-cost)


class DbSpendGuard:
    """The engine's SpendGuard for one run executed here: the windows covering the run are
    looked up at most every REFRESH_SECONDS (a window added mid-run applies from then). It
    keeps the thread's database connection: the recorder's next write, which follows within
    the runner's next check-in, gives it back."""

    REFRESH_SECONDS = 2.0

    def __init__(self, *, run_id, scopes: list[str]):
        self.run_id = run_id
        self.scopes = scopes
        self._windows: list[SpendWindow] = []
        self._read_at = float("-inf")
        self._accounts: dict = {}
        self.reserved = False  # whether a hold was ever taken (one may be left to release)

    def reserve(self, amount: Decimal):
        if time.monotonic() - self._read_at >= self.REFRESH_SECONDS:
            self._windows = windows_covering(self.scopes)
            self._read_at = time.monotonic()
        if not self._windows:
            return None
        self.reserved = True
        return windows_reserve(
            run_id=self.run_id, windows=self._windows, amount=amount, accounts=self._accounts
        )

    def settle(self, ref, cost: Decimal) -> None:
        if ref:
            windows_settle(holds=ref, cost=cost)
