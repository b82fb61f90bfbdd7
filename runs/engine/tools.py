"""The tool registry: named callables an agent may call through `ctx.tool`, each with a JSON schema
for its arguments and an optional timeout. Plain Python.

Arguments are checked against a subset of JSON Schema (written here; no jsonschema dependency):
`type` (object, string, integer, number, boolean, array, null, or a list of them), `properties`,
`required`, `additionalProperties` (false or a schema), `items`, `enum`, `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`.
Other keywords (`description`, `title`, `default`...) are ignored.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_TOOLS: dict[str, Tool] = {}

OBJECT_SCHEMA = {"type": "object"}


@dataclass(frozen=True)
class Tool:
    """A registered tool. `fn` is called with the validated arguments as keywords; it may be a
    plain function or an `async def`. `timeout` (seconds) is the tool's own default, used unless
    the run's caps name this tool in `tool_timeouts`."""

    name: str
    description: str
    fn: Callable
    schema: dict = field(default_factory=lambda: dict(OBJECT_SCHEMA))
    timeout: float | None = None
    repeatable: bool = False  # meant to be polled: identical calls are not a loop
    requires_approval: bool = False  # each call waits for a person to approve or deny it

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def spec(self) -> dict:
        """The provider-neutral description sent to a model: name, description, parameters."""
        return {"name": self.name, "description": self.description, "parameters": self.schema}

    def validate(self, args) -> list[str]:
        """Problems with `args` for this tool, as readable messages; empty when they are valid."""
        return validate(self.schema, args)


class UnknownToolError(LookupError):
    pass


def register_tool(
    fn: Callable,
    *,
    name: str | None = None,
    description: str = "",
    schema: dict | None = None,
    timeout: float | None = None,
    repeatable: bool = False,
    requires_approval: bool = False,
) -> Tool:
    """Register `fn` as a tool and return it. The name defaults to the function's name.
    `repeatable` opts the tool out of the repeated-call cap (a status check meant to be polled).
    `requires_approval`: each call waits for a person to approve or deny it (a policy can ask
    the same of any tool).

    Registering the same function again (a module imported twice) replaces the entry; another
    function under a taken name raises ValueError, as does a schema that is not an object schema.
    """
    name = name or fn.__name__
    schema = dict(schema) if schema is not None else dict(OBJECT_SCHEMA)
    if schema.get("type", "object") != "object":
        raise ValueError(f"tool {name!r}: the argument schema must have type 'object'")
    if timeout is not None and (
        isinstance(timeout, bool) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ValueError(f"tool {name!r}: timeout must be a positive number of seconds")
    existing = _TOOLS.get(name)
    if existing is not None and not same_callable(existing.fn, fn):
        raise ValueError(f"a different tool is already registered as {name!r}")
    tool_ = Tool(
        name=name,
        description=description or (inspect.getdoc(fn) or "").split("\n\n")[0],
        fn=fn,
        schema=schema,
        timeout=float(timeout) if timeout is not None else None,
        repeatable=bool(repeatable),
        requires_approval=bool(requires_approval),
    )
    _TOOLS[name] = tool_
    return tool_


def tool(
    name: str | None = None,
    *,
    description: str = "",
    schema: dict | None = None,
    timeout: float | None = None,
    repeatable: bool = False,
    requires_approval: bool = False,
):
    """Decorator form of `register_tool`; returns the function unchanged."""

    def decorate(fn: Callable) -> Callable:
        register_tool(
            fn,
            name=name,
            description=description,
            schema=schema,
            timeout=timeout,
            repeatable=repeatable,
            requires_approval=requires_approval,
        )
        return fn

    return decorate


def get_tool(name: str) -> Tool:
    """The tool registered as `name`; raises UnknownToolError."""
    try:
        return _TOOLS[name]
    except KeyError:
        raise UnknownToolError(name) from None


def all_tools() -> list[Tool]:
    return sorted(_TOOLS.values(), key=lambda t: t.name)


def unregister_tool(name: str) -> None:
    """Forget a tool (tests register throwaway tools)."""
    _TOOLS.pop(name, None)


def same_callable(a: Callable, b: Callable) -> bool:
    """Whether two callables are the same definition (same module and qualified name), as a
    module imported twice registers it again; registries refuse a different one under a taken
    name."""
    return _identity(a) == _identity(b)


def _identity(fn: Callable) -> tuple[str, str]:
    return (getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)))


# Structured results an agent gets instead of an exception. The shapes are DESIGN §7's.


def tool_error(tool_name: str, message: str) -> dict:
    return {"error": "tool_error", "tool": tool_name, "message": message}


def tool_timeout(tool_name: str, timeout_s: float) -> dict:
    seconds = int(timeout_s) if float(timeout_s).is_integer() else timeout_s
    return {"error": "tool_timeout", "tool": tool_name, "timeout_s": seconds}


def repeated_call(tool_name: str, count: int) -> dict:
    return {"error": "repeated_call", "tool": tool_name, "count": count}


def call_key(tool_name: str, args) -> str:
    """What makes two tool calls the same call: the tool's name and its arguments as canonical
    JSON (key order and whitespace do not matter). Short, for storing beside each call."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{tool_name}\0{canonical}".encode()).hexdigest()[:20]


def unknown_tool(tool_name: str, message: str | None = None) -> dict:
    return {
        "error": "unknown_tool",
        "tool": tool_name,
        "message": message or f"no tool named {tool_name!r}",
    }


# The schema subset.

_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, Mapping),
    "array": lambda v: isinstance(v, list | tuple),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # bool is an int subclass in Python, but not a number in JSON.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def validate(schema: Mapping, value, path: str = "") -> list[str]:
    """Every way `value` breaks `schema` (the subset above), each message naming the path."""
    where = path or "arguments"
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES.get(n, lambda v: True)(value) for n in names):
            return [f"{where}: expected {' or '.join(names)}, got {_json_type(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        errors.append(f"{where}: {value!r} is not one of {allowed}")
    if _TYPES["number"](value):
        errors += _check_number(schema, value, where)
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
    if isinstance(value, list | tuple):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                errors += validate(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, Mapping):
        errors += _check_object(schema, value, path)
    return errors


def _check_number(schema: Mapping, value, where: str) -> list[str]:
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: less than the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: more than the maximum {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        errors.append(f"{where}: must be more than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        errors.append(f"{where}: must be less than {schema['exclusiveMaximum']}")
    return errors


def _check_object(schema: Mapping, value: Mapping, path: str) -> list[str]:
    errors = []
    properties = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(f"{_join(path, key)}: required")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += validate(properties[key], item, _join(path, key))
        elif extra is False:
            errors.append(f"{_join(path, key)}: unexpected property")
        elif isinstance(extra, Mapping):
            errors += validate(extra, item, _join(path, key))
    return errors


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _json_type(value) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__
