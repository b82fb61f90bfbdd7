from django.urls import path

from .views import (
    agents,
    approvals,
    caps,
    keys,
    overview,
    prices,
    replay,
    run_page,
    runs_list,
    webhooks,
    windows,
)

app_name = "runs"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("runs/", runs_list.run_list, name="list"),
    path("runs/waiting/", approvals.waiting_runs, name="waiting"),
    path("runs/<str:run_id>/", run_page.run_detail, name="run"),
    path("runs/<str:run_id>/steps/", run_page.run_steps, name="steps"),
    path("runs/<str:run_id>/steps/<int:seq>/", run_page.run_step, name="step"),
    path("runs/<str:run_id>/export.json", run_page.run_export, name="export"),
    path("runs/<str:run_id>/cancel/", run_page.run_cancel, name="cancel"),
    path("runs/<str:run_id>/replay/", replay.run_reexecute, name="replay"),
    path("runs/<str:run_id>/approval/", approvals.run_approval, name="approval"),
    path("runs/<str:run_id>/playback/", replay.run_playback, name="playback"),
    path("runs/<str:run_a>/compare/<str:run_b>/", replay.runs_compare, name="compare"),
    path("agents/", agents.agent_list, name="agents"),
    path("agents/start/", agents.run_start, name="start"),
    path("caps/", caps.caps_page, name="caps"),
    path("caps/backtest/", caps.caps_backtest_view, name="caps_backtest"),
    path("caps/remove/", caps.caps_remove, name="caps_remove"),
    path("caps/windows/", windows.window_add, name="windows"),
    path("caps/windows/backtest/", windows.window_backtest, name="window_backtest"),
    path("caps/windows/<int:window_id>/delete/", windows.window_remove, name="window_delete"),
    path("prices/", prices.prices_page, name="prices"),
    path("prices/retire/", prices.price_retire, name="price_retire"),
    path("prices/<int:price_id>/cancel/", prices.price_cancel, name="price_cancel"),
    path("keys/", keys.keys_page, name="keys"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("webhooks/", webhooks.webhooks_page, name="webhooks"),
    path("webhooks/<int:webhook_id>/", webhooks.webhook_log, name="webhook_log"),
    path("webhooks/<int:webhook_id>/delete/", webhooks.webhook_remove, name="webhook_delete"),
    path("webhooks/<int:webhook_id>/enable/", webhooks.webhook_reenable, name="webhook_enable"),
]
