"""The API keys page (admins): create a key (its secret is shown once), list keys with when
each was last used, revoke one (it stops authenticating at once)."""

from django import forms
from django.contrib import messages
from django.db.models import F
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..errors import AppError
from ..models import ApiKey, ApiScope
from ..roles import ADMIN, role_required
from ..services.keys import api_key_create, api_key_revoke

SCOPE_HELP = {
    ApiScope.INGEST: "send runs and steps (POST /ingest, OTLP traces)",
    ApiScope.RUNS_READ: "read runs and their steps",
    ApiScope.RUNS_WRITE: "start, cancel and re-execute runs",
    ApiScope.ADMIN: "everything, including caps",
}


class KeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who or what uses it, e.g. billing-agent.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, f"{s}: {SCOPE_HELP[s]}") for s in ApiScope.values],
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiScope.INGEST],
    )


def _keys():
    return ApiKey.objects.select_related("created_by").order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at"
    )


def render_secret_once(request, template: str, context: dict, *, status: int = 200):
    """A page that may show a secret (`context["secret"]`) this once: never kept by a cache."""
    response = render(request, template, context, status=status)
    if context.get("secret"):
        response["Cache-Control"] = "no-store"
    return response


def _render(request, form, *, secret=None, key=None, status=200):
    context = {"form": form, "keys": _keys(), "secret": secret, "new_key": key}
    return render_secret_once(request, "runs/keys.html", context, status=status)


@role_required(ADMIN)
def keys_page(request):
    """GET: every key. POST: create a key and show its secret, this once."""
    if request.method != "POST":
        return _render(request, KeyForm())
    form = KeyForm(request.POST)
    if not form.is_valid():
        return _render(request, form, status=422)
    try:
        key, secret = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
        )
    except AppError as exc:
        form.add_error(None, exc.message)
        return _render(request, form, status=422)
    return _render(request, KeyForm(), secret=secret, key=key, status=201)


@require_POST
@role_required(ADMIN)
def key_revoke(request, key_id: int):
    try:
        key = api_key_revoke(key_id=key_id)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked {key.name} ({key.prefix}…): it no longer works.")
    return redirect("runs:keys")
