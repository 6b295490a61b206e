"""The page an invitation's link opens (`/invitations/<secret>/`), for anyone holding it.

* Someone new sets their name and a password, is signed in and lands in the group.
* Someone with an account at the invited address signs in (the login page sends them
  back here) and joins with one click.
* Signed in as someone else, they are told which account the invitation is for.

A link that is unknown, used, revoked or expired gets one 404 page saying so, whichever
it is. Its POSTs count in the "login" rate bucket, like the sign-in form (config/urls.py)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from ontology import invitations
from ontology.middleware import SESSION_KEY

BACKEND = "django.contrib.auth.backends.ModelBackend"
TEMPLATE = "ontology/invitation.html"


def _errors(error: ValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {field: messages for field, messages in error.message_dict.items()}
    return {"__all__": error.messages}


def _joined(request: HttpRequest, invitation) -> HttpResponse:
    request.session[SESSION_KEY] = invitation.group_id
    flash.success(request, f"Welcome to {invitation.group.name}.")
    return redirect("home")


@never_cache
@sensitive_post_parameters("password", "password_again")
def invitation_open(request: HttpRequest, secret: str) -> HttpResponse:
    invitation = invitations.invitation_for_secret(secret)
    if invitation is None:
        return render(request, TEMPLATE, {"mode": "invalid"}, status=404)
    user = request.user
    context = {"invitation": invitation, "group": invitation.group, "errors": {}}
    if user.is_authenticated:
        context["for_someone_else"] = (user.email or "").lower() != invitation.email.lower()
        if request.method == "POST" and not context["for_someone_else"]:
            try:
                invitations.invitation_accept(invitation=invitation, user=user)
            except ValidationError as error:
                context["errors"] = _errors(error)
            else:
                return _joined(request, invitation)
        return render(request, TEMPLATE, {**context, "mode": "join"})
    if invitations.account_for(invitation) is not None:
        return render(request, TEMPLATE, {**context, "mode": "sign_in"})
    if request.method == "POST":
        password = request.POST.get("password", "")
        if password != request.POST.get("password_again", ""):
            context["errors"] = {"password_again": ["The two passwords differ."]}
        else:
            try:
                user = invitations.invitation_accept_new_user(
                    invitation=invitation,
                    display_name=request.POST.get("display_name", ""),
                    password=password,
                )
            except ValidationError as error:
                context["errors"] = _errors(error)
            else:
                login(request, user, backend=BACKEND)  # audited by ontology.receivers
                return _joined(request, invitation)
        context["display_name"] = request.POST.get("display_name", "")
    return render(request, TEMPLATE, {**context, "mode": "new"})
