from django.urls import path

from agents import views

urlpatterns = [
    path("knowledge/<int:pk>/", views.knowledge_detail, name="knowledge-detail"),
]
