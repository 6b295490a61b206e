from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.dashboard, name="usage"),
    path("calls/", views.calls, name="calls"),
    path("ledger.csv", views.ledger_csv, name="ledger-csv"),
    path("statement.csv", views.statement_csv, name="statement-csv"),
    path("platform/", views.platform, name="platform"),
]
