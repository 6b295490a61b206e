from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agents.models import Knowledge


@login_required
@require_GET
def knowledge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One passage of the active group's knowledge: where a citation [n] in the chat leads."""
    if request.group is None:
        raise Http404("No such knowledge.")
    knowledge = Knowledge.objects.filter(group=request.group, pk=pk).first()
    if knowledge is None:
        raise Http404("No such knowledge.")
    return render(request, "agents/knowledge_detail.html", {"knowledge": knowledge})
