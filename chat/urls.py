from django.urls import path

from chat import views

urlpatterns = [
    path("threads/", views.thread_list, name="thread-list"),
    path("threads/new/", views.thread_new, name="thread-new"),
    path("threads/<int:pk>/", views.thread_detail, name="thread-detail"),
    path("threads/<int:pk>/title/", views.thread_rename, name="thread-rename"),
    path(
        "threads/<int:pk>/messages/<uuid:message_id>/",
        views.message_fragment,
        name="message-fragment",
    ),
    path(
        "threads/<int:pk>/messages/<uuid:message_id>/feedback/",
        views.message_feedback,
        name="message-feedback",
    ),
]
