from django.urls import path

from ontology import audit, views

urlpatterns = [
    path("", views.home, name="home"),
    path("groups/switch/", views.switch_group, name="switch-group"),
    path("settings/theme/", views.theme_set, name="theme-set"),
    path("audit/", audit.audit_log, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
]
