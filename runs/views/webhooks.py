"""The webhooks pages (admins): add an endpoint (a generated secret is shown once; one typed in
is never shown back), see which are enabled or were disabled after failing, enable or delete
one, and read an endpoint's delivery log."""

from uuid import UUID

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..engine.webhooks import EVENTS, MAX_SECRET_CHARS
from ..errors import AppError
from ..roles import ADMIN, role_required
from ..selectors.webhooks import deliveries_page, webhook_get, webhooks_list
from ..services.webhooks import webhook_create, webhook_delete, webhook_enable
from .keys import render_secret_once


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="http:// or https://; a Slack incoming webhook works as is.",
    )
    secret = forms.CharField(
        required=False,
        max_length=MAX_SECRET_CHARS,
        widget=forms.PasswordInput(render_value=False),
        help_text="16 characters or more; leave empty to have one generated (shown once).",
    )
    events = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {why}") for name, why in EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
    )


def _render(request, form, *, secret=None, created=None, status=200):
    context = {"form": form, "webhooks": webhooks_list(), "secret": secret, "created": created}
    return render_secret_once(request, "runs/webhooks.html", context, status=status)


@role_required(ADMIN)
def webhooks_page(request):
    """GET: every endpoint. POST: add one."""
    if request.method != "POST":
        return _render(request, WebhookForm())
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _render(request, form, status=422)
    try:
        webhook, generated = webhook_create(
            url=form.cleaned_data["url"],
            secret=form.cleaned_data["secret"],
            events=form.cleaned_data["events"],
            created_by=request.user,
        )
    except AppError as exc:
        for field, why in (getattr(exc, "errors", None) or {None: exc.message}).items():
            form.add_error(field if field in form.fields else None, why)
        return _render(request, form, status=422)
    return _render(request, WebhookForm(), secret=generated, created=webhook, status=201)


@require_POST
@role_required(ADMIN)
def webhook_remove(request, webhook_id: int):
    try:
        webhook_delete(webhook_id=webhook_id)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Deleted the webhook and its delivery log.")
    return redirect("runs:webhooks")


@require_POST
@role_required(ADMIN)
def webhook_reenable(request, webhook_id: int):
    try:
        webhook = webhook_enable(webhook_id=webhook_id)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Enabled {webhook.url} again; pending deliveries resume.")
    return redirect("runs:webhooks")


@role_required(ADMIN)
def webhook_log(request, webhook_id: int):
    """An endpoint's deliveries, newest first, a page at a time (`?before=<delivery id>`,
    `?status=pending|delivered|failed`)."""
    try:
        webhook = webhook_get(webhook_id=webhook_id)
    except AppError as exc:
        raise Http404(exc.message) from None
    try:
        before = UUID(request.GET["before"]) if request.GET.get("before") else None
        deliveries, cursor = deliveries_page(
            webhook_id=webhook_id, status=request.GET.get("status", ""), before=before
        )
    except (AppError, ValueError):
        return HttpResponseBadRequest("Not a valid status or cursor.")
    context = {"webhook": webhook, "deliveries": deliveries, "next_cursor": cursor}
    return render(request, "runs/webhook_deliveries.html", context)
