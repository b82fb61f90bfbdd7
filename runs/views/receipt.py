"""The top of the run page, as support reads it: the user's question, the agent's answer, the
outcome in one plain sentence, and a short plain-text summary to paste into a ticket."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Run, RunStatus
from ..selectors.runs import run_wall_ms
from .formatting import duration_text, explain, usd_text
from .transcript import Text, main_text, messages_of

# How each ending starts its sentence; the rest says why (the error's plain sentence).
ENDINGS = {
    RunStatus.FAILED: "Failed",
    RunStatus.BUDGET_EXCEEDED: "Stopped",
    RunStatus.CANCELLED: "Cancelled",
    RunStatus.LOST: "Lost",
}
TICKET_TEXT_CHARS = 300  # question and answer in the ticket summary are cut here


@dataclass(frozen=True)
class Receipt:
    question: Text
    answer: Text
    outcome: str  # one sentence, ending with a period
    facts: str  # duration, cost, calls: "2.10 s · $0.0012 · 2 tool calls · 2 model calls"
    ticket: str  # the plain-text summary "Copy for ticket" copies


def needs_conversation(run: Run) -> bool:
    """Whether the question or the answer must come from the model calls (the run's own input
    or output does not carry it)."""
    return not main_text(run.input) or (run.is_finished and not main_text(run.output))


def question_of(run: Run, first_input=None) -> str:
    """The user's question: the run's input, else the first user message it sent a model."""
    text = main_text(run.input)
    if text or first_input is None:
        return text
    users = [m.text for m in messages_of(first_input, "user") if m.role in ("user", "human")]
    return next((t for t in users if t.strip()), "")


def answer_of(run: Run, last_output=None) -> str:
    """The agent's answer: the run's output, else the last thing a model said to it."""
    text = main_text(run.output)
    if text or last_output is None:
        return text
    said = [m.text for m in messages_of(last_output) if m.role != "user" and m.text.strip()]
    return said[-1] if said else ""


def outcome_of(run: Run, answered: bool = False) -> str:
    """The outcome in plain words: "Answered in 2.10 s for $0.0012.", "Stopped: it tried a
    21st tool call; the limit is 20 per run.", "Failed: the model provider failed: …"."""
    ms = run_wall_ms(run)
    if run.status == RunStatus.SUCCEEDED:
        verb = "Answered" if answered or main_text(run.output) else "Succeeded"
        took = f" in {duration_text(ms)}" if ms is not None else ""
        return f"{verb}{took} for {usd_text(run.cost_usd)}."
    if run.status in ENDINGS:
        why = explain(run.error) or "no reason was recorded"
        return f"{ENDINGS[run.status]}: {why.rstrip('.')}."
    if run.status == RunStatus.QUEUED:
        return "Queued: waiting for a worker to pick it up."
    if run.status == RunStatus.RUNNING:
        so_far = f" for {duration_text(ms)}" if ms is not None else ""
        return f"Running{so_far} so far, {usd_text(run.cost_usd)} spent."
    return f"{str(run.status).replace('_', ' ').capitalize()}."


def facts_of(run: Run) -> str:
    parts = [duration_text(run_wall_ms(run)), usd_text(run.cost_usd)]
    parts.append(f"{run.tool_calls} tool call{'' if run.tool_calls == 1 else 's'}")
    parts.append(f"{run.model_calls} model call{'' if run.model_calls == 1 else 's'}")
    return " · ".join(parts)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TICKET_TEXT_CHARS else text[: TICKET_TEXT_CHARS - 1] + "…"


def run_receipt(run: Run, *, url: str, first_input=None, last_output=None) -> Receipt:
    """The receipt of `run`; `url` is the run page's full address (for the ticket), and
    `first_input` / `last_output` the first model call's input and the last one's output
    (see `needs_conversation`)."""
    question = question_of(run, first_input)
    answer = answer_of(run, last_output)
    outcome = outcome_of(run, answered=bool(answer.strip()))
    facts = facts_of(run)
    started = run.started_at or run.created_at
    refs = f"User: {run.user_ref or '—'}"
    if run.session_ref:
        refs += f" · Session: {run.session_ref}"
    ticket = "\n".join(
        [
            f"Run {run.id} ({run.agent}, {run.status})",
            outcome,
            f"Question: {_cut(question) or '—'}",
            f"Answer: {_cut(answer) or '—'}",
            refs,
            f"Started {started:%Y-%m-%d %H:%M:%S} UTC · {facts}",
            url,
        ]
    )
    return Receipt(Text.of(question), Text.of(answer), outcome, facts, ticket)
