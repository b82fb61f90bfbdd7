from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from ingest.api import api, not_found_view

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/", not_found_view),
    path("", include("runs.urls")),
]

handler500 = "agentops.views.server_error"
