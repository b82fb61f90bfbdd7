"""/prices/ (admin): model prices with their effective dates; a change is a new price from a date,
a scheduled one can be cancelled, a model can be retired."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..errors import AppError
from ..roles import ADMIN, role_required
from ..selectors.prices import prices_by_model
from ..services import prices
from .forms import PriceForm


def _prices_render(request, form: PriceForm, status: int = 200):
    context = {"form": form, "models": prices_by_model()}
    return render(request, "runs/prices.html", context, status=status)


@role_required(ADMIN)
def prices_page(request):
    """GET: every model's prices. POST: add a price in effect from a date."""
    if request.method != "POST":
        return _prices_render(request, PriceForm(initial={"model": request.GET.get("model", "")}))
    form = PriceForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            price = prices.price_add(
                model=data["model"],
                input_per_mtok=data["input_per_mtok"],
                output_per_mtok=data["output_per_mtok"],
                effective_from=data["effective_from"],
            )
        except prices.PriceInvalid as exc:
            for field, message in exc.errors.items():
                form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(
                request,
                f"Added a price for {price.model} from {price.effective_from:%Y-%m-%d %H:%M} "
                "UTC. Calls made from then on are charged at it; past costs do not change.",
            )
            return redirect("runs:prices")
    return _prices_render(request, form, status=422)


@require_POST
@role_required(ADMIN)
def price_retire(request):
    model = request.POST.get("model", "")
    try:
        prices.price_retire(model=model)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Retired {model}: its calls from now on have no known price.")
    return redirect("runs:prices")


@require_POST
@role_required(ADMIN)
def price_cancel(request, price_id: int):
    try:
        prices.price_cancel(price_id=price_id)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancelled the scheduled price.")
    return redirect("runs:prices")
