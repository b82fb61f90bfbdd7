from django.urls import path

from . import views

app_name = "ingest"

urlpatterns = [
    path("", views.keys_page, name="keys"),
    path("<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
]
