"""The README's ingest section works as written: its curl batch, its Python client example and its
OpenTelemetry exporter example, each run as it stands in the README against a live server (only
the address is changed) and read back from the database."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from runs.models import Event, Run

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "http://127.0.0.1:8000"
pytestmark = pytest.mark.django_db(transaction=True)


def example(after: str, language: str, base_url: str) -> str:
    """The first ```language block after the text `after` in the README, pointed at base_url."""
    text = README.read_text()
    start = text.index(after)
    code = re.search(rf"```{language}\n(.*?)```", text[start:], re.S).group(1)
    assert ADDRESS in code, f"the {after!r} example no longer talks to {ADDRESS}"
    return code.replace(ADDRESS, base_url)


@pytest.fixture
def key(make_key, monkeypatch):
    secret = make_key("ingest")
    monkeypatch.setenv("AGENTOPS_KEY", secret)
    return secret


def test_the_curl_batch(live_server, key, client, make_user):
    script = example("**A batch**", "sh", live_server.url)
    expected = json.loads(re.search(r"^# (\{.*\})$", script, re.M).group(1))

    done = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    run = Run.objects.get(agent="billing-bot")
    (step,) = Event.objects.filter(run=run)
    assert (run.source, run.status, run.user_ref) == ("external", "succeeded", "cust-42")
    assert run.output == {"answer": "Refunded."}
    assert (step.kind, step.model, step.input_tokens, step.output_tokens) == (
        "model_call",
        "gpt-4o-mini",
        812,
        64,
    )
    # Priced from the model prices, since the step carries tokens and no cost.
    assert step.cost_usd > 0 and run.cost_usd == step.cost_usd and run.model_calls == 1
    # The run's times are its step's: the page says it took the step's 2 s.
    assert (run.created_at, run.started_at, run.finished_at) == (
        step.started_at, step.started_at, step.ended_at,
    )  # fmt: skip
    client.force_login(make_user("support"))
    page = client.get(f"/runs/{run.id}/").content.decode()
    assert "<dt>Duration</dt><dd>2.00 s</dd>" in page
    assert "Answered in 2.00 s for $" in page


def test_the_python_client(live_server, key):
    exec(compile(example("**From Python**", "python", live_server.url), "README.md", "exec"), {})

    run = Run.objects.get(agent="support-bot")
    steps = list(Event.objects.filter(run=run).order_by("seq"))
    assert (run.source, run.status, run.user_ref) == ("external", "succeeded", "cust-42")
    assert run.output == {"answer": "Order 7 has shipped."}
    assert [(s.kind, s.name) for s in steps] == [
        ("model_call", "gpt-4o-mini"),
        ("tool_call", "lookup_order"),
    ]
    assert steps[1].output == {"status": "shipped"}
    assert (run.input_tokens, run.output_tokens, run.tool_calls) == (120, 12, 1)


def test_the_opentelemetry_exporter(live_server, key):
    code = example("**OpenTelemetry**", "python", live_server.url)
    exec(compile(code, "README.md", "exec"), {})

    run = Run.objects.get(agent="support-bot")
    steps = {s.name: s for s in Event.objects.filter(run=run)}
    agent, chat, tool = (
        steps[n] for n in ("invoke_agent support-bot", "gpt-4o-mini", "lookup_order")
    )
    assert run.source == "external" and run.status == "succeeded"
    assert (chat.kind, chat.model, chat.input_tokens, chat.output_tokens) == (
        "model_call",
        "gpt-4o-mini",
        120,
        12,
    )
    assert (tool.kind, tool.input) == ("tool_call", {"order": 7})
    assert chat.parent_id == tool.parent_id == agent.id  # nested under the agent's span
