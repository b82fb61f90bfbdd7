"""Reads behind the pages: keyset pages in every sort order, the search box's reading, full-text
search (PostgreSQL's index, SQLite's fallback), tag filters, the waterfall and chart geometry."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from runs.errors import InvalidInput
from runs.models import Run
from runs.selectors.runs import (
    SORTS,
    RunFilters,
    run_wall_ms,
    runs_filtered,
    runs_page,
    search_intent,
)
from runs.selectors.search import INDEX_NAME
from tests.runs.run_rows import make_run

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL planner and index features (run in the PG suite)",
)


def all_pages(filters, sort, limit):
    out, cursor = [], ""
    while True:
        page, cursor = runs_page(filters=filters, sort=sort, cursor=cursor, limit=limit)
        out += page
        if not cursor:
            return out


@pytest.mark.django_db
@pytest.mark.parametrize("sort", list(SORTS))
def test_keyset_pages_visit_every_run_once_in_order_despite_ties(sort):
    now = timezone.now()
    runs = []
    for i in range(23):
        runs.append(
            make_run(
                created_at=now - timedelta(seconds=i // 4),  # ties on created_at
                cost_usd=Decimal(i % 3) / 10,  # ties on cost
                wall_ms=None if i % 5 == 0 else (i % 4) * 100,  # ties and nulls
            )
        )
    spec = SORTS[sort]

    def key(run):
        value = getattr(run, spec.field)
        return value, run.id

    valued = [r for r in runs if getattr(r, spec.field) is not None]
    nulls = [r for r in runs if getattr(r, spec.field) is None]  # sort last, newest id first
    expected = sorted(valued, key=key, reverse=spec.descending)
    expected += sorted(nulls, key=lambda r: r.id, reverse=True)
    got = all_pages(RunFilters(), sort, limit=4)
    assert [r.id for r in got] == [r.id for r in expected]


@pytest.mark.django_db
def test_a_cursor_from_another_sort_or_made_up_is_refused():
    for _ in range(3):
        make_run()
    _, cursor = runs_page(filters=RunFilters(), sort="cost", limit=1)
    with pytest.raises(InvalidInput):
        runs_page(filters=RunFilters(), sort="newest", cursor=cursor)
    with pytest.raises(InvalidInput):
        runs_page(filters=RunFilters(), cursor="eyJub3QiOiJ0aGlzIn0")


@pytest.mark.django_db
def test_list_rows_carry_a_short_input_preview_not_the_bodies():
    make_run(input={"question": "x" * 5000}, output={"answer": "y" * 5000})
    (run,), _ = runs_page(filters=RunFilters())
    assert run.input_preview.startswith('{"question": "xxx') and len(run.input_preview) == 120
    assert "output" in run.get_deferred_fields() and "input" in run.get_deferred_fields()


@pytest.mark.django_db
def test_search_intent_reads_ids_prefixes_refs_and_text():
    run = make_run(user_ref="cust-1", session_ref="chat-1")
    assert search_intent(f" {run.id} ").run == run
    assert search_intent(str(run.id)[:8].upper()).run == run
    assert search_intent("cust-1").kind == "user_ref"
    assert search_intent("chat-1").kind == "session_ref"
    text = search_intent("refund late")
    assert (text.kind, text.value, text.looked_like_id) == ("text", "refund late", False)
    assert search_intent("deadbeef").looked_like_id is True
    assert search_intent("   ").kind == "empty"
    twin_a = make_run(id=uuid.UUID("0000aaaa" + "0" * 24))
    make_run(id=uuid.UUID("0000aaaa" + "f" * 24))
    ambiguous = search_intent("0000aaaa")
    assert ambiguous.kind == "prefix" and str(twin_a.id) in ambiguous.candidates


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text, expected",
    [("umbrella", {"in", "out", "err"}), ("Umbrella blue", {"in"}), ("A-1001", {"in"}),
     ("gateway 502", {"err"}), ("umbrella -blue", {"out", "err"}),
     ('"blue umbrella"', {"in"}), ("nothing-like-this", set())],
)  # fmt: skip
def test_full_text_search_over_input_output_and_error(text, expected):
    rows = {
        "in": make_run(input={"question": "Where is my blue umbrella, order A-1001?"}),
        "out": make_run(input={"q": "hi"}, output={"answer": "The umbrella ships Monday."}),
        "err": make_run(input={"q": "hi"}, output=None, status="failed",
                        error={"code": "agent_error", "message": "umbrella gateway 502"}),
    }  # fmt: skip
    make_run(input={"question": "Where is my order?"}, output={"answer": "A-1002 shipped"})
    found = set(runs_filtered(RunFilters(text=text)).values_list("id", flat=True))
    assert found == {rows[k].id for k in expected}


@postgres_only
@pytest.mark.django_db
def test_full_text_search_reads_the_stored_words_through_their_index_on_postgresql():
    make_run(input={"question": "umbrella"})
    qs = runs_filtered(RunFilters(text="umbrella")).order_by("-created_at")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert INDEX_NAME in plan, plan
    # Matched against the stored document, never one computed from the columns per run.
    assert "jsonb_to_tsvector" not in plan, plan


@pytest.mark.django_db
def test_tag_filter_matches_whole_tags_on_both_databases():
    vip = make_run(tags=["vip", "eu"])
    make_run(tags=["vip-lite"])
    make_run(tags=[])
    assert list(runs_filtered(RunFilters(tag="vip")).values_list("id", flat=True)) == [vip.id]
    assert list(runs_filtered(RunFilters(tag="eu")).values_list("id", flat=True)) == [vip.id]


@pytest.mark.django_db
def test_capped_and_status_list_filters():
    capped = make_run(status="budget_exceeded", cap_hit="max_cost_usd")
    failed = make_run(status="failed")
    make_run()
    assert list(runs_filtered(RunFilters(capped=True)).values_list("id", flat=True)) == [capped.id]
    both = set(runs_filtered(RunFilters(statuses=("failed", "budget_exceeded"))).values_list(
        "id", flat=True))  # fmt: skip
    assert both == {capped.id, failed.id}


@pytest.mark.django_db
@pytest.mark.parametrize("sort", list(SORTS))
def test_text_search_pages_are_the_same_whichever_index_goes_first(monkeypatch, sort):
    now = timezone.now()
    for i in range(9):
        make_run(input={"question": f"umbrella {i}"}, created_at=now - timedelta(seconds=i // 2),
                 cost_usd=Decimal(i % 3), wall_ms=None if i % 4 == 0 else i % 3)  # fmt: skip
    make_run(input={"question": "no match"})
    pages = {}
    for few in (False, True):
        monkeypatch.setattr("runs.selectors.runs.matches_are_few", lambda qs, few=few: few)
        pages[few] = [r.id for r in all_pages(RunFilters(text="umbrella"), sort, limit=2)]
    assert len(pages[True]) == 9 and pages[True] == pages[False]


@postgres_only
@pytest.mark.django_db
def test_postgresql_expects_few_matches_for_a_rare_word_and_many_for_a_common_one(monkeypatch):
    from runs.selectors.search import matches_are_few

    for i in range(400):
        make_run(input={"question": f"common words here {i}"})
    make_run(input={"question": "zanzibar"})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
    monkeypatch.setattr("runs.selectors.search.FEW_MATCHES", 100)
    assert matches_are_few(runs_filtered(RunFilters(text="zanzibar"))) is True
    assert matches_are_few(runs_filtered(RunFilters(text="common"))) is False


@postgres_only
@pytest.mark.django_db
def test_postgresql_knows_that_a_cap_hit_implies_its_status():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stxkeys::text FROM pg_statistic_ext WHERE stxname = 'run_outcome_stats'"
        )
        assert cursor.fetchone() is not None


def test_a_runs_wall_time_is_its_recorded_one_else_measured_from_its_start():
    now = timezone.now()
    assert run_wall_ms(Run(status="queued")) is None
    ended = Run(status="succeeded", started_at=now - timedelta(seconds=9), finished_at=now)
    assert run_wall_ms(ended) == 9000
    ended.wall_ms = 1234  # recorded (a wait for approval is not counted)
    assert run_wall_ms(ended) == 1234
    # A running run's wall time is written when it ends: until then, the time since its start.
    running = Run(status="running", started_at=now - timedelta(seconds=3))
    assert 3000 <= run_wall_ms(running) < 3000 + 60_000
