from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from ontology.middleware import SESSION_KEY
from ontology.preferences import THEMES, preferences_update
from ontology.selectors import group_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """People come to chat: the home of a member is their organisation's conversations."""
    if request.group is not None:
        return redirect("thread-list")
    return render(request, "ontology/home.html")


@login_required
@require_POST
def switch_group(request: HttpRequest) -> HttpResponse:
    group = group_for_user(user=request.user, group_id=request.POST.get("group", ""))
    if group is None:
        raise Http404("No such group.")
    request.session[SESSION_KEY] = group.pk
    return redirect("home")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness of the two stores this process needs; for load balancers and `make run`."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        cache.set("healthz", "1", timeout=5)
        checks["redis"] = "ok" if cache.get("healthz") == "1" else "error: no round trip"
    except Exception as error:
        checks["redis"] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"ok": healthy, **checks}, status=200 if healthy else 503)


@login_required
@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Remember the page theme a person picked ("system", "light" or "dark"): 204 for the
    header's toggle (fetch), else back to the page the form was on."""
    theme = request.POST.get("theme", "")
    if theme not in THEMES:
        return HttpResponseBadRequest("Choose a theme: system, light or dark.")
    preferences_update(user=request.user, theme=theme)
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = "home"
    return redirect(back)
