"""POST /api/v1/runs/{id}/replay: re-execute a finished run (live or with its recorded model)."""

from typing import Literal

from django.http import HttpResponse
from django.urls import reverse
from ninja import Router, Schema, Status
from pydantic import Field

from runs.selectors.runs import run_get
from runs.services.replay import run_replay

from .auth import api_auth, require_scope
from .idempotency import start_once
from .schemas import ErrorOut, RunAccepted, refuse_deep_json

router = Router(auth=api_auth, tags=["runs"])


class ReplayIn(Schema):
    mode: Literal["live", "recorded_model"]
    caps: dict | None = None
    model: str = Field("", max_length=200)
    on_divergence: Literal["stop", "continue"] = "stop"


@router.post(
    "/runs/{ref}/replay",
    response={202: RunAccepted, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut,
              422: ErrorOut, 429: ErrorOut},
)  # fmt: skip
def replay(request, ref: str, body: ReplayIn, response: HttpResponse):
    """Queue a new run of the same agent and input, linked by `replay_of`. `recorded_model`
    serves the original's model answers in order (tools run live); when the run leaves the
    recording, `on_divergence` stops it or goes on live. 409 for a run that cannot be
    re-executed here (an external run, or one still running). Honours `Idempotency-Key` as
    POST /runs does."""
    who = require_scope(request, "runs:write")
    refuse_deep_json(body)
    original = run_get(ref=ref)

    def create():
        return run_replay(
            original=original,
            mode=body.mode,
            caps=body.caps,
            model=body.model,
            on_divergence=body.on_divergence,
            may_raise_caps=who.is_admin,
            created_by=who.user,
            api_key=who.key,
        )

    run, headers = start_once(
        request,
        who,
        operation=f"replay:{original.id}",
        body=body.model_dump(mode="json"),
        create=create,
    )
    for name, value in headers.items():
        response[name] = value
    return Status(
        202, {"id": run.id, "status": run.status, "url": reverse("runs:run", args=[run.id])}
    )
