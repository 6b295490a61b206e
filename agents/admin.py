from django.contrib import admin
from django.db import transaction

from agents import catalog
from agents.forms import AgentForm
from agents.models import Agent
from ontology import services
from ontology.models import Thing
from ontology.tenant_admin import TenantAdmin


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(p.key, p.label) for p in catalog.PROVIDERS.values()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(properties__provider=self.value())
        return queryset


@admin.register(Agent)
class AgentAdmin(TenantAdmin):
    form = AgentForm
    list_display = ("name", "group", "agent_provider", "agent_model", "status", "updated_at")
    list_filter = ("status", ProviderFilter, ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "properties__systemPrompt")
    list_select_related = ("group",)
    autocomplete_fields = ("group",)
    fieldsets = (
        (None, {"fields": ("group", "name", "status")}),
        ("Model", {"fields": ("provider", "model", "temperature",
                              "fallbackProvider", "fallbackModel")}),
        ("Prompt", {"fields": ("systemPrompt",)}),
        ("Tools", {"fields": ("tools", "maxConsecutiveToolCalls", "toolCallTimeout")}),
        ("Retrieval", {"fields": ("ragEnabled", "ragTopK", "embeddingModel")}),
        ("Limits", {"fields": ("maxTokens", "requestTimeout")}),
    )  # fmt: skip

    @admin.display(description="provider")
    def agent_provider(self, obj):
        return obj.properties.get("provider", "")

    @admin.display(description="model")
    def agent_model(self, obj):
        return obj.properties.get("model", "")

    def get_readonly_fields(self, request, obj=None):
        # An agent never moves between groups: its threads and usage belong to its group.
        return ("group",) if obj else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.thing_update(
                thing=Thing.objects.get(pk=obj.pk), actor=request.user,
                name=data["name"], status=data["status"], properties=form.cleaned_properties,
            )  # fmt: skip
        else:
            created = services.thing_create(
                group=data["group"], type=Thing.Type.AGENT, name=data["name"],
                status=data["status"], properties=form.cleaned_properties, actor=request.user,
            )  # fmt: skip
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.thing_delete(thing=obj, actor=request.user)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        for agent in queryset:
            services.thing_delete(thing=agent, actor=request.user)
