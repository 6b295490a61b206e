from django.urls import path

from ontology import views

urlpatterns = [
    path("", views.home, name="home"),
    path("groups/switch/", views.switch_group, name="switch-group"),
]
