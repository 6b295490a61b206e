from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from billing.ratelimits import limit_requests
from ontology import views as ontology_views

login_view = limit_requests("login")(auth_views.LoginView.as_view(redirect_authenticated_user=True))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", ontology_views.healthz, name="healthz"),
    path("", include("chat.urls")),
    path("", include("agents.knowledge.urls")),
    path("usage/", include("billing.urls")),
    path("", include("api.urls")),
    path("", include("ontology.urls")),
]

handler404 = "config.errors.page_not_found"
