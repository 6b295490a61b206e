from django.urls import path

from chat import attachments, views

urlpatterns = [
    path("threads/", views.thread_list, name="thread-list"),
    path("threads/new/", views.thread_new, name="thread-new"),
    path("threads/<int:pk>/", views.thread_detail, name="thread-detail"),
    path("threads/<int:pk>/title/", views.thread_rename, name="thread-rename"),
    path("threads/<int:pk>/delete/", views.thread_delete, name="thread-delete"),
    path("threads/<int:pk>/attachments/", attachments.attachment_add, name="thread-attach"),
    path("threads/<int:pk>/path/", views.thread_path_fragment, name="thread-path"),
    path("threads/<int:pk>/archive/", views.thread_archive, name="thread-archive"),
    path("threads/<int:pk>/unarchive/", views.thread_unarchive, name="thread-unarchive"),
    path("threads/<int:pk>/pin/", views.thread_pin, name="thread-pin"),
    path("threads/<int:pk>/unpin/", views.thread_unpin, name="thread-unpin"),
    path("threads/<int:pk>/export.md", views.thread_export_markdown, name="thread-export-md"),
    path("threads/<int:pk>/export.json", views.thread_export_json, name="thread-export-json"),
    path("threads/<int:pk>/share/", views.thread_share, name="thread-share"),
    path("threads/<int:pk>/share/revoke/", views.thread_share_revoke, name="thread-share-revoke"),
    path("shared/<str:token>/", views.shared_thread, name="shared-thread"),
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
