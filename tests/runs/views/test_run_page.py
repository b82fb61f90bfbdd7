"""/runs/<id>/: the header, the budget bars, the timeline's first page without bodies, steps on
demand, live updates that stop when the run ends, cancel, the JSON export, and a number of
queries that does not grow with the run."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Event
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def engineer(client, make_user):
    client.force_login(make_user("engineer"))
    return client


def step_seqs(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li class="step [^"]*" id="step-(\d+)"', html)]


def test_header_shows_who_what_when_and_links(engineer):
    original = make_run(agent="demo-support")
    run = make_run(user_ref="cust-5", session_ref="chat-5", tags=["vip"], replay_of=original,
                   replay_mode="recorded_model", worker="w1@host", attempt=1)  # fmt: skip
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    assert f'<code class="run-id" id="run-id">{run.id}</code>' in html
    assert f'data-copy="{run.id}"' in html
    assert 'data-testid="run-status">succeeded<' in html
    assert 'href="/runs/?q=cust-5">cust-5</a>' in html
    assert 'href="/runs/?q=chat-5">chat-5</a>' in html
    assert 'href="/runs/?tag=vip">vip</a>' in html
    assert f'href="/runs/{original.id}/"' in html and "recorded_model re-execution of" in html
    assert "3.00 s" in html  # duration
    assert f'href="/runs/{run.id}/export.json" download' in html
    original_html = engineer.get(f"/runs/{original.id}/").content.decode()
    assert "Re-executed as:" in original_html and f'href="/runs/{run.id}/"' in original_html


def test_the_run_page_shows_the_runs_input_and_output_escaped(engineer):
    run = make_run(input="<b>Where is order 7?</b>", output={"answer": "Shipped."})
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    assert 'data-testid="run-input">&lt;b&gt;Where is order 7?&lt;/b&gt;</pre>' in html
    assert "&quot;answer&quot;: &quot;Shipped.&quot;" in html
    assert (
        'data-testid="run-input"'
        not in engineer.get(f"/runs/{make_run(input={}).id}/").content.decode()
    )


def test_budget_bars_show_each_cap_and_highlight_the_one_that_stopped_the_run(engineer):
    run = make_run(status="budget_exceeded", cap_hit="max_tool_calls", tool_calls=20,
                   cost_usd=Decimal("0.125"), error_code="budget_exceeded",
                   error={"code": "budget_exceeded", "message": "the 21st tool call was refused",
                          "cap": "max_tool_calls", "limit": 20, "used": 20})  # fmt: skip
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    bars = re.findall(r'<li class="bar( hit)?" data-cap="(\w+)">(.*?)</li>', html, re.S)
    by_cap = {cap: (hit, body) for hit, cap, body in bars}
    assert set(by_cap) == {"max_tool_calls", "max_cost_usd", "max_wall_seconds"}
    hit, body = by_cap["max_tool_calls"]
    assert hit == " hit" and "20 of 20" in body and "stopped the run" in body
    assert '<rect width="100" height="1"/>' in body
    assert by_cap["max_cost_usd"][0] == "" and "$0.1250 of $0.5000" in by_cap["max_cost_usd"][1]
    assert '<rect width="25" height="1"/>' in by_cap["max_cost_usd"][1]
    assert "3 s of 300 s" in by_cap["max_wall_seconds"][1]
    assert "Stopped by the <strong>max_tool_calls</strong> cap: 20 used of a limit of 20" in html


def test_timeline_rows_show_kind_status_duration_tokens_and_cost(engineer):
    run = make_run()
    make_steps(run, 3)
    Event.objects.filter(run=run, seq=1).update(status="timeout")
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    assert step_seqs(html) == [0, 1, 2]
    row0 = html[html.index('id="step-0"') : html.index('id="step-1"')]
    assert "model_call" in row0 and "100 / 20" in row0 and "$0.000027" in row0 and "8 ms" in row0
    row1 = html[html.index('id="step-1"') : html.index('id="step-2"')]
    assert 'data-status="timeout"' in row1 and "status-timeout" in row1
    # Bars sit on the run's time axis: step 0 starts at the run's start.
    assert '<rect x="0.00" width=' in row0 and 'class="wf-bar status-ok"' in row0


def test_nested_steps_are_indented_by_depth(engineer):
    run = make_run(source="external")
    rows = make_steps(run, 3)
    Event.objects.filter(id=rows[1]["id"]).update(parent_id=rows[0]["id"])
    Event.objects.filter(id=rows[2]["id"]).update(parent_id=rows[1]["id"])
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    depths = re.findall(r'class="step-name depth-(\d+)"', html)
    assert depths == ["0", "1", "2"]


def test_a_long_run_shows_its_first_page_without_bodies(engineer):
    run = make_run()
    make_steps(run, 1000)
    response = engineer.get(f"/runs/{run.id}/")
    html = response.content.decode()
    assert step_seqs(html) == list(range(100))
    assert "prompt number" not in html  # no step body is on the page
    assert f'hx-get="/runs/{run.id}/steps/?after=99" hx-trigger="revealed"' in html
    # Scrolling loads the next page (and a new sentinel) as a fragment.
    more = engineer.get(f"/runs/{run.id}/steps/", {"after": 99}, **HTMX).content.decode()
    assert step_seqs(more) == list(range(100, 200)) and "<html" not in more
    assert "?after=199" in more
    # The last page has no sentinel; without htmx the same URL leads to the run page there.
    last = engineer.get(f"/runs/{run.id}/steps/", {"after": 899}, **HTMX).content.decode()
    assert step_seqs(last) == list(range(900, 1000)) and 'class="more"' not in last
    plain = engineer.get(f"/runs/{run.id}/steps/", {"after": 99})
    assert plain.status_code == 302 and plain["Location"] == (
        f"/runs/{run.id}/?view=timeline&after=99#timeline"
    )
    later = engineer.get(f"/runs/{run.id}/", {"after": 99}).content.decode()
    assert step_seqs(later)[:2] == [100, 101] and "Back to the first steps" in later


def test_a_step_body_is_loaded_on_demand_as_escaped_pretty_json(engineer):
    run = make_run()
    make_steps(run, 2)
    Event.objects.filter(run=run, seq=1).update(
        input={"order_id": "<b>A-1</b>"}, error={"message": "x < y & z"}, attributes={"k": 1}
    )
    fragment = engineer.get(f"/runs/{run.id}/steps/1/", **HTMX).content.decode()
    assert "<html" not in fragment
    assert "&quot;order_id&quot;: &quot;&lt;b&gt;A-1&lt;/b&gt;&quot;" in fragment
    assert "x &lt; y &amp; z" in fragment and "<h3>Attributes</h3>" in fragment
    model = engineer.get(f"/runs/{run.id}/steps/0/", **HTMX).content.decode()
    assert '<span class="role">user</span><pre class="body">prompt number 0</pre>' in model
    page = engineer.get(f"/runs/{run.id}/steps/0/").content.decode()
    assert "<html" in page and f'href="/runs/{run.id}/#step-0"' in page


def _running_run():
    now = timezone.now()
    run = make_run(status="running", finished_at=None, wall_ms=None, output=None,
                   started_at=now - timedelta(seconds=2))  # fmt: skip
    make_steps(run, 2)
    make_steps(run, 1, start_seq=2, status="running", ended_at=None)
    return run


def test_live_updates_replace_running_steps_and_append_new_ones(engineer):
    run = _running_run()
    page = engineer.get(f"/runs/{run.id}/").content.decode()
    assert 'data-live-run hx-get="' in page and 'hx-trigger="every 1s"' in page
    # The step that was running ends and two more arrive.
    Event.objects.filter(run=run, seq=2).update(status="ok", ended_at=timezone.now())
    make_steps(run, 2, start_seq=3)
    response = engineer.get(f"/runs/{run.id}/", {"part": "live", "open": "2", "last": "2"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="run-live"') and 'hx-trigger="every 1s"' in html
    assert re.search(r'id="step-2" data-seq="2" data-status="ok" hx-swap-oob="true"', html)
    appended = html[html.index('<ol hx-swap-oob="beforeend:#steps">') :]
    assert step_seqs(appended) == [3, 4] and 'hx-swap-oob="true"' not in appended
    # A page still loading more by scroll sends no `last`: nothing is appended then.
    html = engineer.get(f"/runs/{run.id}/", {"part": "live", "open": ""}, **HTMX).content.decode()
    assert "beforeend" not in html and step_seqs(html) == []


def test_live_updates_stop_once_the_run_is_finished(engineer):
    run = _running_run()
    run.status, run.finished_at, run.output = "succeeded", timezone.now(), {"answer": "done"}
    run.save()
    Event.objects.filter(run=run, seq=2).update(status="ok", ended_at=timezone.now())
    response = engineer.get(f"/runs/{run.id}/", {"part": "live", "open": "2", "last": "2"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 286  # htmx: stop polling
    assert "hx-trigger" not in html.split("</section>")[0]
    assert 'data-testid="run-status">succeeded<' in html and "&quot;done&quot;" in html
    assert 'data-status="ok" hx-swap-oob="true"' in html
    assert 'hx-trigger="every 1s"' not in engineer.get(f"/runs/{run.id}/").content.decode()


def test_cancel_from_the_page_with_and_without_htmx(engineer, no_enqueue):
    queued = make_run(status="queued", started_at=None, finished_at=None, wall_ms=None)
    response = engineer.post(f"/runs/{queued.id}/cancel/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="run-live"')
    assert 'data-testid="run-status">cancelled<' in html
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    # Cancelling a finished run says why instead of failing.
    again = engineer.post(f"/runs/{queued.id}/cancel/", **HTMX).content.decode()
    assert "already cancelled" in again
    running = make_run(status="running", finished_at=None, wall_ms=None)
    response = engineer.post(f"/runs/{running.id}/cancel/", follow=True)
    assert response.redirect_chain == [(f"/runs/{running.id}/", 302)]
    assert "cancelling…" in response.content.decode()


def test_export_is_the_run_and_all_its_steps_as_json(engineer):
    run = make_run(tags=["vip"])
    make_steps(run, 7)
    response = engineer.get(f"/runs/{run.id}/export.json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.id}.json"'
    body = json.loads(b"".join(response.streaming_content))
    assert body["run"]["id"] == str(run.id) and body["run"]["tags"] == ["vip"]
    assert body["run"]["input"] == {"question": "Where is my order A-1001?"}
    assert body["usage"]["max_tool_calls"] == {"used": 2, "limit": 20}
    assert [e["seq"] for e in body["events"]] == list(range(7))
    assert body["events"][0]["input"] == {"messages": [{"role": "user",
                                                        "content": "prompt number 0"}]}  # fmt: skip
    assert body["events"][0]["duration_ms"] == 8 and body["events"][0]["run"] == str(run.id)


def _queries(client, url, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    assert response.status_code in (200, 286)
    return len(ctx.captured_queries)


@pytest.mark.parametrize("nested", [False, True])
def test_the_run_page_runs_a_constant_number_of_queries(engineer, nested):
    run = make_run(replay_of=make_run())
    make_run(replay_of=run)

    def add(start, n):
        rows = make_steps(run, n, start_seq=start)
        if nested:
            for parent, child in zip(rows, rows[1:], strict=False):
                Event.objects.filter(id=child["id"]).update(parent_id=parent["id"])

    add(0, 5)
    small = _queries(engineer, f"/runs/{run.id}/")
    add(5, 400)
    large = _queries(engineer, f"/runs/{run.id}/")
    assert small == large <= 10
    live_small = _queries(engineer, f"/runs/{run.id}/?part=live&open=1,2&last=404", **HTMX)
    add(405, 300)
    assert _queries(engineer, f"/runs/{run.id}/?part=live&open=1,2&last=404", **HTMX) == live_small
