"""Model providers by name. `get_provider("openai", base_url=..., api_key=...)` builds one for a
run; see each provider's constructor for the configuration it takes."""

from collections.abc import Callable

from .anthropic import AnthropicProvider
from .base import ModelResponse, Provider, ProviderError, assistant_message, tool_message
from .openai import OpenAIProvider
from .recorded import RecordedProvider, RecordingDiverged, ReplayProvider
from .scripted import ScriptedProvider

_FACTORIES: dict[str, Callable[..., Provider]] = {
    "scripted": ScriptedProvider,
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "recorded": RecordedProvider,
}


class UnknownProvider(LookupError):
    pass


def register_provider(name: str, factory: Callable[..., Provider]) -> None:
    """Make `get_provider(name, **config)` call `factory(**config)`."""
    _FACTORIES[name] = factory


def get_provider(name: str, **config) -> Provider:
    """A new provider instance. Raises UnknownProvider for an unregistered name and TypeError
    when `config` does not fit the provider's constructor."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownProvider(f"no model provider named {name!r}") from None
    return factory(**config)


__all__ = [
    "AnthropicProvider",
    "ModelResponse",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "RecordedProvider",
    "RecordingDiverged",
    "ReplayProvider",
    "ScriptedProvider",
    "UnknownProvider",
    "assistant_message",
    "get_provider",
    "register_provider",
    "tool_message",
]
