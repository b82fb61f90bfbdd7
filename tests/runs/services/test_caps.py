"""runs.services.caps and runs.selectors.caps: validating and saving the cap policy, its audit
trail, falling back to the global policy, caps frozen on new runs, and backtests on stored
runs."""

from decimal import Decimal

import pytest
from django.utils import timezone

from runs.errors import Conflict, NotFound
from runs.models import CapPolicy, CapPolicyChange, Run
from runs.selectors import caps as cap_reads
from runs.selectors.caps import caps_backtest
from runs.services import caps
from runs.services.runs import run_create
from tests.runs.run_rows import GLOBAL, finished_run, loop_steps

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]

# Validation: every field, one message each.

BAD_VALUES = [
    ("max_tool_calls", "0", "must be between 1 and 1000000000"),
    ("max_tool_calls", "1000000001", "must be between 1 and 1000000000"),
    ("max_tool_calls", "2.5", "must be a whole number"),
    ("max_tool_calls", "many", "must be a whole number"),
    ("max_tool_calls", True, "must be a whole number"),
    ("max_cost_usd", "-0.01", "must be between 0 and 99999.9999"),
    ("max_cost_usd", "100000", "must be between 0 and 99999.9999"),
    ("max_cost_usd", "0.12345", "must have at most 4 decimal places"),
    ("max_cost_usd", "lots", "must be an amount in USD, like 0.50"),
    ("max_cost_usd", "NaN", "must be between 0 and 99999.9999"),
    ("max_wall_seconds", "0", "must be a whole number of seconds from 1 to 604800"),
    ("max_wall_seconds", "604801", "must be a whole number of seconds from 1 to 604800"),
    ("max_wall_seconds", "1.5", "must be a whole number of seconds from 1 to 604800"),
    ("max_wall_seconds", "soon", "must be a whole number of seconds from 1 to 604800"),
    ("tool_timeout_seconds", "0", "must be a whole number of seconds from 1 to 86400"),
    ("tool_timeout_seconds", "86401", "must be a whole number of seconds from 1 to 86400"),
    ("tool_timeout_seconds", 2.5, "must be a whole number of seconds from 1 to 86400"),
    ("max_model_calls", "0", "must be between 1 and 1000000000"),
    ("max_model_calls", "-3", "must be between 1 and 1000000000"),
    ("max_tokens", "0", "must be between 1 and 1000000000"),
    ("max_tokens", "1e6", "must be a whole number"),
]


@pytest.mark.parametrize("scope", ["global", "demo-loop"])
@pytest.mark.parametrize("field, value, message", BAD_VALUES)
def test_each_bad_value_is_named_with_its_own_message(scope, field, value, message):
    values = {**GLOBAL, field: value} if scope == "global" else {field: value}
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps.cap_policy_set(scope=scope, values=values)
    assert exc.value.errors == {field: message}
    assert exc.value.status == 422 and exc.value.code == "invalid_caps"
    assert not CapPolicyChange.objects.exists()


def test_per_tool_timeouts_are_checked_per_tool():
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps.cap_policy_set(
            scope="demo-loop",
            values={"tool_timeouts": {"check_inventory": "0", "no_such_tool": 5}},
        )
    assert exc.value.errors == {
        "tool_timeouts.check_inventory": "must be a whole number of seconds from 1 to 86400",
        "tool_timeouts.no_such_tool": "no tool named 'no_such_tool' is registered here",
    }
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps.cap_policy_set(scope="demo-loop", values={"tool_timeouts": [5]})
    assert exc.value.errors == {"tool_timeouts": "must be an object of tool name to seconds"}


def test_every_bad_field_is_reported_at_once_and_unknown_caps_are_refused():
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps.cap_policy_set(
            scope="global",
            values={"max_tool_calls": "0", "max_cost_usd": "", "max_bananas": 3},
        )
    assert exc.value.errors == {
        "max_bananas": "unknown cap",
        "max_tool_calls": "must be between 1 and 1000000000",
        "max_cost_usd": "is required in the global policy (every agent inherits it)",
        "max_wall_seconds": "is required in the global policy (every agent inherits it)",
        "tool_timeout_seconds": "is required in the global policy (every agent inherits it)",
    }
    assert exc.value.details == {"fields": exc.value.errors}


def test_the_bounds_themselves_are_accepted():
    saved = caps.cap_policy_set(
        scope="global",
        values={
            "max_tool_calls": 1_000_000_000,
            "max_cost_usd": "99999.9999",
            "max_wall_seconds": 604_800,
            "tool_timeout_seconds": "86400",
            "max_model_calls": 1,
            "max_tokens": "1",
            "tool_timeouts": {"check_inventory": 86_400},
        },
    )
    policy = CapPolicy.objects.get(scope="global")
    assert saved.policy == policy
    assert policy.values == {
        "max_tool_calls": 1_000_000_000,
        "max_cost_usd": "99999.9999",
        "max_wall_seconds": 604_800,
        "tool_timeout_seconds": 86_400,
        "max_model_calls": 1,
        "max_tokens": 1,
        "max_repeated_calls": 3,  # left out of the global policy: the table's default
    }
    assert policy.tool_timeouts == {"check_inventory": 86_400}
    # A zero budget is a valid policy: no model call may spend anything.
    caps.cap_policy_set(scope="demo-loop", values={"max_cost_usd": "0"})
    assert CapPolicy.objects.get(scope="demo-loop").values == {"max_cost_usd": "0.00"}


def test_a_scope_must_be_global_or_a_registered_agent():
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps.cap_policy_set(scope="nobody-agent", values={"max_tool_calls": 3})
    assert exc.value.errors == {"scope": "no agent named 'nobody-agent' is registered here"}
    assert not CapPolicy.objects.filter(scope="nobody-agent").exists()


# Audit trail.


def test_every_change_is_recorded_with_who_when_before_and_after(make_user):
    admin = make_user("admin", username="ada")
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": "5"}, changed_by=admin)
    caps.cap_policy_set(
        scope="demo-loop", values={"max_tool_calls": 7, "max_cost_usd": "0.1"}, actor="key:ci"
    )
    newest, first = CapPolicyChange.objects.filter(scope="demo-loop").order_by("-id")
    assert first.changed_by == admin and first.actor == "user:ada"
    assert first.before is None
    assert first.after == {
        "max_tool_calls": 5,
        "max_cost_usd": None,
        "max_wall_seconds": None,
        "tool_timeout_seconds": None,
        "tool_timeouts": {},
        "max_model_calls": None,
        "max_tokens": None,
        "max_repeated_calls": None,
        "on_cap": None,
        "approval_timeout_seconds": None,
        "max_extension": {},
        "requires_approval": [],
    }
    assert newest.actor == "key:ci" and newest.changed_by is None
    assert newest.before == first.after
    assert cap_reads.change_diff(newest) == [
        ("max_tool_calls", 5, 7),
        ("max_cost_usd", None, "0.10"),
    ]
    assert first.changed_at <= newest.changed_at <= timezone.now()


def test_saving_the_same_values_records_nothing():
    before = CapPolicyChange.objects.count()
    saved = caps.cap_policy_set(scope="global", values={**GLOBAL, "max_cost_usd": "0.5000"})
    assert saved.change is None and CapPolicyChange.objects.count() == before


def test_global_changes_are_audited_per_tool():
    caps.cap_policy_set(scope="global", values={**GLOBAL, "tool_timeouts": {"search_kb": 3}})
    change = CapPolicyChange.objects.get(scope="global")
    assert cap_reads.change_diff(change) == [("tool_timeouts.search_kb", None, 3)]


def test_a_stale_form_cannot_overwrite_a_newer_change():
    seen = cap_reads.cap_policy_last_change_id(scope="demo-loop")
    assert seen == 0
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5}, actor="key:other")
    with pytest.raises(Conflict) as exc:
        caps.cap_policy_set(
            scope="demo-loop", values={"max_tool_calls": 9}, expected_change_id=seen
        )
    assert exc.value.code == "stale_policy" and "key:other" in exc.value.message
    assert CapPolicy.objects.get(scope="demo-loop").values.get("max_tool_calls") == 5


# Falling back to the global policy.


def test_removing_a_field_or_the_override_falls_back_to_the_global_value():
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5, "max_wall_seconds": 60})
    assert run_create(agent="demo-loop", input={}).caps["max_tool_calls"] == 5

    caps.cap_policy_set(scope="demo-loop", values={"max_wall_seconds": 60})  # field emptied
    run = run_create(agent="demo-loop", input={})
    assert (run.caps["max_tool_calls"], run.caps["max_wall_seconds"]) == (20, 60)

    removed = caps.cap_policy_remove(scope="demo-loop", actor="key:ci")
    assert removed.policy is None and not CapPolicy.objects.filter(scope="demo-loop").exists()
    assert removed.change.before["max_wall_seconds"] == 60 and removed.change.after is None
    assert run_create(agent="demo-loop", input={}).caps["max_wall_seconds"] == 300


def test_an_override_saved_empty_is_removed():
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5})
    saved = caps.cap_policy_set(
        scope="demo-loop", values={"max_tool_calls": "", "tool_timeouts": {"check_inventory": ""}}
    )
    assert saved.policy is None and not CapPolicy.objects.filter(scope="demo-loop").exists()
    assert CapPolicyChange.objects.filter(scope="demo-loop", after__isnull=True).count() == 1


def test_the_global_policy_cannot_be_removed_and_a_missing_override_is_not_found():
    with pytest.raises(caps.CapPolicyInvalid):
        caps.cap_policy_remove(scope="global")
    with pytest.raises(NotFound):
        caps.cap_policy_remove(scope="demo-support")
    assert CapPolicy.objects.filter(scope="global").exists()


# Caps frozen on runs.


def test_an_override_changes_the_next_run_of_that_agent_only():
    before = run_create(agent="demo-loop", input={})
    caps.cap_policy_set(
        scope="demo-loop", values={"max_tool_calls": 4, "tool_timeouts": {"check_inventory": 2}}
    )
    after = run_create(agent="demo-loop", input={})
    other = run_create(agent="demo-support", input={})
    assert after.caps["max_tool_calls"] == 4 and after.caps["tool_timeouts"] == {
        "check_inventory": 2
    }
    assert other.caps["max_tool_calls"] == 20 and other.caps["tool_timeouts"] == {}
    before.refresh_from_db()
    assert before.caps["max_tool_calls"] == 20  # frozen when it was created


def test_a_global_change_reaches_agents_without_their_own_value():
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 4})
    caps.cap_policy_set(
        scope="global", values={**GLOBAL, "max_tool_calls": 8, "max_model_calls": 30}
    )
    loop = run_create(agent="demo-loop", input={})
    support = run_create(agent="demo-support", input={})
    assert (loop.caps["max_tool_calls"], loop.caps["max_model_calls"]) == (4, 30)
    assert (support.caps["max_tool_calls"], support.caps["max_model_calls"]) == (8, 30)


# Loading runs for a backtest.


def test_runs_for_backtest_reads_finished_runs_and_their_steps_in_two_queries(
    django_assert_num_queries,
):
    old = finished_run(steps=loop_steps(2), ago=30)
    new = finished_run(steps=[*loop_steps(1), "refused"], ago=10)
    finished_run(agent="demo-support", steps=loop_steps(1), ago=5)
    Run.objects.create(agent="demo-loop", status="running")  # not finished
    finished_run(steps=loop_steps(3), source="external")  # not executed here
    with django_assert_num_queries(2):
        runs = cap_reads.runs_for_backtest(agent="demo-loop", last_n=10)
    assert [r["id"] for r in runs] == [new.id, old.id]
    assert [s["seq"] for s in runs[0]["steps"]] == [0, 1, 2]
    assert runs[0]["steps"][2]["attributes"] == {"refused": True}
    assert runs[0]["steps"][0]["cost_usd"] == Decimal("0.001")
    assert len(cap_reads.runs_for_backtest(last_n=10)) == 3
    assert [r["id"] for r in cap_reads.runs_for_backtest(agent="demo-loop", last_n=1)] == [new.id]


def test_caps_backtest_for_an_agent_counts_its_runs_only():
    cut = finished_run(steps=loop_steps(6))
    finished_run(steps=loop_steps(3))  # exactly at a cap of 3: not cut
    finished_run(agent="demo-support", steps=loop_steps(9))
    result = caps_backtest(proposed={"max_tool_calls": 3}, agent="demo-loop", with_current=True)
    assert result.proposed.to_dict() == {
        "runs_checked": 2,
        "runs_cut": 1,
        "by_cap": {
            "max_tool_calls": 1,
            "max_cost_usd": 0,
            "max_wall_seconds": 0,
            "max_model_calls": 0,
            "max_tokens": 0,
            "max_repeated_calls": 0,
            "spend_window": 0,
        },
        # Cut at the 4th tool call (seq 7); the model calls at seq 8 and 10 are saved.
        "saved_usd": Decimal("0.002"),
        "examples": [{"run_id": str(cut.id), "cut_at_seq": 7, "cap": "max_tool_calls"}],
    }
    assert result.current.runs_cut == 0
    assert (result.current_caps["max_tool_calls"], result.proposed_caps["max_tool_calls"]) == (
        20,
        3,
    )


def test_a_global_proposal_leaves_an_agents_own_value_alone():
    caps.cap_policy_set(scope="demo-support", values={"max_tool_calls": 50})
    finished_run(agent="demo-support", steps=loop_steps(9))
    loop = finished_run(steps=loop_steps(9))
    result = caps_backtest(proposed={"max_tool_calls": 5}, last_n=10)
    assert result.proposed.runs_checked == 2
    assert [c.run_id for c in result.proposed.cut] == [str(loop.id)]
    # With the agent named, the proposal is laid over that agent's own caps instead.
    agent = caps_backtest(proposed={"max_tool_calls": 5}, agent="demo-support")
    assert agent.proposed.runs_cut == 1


def test_a_run_stopped_by_the_cap_in_force_is_not_cut_by_the_same_cap():
    finished_run(steps=loop_steps(20, stopped_at=20), status="budget_exceeded")
    result = caps_backtest(proposed={}, agent="demo-loop", with_current=True)
    assert result.proposed.runs_cut == result.current.runs_cut == 0
    lower = caps_backtest(proposed={"max_tool_calls": 19}, agent="demo-loop")
    assert lower.proposed.examples[0].cut_at_seq == 39


def test_a_proposal_is_validated_like_a_policy():
    with pytest.raises(caps.CapPolicyInvalid) as exc:
        caps_backtest(proposed={"max_tool_calls": 0, "max_wall_seconds": None, "max_x": 1})
    assert exc.value.errors == {
        "max_x": "unknown cap",
        "max_tool_calls": "must be between 1 and 1000000000",
        "max_wall_seconds": "cannot be switched off",
    }
    # An optional cap can be switched off (null) or on.
    finished_run(steps=loop_steps(4))
    assert caps_backtest(proposed={"max_model_calls": 2}).proposed.by_cap["max_model_calls"] == 1
    assert caps_backtest(proposed={"max_model_calls": None}).proposed.runs_cut == 0


def test_a_cap_newer_than_the_global_policy_takes_its_default_until_set():
    # A global policy saved before the repeated-call cap existed does not mention it.
    CapPolicy.objects.filter(scope="global").update(values=GLOBAL)
    assert run_create(agent="demo-loop", input={}).caps["max_repeated_calls"] == 3
    # A client that does not know the cap leaves it as it is; null switches it off.
    caps.cap_policy_set(scope="global", values=GLOBAL)
    assert run_create(agent="demo-loop", input={}).caps["max_repeated_calls"] == 3
    caps.cap_policy_set(scope="global", values={**GLOBAL, "max_repeated_calls": None})
    assert run_create(agent="demo-loop", input={}).caps["max_repeated_calls"] is None
    assert CapPolicy.objects.get(scope="global").values["max_repeated_calls"] is None
