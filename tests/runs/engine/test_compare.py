from decimal import Decimal

from runs.engine.compare import align, compare_runs, normal


def step(seq, kind, name, output=None, status="ok", **extra):
    return {"seq": seq, "kind": kind, "name": name, "status": status, "input": extra.get("input"),
            "output": output, "error": extra.get("error")}  # fmt: skip


def test_identical_runs_have_no_divergence():
    steps = [
        step(0, "model_call", "m", {"content": "hi", "raw": {"a": 1}}),
        step(1, "tool_call", "t", 1),
    ]
    again = [
        step(0, "model_call", "m", {"content": "hi", "raw": {"a": 2}}),
        step(1, "tool_call", "t", 1),
    ]
    result = compare_runs({"status": "succeeded"}, steps, {"status": "succeeded"}, again)
    assert result.first_divergence is None and result.diverged_at is None
    assert all(p.same for p in result.pairs)


def test_an_inserted_step_stands_alone_and_later_steps_still_align():
    left = [step(0, "tool_call", "a", 1), step(1, "tool_call", "b", 2)]
    right = [step(0, "tool_call", "a", 1), step(1, "log", "retry"), step(2, "tool_call", "b", 2)]
    pairs = align(left, right)
    assert [(p.left and p.left["seq"], p.right and p.right["seq"]) for p in pairs] == [
        (0, 0), (None, 1), (1, 2),
    ]  # fmt: skip
    assert [p.same for p in pairs] == [True, False, True]


def test_first_divergence_names_the_first_differing_step_and_the_fields():
    left = [step(0, "tool_call", "a", 1), step(1, "tool_call", "b", 2), step(2, "log", "x")]
    right = [step(0, "tool_call", "a", 1), step(1, "tool_call", "b", 3, status="error"),
             step(2, "log", "y")]  # fmt: skip
    result = compare_runs(
        {"status": "succeeded", "output": {"a": 1}, "cost_usd": Decimal("0.10"), "tool_calls": 2},
        left,
        {"status": "failed", "output": None, "cost_usd": Decimal("0.25"), "tool_calls": 2,
         "error": {"code": "agent_error"}},
        right,
    )  # fmt: skip
    assert result.diverged_at == (1, 1)
    assert result.pairs[result.first_divergence].differs == ["status", "output"]
    assert result.outcome == {
        "status": ("succeeded", "failed"),
        "error_code": (None, "agent_error"),
        "output_same": False,
    }
    assert result.figures["cost_usd"]["delta"] == Decimal("0.15")
    assert result.figures["tool_calls"]["delta"] == 0


def test_normal_drops_execution_specific_keys_only():
    assert normal({"id": 1, "tool_call_id": "x", "content": [{"id": 2, "v": 3}]}) == {
        "content": [{"v": 3}]
    }
