"""OpenAI's routes under /v1/: what its SDKs call with `base_url="https://host/v1"`."""

from django.urls import path

from api.openai_compat import views

app_name = "openai"
urlpatterns = [
    path("models", views.model_list, name="models"),
    path("models/<str:model_id>", views.model_detail, name="model"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("embeddings", views.embeddings, name="embeddings"),
]
