"""The plain sentences support reads beside the cap table (runs.engine.caps, whose caps carry
their own `stopped` sentence): why a spend window stopped a run, and every other error code a run
or a tool call ends with."""

# Why a spend window across runs (services.windows) stopped a run.
WINDOW_STOPPED = (
    "the {scope} spend window of {limit} per {period} was used up; it resets {resets_at}"
)
# Every other error code a run or a tool call ends with, in plain words for support (the run
# page's receipt and transcript); "{…}" are the error's own fields. A cap stop uses `stopped`.
ERROR_SENTENCES = {
    "budget_exceeded": "it reached a limit: {message}",
    "agent_error": "the agent's code gave up with an error: {message}",
    "provider_error": "the model provider failed: {message}",
    "cancelled": "someone cancelled it",
    "worker_lost": "the worker running it stopped answering; the steps it wrote are kept",
    "invalid_input": "its input was not valid: {message}",
    "unknown_agent": "no agent of that name is registered here",
    "recording_diverged": "the replay left the recorded model answers: {message}",
    "tool_timeout": "the {tool} tool did not answer within {timeout_s} s",
    "tool_error": "the {tool} tool failed: {message}",
    "unknown_tool": "the agent asked for a tool it does not have: {message}",
    "repeated_call": "the same {tool} call was refused as a repeat (call {count})",
}


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, … 11th, 12th, 13th, … 21st."""
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{'th' if 10 <= n % 100 < 20 else suffix}"
