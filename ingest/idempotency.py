"""The `Idempotency-Key` header on the API's run starts (POST /runs, POST /runs/{id}/replay):
a retry with the same key within 24 h answers with the run the first request created."""

from collections.abc import Callable

from runs.models import Run
from runs.services.idempotency import fingerprint_of, run_create_once

HEADER = "Idempotency-Key"


def start_once(
    request, who, *, operation: str, body, create: Callable[[], Run]
) -> tuple[Run, dict]:
    """(run, extra response headers). Without the header, `create()` as is."""
    key = request.headers.get(HEADER)
    if key is None:
        return create(), {}
    owner = f"key:{who.key.id}" if who.key is not None else f"user:{who.user.id}"
    run, replayed = run_create_once(
        owner=owner, key=key, fingerprint=fingerprint_of(operation, body), create=create
    )
    return run, {"Idempotent-Replayed": "true"} if replayed else {}
