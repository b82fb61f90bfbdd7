"""Re-execution (live and recorded_model) on a real worker, divergence, and comparing runs."""

import json
from decimal import Decimal

import pytest

from runs.engine.compare import compare_runs
from runs.errors import Conflict
from runs.models import Run
from runs.services.keys import api_key_create
from runs.services.replay import run_replay
from runs.services.runs import run_create
from tests.runs.run_rows import wait_for

pytestmark = pytest.mark.integration


def steps_of(run: Run) -> list[dict]:
    return list(
        run.events.order_by("seq").values(
            "seq", "kind", "name", "status", "input", "output", "error"
        )
    )


def as_dict(run: Run) -> dict:
    fields = ("status", "output", "error", "tool_calls", "model_calls", "input_tokens",
              "output_tokens", "cost_usd", "wall_ms")  # fmt: skip
    return {f: getattr(run, f) for f in fields}


def test_recorded_model_replay_reproduces_demo_support_and_spends_nothing(
    celery_worker, transactional_db
):
    original = wait_for(run_create(agent="demo-support", input={"question": "Where is A-1002?"}).id)
    assert original.status == "succeeded" and original.cost_usd > 0
    replay = wait_for(run_replay(original=original, mode="recorded_model").id)
    assert replay.status == "succeeded", replay.error
    assert replay.replay_of_id == original.id and replay.replay_mode == "recorded_model"
    assert replay.output == original.output
    assert replay.cost_usd == Decimal("0")
    comparison = compare_runs(
        as_dict(original), steps_of(original), as_dict(replay), steps_of(replay)
    )
    assert comparison.first_divergence is None, comparison.pairs[comparison.first_divergence or 0]
    assert [p.left["name"] for p in comparison.pairs] == [s["name"] for s in steps_of(replay)]
    assert comparison.outcome["output_same"] is True


def test_a_changed_tool_makes_the_replay_diverge_and_the_step_says_where(
    celery_worker, transactional_db, tmp_path
):
    setting = tmp_path / "setting.txt"
    setting.write_text("blue")
    original = wait_for(run_create(agent="test-setting", input={"path": str(setting)}).id)
    assert original.status == "succeeded" and "blue" in original.output["answer"]

    setting.write_text("green")  # the tool's behaviour changed after the original ran
    stopped = wait_for(run_replay(original=original, mode="recorded_model").id)
    assert stopped.status == "failed" and stopped.error["code"] == "provider_error"
    assert stopped.error["divergence"]["index"] == 1
    divergence = stopped.events.get(kind="error", name="recording_diverged")
    assert "green" in divergence.input["reason"] and "blue" in divergence.input["reason"]

    went_on = wait_for(
        run_replay(original=original, mode="recorded_model", on_divergence="continue").id
    )
    assert went_on.status == "succeeded" and "green" in went_on.output["answer"]
    marker = went_on.events.get(kind="error", name="recording_diverged")
    assert marker.input["index"] == 1 and marker.input["then"] == "live"

    comparison = compare_runs(
        as_dict(original), steps_of(original), as_dict(went_on), steps_of(went_on)
    )
    first = comparison.pairs[comparison.first_divergence]
    # The first step that differs is the tool call that now answers differently.
    assert first.left["kind"] == "tool_call" and first.left["name"] == "test_read_setting"
    assert "output" in first.differs
    assert comparison.diverged_at == (first.left["seq"], first.right["seq"])
    assert comparison.outcome["output_same"] is False


def test_live_replay_with_a_lowered_tool_cap_ends_budget_exceeded(celery_worker, transactional_db):
    original = wait_for(run_create(agent="demo-support", input={"question": "A-1001?"}).id)
    replay = wait_for(run_replay(original=original, mode="live", caps={"max_tool_calls": 1}).id)
    assert replay.status == "budget_exceeded" and replay.cap_hit == "max_tool_calls"
    assert replay.caps["max_tool_calls"] == 1


def test_external_and_unfinished_runs_cannot_be_replayed(transactional_db):
    external = Run.objects.create(agent="their-agent", source="external", status="succeeded")
    with pytest.raises(Conflict, match="elsewhere"):
        run_replay(original=external, mode="live")
    running = Run.objects.create(agent="demo-support", status="running")
    with pytest.raises(Conflict, match="not finished"):
        run_replay(original=running, mode="live")


@pytest.mark.django_db
def test_replay_api_answers_and_refuses_clearly(client, no_enqueue):
    _, writer = api_key_create(name="w", scopes=["runs:write", "runs:read"])
    _, reader = api_key_create(name="r", scopes=["runs:read"])
    done = Run.objects.create(agent="demo-support", status="succeeded", input={"question": "x"})
    external = Run.objects.create(agent="their-agent", source="external", status="succeeded")

    def post(ref, body, token):
        return client.post(
            f"/api/v1/runs/{ref}/replay", json.dumps(body), content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )  # fmt: skip

    ok = post(done.id, {"mode": "recorded_model"}, writer)
    assert ok.status_code == 202
    new = Run.objects.get(id=ok.json()["id"])
    assert new.replay_of_id == done.id and new.input == {"question": "x"}
    assert post(done.id, {"mode": "live"}, reader).status_code == 403
    assert post("0" * 32, {"mode": "live"}, writer).status_code == 404
    conflict = post(external.id, {"mode": "live"}, writer)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "not_replayable"
    assert post(done.id, {"mode": "sideways"}, writer).status_code == 422
    raise_cap = post(done.id, {"mode": "live", "caps": {"max_tool_calls": 99}}, writer)
    assert raise_cap.status_code == 403
