"""The ontology's pages. Those whose writes are rate-limited (invitations sent, an
invitation's link, the password reset form) are routed in config/urls.py, where the
limits (billing.ratelimits) may be applied: ontology sits below billing."""

from django.urls import path

from ontology import account_pages, audit, member_pages, views

urlpatterns = [
    path("", views.home, name="home"),
    path("groups/switch/", views.switch_group, name="switch-group"),
    path("settings/theme/", views.theme_set, name="theme-set"),
    path("audit/", audit.audit_log, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    # The organisation's people (owners and admins).
    path("members/", member_pages.member_list, name="members"),
    path("members/<int:membership_id>/role/", member_pages.member_role, name="member-role"),
    path("members/<int:membership_id>/remove/", member_pages.member_remove, name="member-remove"),
    path(
        "members/invitations/<int:invitation_id>/revoke/",
        member_pages.invitation_revoke,
        name="invitation-revoke",
    ),
    # One's own account (every signed-in person).
    path("settings/profile/", account_pages.profile, name="profile"),
    path("settings/sessions/end/", account_pages.sessions_end, name="sessions-end"),
    path("settings/password/", account_pages.password_change, name="password-change"),
    # Password reset by email (anyone; the form itself is in config/urls.py).
    path("password-reset/sent/", account_pages.password_reset_done, name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        account_pages.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        account_pages.password_reset_complete,
        name="password_reset_complete",
    ),
]
