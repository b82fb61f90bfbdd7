"""Quoted-phrase search: exact results on both databases, and on PostgreSQL the stored document
(words + adjacent-word pairs) that finds them, kept current by every write path."""

import uuid

import pytest
from django.db import connection

from runs.models import Run
from runs.selectors.runs import RunFilters, runs_filtered, runs_page
from runs.selectors.search import INDEX_NAME, pairs_of_query, phrase_pairs
from runs.services.ingest import external_runs_fill_io
from runs.services.runs import run_finish
from tests.ingest.conftest import post_json
from tests.runs.run_rows import make_run, make_steps

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the stored search document is PostgreSQL's"
)
pytestmark = pytest.mark.django_db


def found(text: str) -> set:
    return set(runs_filtered(RunFilters(text=text)).values_list("id", flat=True))


@pytest.fixture
def texts():
    return {
        "phrase": make_run(input={"q": "My damaged charger arrived"}),
        "apart": make_run(input={"q": "The charger was damaged"}),
        "between": make_run(input={"q": "damaged phone charger"}),
        "split": make_run(input={"q": "it was damaged"}, output={"a": "the charger sent"}),
        "case": make_run(input={"q": "DAMAGED Charger, again"}),
        "none": make_run(input={"q": "nothing to see"}),
    }


@pytest.mark.parametrize(
    "text, expected",
    [('"damaged charger"', {"phrase", "case"}),
     ('"damaged charger" arrived', {"phrase"}),
     ('"phone charger"', {"between"}),
     ('"charger damaged"', set()),
     ('"my damaged charger arrived"', {"phrase"})],
)  # fmt: skip
def test_a_quoted_phrase_finds_the_words_side_by_side_only(texts, text, expected):
    assert found(text) == {texts[k].id for k in expected}


@postgres_only
@pytest.mark.parametrize(
    "text, expected",
    [('"damaged, charger!"', {"phrase", "case"}),  # punctuation is not a word
     ('"the charger"', {"apart", "split"}),  # 'simple' has no stop words: "the" counts
     ('"damaged charger" or "phone charger"', {"phrase", "case", "between"}),
     ('charger -"damaged charger"', {"apart", "between", "split"}),
     ('"a-4242 x"', set())],
)  # fmt: skip
def test_postgresql_reads_phrases_as_its_parser_does(texts, text, expected):
    assert found(text) == {texts[k].id for k in expected}


def test_pairs_come_only_from_required_phrases():
    parsed = "'a' <-> '-4242' <-> 'x' & 'refund' & !( 'late' <-> 'parcel' ) & 'b' <-> 'c'"
    assert pairs_of_query(parsed) == ["a -4242", "-4242 x", "b c"]
    assert pairs_of_query("'a' <-> 'b' | 'c'") == []
    assert pairs_of_query("!( 'a' <-> 'b' )") == []
    assert pairs_of_query("!'a' & 'b' <-> 'c'") == ["b c"]
    assert pairs_of_query("'o''k' <-> 'x' <-> 'y'") == ["x y"]
    assert pairs_of_query("'a':* <-> 'b'") == []


def stored(run_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_doc::text FROM runs_run WHERE id = %s", [run_id])
        return cursor.fetchone()[0] or ""


@postgres_only
def test_the_stored_document_holds_words_and_adjacent_pairs():
    run = make_run(input={"q": "Damaged, charger!"}, output={"a": ["late", "parcel now"]})
    doc = stored(run.id)
    for lexeme in ("'damaged':1", "'charger':2", "'damaged charger'", "'parcel now'"):
        assert lexeme in doc
    assert "'late parcel'" not in doc  # two JSON values are not side by side
    assert phrase_pairs('"Damaged charger" -"x y"') == ["damaged charger"]


@postgres_only
def test_a_phrase_query_uses_the_pair_index():
    make_run(input={"q": "damaged charger"})
    qs = runs_filtered(RunFilters(text='"damaged charger"')).order_by()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert INDEX_NAME in plan, plan


@postgres_only
def test_a_run_too_long_for_its_pairs_is_still_found():
    words = " ".join(uuid.UUID(int=i).hex * 2 for i in range(9_000))
    run = make_run(input={"q": f"damaged charger {words}"})
    assert stored(run.id).startswith("' unpaired'")
    assert found('"damaged charger"') == {run.id}


@postgres_only
def test_every_write_path_keeps_the_document_current(client):
    from runs.services.keys import api_key_create

    run = make_run(status="running", input={"q": "hello"}, output=None, finished_at=None)
    before = stored(run.id)
    Run.objects.filter(id=run.id).update(tool_calls=5)  # a counter: nothing to redo
    assert stored(run.id) == before
    run_finish(run_id=run.id, status="succeeded", output={"answer": "blue umbrella shipped"})
    assert found('"blue umbrella"') == {run.id}
    run_finish(run_id=make_run(status="running").id, status="failed",
               error={"code": "agent_error", "message": "gateway timed out"})  # fmt: skip
    assert len(found('"gateway timed out"')) == 1

    secret = api_key_create(name="k", scopes=["ingest"])[1]
    remote = uuid.uuid4()
    body = {"runs": [{"id": str(remote), "agent": "remote-bot", "input": {"q": "red kettle"}}]}
    assert post_json(client, "/api/v1/ingest", body, secret).status_code == 200
    assert found('"red kettle"') == {remote}
    body["runs"][0]["output"] = {"a": "green kettle sent"}
    assert post_json(client, "/api/v1/ingest", body, secret).status_code == 200
    assert found('"green kettle"') == {remote}

    Run.objects.filter(id=remote).update(input={}, output=None)
    assert found('"red kettle"') == set()
    make_steps(Run.objects.get(id=remote), 1)  # a model call asked "prompt number 0"
    external_runs_fill_io(run_ids=[remote], input_of=lambda x: x, output_of=lambda x: x)
    assert found('"prompt number 0"') == {remote}


@pytest.mark.parametrize("sort", ["newest", "cost"])
def test_phrase_pages_list_every_match_once(sort):
    ids = {make_run(input={"q": f"damaged charger {i}"}).id for i in range(5)}
    make_run(input={"q": "charger damaged"})
    seen, cursor = [], ""
    while True:
        page, cursor = runs_page(
            filters=RunFilters(text='"damaged charger"'), sort=sort, cursor=cursor, limit=2
        )
        seen += [r.id for r in page]
        if not cursor:
            break
    assert len(seen) == 5 and set(seen) == ids
