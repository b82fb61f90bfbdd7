"""One-time submission tokens for the forms that start a run (the Agents page, the run page's
re-execute): each rendering of the form carries a fresh token, and a form submitted twice with
it (a double click, a reload that posts again) starts one run and lands both on its page."""

import time
import uuid
from collections.abc import Callable

from ..errors import InvalidInput
from ..models import Run
from ..services.idempotency import KeyInUse, fingerprint_of, run_create_once

FIELD = "submission"
# A second submit that arrives while the first is still creating its run waits for it this long.
WAIT_SECONDS = 5.0


def new_token() -> str:
    return uuid.uuid4().hex


def start_once(request, *, operation: str, create: Callable[[], Run]) -> Run:
    """The run `create()` makes, or the one this form's earlier submit made. A form without a
    token (an old page) just creates."""
    token = request.POST.get(FIELD, "")
    if not token:
        return create()
    data = {
        k: request.POST.getlist(k)
        for k in sorted(request.POST)
        if k not in (FIELD, "csrfmiddlewaretoken")
    }
    fingerprint = fingerprint_of(operation, data)
    owner, key = f"user:{request.user.pk}", f"form:{token[:64]}"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return run_create_once(owner=owner, key=key, fingerprint=fingerprint, create=create)[0]
        except KeyInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        except InvalidInput as exc:
            if exc.code != "idempotency_key_reused":
                raise
            # The same rendering of the form sent again with other values: a new request.
            return create()
