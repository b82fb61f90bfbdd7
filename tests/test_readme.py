"""The README's agent example is real code: it registers and runs as written."""

import re
from pathlib import Path

from runs.agents import get_agent, unregister_agent
from runs.engine.caps import Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.engine.tools import unregister_tool
from runs.providers import ScriptedProvider

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_agent_example_runs():
    text = README.read_text()
    section = text[text.index("## Write your own agent") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "myagents"})
    try:
        spec = get_agent("weather-bot")
        assert spec is not None and spec.provider == "openai"
        script = [
            {"content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]},
            {"content": "It is 21 °C in Oslo."},
        ]
        recorder = MemoryRecorder()
        outcome = execute(
            spec,
            {"question": "Weather in Oslo?"},
            Caps(),
            recorder,
            price_for=lambda model: None,
            provider_factory=lambda spec: ScriptedProvider(script),
        )
        assert outcome.status == "succeeded", outcome.error
        assert outcome.output == {"answer": "It is 21 °C in Oslo."}
        tool_steps = [s for s in recorder.steps if s.kind == "tool_call"]
        assert [(s.name, s.output) for s in tool_steps] == [
            ("weather", {"city": "Oslo", "celsius": 21})
        ]
    finally:
        unregister_agent("weather-bot")
        unregister_tool("weather")
