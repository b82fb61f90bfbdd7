"""The tool registry and its JSON-schema subset (runs.engine.tools)."""

import pytest

from runs.engine.tools import (
    UnknownToolError,
    all_tools,
    get_tool,
    register_tool,
    tool,
    tool_error,
    tool_timeout,
    unknown_tool,
    unregister_tool,
    validate,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "maxLength": 8, "minLength": 2},
        "qty": {"type": "integer", "minimum": 1, "maximum": 10},
        "price": {"type": "number", "exclusiveMinimum": 0},
        "gift": {"type": "boolean"},
        "speed": {"enum": ["standard", "express"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["order_id"],
    "additionalProperties": False,
}


@pytest.fixture
def scratch_tools():
    names = []
    yield names
    for name in names:
        unregister_tool(name)


def test_valid_arguments_have_no_problems():
    args = {
        "order_id": "A-1",
        "qty": 3,
        "price": 9.5,
        "gift": False,
        "speed": "express",
        "tags": ["a", "b"],
        "address": {"city": "Oslo"},
    }
    assert validate(SCHEMA, args) == []


@pytest.mark.parametrize(
    "args, problem",
    [
        ({}, "order_id: required"),
        ({"order_id": 12}, "order_id: expected string, got integer"),
        ({"order_id": "A"}, "order_id: shorter than 2"),
        ({"order_id": "A-123456789"}, "order_id: longer than 8"),
        ({"order_id": "A-1", "qty": 0}, "qty: less than the minimum 1"),
        ({"order_id": "A-1", "qty": 11}, "qty: more than the maximum 10"),
        ({"order_id": "A-1", "qty": 2.5}, "qty: expected integer, got number"),
        ({"order_id": "A-1", "qty": True}, "qty: expected integer, got boolean"),
        ({"order_id": "A-1", "price": 0}, "price: must be more than 0"),
        ({"order_id": "A-1", "price": "9"}, "price: expected number, got string"),
        ({"order_id": "A-1", "gift": "yes"}, "gift: expected boolean, got string"),
        ({"order_id": "A-1", "speed": "warp"}, "speed: 'warp' is not one of"),
        ({"order_id": "A-1", "tags": ["a", "b", "c"]}, "tags: more than 2 items"),
        ({"order_id": "A-1", "tags": ["a", 1]}, "tags[1]: expected string"),
        ({"order_id": "A-1", "address": {}}, "address.city: required"),
        ({"order_id": "A-1", "address": {"city": "x", "zip": 1}}, "address.zip: unexpected"),
        ({"order_id": "A-1", "color": "red"}, "color: unexpected property"),
        (["A-1"], "arguments: expected object, got array"),
    ],
)
def test_each_keyword_reports_its_problem(args, problem):
    problems = validate(SCHEMA, args)
    assert any(problem in p for p in problems), problems


def test_integral_float_counts_as_integer_and_type_lists_work():
    assert validate({"type": "integer"}, 3.0) == []
    assert validate({"type": ["string", "null"]}, None) == []
    assert validate({"type": ["string", "null"]}, 1) != []


def test_additional_properties_schema_validates_extra_keys():
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert validate(schema, {"a": 1}) == []
    assert validate(schema, {"a": "x"}) == ["a: expected integer, got string"]


def test_register_and_get(scratch_tools):
    scratch_tools.append("t-double")

    @tool(
        name="t-double",
        description="Doubles.",
        schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        timeout=2,
    )
    def double(n):
        return n * 2

    found = get_tool("t-double")
    assert found.fn is double and found.timeout == 2.0 and not found.is_async
    assert found.spec() == {
        "name": "t-double",
        "description": "Doubles.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    assert found.validate({"n": "2"}) == ["n: expected integer, got string"]
    assert found in all_tools()


def test_async_tool_is_recognised_and_name_defaults_to_function(scratch_tools):
    async def t_async_fetch(url: str):
        """Fetch a page.

        More detail that is not the description."""
        return url

    scratch_tools.append("t_async_fetch")
    registered = register_tool(t_async_fetch)
    assert registered.name == "t_async_fetch"
    assert registered.is_async
    assert registered.description == "Fetch a page."
    assert registered.schema == {"type": "object"}


def test_unknown_tool_raises():
    with pytest.raises(UnknownToolError):
        get_tool("t-never-registered")


def test_a_different_function_cannot_take_a_registered_name(scratch_tools):
    scratch_tools.append("t-taken")
    register_tool(lambda: 1, name="t-taken")

    def other():
        return 2

    with pytest.raises(ValueError, match="already registered"):
        register_tool(other, name="t-taken")


def test_registering_the_same_function_again_replaces_it(scratch_tools):
    scratch_tools.append("t-same")

    def same():
        return 1

    register_tool(same, name="t-same", timeout=1)
    register_tool(same, name="t-same", timeout=3)
    assert get_tool("t-same").timeout == 3


@pytest.mark.parametrize(
    "kwargs", [{"schema": {"type": "string"}}, {"timeout": 0}, {"timeout": -1}]
)
def test_bad_registrations_are_refused(kwargs):
    with pytest.raises(ValueError):
        register_tool(lambda: None, name="t-bad", **kwargs)
    with pytest.raises(UnknownToolError):
        get_tool("t-bad")


def test_structured_error_shapes():
    assert tool_error("x", "boom") == {"error": "tool_error", "tool": "x", "message": "boom"}
    assert tool_timeout("x", 2.0) == {"error": "tool_timeout", "tool": "x", "timeout_s": 2}
    assert tool_timeout("x", 0.5)["timeout_s"] == 0.5
    assert unknown_tool("x")["error"] == "unknown_tool"
