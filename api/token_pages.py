"""The "API tokens" settings page: a person makes, lists and revokes their own tokens; the
group's owners and admins also see and revoke everyone's. The secret is shown once, on the
page that answers the form that made it, and never again."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from billing.ratelimits import limit_requests
from ontology import tokens
from ontology.access import is_manager, member_group, member_required
from ontology.models import ApiToken

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'CI bot'.")
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiToken.Scope.CHAT, ApiToken.Scope.READ],
    )
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, initial="90")


@member_required
@require_http_methods(["GET", "POST"])
@limit_requests("chat")
def token_list(request: HttpRequest) -> HttpResponse:
    group = member_group(request)
    manager = is_manager(group)
    secret = None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            _, secret = tokens.token_create(
                group=group,
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=timezone.now() + timedelta(days=int(days)) if days else None,
                actor=request.user,
            )
        except ValidationError as problem:
            form.add_error(None, problem)
        else:
            form = TokenForm()
    listed = tokens.tokens_for_list(group=group, user=request.user, all_of_group=manager)
    return render(
        request,
        "api/tokens.html",
        {
            "group": group,
            "form": form,
            "secret": secret,
            "tokens": listed,
            "manager": manager,
            "now": timezone.now(),
        },
        status=201 if secret else 200,
    )


@member_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    group = member_group(request)
    token = tokens.token_for_manage(
        group=group, user=request.user, token_id=token_id, manager=is_manager(group)
    )
    if token is None:
        raise Http404("No such token.")
    tokens.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” is revoked. Anything using it stops now.")
    return redirect("tokens")
