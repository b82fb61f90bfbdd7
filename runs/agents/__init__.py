"""The agent registry. An agent is a plain function `fn(ctx, input) -> output` registered by name;
built-ins live in this package, a user's come from the modules AGENTOPS_AGENT_MODULES lists."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..engine.tools import same_callable

BUILTIN_AGENT_MODULES = ("runs.agents.demo",)

_AGENTS: dict[str, AgentSpec] = {}


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent.

    `provider` and `model` are its defaults (a run may override the model); `provider_config`
    is passed to the provider's constructor (e.g. the scripted provider's `script`), on top of
    whatever the deployment supplies (e.g. the openai base_url and key). `tools`, when not
    empty, are the only tools the agent may call. `safe_to_retry` lets a run whose worker died
    be executed again instead of ending `lost`.
    """

    name: str
    fn: Callable
    description: str = ""
    provider: str = "scripted"
    model: str = "scripted-mini"
    safe_to_retry: bool = False
    tools: tuple[str, ...] = ()
    provider_config: dict = field(default_factory=dict)


def register_agent(spec: AgentSpec) -> AgentSpec:
    """Register `spec` under its name. Registering the same function again replaces the entry
    (a module imported twice); another function under a taken name raises ValueError."""
    existing = _AGENTS.get(spec.name)
    if existing is not None and not same_callable(existing.fn, spec.fn):
        raise ValueError(f"a different agent is already registered as {spec.name!r}")
    _AGENTS[spec.name] = spec
    return spec


def agent(
    name: str,
    *,
    description: str = "",
    provider: str = "scripted",
    model: str = "scripted-mini",
    safe_to_retry: bool = False,
    tools: Iterable[str] = (),
    provider_config: dict | None = None,
):
    """Decorator: register `fn(ctx, input)` as agent `name`; returns the function unchanged."""

    def decorate(fn: Callable) -> Callable:
        register_agent(
            AgentSpec(
                name=name,
                fn=fn,
                description=description or (fn.__doc__ or "").strip().split("\n\n")[0],
                provider=provider,
                model=model,
                safe_to_retry=safe_to_retry,
                tools=tuple(tools),
                provider_config=dict(provider_config or {}),
            )
        )
        return fn

    return decorate


def get_agent(name: str) -> AgentSpec | None:
    """The agent registered as `name`, or None."""
    return _AGENTS.get(name)


def all_agents() -> list[AgentSpec]:
    """Every registered agent, by name."""
    return sorted(_AGENTS.values(), key=lambda spec: spec.name)


def unregister_agent(name: str) -> None:
    """Forget an agent (tests register throwaway agents)."""
    _AGENTS.pop(name, None)


def load_agent_modules(module_names: Iterable[str] | str) -> list[str]:
    """Import the modules that register agents (and their tools); a string may list them
    comma-separated. Returns the names imported. An import failure raises ImportError naming
    the module, so a typo in AGENTOPS_AGENT_MODULES fails loudly at startup."""
    if isinstance(module_names, str):
        module_names = module_names.split(",")
    loaded = []
    for raw in module_names:
        name = raw.strip()
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"could not import agent module {name!r}: {exc}") from exc
        loaded.append(name)
    return loaded
