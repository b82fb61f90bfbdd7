"""The timeline's waterfall geometry (runs.views.timeline). No database."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from runs.views.timeline import bar, run_span, step_row


def test_waterfall_bars_sit_inside_the_run_span():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    span = (start, start + timedelta(seconds=10))
    assert bar(span, start, start + timedelta(seconds=5)) == (0.0, 50.0)
    assert bar(span, start + timedelta(seconds=9), None) == (90.0, 10.0)  # running: to the end
    assert bar(span, start + timedelta(seconds=5), start + timedelta(seconds=5)) == (50.0, 0.4)
    assert bar(span, start - timedelta(seconds=1), start + timedelta(seconds=20)) == (0.0, 100.0)
    assert bar(span, start + timedelta(seconds=11), None) == (99.6, 0.4)


def test_run_span_uses_start_or_creation_and_end_or_now():
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)

    class R:
        created_at = now - timedelta(minutes=5)
        started_at = None
        finished_at = None

    assert run_span(R, now) == (R.created_at, now)


def test_a_step_row_is_escaped_markup_and_its_live_twin_swaps_in_place():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    event = SimpleNamespace(seq=7, kind="tool_call", name='<img src=x onerror="1">', model="m<1>",
                            status="ok", started_at=start, ended_at=start + timedelta(seconds=1),
                            duration_ms=1000, input_tokens=None, output_tokens=None,
                            cost_usd=None)  # fmt: skip
    row = step_row(event, 2, (start, start + timedelta(seconds=4)), "/runs/r1/steps/")
    html = str(row.html)
    assert html.startswith(
        '<li class="step kind-tool_call" id="step-7" data-seq="7" data-status="ok">\n'
        '  <details hx-get="/runs/r1/steps/7/" hx-trigger="toggle once"'
    )
    assert "<img" not in html and "&lt;img src=x onerror=&quot;1&quot;&gt;" in html
    assert '<span class="step-name depth-2">' in html and "m&lt;1&gt;" in html
    assert '<rect x="0.00" width="25.00" height="1"/>' in html
    assert str(row.html_oob) == html.replace(
        'data-status="ok">', 'data-status="ok" hx-swap-oob="true">', 1
    )
