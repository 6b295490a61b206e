from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from billing.models import Plan, PriceOverride
        from billing.price_overrides import bump_price_overrides
        from billing.selectors import forget_plans
        from billing.services import ensure_agent_capacity
        from ontology.services import register_creation_check

        register_creation_check("agent", ensure_agent_capacity)
        for signal in (post_save, post_delete):  # a plan changed here applies here at once
            signal.connect(forget_plans, sender=Plan, dispatch_uid=f"forget-plans-{signal}")
            # a price changed anywhere applies everywhere from the next call on
            signal.connect(
                bump_price_overrides, sender=PriceOverride, dispatch_uid=f"bump-prices-{signal}"
            )
