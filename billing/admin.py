from django.contrib import admin
from django.db.models import Sum

from billing.models import AICall, BudgetReservation, MonthlyUsage, Plan, PriceOverride, UsageDaily
from ontology.tenant_admin import ReadOnlyTenantAdmin


@admin.register(AICall)
class AICallAdmin(ReadOnlyTenantAdmin):
    """The usage ledger: every provider call, as it was priced. Nobody edits it."""

    list_display = (
        "created_at",
        "group",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost",
        "status",
        "error_code",
        "usage_exact",
    )
    list_filter = (
        "status",
        "provider",
        "usage_exact",
        "purpose",
        ("group", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("model", "error_code")
    date_hierarchy = "created_at"
    list_select_related = ("group",)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    """Plans are platform configuration: only superusers see or change them."""

    list_display = (
        "code",
        "monthly_budget",
        "monthly_token_budget",
        "message_rate_user",
        "message_rate_group",
        "max_upload_mb",
        "max_agents",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("code",)}),
        ("Monthly budget", {"fields": ("monthly_budget", "monthly_token_budget")}),
        (
            "Limits",
            {"fields": ("message_rate_user", "message_rate_group", "max_upload_mb", "max_agents")},
        ),
    )

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # a group names its plan by code; deleting one only falls back to defaults


class TotalsAdmin(ReadOnlyTenantAdmin):
    """A read-only changelist with the totals of what the filters selected above the rows."""

    totals = ("cost",)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            sums = changelist.queryset.aggregate(**{name: Sum(name) for name in self.totals})
            response.context_data["totals"] = [
                (self.model._meta.get_field(name).verbose_name, sums[name] or 0)
                for name in self.totals
            ]
        return response


@admin.register(UsageDaily)
class UsageDailyAdmin(TotalsAdmin):
    """The daily roll-ups the usage pages read: by day, model, agent and person."""

    change_list_template = "admin/billing/totals_change_list.html"
    list_display = (
        "day",
        "group",
        "provider",
        "model",
        "agent",
        "user",
        "calls",
        "input_tokens",
        "output_tokens",
        "cost",
    )
    list_filter = ("provider", "model", ("group", admin.RelatedOnlyFieldListFilter))
    date_hierarchy = "day"
    list_select_related = ("group", "agent", "user")
    totals = ("calls", "input_tokens", "output_tokens", "cost")


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(TotalsAdmin):
    """Each group's spend per month, as the budget sees it."""

    change_list_template = "admin/billing/totals_change_list.html"
    list_display = ("month", "group", "calls", "tokens", "cost")
    list_filter = (("group", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("group",)
    totals = ("calls", "tokens", "cost")


@admin.register(BudgetReservation)
class BudgetReservationAdmin(ReadOnlyTenantAdmin):
    """Calls in flight and what they hold against the budget until they settle or expire."""

    list_display = ("created_at", "group", "run_id", "cost", "tokens", "expires_at")
    list_filter = (("group", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("group",)


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    """Platform-wide prices (superusers: tenant admins have no permission on this model)."""

    list_display = (
        "provider",
        "model",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "updated_at",
    )
    search_fields = ("provider", "model")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["provider"].help_text = "e.g. openai"
        form.base_fields["model"].help_text = "A model id from the catalog, e.g. gpt-4o-mini."
        return form
