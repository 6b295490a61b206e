from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from billing.ratelimits import limit_requests
from ontology import account_pages, invitation_pages, member_pages
from ontology import views as ontology_views

# Pages whose writes are rate-limited here (apps below billing cannot apply its limits).
login_view = limit_requests("login")(auth_views.LoginView.as_view(redirect_authenticated_user=True))
password_reset_view = limit_requests("login")(account_pages.password_reset)
invitation_view = limit_requests("login")(invitation_pages.invitation_open)
invite_view = limit_requests("invite")(member_pages.invite)
invitation_resend_view = limit_requests("invite")(member_pages.invitation_resend)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", password_reset_view, name="password_reset"),
    path("invitations/<str:secret>/", invitation_view, name="invitation"),
    path("members/invite/", invite_view, name="member-invite"),
    path(
        "members/invitations/<int:invitation_id>/resend/",
        invitation_resend_view,
        name="invitation-resend",
    ),
    path("healthz", ontology_views.healthz, name="healthz"),
    path("", include("chat.urls")),
    path("", include("agents.knowledge.urls")),
    path("usage/", include("billing.urls")),
    path("", include("api.urls")),
    path("", include("ontology.urls")),
]

handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
