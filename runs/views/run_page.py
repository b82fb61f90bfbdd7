"""/runs/<id>/: one run's receipt, header, budget, and its steps as a transcript or a timeline
(`?view=`; support reads the transcript first, engineers the timeline), its fragments (more
steps, one step's full body, the live part) and its actions (cancel, export as JSON)."""

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from ..engine.caps import BY_NAME, REPLAY_CAPS
from ..errors import AppError
from ..models import Run, RunStatus
from ..roles import ENGINEER, SUPPORT, has_role, role_required
from ..selectors import timeline
from ..selectors.approvals import approval_open, question_rows, waited_seconds
from ..selectors.export import run_export_chunks
from ..selectors.runs import run_get, run_usage_against_caps
from ..selectors.windows import windows_for_run
from ..services.replay import not_replayable_reason
from ..services.runs import run_cancel as cancel_run
from .receipt import needs_conversation, run_receipt
from .runs_list import is_partial
from .timeline import step_rows
from .transcript import TranscriptBuilder, entries_html, with_question

REPLAYS_SHOWN = 20


def get_run(ref: str) -> Run:
    """The run `ref` names (full id or unique prefix), or 404."""
    try:
        return run_get(ref=ref)
    except AppError as exc:
        raise Http404(exc.message) from None


def int_param(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def step_url(run_id, seq: int) -> str:
    """The run page scrolled to step `seq` (on the page of steps that holds it)."""
    url = reverse("runs:run", args=[run_id])
    if seq >= timeline.STEPS_PER_PAGE:
        url += f"?after={seq - 1}"
    return f"{url}#step-{seq}"


def budget_rows(run: Run) -> list[dict]:
    """One row per per-run cap the run carries (a budget bar each): the cap, used, limit (None =
    no cap) and whether it stopped the run."""
    return [
        {"cap": BY_NAME[name], **usage, "stopped": run.cap_hit == name}
        for name, usage in run_usage_against_caps(run).items()
        if usage["limit"] is not None or run.cap_hit == name
    ]


def _receipt(request, run: Run):
    first_input = last_output = None
    if needs_conversation(run):
        first_input, last_output = timeline.conversation_ends(run=run)
    url = request.build_absolute_uri(reverse("runs:run", args=[run.id]))
    return run_receipt(run, url=url, first_input=first_input, last_output=last_output)


def live_context(request, run: Run) -> dict:
    """What the live part of a run's page shows (receipt, status, budget, what it waits on)."""
    question = approval_open(run=run)
    return {
        "run": run,
        "receipt": _receipt(request, run),
        "steps_url": reverse("runs:steps", args=[run.id]),
        "budget": budget_rows(run),
        "windows": windows_for_run(run),
        "can_cancel": has_role(request.user, ENGINEER),
        "question": question_rows(question, run) if question else None,
        "waited_s": waited_seconds(run=run) if run.approval_policy else 0,
    }


def _view(request) -> str:
    """Which view of the run's steps to show: asked in `?view=`, else the role's first."""
    asked = request.GET.get("view")
    if asked in ("transcript", "timeline"):
        return asked
    return "timeline" if has_role(request.user, ENGINEER) else "transcript"


@require_GET
@role_required(SUPPORT)
def run_detail(request, run_id):
    run = get_run(run_id)
    if request.htmx and request.GET.get("part") == "live":
        return _live_update(request, run)
    after = max(int_param(request.GET.get("after"), -1), -1)
    if _view(request) == "transcript":
        return _run_transcript(request, run, after)
    steps, next_after = timeline.steps_page(run=run, after_seq=after)
    steps_context = {"rows": step_rows(run, steps), "next_after": next_after}
    return _page(request, run, after, {**live_context(request, run), **steps_context})


def _transcript_context(run: Run, after: int, question: str) -> dict:
    steps, previous, next_after = timeline.transcript_page(run=run, after_seq=after)
    entries = TranscriptBuilder(previous).entries(steps)
    if after < 0:
        entries = with_question(entries, question)
    return {
        "transcript": entries,
        "transcript_html": entries_html(entries, reverse("runs:steps", args=[run.id])),
        "transcript_after": after,
        "transcript_next": next_after,
    }


def _run_transcript(request, run: Run, after: int):
    """The run page on its transcript view; for htmx, the transcript alone (`part=transcript`:
    the first page, polled while the run runs) or the entries after `after`
    (`part=transcript_more`, when the end of the transcript is scrolled into view)."""
    part = request.GET.get("part") if request.htmx else None
    if part == "transcript_more":
        context = {"run": run, **_transcript_context(run, after, "")}
        return render(request, "runs/_transcript.html#entries", context)
    context = live_context(request, run)
    context.update(_transcript_context(run, after, context["receipt"].question.full))
    if part == "transcript":
        response = render(request, "runs/_transcript.html", context)
        if run.is_finished:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return _page(request, run, after, context)


def _page(request, run: Run, after: int, context: dict):
    replay_of = None
    if run.replay_of_id:
        replay_of = Run.objects.only("id", "status", "agent").filter(id=run.replay_of_id).first()
    replays = list(
        run.replays.only("id", "status", "replay_mode", "created_at").order_by("-created_at")[
            : REPLAYS_SHOWN + 1
        ]
    )
    context = {
        **context,
        "view": "transcript" if "transcript" in context else "timeline",
        "after": after,
        "replay_of": replay_of,
        "replays": replays[:REPLAYS_SHOWN],
        "more_replays": len(replays) > REPLAYS_SHOWN,
        "can_replay": has_role(request.user, ENGINEER),
        "replay_caps": [{"cap": c, "frozen": (run.caps or {}).get(c.name)} for c in REPLAY_CAPS],
        "replay_blocked": not_replayable_reason(run),
    }
    response = render(request, "runs/run.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _live_update(request, run: Run):
    """The live part of a running run's page, plus out-of-band updates of its timeline: steps
    the page still shows as running (`open`) are replaced, steps after the page's last one
    (`last`, sent only when the page holds the whole timeline) are appended. Once the run is
    finished the answer tells htmx to stop polling."""
    waiting = int_param(request.GET.get("waiting"))
    if waiting is not None and run.status == RunStatus.AWAITING_APPROVAL:
        question = approval_open(run=run)
        if question is not None and question.id == waiting:
            # Still waiting on the question the page shows: nothing to swap, so an answer
            # being typed into its form is not wiped.
            return HttpResponse(status=204)
    open_seqs = [int_param(s) for s in request.GET.get("open", "").split(",")]
    open_seqs = [n for n in open_seqs if n is not None]
    last = int_param(request.GET.get("last"))
    changed, appended, next_after = timeline.live_steps(run=run, open_seqs=open_seqs, last=last)
    context = {
        **live_context(request, run),
        "changed": step_rows(run, changed),
        "appended": step_rows(run, appended),
        "next_after": next_after,
    }
    response = render(request, "runs/run.html#live_update", context)
    if run.is_finished:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_GET
@role_required(SUPPORT)
def run_steps(request, run_id):
    """The next page of steps after `after` (htmx, when the end of the timeline is scrolled
    into view); without htmx, the run page starting there."""
    run = get_run(run_id)
    after = max(int_param(request.GET.get("after"), -1), -1)
    if not is_partial(request):
        return redirect(
            f"{reverse('runs:run', args=[run.id])}?view=timeline&after={after}#timeline"
        )
    steps, next_after = timeline.steps_page(run=run, after_seq=after)
    context = {
        "run": run,
        "rows": step_rows(run, steps),
        "next_after": next_after,
        "steps_url": reverse("runs:steps", args=[run.id]),
    }
    return render(request, "runs/run.html#step_rows", context)


@require_GET
@role_required(SUPPORT)
def run_step(request, run_id, seq: int):
    """One step's full input, output, error and attributes: a fragment for htmx (a step opened
    in the timeline), else a page of its own."""
    run = get_run(run_id)
    try:
        event = timeline.step_get(run=run, seq=seq)
    except AppError as exc:
        raise Http404(exc.message) from None
    context = {"run": run, "event": event, "prompt": _prompt(event)}
    template = "runs/step.html#step_body" if is_partial(request) else "runs/step.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _prompt(event) -> list[dict]:
    """The chat messages of a model call, for reading as a conversation (text only)."""
    if event.kind != "model_call" or not isinstance(event.input, dict):
        return []
    items = event.input.get("messages")
    if not isinstance(items, list):
        return []
    return [
        {"role": str(m.get("role", "")), "content": m.get("content"), "name": m.get("name")}
        for m in items
        if isinstance(m, dict)
    ]


@require_GET
@role_required(SUPPORT)
def run_export(request, run_id):
    """The run and all its steps as one JSON download, streamed."""
    run = get_run(run_id)
    response = StreamingHttpResponse(run_export_chunks(run), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="run-{run.id}.json"'
    return response


@require_POST
@role_required(ENGINEER)
def run_cancel(request, run_id):
    run = get_run(run_id)
    problem = None
    try:
        run = cancel_run(run=run)
    except AppError as exc:
        problem = exc.message
    if is_partial(request):
        # The page's live part, re-rendered: it keeps polling until the runner has stopped.
        context = {**live_context(request, run), "cancel_error": problem}
        return render(request, "runs/run.html#live", context)
    if problem:
        messages.error(request, problem)
    return redirect("runs:run", run_id=run.id)
