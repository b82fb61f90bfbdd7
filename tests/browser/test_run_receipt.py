"""Support's first screen in Chromium: a stopped run says in plain words why it stopped and its
transcript marks the refused call; "Copy for ticket" puts the summary on the clipboard; a run
reported over OpenTelemetry reads as a transcript too. Runs are executed by a real worker or
sent by the real OpenTelemetry exporter."""

import json
import re

import pytest
from playwright.sync_api import expect

from runs.models import Run
from runs.services.keys import api_key_create
from runs.services.runs import run_create
from tests.runs.run_rows import wait_for

pytestmark = [pytest.mark.browser]


@pytest.mark.integration
def test_support_sees_why_a_run_stopped_and_the_refused_call_in_the_transcript(
    page_as, celery_worker, transactional_db
):
    run = run_create(agent="demo-loop", input={"question": "Is SKU-42 back in stock?"},
                     user_ref="cust-loop-1")  # fmt: skip
    assert wait_for(run.id).status == "budget_exceeded"
    page = page_as("support")
    page.goto(f"/runs/{run.id}/")
    expect(page.get_by_test_id("receipt-outcome")).to_have_text(
        "Stopped: it tried a 21st tool call; the limit is 20 per run."
    )
    expect(page.get_by_test_id("receipt-question")).to_have_text("Is SKU-42 back in stock?")
    # The transcript is what support sees first; the 21st call is there, marked refused.
    transcript = page.locator("#transcript")
    expect(transcript).to_be_visible()
    expect(page.locator("#timeline")).to_have_count(0)
    calls = transcript.locator(".t-tool")
    expect(calls).to_have_count(21)
    refused = transcript.locator(".t-tool[data-mark=refused]")
    expect(refused).to_have_count(1)
    expect(refused.get_by_test_id("call-mark")).to_have_text("refused")
    expect(refused.locator(".t-call")).to_have_text(
        'check_inventory(sku="SKU-42", warehouse="WH-20")'
    )
    expect(calls.first.locator(".t-result")).to_contain_text('"in_stock": 0')
    # The system prompt is folded until asked for.
    prompt = transcript.locator(".t-system-prompt")
    expect(prompt.locator(".t-text")).not_to_be_visible()
    prompt.locator("summary").click()
    expect(prompt.locator(".t-text")).to_have_text("Keep checking until the item is in stock.")
    # The waterfall is one click away.
    page.get_by_test_id("tab-timeline").click()
    expect(page.locator("#timeline li.step")).to_have_count(43)


def test_copy_for_ticket_puts_the_summary_on_the_clipboard(chromium, live_server, make_user):
    from tests.conftest import PASSWORD
    from tests.runs.run_rows import make_run

    run = make_run(user_ref="cust-copy", session_ref="chat-copy")
    user = make_user("support")
    context = chromium.new_context(base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/runs/{run.id}/")
    page.get_by_role("button", name="Copy for ticket").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.splitlines() == [
        f"Run {run.id} (demo-support, succeeded)",
        "Answered in 3.00 s for $0.000081.",
        "Question: Where is my order A-1001?",
        "Answer: Order A-1001 is shipped.",
        "User: cust-copy · Session: chat-copy",
        f"Started {run.started_at:%Y-%m-%d %H:%M:%S} UTC · 3.00 s · $0.000081 · 2 tool calls "
        "· 2 model calls",
        f"{live_server.url}/runs/{run.id}/",
    ]
    context.close()


def test_a_run_sent_over_opentelemetry_reads_as_a_transcript(page_as, live_server):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    secret = api_key_create(name="otel", scopes=["ingest"])[1]
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/api/v1/otlp/v1/traces",
        headers={"Authorization": f"Bearer {secret}"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("support-bot")
    question = "Where is order A-1001? <b>urgent</b>"
    with tracer.start_as_current_span("invoke_agent support-bot") as root:
        names = {"gen_ai.agent.name": "support-bot", "user.id": "cust-otel"}
        root.set_attributes({"gen_ai.operation.name": "invoke_agent", **names})
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": json.dumps([
                    {"role": "system", "parts": [{"type": "text", "content": "Be kind."}]},
                    {"role": "user", "parts": [{"type": "text", "content": question}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "tool_call", "name": "lookup_order",
                     "arguments": {"order_id": "A-1001"}}]}]),
            })  # fmt: skip
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attributes({
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.arguments": '{"order_id": "A-1001"}',
                "gen_ai.tool.call.result": '{"status": "shipped"}',
            })  # fmt: skip
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": "Order A-1001 has shipped."}]}]),
            })  # fmt: skip
    provider.shutdown()

    run = Run.objects.get(agent="support-bot")
    page = page_as("support")
    page.goto(f"/runs/{run.id}/")
    expect(page.get_by_test_id("receipt-question")).to_have_text(question)
    expect(page.get_by_test_id("receipt-answer")).to_have_text("Order A-1001 has shipped.")
    entries = page.locator("#transcript .t-entry")
    kinds = entries.evaluate_all("els => els.map(e => e.dataset.kind)")
    assert [k for k in kinds if k != "note"] == ["system", "user", "tool", "assistant"]
    tool_entry = page.locator("#transcript .t-tool")
    expect(tool_entry.locator(".t-call")).to_have_text('lookup_order(order_id="A-1001")')
    expect(tool_entry.locator(".t-result")).to_contain_text('{"status": "shipped"}')
    # Agent-written text is shown as text.
    expect(page.locator("#transcript .t-user .t-text")).to_have_text(question)
    expect(page.locator("#transcript b")).to_have_count(0)
    assert re.search(r"Answered in \d", page.get_by_test_id("receipt-outcome").inner_text())


def test_a_running_runs_transcript_updates_and_keeps_what_the_reader_opened(page_as):
    from django.utils import timezone

    from runs.models import Event
    from tests.runs.run_rows import make_run

    run = make_run(status="running", finished_at=None, wall_ms=None, output=None)
    at = run.started_at
    messages = [{"role": "system", "content": "Stay calm."}, {"role": "user", "content": "Hi"}]
    Event.objects.create(run=run, seq=0, kind="model_call", name="m", started_at=at, ended_at=at,
                         input={"messages": messages}, output={"content": "Hello."})  # fmt: skip
    page = page_as("support")
    page.goto(f"/runs/{run.id}/")
    prompt = page.locator("#transcript .t-system-prompt")
    prompt.locator("summary").click()
    expect(prompt.locator(".t-text")).to_be_visible()
    Event.objects.create(run=run, seq=1, kind="tool_call", name="lookup_order", started_at=at,
                         input={"order_id": "A-7"}, status="running")  # fmt: skip
    expect(page.locator("#transcript .t-tool [data-testid=call-mark]")).to_have_text("running")
    Event.objects.filter(run=run, seq=1).update(status="ok", ended_at=at, output={"found": True})
    Run.objects.filter(id=run.id).update(status="succeeded", finished_at=timezone.now())
    expect(page.locator("#transcript .t-tool .t-result")).to_contain_text('{"found": true}')
    expect(page.get_by_test_id("receipt-outcome")).to_contain_text("Answered in")
    # The prompt the reader opened stayed open through every update.
    expect(prompt.locator(".t-text")).to_be_visible()
