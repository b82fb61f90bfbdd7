"""The timeline's waterfall geometry (runs.views.timeline). No database."""

from datetime import UTC, datetime, timedelta

from runs.views.timeline import bar, run_span


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
