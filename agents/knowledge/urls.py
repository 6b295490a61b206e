from django.urls import path

from agents.knowledge import views

urlpatterns = [
    path("knowledge/", views.knowledge_list, name="knowledge-list"),
    path("knowledge/status/", views.knowledge_status, name="knowledge-status"),
    path("knowledge/model/", views.knowledge_model, name="knowledge-model"),
    path("knowledge/sources/<int:pk>/", views.knowledge_source_detail, name="knowledge-source"),
    path(
        "knowledge/sources/<int:pk>/delete/",
        views.knowledge_source_delete,
        name="knowledge-source-delete",
    ),
    path(
        "knowledge/sources/<int:pk>/retry/",
        views.knowledge_source_retry,
        name="knowledge-source-retry",
    ),
    # A chunk: where a citation [n] leads (the id is the `knowledge_id` of a source item).
    path("knowledge/<int:pk>/", views.knowledge_detail, name="knowledge-detail"),
]
