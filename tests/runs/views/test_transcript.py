"""The transcript's reading of stored steps, without a database: the message shapes agents and
instrumentations store, tool calls written as code, and which part of each model call's
conversation is new."""

from datetime import UTC, datetime
from types import SimpleNamespace

from runs.views.transcript import (
    FOLD_CHARS,
    Entry,
    Text,
    TranscriptBuilder,
    entries_html,
    main_text,
    messages_of,
    signature,
    with_question,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def step(seq, kind, name="", status="ok", input=None, output=None, error=None, **attributes):
    return SimpleNamespace(seq=seq, kind=kind, name=name, status=status, input=input,
                           output=output, error=error, attributes=attributes, started_at=AT,
                           ended_at=AT, duration_ms=0)  # fmt: skip


def test_messages_in_every_stored_shape():
    hi = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    chat = {"messages": [{"role": "system", "content": "Be brief."}, hi]}
    call = {"type": "tool_call", "name": "f", "arguments": {}}
    otel = [{"role": "user", "parts": [{"type": "text", "content": "Hello"}, call]}]
    assert [(m.role, m.text) for m in messages_of(chat)] == [
        ("system", "Be brief."),
        ("user", "Hi"),
    ]
    (otel_message,) = messages_of(otel)
    assert (otel_message.role, otel_message.text, len(otel_message.tool_calls)) == (
        "user", "Hello", 1
    )  # fmt: skip
    assert [(m.role, m.text) for m in messages_of("plain words")] == [("assistant", "plain words")]
    assert messages_of({"content": "Done.", "tool_calls": []})[0].text == "Done."
    assert messages_of(42) == [] and messages_of({"order": 7}) == []


def test_the_main_text_of_an_input_or_output():
    assert main_text({"question": "Where?", "lang": "en"}) == "Where?"
    assert main_text({"note": "only field"}) == "only field"
    assert main_text("as is") == "as is"
    assert main_text({"parts": 6}) == '{"parts": 6}'
    assert main_text({}) == "" and main_text(None) == ""


def test_a_tool_call_reads_as_code():
    assert signature("lookup_order", {"order_id": "A-1001"}) == 'lookup_order(order_id="A-1001")'
    assert signature("f", '{"n": 1, "s": "x\\"y"}') == 'f(n=1, s="x\\"y")'
    assert signature("f", None) == "f()" and signature("f", [1, 2]) == "f([1, 2])"
    assert signature("f", "not json") == "f(not json)"


def test_only_what_is_new_in_each_model_calls_conversation_is_shown():
    system, user = {"role": "system", "content": "S"}, {"role": "user", "content": "Q"}
    steps = [
        step(0, "model_call", input={"messages": [system, user]},
             output={"content": "Looking.", "tool_calls": [{"name": "t"}]}),
        step(1, "tool_call", "t", input={"a": 1}, output={"ok": True}),
        step(2, "model_call", input={"messages": [system, user, {"role": "assistant",
             "content": "Looking."}, {"role": "tool", "content": "{}"}]},
             output={"content": "Answer."}),
        # A fresh conversation (an agent that builds each call's messages anew).
        step(3, "model_call", input={"messages": [system, {"role": "user", "content": "Q2"}]},
             output={"content": "Answer 2."}),
    ]  # fmt: skip
    entries = TranscriptBuilder().entries(steps)
    assert [(e.kind, e.text.full if e.text else e.call.full) for e in entries] == [
        ("system", "S"), ("user", "Q"), ("assistant", "Looking."), ("tool", "t(a=1)"),
        ("assistant", "Answer."), ("user", "Q2"), ("assistant", "Answer 2."),
    ]  # fmt: skip
    # A later page carries on from the last model call before it.
    later = TranscriptBuilder(steps[2].input).entries(steps[3:])
    assert [e.kind for e in later] == ["user", "assistant"]


def test_refused_timed_out_and_failed_calls_are_marked_with_a_sentence():
    refusal = {"code": "budget_exceeded", "cap": "max_tool_calls", "limit": 2, "used": 2}
    timeout = {"error": "tool_timeout", "tool": "slow", "timeout_s": 2}
    steps = [
        step(0, "tool_call", "t", status="cancelled", error=refusal, refused=True),
        step(1, "tool_call", "slow", status="timeout", output=timeout, error=timeout),
        step(2, "tool_call", "t", status="error", error={"code": "http_502", "message": "down"}),
        step(3, "lifecycle", "max_tool_calls", status="error", error=refusal),
    ]  # fmt: skip
    entries = TranscriptBuilder().entries(steps)
    assert [(e.mark, e.sentence) for e in entries] == [
        ("refused", "it tried a 3rd tool call; the limit is 2 per run"),
        ("timed out", "the slow tool did not answer within 2 s"),
        ("failed", "down (http_502)"),
        ("error", "it tried a 3rd tool call; the limit is 2 per run"),
    ]
    assert entries[1].result is None  # the error is the output: said once
    assert entries[3].label == "Stopped"


def test_long_texts_fold_and_the_question_leads_when_no_model_call_carried_it():
    long = "x" * (FOLD_CHARS + 1)
    assert Text.of(long).preview.endswith(" …") and Text.of("short").preview == ""
    assert Text.of("line\n" * 20).preview == "line\nline\nline …"
    entries = with_question(TranscriptBuilder().entries([step(0, "tool_call", "t")]), "Why?")
    assert [(e.kind, e.seq) for e in entries] == [("user", None), ("tool", 0)]


def test_entries_are_made_as_escaped_markup():
    hostile = '<img src=x onerror="alert(1)">'
    entries = [
        Entry("user", None, text=Text(hostile), key="t-0-0"),
        Entry("tool", 3, call=Text("f(x=1)", preview="f(…)"), result=Text.of(hostile * 40),
              sentence="it " + hostile, mark="timed out", duration="2 ms", key="t-3-0"),
        Entry("stop", 4, label=hostile, sentence="no", key="t-4-0"),
    ]  # fmt: skip
    user, tool, stop = entries_html(entries, "/runs/r1/steps/")
    assert "<img" not in user + tool + stop
    assert user == (
        '<li class="t-entry t-user" data-kind="user">\n<span class="t-who">User</span>\n'
        '<div class="t-text">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</div>\n</li>\n'
    )
    assert (
        '<a class="t-seq muted small" href="/runs/r1/steps/3/" title="Step #3 as JSON">#3</a>'
        in tool
    )
    assert '<span class="t-mark mark-timed-out" data-testid="call-mark">timed out</span>' in tool
    assert '<code class="t-call">f(…)</code>' in tool and '<div class="t-text">f(x=1)</div>' in tool
    assert '<p class="t-sentence">It &lt;img' in tool
    assert '<details class="fold" id="t-3-0-result" hx-preserve="true">' in tool
    assert stop.count("&lt;img") == 1 and "<strong>&lt;img" in stop
