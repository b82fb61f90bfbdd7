"""The cap table and cap resolution (runs.engine.caps): no database."""

import json
from decimal import Decimal

import pytest

from runs.engine.caps import CapError, Caps, resolve_caps

GLOBAL = {
    "max_tool_calls": 20,
    "max_cost_usd": Decimal("0.50"),
    "max_wall_seconds": 300,
    "tool_timeout_seconds": Decimal("10"),
    "tool_timeouts": {},
    "max_model_calls": None,
    "max_tokens": None,
}


# Caps and resolution.


def test_caps_defaults_are_the_design_defaults():
    caps = Caps()
    assert caps["max_tool_calls"] == 20
    assert caps["max_cost_usd"] == Decimal("0.50")
    assert caps["max_wall_seconds"] == 300
    assert caps["tool_timeout_seconds"] == 10
    assert caps["max_model_calls"] is None and caps["max_tokens"] is None


def test_caps_round_trip_through_json():
    caps = Caps(
        max_tool_calls=7,
        max_cost_usd=Decimal("1.2345"),
        max_wall_seconds=2.5,
        tool_timeout_seconds=3,
        tool_timeouts={"slow": 12.5, "fast": 1},
        max_model_calls=4,
        max_tokens=9000,
    )
    data = json.loads(json.dumps(caps.to_dict()))
    assert data["max_cost_usd"] == "1.2345"
    assert Caps.from_dict(data) == caps


def test_caps_from_dict_rejects_unknown_keys():
    with pytest.raises(CapError) as info:
        Caps.from_dict({"max_tool_call": 3})
    assert info.value.field == "max_tool_call"


def test_timeout_for_prefers_policy_then_declared_then_default():
    caps = Caps(tool_timeout_seconds=10, tool_timeouts={"a": 4})
    assert caps.timeout_for("a", declared=30) == 4
    assert caps.timeout_for("b", declared=30) == 30
    assert caps.timeout_for("b") == 10


def test_resolve_agent_override_and_none_inherits():
    caps = resolve_caps(
        GLOBAL,
        {"max_tool_calls": 50, "max_cost_usd": None, "tool_timeouts": {"slow": 30}},
        None,
        may_raise=False,
    )
    assert caps["max_tool_calls"] == 50
    assert caps["max_cost_usd"] == Decimal("0.50")
    assert caps.tool_timeouts == {"slow": 30}
    assert caps["tool_timeout_seconds"] == 10


def test_resolve_request_may_lower_any_cap():
    caps = resolve_caps(
        GLOBAL,
        None,
        {
            "max_tool_calls": 5,
            "max_cost_usd": "0.1",
            "max_wall_seconds": 3,
            "tool_timeout_seconds": 2,
            "max_model_calls": 2,  # turning on an optional cap is lowering it
            "max_tokens": 100,
        },
        may_raise=False,
    )
    assert (caps["max_tool_calls"], caps["max_cost_usd"], caps["max_wall_seconds"]) == (
        5,
        Decimal("0.1"),
        3,
    )
    assert (caps["max_model_calls"], caps["max_tokens"], caps["tool_timeout_seconds"]) == (
        2,
        100,
        2,
    )


def test_resolve_request_equal_to_policy_is_not_a_raise():
    caps = resolve_caps(GLOBAL, None, {"max_tool_calls": 20}, may_raise=False)
    assert caps["max_tool_calls"] == 20


@pytest.mark.parametrize(
    "request_caps, field",
    [
        ({"max_tool_calls": 21}, "max_tool_calls"),
        ({"max_cost_usd": "0.5001"}, "max_cost_usd"),
        ({"max_wall_seconds": 301}, "max_wall_seconds"),
        ({"tool_timeout_seconds": 11}, "tool_timeout_seconds"),
        ({"tool_timeouts": {"slow": 31}}, "tool_timeouts.slow"),
    ],
)
def test_resolve_request_may_not_raise_without_permission(request_caps, field):
    agent = {"tool_timeouts": {"slow": 30}}
    with pytest.raises(CapError) as info:
        resolve_caps(GLOBAL, agent, request_caps, may_raise=False)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    # An admin may.
    caps = resolve_caps(GLOBAL, agent, request_caps, may_raise=True)
    assert caps != resolve_caps(GLOBAL, agent, None, may_raise=False)


def test_resolve_request_raise_above_agent_override_is_refused():
    with pytest.raises(CapError):
        resolve_caps(GLOBAL, {"max_model_calls": 3}, {"max_model_calls": 4}, may_raise=False)


def test_global_none_turns_optional_caps_off_but_not_required_ones():
    caps = resolve_caps({**GLOBAL, "max_tokens": 10}, None, None, may_raise=False)
    assert caps["max_tokens"] == 10
    caps = resolve_caps({**GLOBAL, "max_tool_calls": None}, None, None, may_raise=False)
    assert caps["max_tool_calls"] == 20


@pytest.mark.parametrize(
    "request_caps, field",
    [
        ({"max_tool_calls": 0}, "max_tool_calls"),
        ({"max_tool_calls": -1}, "max_tool_calls"),
        ({"max_tool_calls": True}, "max_tool_calls"),
        ({"max_tool_calls": 2.5}, "max_tool_calls"),
        ({"max_tool_calls": "many"}, "max_tool_calls"),
        ({"max_cost_usd": "-0.01"}, "max_cost_usd"),
        ({"max_cost_usd": "0.12345"}, "max_cost_usd"),
        ({"max_cost_usd": "NaN"}, "max_cost_usd"),
        ({"max_cost_usd": "cheap"}, "max_cost_usd"),
        ({"max_wall_seconds": 0}, "max_wall_seconds"),
        ({"max_wall_seconds": float("inf")}, "max_wall_seconds"),
        ({"tool_timeout_seconds": -3}, "tool_timeout_seconds"),
        ({"tool_timeouts": {"x": 0}}, "tool_timeouts.x"),
        ({"tool_timeouts": ["x"]}, "tool_timeouts"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_resolve_rejects_bad_values_naming_the_field(request_caps, field):
    with pytest.raises(CapError) as info:
        resolve_caps(GLOBAL, None, request_caps, may_raise=True)
    assert info.value.field == field


def test_cost_cap_accepts_four_places_and_floats_exactly():
    caps = resolve_caps(GLOBAL, None, {"max_cost_usd": 0.1234}, may_raise=False)
    assert caps["max_cost_usd"] == Decimal("0.1234")
    caps = resolve_caps(GLOBAL, None, {"max_cost_usd": "0.10000"}, may_raise=False)
    assert caps["max_cost_usd"] == Decimal("0.1")


def test_each_cap_says_in_plain_words_why_it_stopped_a_run():
    from runs.engine.caps import SPEND, TABLE, TOOL_CALLS, WALL

    assert all(cap.stopped for cap in TABLE)
    assert TOOL_CALLS.stop_sentence(20, 20) == "it tried a 21st tool call; the limit is 20 per run"
    used = (0, 1, 2, 10, 11, 21, 111)
    ordinals = [TOOL_CALLS.stop_sentence(99, n).split()[3] for n in used]
    assert ordinals == ["1st", "2nd", "3rd", "11th", "12th", "22nd", "112th"]
    # As a run's error carries them: USD as strings, seconds as numbers.
    assert SPEND.stop_sentence("0.50", "0.4987") == (
        "it had spent $0.4987 of its $0.50 budget, too little for another model call"
    )
    assert WALL.stop_sentence(300, 300.2) == "it ran out of time: the limit is 300 s per run"


def test_every_error_code_a_run_or_tool_call_ends_with_has_a_plain_sentence():
    from runs.engine.sentences import ERROR_SENTENCES

    run_codes = {"budget_exceeded", "agent_error", "provider_error", "cancelled", "worker_lost",
                 "invalid_input", "unknown_agent", "recording_diverged"}  # fmt: skip
    tool_codes = {"tool_timeout", "tool_error", "unknown_tool", "repeated_call"}
    assert run_codes | tool_codes <= set(ERROR_SENTENCES)
    assert all(sentence and not sentence.endswith(".") for sentence in ERROR_SENTENCES.values())
