"""The run page's transcript: a run's steps read as the conversation that happened — the system
prompt, the user, the assistant's words, each tool call as `lookup_order(order_id="A-1001")`
with its result or error under it, refusals, timeouts and stops marked — for runs executed
here and ingested ones alike. Plain Python over stored steps (their bodies loaded).

Model calls carry the whole conversation so far as their input; only what is new in it (a
system prompt or a user message not shown yet) joins the transcript, and the assistant's words
come from each call's output. Message shapes understood: {"role", "content"} (content a string
or a list of parts), OpenTelemetry GenAI {"role", "parts": [{"type": "text", "content"}]},
a {"messages": [...]} wrapper, and a bare string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst, slugify

from .formatting import duration_text, explain

FOLD_CHARS = 600  # a text longer than this (or than FOLD_LINES lines) is folded
FOLD_LINES = 12
PREVIEW_CHARS = 240
TEXT_KEYS = ("question", "message", "prompt", "query", "input", "text", "content", "answer")


@dataclass(frozen=True)
class Text:
    """A text as the transcript shows it: whole, and a preview when it is long (folded)."""

    full: str
    preview: str = ""  # "" when the text is short enough to show whole

    @classmethod
    def of(cls, text: str) -> Text:
        long = len(text) > FOLD_CHARS or text.count("\n") >= FOLD_LINES
        if not long:
            return cls(text)
        head = "\n".join(text[:PREVIEW_CHARS].splitlines()[:3])
        return cls(text, head.rstrip() + " …")


@dataclass
class Entry:
    """One line of the transcript. `kind`: system, user, assistant, tool, note or stop.
    For a tool call, `call` is its signature and `result` what came back; `mark` says
    "refused", "timed out", "failed" or "running" (empty when it went through)."""

    kind: str
    seq: int | None = None
    text: Text | None = None
    call: Text | None = None
    result: Text | None = None
    sentence: str = ""  # a tool error or a stop, in plain words
    label: str = ""  # what a stop is: "Stopped", "Cancelled", "Error", "Model call refused"…
    mark: str = ""
    duration: str = ""
    key: str = ""  # unique on the page: "t-<seq>-<n>", the n-th line from that step


@dataclass(frozen=True)
class Message:
    role: str
    text: str
    tool_calls: tuple = ()


def as_text(value) -> str:
    """A JSON value as a person reads it: a string as itself, else compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def main_text(value) -> str:
    """The text a run's input or output is about: the string itself, a known key's string
    ("question", "answer", …), the only string of a one-field object, else compact JSON."""
    if value is None or value in ({}, [], ""):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in TEXT_KEYS:
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key]
        if len(value) == 1:
            (only,) = value.values()
            if isinstance(only, str):
                return only
        messages = messages_of(value)
        if messages:
            return messages[-1].text
    return as_text(value)


def messages_of(value, default_role: str = "assistant") -> list[Message]:
    """The chat messages in a model call's input or output, in any shape it was stored in."""
    if isinstance(value, str):
        return [Message(default_role, value)] if value.strip() else []
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return messages_of(value["messages"], default_role)
        if "content" in value or "tool_calls" in value or isinstance(value.get("parts"), list):
            return [_message(value, default_role)]
        return []
    if isinstance(value, list):
        return [_message(m, default_role) for m in value if isinstance(m, dict | str)]
    return []


def _message(item, default_role: str) -> Message:
    if isinstance(item, str):
        return Message(default_role, item)
    role = str(item.get("role") or default_role)
    texts, calls = [], list(item.get("tool_calls") or [])
    content = item.get("content", item.get("parts"))
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type", "text")
                if kind == "text" and isinstance(part.get("content", part.get("text")), str):
                    texts.append(part.get("content", part.get("text")))
                elif kind in ("tool_call", "tool_use", "function_call"):
                    calls.append(part)
                elif kind in ("tool_call_response", "tool_result"):
                    texts.append(as_text(part.get("response", part.get("content"))))
    elif content is not None:
        texts.append(as_text(content))
    return Message(role, "\n".join(t for t in texts if t), tuple(c for c in calls if c))


def signature(name: str, args) -> str:
    """A tool call as code: `lookup_order(order_id="A-1001", limit=1)`."""
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return f"{name}({args})"
    if isinstance(args, dict):
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    elif args in (None, []):
        inner = ""
    else:
        inner = json.dumps(args, ensure_ascii=False)
    return f"{name}({inner})"


def _result_text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    text = as_text(value)
    if len(text) <= 120:
        return text
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _tool_entry(event) -> Entry:
    attributes = event.attributes if isinstance(event.attributes, dict) else {}
    entry = Entry("tool", event.seq, call=Text.of(signature(event.name or "?", event.input)))
    entry.duration = duration_text(event.duration_ms) if event.ended_at else ""
    if attributes.get("refused"):
        entry.mark = "refused"
    elif event.status == "timeout":
        entry.mark = "timed out"
    elif event.status == "running":
        entry.mark = "running"
    elif event.status == "cancelled":
        entry.mark = "cancelled"
    elif event.status == "error":
        entry.mark = "failed"
    error = event.error if isinstance(event.error, dict) else None
    if error is None and isinstance(event.output, dict) and event.status != "ok":
        error = event.output if "error" in event.output else None
    if error:
        entry.sentence = explain(error)
    if event.output is not None and not (error and event.output == error):
        entry.result = Text.of(_result_text(event.output))
    return entry


class TranscriptBuilder:
    """Turns steps, in order, into entries. Feed it pages one after another; `after(prev)`
    carries on from the input of the last model call before the page."""

    def __init__(self, previous_input=None):
        self._previous = messages_of(previous_input, "user") if previous_input else []
        self._system = next((m.text for m in self._previous if m.role == "system"), None)

    def entries(self, events) -> list[Entry]:
        out: list[Entry] = []
        for event in events:
            entries = self._of(event)
            for n, entry in enumerate(entries):
                entry.key = f"t-{event.seq}-{n}"
            out.extend(entries)
        return out

    def _of(self, event) -> list[Entry]:
        kind = event.kind
        if kind == "tool_call":
            return [_tool_entry(event)]
        if kind == "model_call":
            return self._model_call(event)
        error = event.error if isinstance(event.error, dict) else None
        if kind in ("lifecycle", "error") and error:
            label = {"lifecycle": "Stopped", "error": "Error"}[kind]
            if event.status == "cancelled":
                label = "Cancelled"
            entry = Entry("stop", event.seq, sentence=explain(error), label=label)
            entry.mark = event.status
            return [entry]
        if kind == "decision":
            out = event.output if isinstance(event.output, dict) else {}
            text = f"Decided {event.name}: {as_text(out.get('choice'))}"
            if out.get("reason"):
                text += f" ({out['reason']})"
            return [Entry("note", event.seq, text=Text.of(text))]
        text = event.name or kind
        return [Entry("note", event.seq, text=Text.of(text))]

    def _model_call(self, event) -> list[Entry]:
        out: list[Entry] = []
        messages = messages_of(event.input, "user")
        if messages:
            grew = len(messages) > len(self._previous) and all(
                a.text == b.text for a, b in zip(self._previous, messages, strict=False)
            )
            new = messages[len(self._previous) :] if grew else messages
            for m in new:
                if m.role == "system" and m.text != self._system:
                    self._system = m.text
                    out.append(Entry("system", event.seq, text=Text.of(m.text)))
                elif m.role in ("user", "human") and m.text:
                    out.append(Entry("user", event.seq, text=Text.of(m.text)))
            self._previous = messages
        attributes = event.attributes if isinstance(event.attributes, dict) else {}
        error = event.error if isinstance(event.error, dict) else None
        if attributes.get("refused") or (error and event.status != "ok"):
            refused = bool(attributes.get("refused"))
            label = "Model call refused" if refused else f"Model call {event.status}"
            entry = Entry("stop", event.seq, sentence=explain(error), label=label)
            entry.mark = "refused" if refused else event.status
            out.append(entry)
            return out
        said = [m for m in messages_of(event.output) if m.role != "user" and m.text.strip()]
        for m in said:
            out.append(Entry("assistant", event.seq, text=Text.of(m.text)))
        if event.status == "running":
            out.append(Entry("assistant", event.seq, mark="running"))
        return out


def with_question(entries: list[Entry], question: str) -> list[Entry]:
    """The transcript with the run's question as its first user line when no model call
    carried one (a run that never asked a model, or steps reported without their prompts)."""
    if not question or any(e.kind == "user" for e in entries):
        return entries
    at = 1 if entries and entries[0].kind == "system" else 0
    return [*entries[:at], Entry("user", None, text=Text.of(question)), *entries[at:]]


# The entries' markup, made in Python: a page of 50 steps has about 100 entries, and the same
# markup as template tags (two includes of the fold and a {% url %} per entry) cost more than
# everything else on the page. Every value is escaped (html.escape, as the templates do).


def entries_html(entries: list[Entry], steps_url: str) -> list[SafeString]:
    """Each entry as its <li>; `steps_url` is the run's steps, ending in "/"."""
    return [_entry_html(e, steps_url) for e in entries]


def fold_html(t: Text, fold_id: str = "") -> str:
    """A text that folds when long (the templates' `fold` filter); `fold_id` keeps the fold as
    the reader left it across live updates."""
    if not t.preview:
        return f'<div class="t-text">{escape(t.full)}</div>'
    kept = f' id="{escape(fold_id)}" hx-preserve="true"' if fold_id else ""
    return (
        f'<details class="fold"{kept}><summary><span class="fold-preview">{escape(t.preview)}'
        f'</span> <span class="muted small">show all</span></summary><div class="t-text">'
        f"{escape(t.full)}</div></details>"
    )


def _entry_html(e: Entry, steps_url: str) -> SafeString:
    kind, full = escape(e.kind), escape(e.text.full) if e.text else ""
    mark = f' data-mark="{escape(e.mark)}"' if e.mark else ""
    parts = [f'<li class="t-entry t-{kind}" data-kind="{kind}"{mark}>\n']
    if e.seq is not None:
        parts.append(
            f'<a class="t-seq muted small" href="{escape(steps_url)}{e.seq}/" '
            f'title="Step #{e.seq} as JSON">#{e.seq}</a>\n'
        )
    if e.kind == "system":
        parts.append(
            f'<details class="fold t-system-prompt" id="{escape(e.key)}" hx-preserve="true">'
            f'<summary><span class="t-who">System prompt</span></summary><div class="t-text">'
            f"{full}</div></details>"
        )
    elif e.kind in ("user", "assistant"):
        parts.append(f'<span class="t-who">{"User" if e.kind == "user" else "Assistant"}</span>\n')
        if e.text:
            parts.append(fold_html(e.text, e.key))
        if e.mark == "running":
            parts.append('<span class="t-mark">thinking…</span>')
    elif e.kind == "tool":
        parts.append('<span class="t-who">Tool call</span>')
        if e.mark:
            parts.append(
                f' <span class="t-mark mark-{escape(slugify(e.mark))}" data-testid="call-mark">'
                f"{escape(e.mark)}</span>"
            )
        if e.duration:
            parts.append(f' <span class="muted small">{escape(e.duration)}</span>')
        call = e.call or Text("")
        parts.append(f'\n<code class="t-call">{escape(call.preview or call.full)}</code>\n')
        if call.preview:
            parts.append(
                '<details class="fold"><summary class="muted small">all arguments</summary>'
                f'<div class="t-text">{escape(call.full)}</div></details>\n'
            )
        if e.sentence:
            parts.append(f'<p class="t-sentence">{escape(capfirst(e.sentence))}.</p>\n')
        if e.result:
            parts.append(
                '<div class="t-result"><span class="muted small">→</span> '
                f"{fold_html(e.result, e.key + '-result')}</div>"
            )
    elif e.kind == "stop":
        parts.append(
            f'<p class="t-sentence"><strong>{escape(e.label)}:</strong> {escape(e.sentence)}.</p>'
        )
    else:
        parts.append(f'<span class="muted small">{full}</span>')
    parts.append("\n</li>\n")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped)
