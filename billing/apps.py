from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.services import ensure_agent_capacity
        from ontology.services import register_creation_check

        register_creation_check("agent", ensure_agent_capacity)
