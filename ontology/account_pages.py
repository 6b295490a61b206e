"""A person's own pages: the profile (display name, theme, default agent per organisation),
signing out everywhere else, and Django's password change and reset views, styled like
the rest and audited (ontology/accounts.py). Every signed-in person reaches them."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from ontology import accounts, services
from ontology.models import Thing
from ontology.preferences import THEMES, preferences_update, theme_of
from ontology.selectors import things_for_group

DEFAULT_AGENTS = "default_agents"  # preferences key: {group id: agent id}


def default_agent_id(user, group) -> int | None:
    """The agent a person picked to start their chats with in `group`, if they did."""
    if group is None or not user.is_authenticated:
        return None
    chosen = (user.preferences or {}).get(DEFAULT_AGENTS, {}).get(str(group.pk))
    return chosen if isinstance(chosen, int) else None


def _save_profile(request: HttpRequest, display_name: str, theme: str, agent: str) -> None:
    user, group = request.user, request.group
    preferences: dict = {"theme": theme}
    if group is not None:
        agents = {a.pk for a in things_for_group(group=group, type=Thing.Type.AGENT)}
        chosen = int(agent) if agent.isdigit() else None
        if chosen is not None and chosen not in agents:
            raise ValidationError({"default_agent": "Pick one of your organisation's agents."})
        defaults = dict((user.preferences or {}).get(DEFAULT_AGENTS, {}))
        if chosen is None:
            defaults.pop(str(group.pk), None)
        else:
            defaults[str(group.pk)] = chosen
        preferences[DEFAULT_AGENTS] = defaults
        services.user_update_profile(
            user=user, group=group, actor=user, display_name=display_name, preferences=preferences
        )
    else:  # in no organisation: nothing to audit it in
        name = display_name.strip()
        if not name or len(name) > 150:
            raise ValidationError({"display_name": "Display name must be 1 to 150 characters."})
        user.display_name = name
        user.save(update_fields=["display_name"])
        preferences_update(user=user, theme=theme)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user, group = request.user, request.group
    errors: list[str] = []
    if request.method == "POST":
        theme = request.POST.get("theme", "system")
        if theme not in THEMES:
            theme = "system"
        try:
            _save_profile(
                request,
                request.POST.get("display_name", ""),
                theme,
                request.POST.get("default_agent", ""),
            )
        except ValidationError as error:
            errors = error.messages
        else:
            flash.success(request, "Your profile is saved.")
            return redirect("profile")
    agents = things_for_group(group=group, type=Thing.Type.AGENT) if group is not None else []
    return render(
        request,
        "ontology/profile.html",
        {
            "errors": errors,
            "themes": THEMES,
            "current_theme": theme_of(user),
            "agents": agents,
            "default_agent_id": default_agent_id(user, group),
        },
    )


@login_required
@require_POST
def sessions_end(request: HttpRequest) -> HttpResponse:
    accounts.sessions_end_others(request=request)
    flash.success(request, "You are signed out everywhere else; this browser stays signed in.")
    return redirect("profile")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's, audited; other sessions end (the password is part of their check)."""

    success_url = reverse_lazy("profile")

    def form_valid(self, form):
        response = super().form_valid(form)
        accounts.password_changed_record(request=self.request)
        flash.success(self.request, "Your password is changed. Other sessions are signed out.")
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's, audited in each of the person's groups."""

    def form_valid(self, form):
        response = super().form_valid(form)
        accounts.password_reset_record(user=form.user, request=self.request)
        return response


password_change = PasswordChangeView.as_view()
password_reset = auth_views.PasswordResetView.as_view(  # rate-limited in config/urls.py
    email_template_name="registration/password_reset_email.txt",
    subject_template_name="registration/password_reset_subject.txt",
)
password_reset_done = auth_views.PasswordResetDoneView.as_view()
password_reset_confirm = PasswordResetConfirmView.as_view()
password_reset_complete = auth_views.PasswordResetCompleteView.as_view()
