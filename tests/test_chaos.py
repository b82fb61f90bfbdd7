"""Chaos: the real stack (its own PostgreSQL and Redis, gunicorn, a Celery worker and beat) under
run and ingest load while one part at a time is stopped, killed or restarted; then a reconciling
count. Every run started finishes exactly once (none left queued or running, none created twice
for one Idempotency-Key, none executed twice) and every event the client was told was stored is in
the database exactly once. The figures are printed for the CI log.

Slow (a few minutes) and needs initdb/pg_ctl and redis-server: run it alone with
`pytest -m chaos -s tests/test_chaos.py`; the default run skips it.
"""

import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos_stack import (
    FINISHED,
    OUTAGE_SECONDS,
    QUESTION,
    RETRY_SECONDS,
    SETTLE_SECONDS,
    Api,
    Load,
    Stack,
    first_id,
    in_background,
    say,
    wait_status,
)

pytestmark = pytest.mark.chaos


def phases(stack: Stack, api: Api, load: Load) -> dict:
    """The faults, one at a time. Returns what the reconciliation checks beyond the counts."""
    found: dict = {}

    stack.phase = "redis restart"
    inflight = api.start_run("test-steps", {"steps": 8, "seconds": 0.5}, label="redis-inflight")
    wait_status(stack, first_id(inflight), {"running"})
    say("redis stop")
    stack.redis.stop()
    stack.faults.append("redis stopped and started with a run in flight")
    probe = in_background(load.ingest_by_hand)
    time.sleep(OUTAGE_SECONDS)
    stack.redis.start()
    probe["thread"].join(timeout=RETRY_SECONDS + 10)
    found["ingest while redis was down"] = probe.get("value", (None, ""))[0]
    wait_status(stack, first_id(inflight), FINISHED)
    after_redis = api.start_run("demo-support", QUESTION, label="after-redis")
    wait_status(stack, first_id(after_redis), FINISHED)

    stack.phase = "postgresql restart"
    say("postgresql stop")
    stack.pg.stop()
    stack.faults.append("postgresql stopped and started")
    time.sleep(OUTAGE_SECONDS)
    stack.pg.start()
    say("postgresql started")
    after = [in_background(api.start_run, "demo-support", QUESTION, label="after-pg")
             for _ in range(4)]  # fmt: skip
    for box in after:
        box["thread"].join(timeout=RETRY_SECONDS + 10)
    say("postgresql is back; runs started after it answered")
    until = time.monotonic() + 30
    for box in after:
        run_id = first_id(box.get("value") or {"ids": []})
        wait_status(stack, run_id, FINISHED, timeout=max(0.0, until - time.monotonic()))

    stack.phase = "worker killed"
    say("worker SIGKILL")
    doomed = api.start_run("test-steps", {"steps": 20, "seconds": 0.5}, label="killed")
    wait_status(stack, first_id(doomed), {"running"})
    stack.restart("worker", kill=True)
    stack.faults.append("worker SIGKILLed mid-run and a new one started")
    stack.wait_worker()

    stack.phase = "web restart"
    say("web restart")
    stack.restart("web", kill=False)
    stack.faults.append("web stopped and started")
    stack.wait_web()
    say("web is back")
    time.sleep(3)
    stack.phase = "settling"
    return found


def settle(stack: Stack, load: Load) -> None:
    """Stop the load, let the client send what it holds, and wait for every run to end."""
    load.stop()
    load.client.close(timeout=RETRY_SECONDS)
    say("load stopped; waiting for the runs to end")
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        rows = stack.db(
            "SELECT count(*) FROM runs_run WHERE metadata ? 'chaos_key' "
            "AND status IN ('queued', 'running')"
        )
        if rows[0][0] == 0:
            return
        time.sleep(1)


def reconcile_runs(stack: Stack, api: Api, signature: list) -> tuple[dict, list[str]]:
    rows = stack.db(
        "SELECT id::text, status, attempt, metadata->>'chaos_key', metadata->>'chaos_label', "
        "agent FROM runs_run WHERE metadata ? 'chaos_key'"
    )
    steps: dict[str, list] = {}
    for run_id, kind, name, step_input in stack.db(
        "SELECT e.run_id::text, e.kind, e.name, e.input FROM runs_event e JOIN runs_run r "
        "ON r.id = e.run_id WHERE r.metadata ? 'chaos_key' ORDER BY e.run_id, e.seq"
    ):
        steps.setdefault(run_id, []).append((kind, name, step_input))
    by_key: dict[str, list] = {}
    for row in rows:
        by_key.setdefault(row[3], []).append(row)
    problems = []
    unfinished = [r for r in rows if r[1] in ("queued", "running")]
    problems += [f"run {r[0]} ({r[4]}) still {r[1]}" for r in unfinished]
    duplicated = sum(len(v) - 1 for v in by_key.values())
    for runs in by_key.values():
        if len(runs) > 1:
            problems.append(f"{len(runs)} runs for one Idempotency-Key ({runs[0][4]})")
    answered = {k: r for k, r in api.sent.items() if r["ids"]}
    lost = [k for k in answered if k not in by_key]
    problems += [f"run answered 202 but not in the database ({api.sent[k]['label']})" for k in lost]
    for record in answered.values():
        if len(set(record["ids"])) > 1:
            problems.append(f"one Idempotency-Key answered with {len(set(record['ids']))} ids")
    executed_twice = 0
    for run_id, status, attempt, _key, label, agent in rows:
        mine = steps.get(run_id, [])
        repeated = Counter(json.dumps(i, sort_keys=True) for k, n, i in mine if n == "test_sleep")
        twice = attempt > 1 or any(c > 1 for c in repeated.values())
        if agent == "demo-support" and status == "succeeded" and mine != signature:
            twice = True
        if twice:
            executed_twice += 1
            problems.append(f"run {run_id} ({label}) executed more than once: attempt {attempt}")
        expected = {"redis-inflight": "succeeded", "after-redis": "succeeded",
                    "after-pg": "succeeded", "killed": "lost"}  # fmt: skip
        if label in expected and status != expected[label]:
            problems.append(f"run {run_id} ({label}) ended {status}, not {expected[label]}")
    outcomes = Counter(f"{r[4]}:{r[1]}" for r in rows)
    gave_up = sum(1 for r in api.sent.values() if r.get("gave_up"))
    figures = {
        "started": len(api.sent), "answered": len(answered), "in_db": len(rows),
        "unfinished": len(unfinished), "lost": len(lost), "duplicated": duplicated,
        "executed_twice": executed_twice, "gave_up": gave_up,
        "resent_same_key": sum(1 for r in api.sent.values() if len(r["ids"]) > 1),
        "post_tries": sum(r["tries"] for r in api.sent.values()), "outcomes": dict(outcomes),
    }  # fmt: skip
    if gave_up:
        problems.append(f"{gave_up} run(s) not answered 202 within {RETRY_SECONDS} s of retrying")
    return figures, problems


def reconcile_events(stack: Stack, load: Load) -> tuple[dict, list[str]]:
    stats = dict(load.client.stats)
    sent = load.event_ids + load.direct
    rows = stack.db("SELECT id::text FROM runs_event WHERE id = ANY(%s::uuid[])", (sent,))
    found = Counter(row[0] for row in rows)
    in_runs = stack.db(
        "SELECT count(*), count(DISTINCT (run_id, name)) FROM runs_event "
        "WHERE run_id = ANY(%s::uuid[])",
        (load.ingest_run_ids,),
    )[0]
    not_told = stats["dropped"] + stats["rejected"]  # the client said so: not counted lost
    missing = [i for i in sent if i not in found]
    lost = max(0, len(missing) - not_told)
    duplicated = in_runs[0] - in_runs[1]
    figures = {"generated": len(sent), "told_stored": len(sent) - not_told,
               "in_db": len(found), "lost": lost, "duplicated": duplicated,
               "client": stats}  # fmt: skip
    problems = []
    if lost:
        problems.append(f"{lost} event(s) the client was told were stored are missing")
    if duplicated:
        problems.append(f"{duplicated} event(s) stored twice")
    if not_told:
        problems.append(f"the client gave up on {not_told} event(s): {stats}")
    return figures, problems


def test_parts_down_in_turn_lose_and_double_nothing():
    logging.getLogger("agentops.client").setLevel(logging.WARNING)  # retries are expected here
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="agentops-chaos-"))
    folder.chmod(0o755)  # the postgres user reaches its cluster folder inside
    stack = Stack(folder)
    load = None
    try:
        key = stack.start()
        api = Api(stack, key)
        say(f"stack up in {time.monotonic() - started:.0f} s")
        first = api.start_run("demo-support", QUESTION, label="warm-up")
        assert wait_status(stack, first_id(first), FINISHED) == "succeeded", "the stack is not up"
        signature = [
            tuple(row)
            for row in stack.db(
                "SELECT kind, name, input FROM runs_event WHERE run_id = %s ORDER BY seq",
                (first["ids"][0],),
            )
        ]
        load = Load(stack, api, key)
        load.start()
        time.sleep(3)
        checks = phases(stack, api, load)
        settle(stack, load)
        runs, run_problems = reconcile_runs(stack, api, signature)
        events, event_problems = reconcile_events(stack, load)
        problems = run_problems + event_problems + api.bad_answers + stack.unexpected_exits
        if checks["ingest while redis was down"] != 200:
            problems.append(
                f"ingest answered {checks['ingest while redis was down']} while Redis was down"
            )
        say(f"faults injected: {len(stack.faults)}: " + "; ".join(stack.faults))
        say("runs:", runs)
        say("events:", events)
        say("answers:", dict(api.statuses))
        say(f"unexpected exits: {stack.unexpected_exits or 'none'}")
        say(f"lost: {runs['lost']} runs, {events['lost']} events; duplicated: "
            f"{runs['duplicated']} runs, {runs['executed_twice']} executed twice, "
            f"{events['duplicated']} events; took {time.monotonic() - started:.0f} s")  # fmt: skip
        assert not problems, "\n".join(problems[:40])
    finally:
        if load is not None:
            load.stop(timeout=0)
            load.client.close(timeout=0)
        stack.close()
        shutil.rmtree(folder, ignore_errors=True)
