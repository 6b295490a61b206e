"""The API's routes: Parley's JSON API under /api/v1/, the OpenAI-compatible one under /v1/."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("api.rest.urls")),
    path("v1/", include("api.openai_compat.urls")),
]
