"""The API's routes: Parley's JSON API under /api/v1/, the OpenAI-compatible one under /v1/,
and the page where people make the tokens both take."""

from django.urls import include, path

from api import token_pages

urlpatterns = [
    path("api/v1/", include("api.rest.urls")),
    path("v1/", include("api.openai_compat.urls")),
    path("settings/tokens/", token_pages.token_list, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", token_pages.token_revoke, name="token-revoke"),
]
