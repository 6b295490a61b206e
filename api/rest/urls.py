"""Parley's JSON API, under /api/v1/ (docs/api.md; the OpenAPI document at openapi.json)."""

from django.urls import path

from api.rest import views

app_name = "api"
urlpatterns = [
    path("agents", views.agents, name="agents"),
    path("threads", views.threads, name="threads"),
    path("threads/<int:thread_id>", views.thread, name="thread"),
    path("threads/<int:thread_id>/messages", views.messages, name="messages"),
    path("threads/<int:thread_id>/stop", views.stop, name="stop"),
    path("threads/<int:thread_id>/runs/<uuid:run_id>/events", views.events, name="run-events"),
    path("usage", views.usage_view, name="usage"),
    path("openapi.json", views.openapi_view, name="openapi"),
]
