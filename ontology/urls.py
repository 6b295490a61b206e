from django.urls import path

from ontology import audit, token_pages, views

urlpatterns = [
    path("", views.home, name="home"),
    path("groups/switch/", views.switch_group, name="switch-group"),
    path("audit/", audit.audit_log, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    path("settings/tokens/", token_pages.token_list, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", token_pages.token_revoke, name="token-revoke"),
]
