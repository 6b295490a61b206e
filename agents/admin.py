from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

import agents.knowledge.admin  # noqa: F401 - registers the knowledge admins
from agents import catalog, knowledge, services
from agents.encryption import decrypt
from agents.forms import AgentForm
from agents.models import Agent, ProviderCredential
from ontology import services as ontology_services
from ontology.models import Thing
from ontology.scoping import group_scope
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

    class Media:
        css = {"all": ("css/admin.css",)}

    fieldsets = (
        (None, {"fields": ("group", "name", "status")}),
        (
            "Model",
            {"fields": ("provider", "model", "temperature", "fallbackProvider", "fallbackModel")},
        ),
        ("Prompt", {"fields": ("systemPrompt",)}),
        ("Tools", {"fields": ("tools", "maxConsecutiveToolCalls", "toolCallTimeout")}),
        ("Retrieval", {"fields": ("ragEnabled", "ragTopK", "embeddingModel", "knowledgeSources")}),
        ("Limits", {"fields": ("maxTokens", "requestTimeout")}),
    )

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
            ontology_services.thing_update(
                thing=Thing.objects.get(pk=obj.pk),
                actor=request.user,
                name=data["name"],
                status=data["status"],
                properties=form.cleaned_properties,
            )
        else:
            created = ontology_services.thing_create(
                group=data["group"],
                type=Thing.Type.AGENT,
                name=data["name"],
                status=data["status"],
                properties=form.cleaned_properties,
                actor=request.user,
            )
            obj.pk = created.pk
        knowledge.embedding_indexes_sync(group=data["group"] if not change else obj.group)

    def delete_model(self, request, obj):
        ontology_services.thing_delete(thing=obj, actor=request.user)


class CredentialForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    provider = forms.ChoiceField(
        choices=lambda: [(p.key, p.label) for p in catalog.PROVIDERS.values() if not p.scenarios]
    )
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="Only for a proxy or a self-hosted endpoint; empty uses the provider's own.",
    )

    class Meta:
        model = ProviderCredential
        fields = ("group", "provider", "base_url")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:  # nothing stored yet to keep
            self.fields["api_key"].help_text = "Stored encrypted and never shown again."

    def clean(self):
        cleaned = super().clean()
        api_key = (cleaned.get("api_key") or "").strip()
        if api_key and len(api_key) < 8:
            self.add_error("api_key", "That does not look like an API key.")
        elif not api_key and not self.instance.pk:
            self.add_error("api_key", "Enter the API key.")
        elif not api_key and decrypt(self.instance.encrypted_api_key) is None:
            self.add_error("api_key", "The stored key can no longer be read; enter it again.")
        if cleaned.get("base_url"):
            try:
                services.check_base_url(cleaned["base_url"])
            except ValidationError as problem:
                self.add_error("base_url", problem.message_dict["base_url"])
        group = cleaned.get("group") or getattr(self.instance, "group", None)
        if not self.instance.pk and group and cleaned.get("provider"):
            with group_scope(group):
                if ProviderCredential.objects.filter(provider=cleaned["provider"]).exists():
                    self.add_error("provider", "This organisation already has a key for it.")
        return cleaned


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(TenantAdmin):
    """A group's own provider keys: write-only, encrypted at rest, audited without the key."""

    form = CredentialForm
    list_display = ("provider", "group", "masked_key", "base_url", "updated_at")
    list_filter = ("provider", ("group", admin.RelatedOnlyFieldListFilter))
    autocomplete_fields = ("group",)

    @admin.display(description="key")
    def masked_key(self, obj):
        return f"…{obj.key_hint}"

    def get_readonly_fields(self, request, obj=None):
        return ("group", "provider", "masked_key") if obj else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change and not data.get("api_key"):
            api_key = decrypt(obj.encrypted_api_key) or ""
        else:
            api_key = data["api_key"]
        saved = services.credential_set(
            group=obj.group,
            provider=obj.provider,
            api_key=api_key,
            base_url=data.get("base_url", ""),
            actor=request.user,
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.credential_delete(credential=obj, actor=request.user)
