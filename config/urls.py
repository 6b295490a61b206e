from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ontology import views as ontology_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", ontology_views.healthz, name="healthz"),
    path("", include("chat.urls")),
    path("", include("agents.urls")),
    path("", include("ontology.urls")),
]
