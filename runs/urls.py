from django.urls import path

from . import views

app_name = "runs"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/cancel/", views.run_cancel, name="cancel"),
]
