"""The run page as support reads it: the receipt on top (question, answer, the outcome in plain
words, refs, a ticket summary with the run's address) and the transcript of what happened,
for runs executed here (the demo agents' real steps) and runs reported from elsewhere."""

import html as htmllib
import re
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from django.test import Client
from django.utils import timezone

from runs.agents import get_agent, load_agent_modules
from runs.engine.caps import Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.models import Event, Run
from runs.services.ingest import ingest_batch
from tests.runs.run_rows import make_run

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
PRICES = {"scripted-mini": (Decimal("0.15"), Decimal("0.60"))}
load_agent_modules(["runs.agents.demo"])


def demo_run(agent: str, caps: Caps | None = None, question="Where is my order A-1001?", **fields):
    """A run of a demo agent executed in this process (the real runner and agent), stored with
    its steps as the worker stores them."""
    recorder = MemoryRecorder()
    outcome = execute(get_agent(agent), {"question": question}, caps or Caps(), recorder,
                      price_for=PRICES.get)  # fmt: skip
    start = timezone.now() - timedelta(seconds=10)
    t0 = recorder.steps[0].started_at if recorder.steps else 0
    usage = outcome.usage
    run = Run.objects.create(
        agent=agent, status=outcome.status, input={"question": question}, output=outcome.output,
        error=outcome.error, error_code=(outcome.error or {}).get("code", ""),
        cap_hit=(outcome.error or {}).get("cap", "") or "", caps=(caps or Caps()).to_dict(),
        created_at=start, started_at=start, finished_at=start + timedelta(seconds=2.1),
        wall_ms=2100, tool_calls=usage.tool_calls, model_calls=usage.model_calls,
        cost_usd=usage.cost_usd, **fields,
    )  # fmt: skip
    Event.objects.bulk_create(
        Event(
            run=run,
            seq=s.seq,
            kind=s.kind,
            name=s.name,
            status=s.status,
            input=s.input,
            output=s.output,
            error=s.error,
            attributes=s.attributes,
            model=s.model,
            started_at=start + timedelta(seconds=s.started_at - t0),
            ended_at=start + timedelta(seconds=(s.ended_at or s.started_at) - t0),
        )  # fmt: skip
        for s in recorder.steps
    )
    return run


@pytest.fixture
def support(make_user):
    client = Client()
    client.force_login(make_user("support"))
    return client


@pytest.fixture
def engineer(make_user):
    client = Client()
    client.force_login(make_user("engineer"))
    return client


def page(client, run, query="") -> str:
    response = client.get(f"/runs/{run.id}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def receipt_outcome(html: str) -> str:
    found = re.search(r'data-testid="receipt-outcome">([^<]*)<', html)
    return htmllib.unescape(found.group(1))


def ticket(html: str) -> str:
    return htmllib.unescape(re.search(r'data-testid="ticket-text">([^<]*)<', html).group(1))


def test_a_stopped_run_says_which_limit_stopped_it_and_the_transcript_marks_the_refusal(support):
    run = demo_run("demo-loop", Caps(max_tool_calls=3), user_ref="cust-7", session_ref="chat-7")
    html = page(support, run)
    assert receipt_outcome(html) == "Stopped: it tried a 4th tool call; the limit is 3 per run."
    assert 'data-testid="receipt-question">' in html and "Where is my order A-1001?" in html
    # Support reads the transcript first: the calls as code, the refused one marked.
    assert 'id="transcript"' in html and 'id="timeline"' not in html
    calls = re.findall(r'<code class="t-call">([^<]*)</code>', html)
    assert [htmllib.unescape(c) for c in calls] == [
        f'check_inventory(sku="SKU-42", warehouse="WH-{i}")' for i in range(4)
    ]
    marks = re.findall(r'data-testid="call-mark">([^<]*)<', html)
    assert marks == ["refused"]
    assert "Stopped:</strong> it tried a 4th tool call; the limit is 3 per run." in html
    # The system prompt is there, folded.
    folded = r'<details class="fold t-system-prompt" id="t-0-0" hx-preserve="true">.*Keep checking'
    assert re.search(folded, html, re.S)


def test_the_ticket_summary_is_plain_text_with_the_runs_address(support):
    run = demo_run("demo-support", user_ref="cust-1", session_ref="chat-1")
    html = page(support, run)
    outcome = receipt_outcome(html)
    assert re.fullmatch(r"Answered in 2\.10 s for \$0\.0\d+\.", outcome), outcome
    text = ticket(html)
    lines = text.splitlines()
    assert lines[0] == f"Run {run.id} (demo-support, succeeded)"
    assert lines[1] == outcome
    assert lines[2] == "Question: Where is my order A-1001?"
    assert lines[3].startswith("Answer: Order A-1001 is shipped with DHL")
    assert lines[4] == "User: cust-1 · Session: chat-1"
    assert lines[-1] == f"http://testserver/runs/{run.id}/"
    # The button copies the same text.
    copied = re.search(r'data-copy="([^"]*)" data-testid="copy-ticket"', html)[1]
    assert htmllib.unescape(copied) == text


def test_a_failed_run_says_what_failed_and_the_tool_error_is_under_its_call(support):
    run = demo_run("demo-broken", question="Please refund order A-1001.")
    html = page(support, run)
    assert receipt_outcome(html) == (
        "Failed: the agent's code gave up with an error: tool refund_order failed: "
        "RuntimeError: payment gateway answered HTTP 502 while refunding A-1001."
    )
    assert 'data-testid="call-mark">failed<' in html
    assert "The refund_order tool failed: RuntimeError: payment gateway answered HTTP 502" in html


def test_a_timed_out_call_is_marked_and_the_run_goes_on(support, monkeypatch):
    monkeypatch.setattr("runs.agents.demo.HANG_SECONDS", 5)
    run = demo_run("demo-hang", Caps(tool_timeouts={"fetch_report": 0.2}))
    html = page(support, run)
    assert 'data-testid="call-mark">timed out<' in html
    assert "The fetch_report tool did not answer within 0.2 s." in html
    assert receipt_outcome(html).startswith("Answered in")
    assert "did not answer within 0.2 s, so I cannot quote" in html  # the assistant's words


def test_engineers_see_the_timeline_first_and_either_view_is_one_link_away(engineer, support):
    run = demo_run("demo-support")
    html = page(engineer, run)
    assert 'id="timeline"' in html and 'id="transcript"' not in html
    assert 'href="?view=transcript#steps-view"' in html
    assert 'id="transcript"' in page(engineer, run, "?view=transcript")
    assert 'id="timeline"' in page(support, run, "?view=timeline")
    # Raw JSON is one click away: the export, and each entry's step.
    html = page(support, run)
    assert f'href="/runs/{run.id}/export.json" class="raw-json"' in html
    assert f'href="/runs/{run.id}/steps/1/"' in html


def test_question_and_answer_come_from_the_conversation_when_input_and_output_do_not_say(
    support,
):
    run = make_run(input={}, output=None, status="failed",
                   error={"code": "provider_error", "message": "HTTP 529 overloaded"})  # fmt: skip
    at = run.started_at
    Event.objects.bulk_create([
        Event(run=run, seq=0, kind="model_call", name="m", started_at=at, ended_at=at,
              input={"messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Cancel my plan"}]},
              output={"content": "Which plan?"}),
        Event(run=run, seq=1, kind="model_call", name="m", started_at=at, ended_at=at,
              status="error", error={"code": "provider_error", "message": "HTTP 529 overloaded"}),
    ])  # fmt: skip
    html = page(support, run)
    assert receipt_outcome(html) == "Failed: the model provider failed: HTTP 529 overloaded."
    qa = re.findall(r'<div class="t-text">([^<]*)</div>', html)
    assert qa[:2] == ["Cancel my plan", "Which plan?"]
    assert "Model call error:</strong> the model provider failed: HTTP 529 overloaded." in html


def test_agent_text_stays_text_and_long_texts_fold(support):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    long = "Line of a long answer.\n" * 40
    run = make_run(input={"question": evil}, output={"answer": long})
    at = run.started_at
    Event.objects.create(run=run, seq=0, kind="tool_call", name="lookup_order", started_at=at,
                         ended_at=at, input={"order_id": evil}, output={"note": evil})  # fmt: skip
    html = page(support, run)
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The long answer folds: a preview in the summary, the whole text inside.
    answer = html.split('data-testid="receipt-answer">')[1].split("</dd>")[0]
    assert answer.startswith('<details class="fold" id="receipt-answer-fold" hx-preserve="true">')
    assert answer.count("Line of a long answer.") == 40 + 3


def test_an_ingested_run_gets_a_transcript_from_its_otel_messages(support):
    run_id, now = UUID("0193c0de-0000-7000-8000-000000000001"), timezone.now()
    ingest_batch(
        runs=[{"_index": 0, "id": run_id, "agent": "billing-bot", "status": "succeeded",
               "user_ref": "cust-42"}],
        events=[
            {"_index": 0, "id": UUID("0193c0de-0000-7000-8000-0000000000a1"), "run_id": run_id,
             "kind": "model_call", "name": "gpt-4o-mini", "model": "gpt-4o-mini",
             "started_at": now, "ended_at": now + timedelta(seconds=1),
             "input": [{"role": "user", "parts": [{"type": "text", "content": "Refund order 7?"}]}],
             "output": [{"role": "assistant", "parts": [
                 {"type": "tool_call", "name": "refund", "arguments": {"order": 7}}]}]},
            {"_index": 1, "id": UUID("0193c0de-0000-7000-8000-0000000000a2"), "run_id": run_id,
             "kind": "tool_call", "name": "refund", "input": {"order": 7},
             "started_at": now + timedelta(seconds=1), "ended_at": now + timedelta(seconds=2),
             "status": "error", "error": {"code": "http_502", "message": "gateway down"}},
            {"_index": 2, "id": UUID("0193c0de-0000-7000-8000-0000000000a3"), "run_id": run_id,
             "kind": "model_call", "name": "gpt-4o-mini", "model": "gpt-4o-mini",
             "started_at": now + timedelta(seconds=2), "ended_at": now + timedelta(seconds=3),
             "output": [{"role": "assistant", "parts": [
                 {"type": "text", "content": "The refund failed; I opened a ticket."}]}]},
        ],
    )  # fmt: skip
    html = page(support, Run.objects.get(id=run_id))
    assert receipt_outcome(html).startswith("Answered in 3.00 s")
    assert "Refund order 7?" in html.split('data-testid="receipt-question">')[1][:200]
    assert "The refund failed; I opened a ticket." in html.split("receipt-answer")[1][:200]
    entries = re.findall(r'data-kind="(\w+)"', html)
    assert entries == ["user", "tool", "assistant"]
    assert "refund(order=7)" in html and "Gateway down (http_502)." in html


def test_a_long_transcript_comes_in_pages(support):
    run = make_run()
    at = run.started_at
    Event.objects.bulk_create(
        Event(
            run=run,
            seq=i,
            kind="tool_call",
            name="lookup_order",
            started_at=at,
            ended_at=at,
            input={"order_id": f"A-{i}"},
            output={"found": True},
        )  # fmt: skip
        for i in range(60)
    )
    html = page(support, run)
    assert html.count('data-kind="tool"') == 50
    assert "?view=transcript&amp;part=transcript_more&amp;after=49" in html
    more = support.get(f"/runs/{run.id}/?view=transcript&part=transcript_more&after=49", **HTMX)
    body = more.content.decode()
    assert body.count('data-kind="tool"') == 10 and 'lookup_order(order_id="A-59")' in (
        htmllib.unescape(body)
    )
    assert "<html" not in body


def test_the_live_update_refreshes_the_receipt_and_a_running_transcript_polls(support):
    run = make_run(status="running", finished_at=None, wall_ms=None, output=None)
    html = page(support, run)
    assert receipt_outcome(html).startswith("Running for")
    assert "?view=transcript&amp;part=transcript" in html and 'hx-trigger="every 2s"' in html
    Run.objects.filter(id=run.id).update(status="succeeded", finished_at=timezone.now(),
                                         wall_ms=1500, output={"answer": "Done."})  # fmt: skip
    live = support.get(f"/runs/{run.id}/?part=live", **HTMX)
    assert live.status_code == 286
    body = live.content.decode()
    assert 'id="receipt"' in body and 'hx-swap-oob="true"' in body
    assert receipt_outcome(body) == "Answered in 1.50 s for $0.000081."
    polled = support.get(f"/runs/{run.id}/?view=transcript&part=transcript", **HTMX)
    assert polled.status_code == 286 and 'hx-trigger="every 2s"' not in polled.content.decode()


def test_times_show_their_date_when_the_run_crossed_midnight(support):
    from datetime import UTC, datetime

    start = datetime(2026, 3, 1, 23, 59, 50, tzinfo=UTC)
    same_day = make_run(
        created_at=start, started_at=start, finished_at=start + timedelta(seconds=5)
    )
    html = page(support, same_day)
    assert "<dt>Started</dt><dd>23:59:50</dd>" in html
    assert "<dt>Finished</dt><dd>23:59:55</dd>" in html
    night = make_run(created_at=start, started_at=start, finished_at=start + timedelta(seconds=15))
    html = page(support, night)
    assert "<dt>Started</dt><dd>23:59:50</dd>" in html
    assert "<dt>Finished</dt><dd>2026-03-02 00:00:05</dd>" in html
