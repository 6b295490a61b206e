from django.contrib import admin

from billing.models import AICall
from ontology.tenant_admin import ReadOnlyTenantAdmin


@admin.register(AICall)
class AICallAdmin(ReadOnlyTenantAdmin):
    """The usage ledger: every provider call, as it was priced. Nobody edits it."""

    list_display = ("created_at", "group", "provider", "model", "input_tokens", "output_tokens",
                    "cached_tokens", "cost", "status", "error_code", "usage_exact")  # fmt: skip
    list_filter = ("status", "provider", "usage_exact", "purpose",
                   ("group", admin.RelatedOnlyFieldListFilter))  # fmt: skip
    search_fields = ("model", "error_code")
    date_hierarchy = "created_at"
    list_select_related = ("group",)
