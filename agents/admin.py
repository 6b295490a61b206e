from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from agents import catalog, ingestion, services
from agents.forms import (
    AgentForm,
    MultipleFileField,
    add_knowledge,
    clean_knowledge_input,
    upload_help,
)
from agents.models import Agent, Knowledge, KnowledgeSource, ProviderCredential
from agents.secrets import decrypt
from billing.ratelimits import check_limits
from ontology import services as ontology_services
from ontology.models import Thing
from ontology.scoping import group_scope
from ontology.tenant_admin import ReadOnlyTenantAdmin, TenantAdmin


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
        ("Model", {"fields": ("provider", "model", "temperature",
                              "fallbackProvider", "fallbackModel")}),
        ("Prompt", {"fields": ("systemPrompt",)}),
        ("Tools", {"fields": ("tools", "maxConsecutiveToolCalls", "toolCallTimeout")}),
        ("Retrieval", {"fields": ("ragEnabled", "ragTopK", "embeddingModel",
                                  "knowledgeSources")}),
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
            ontology_services.thing_update(
                thing=Thing.objects.get(pk=obj.pk), actor=request.user,
                name=data["name"], status=data["status"], properties=form.cleaned_properties,
            )  # fmt: skip
        else:
            created = ontology_services.thing_create(
                group=data["group"], type=Thing.Type.AGENT, name=data["name"],
                status=data["status"], properties=form.cleaned_properties, actor=request.user,
            )  # fmt: skip
            obj.pk = created.pk
        ingestion.embedding_indexes_sync(group=data["group"] if not change else obj.group)

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
        label="Base URL", required=False, assume_scheme="https",
        help_text="Only for a proxy or a self-hosted endpoint; empty uses the provider's own.",
    )  # fmt: skip

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
            group=obj.group, provider=obj.provider, api_key=api_key,
            base_url=data.get("base_url", ""), actor=request.user,
        )  # fmt: skip
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.credential_delete(credential=obj, actor=request.user)


class KnowledgeSourceForm(forms.ModelForm):
    """Add knowledge: files, pasted text or URLs (any of them, in one go)."""

    files = MultipleFileField(required=False, help_text=upload_help)
    text_title = forms.CharField(label="Title of the pasted text", required=False, max_length=300)
    text = forms.CharField(label="Pasted text", widget=forms.Textarea(attrs={"rows": 8}),
                           required=False)  # fmt: skip
    urls = forms.CharField(
        label="URLs", widget=forms.Textarea(attrs={"rows": 3}), required=False,
        help_text="One per line; each is fetched by the ingestion job.",
    )  # fmt: skip

    class Meta:
        model = KnowledgeSource
        fields = ("group",)

    def clean(self):
        cleaned = super().clean()
        clean_knowledge_input(self, cleaned)
        return cleaned


@admin.register(KnowledgeSource)
class KnowledgeSourceAdmin(TenantAdmin):
    """A group's documents. Added here or on the Knowledge page; read-only once added."""

    form = KnowledgeSourceForm
    list_display = ("title", "group", "kind", "status", "chunk_count", "progress_percent",
                    "created_at")  # fmt: skip
    list_filter = ("status", "kind", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "filename", "url")
    list_select_related = ("group",)
    autocomplete_fields = ("group",)
    actions = ("retry_failed",)
    readonly = ("group", "title", "kind", "filename", "url", "content_type", "size_bytes",
                "content_hash", "status", "error", "chunk_count", "progress_percent",
                "created_by", "created_at", "updated_at")  # fmt: skip

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")

    def add_view(self, request, form_url="", extra_context=None):
        # Counted like the Knowledge page's uploads, once the user may add at all.
        if request.method == "POST" and self.has_add_permission(request):
            refusal = check_limits(request, "upload")
            if refusal is not None:
                return refusal
        return super().add_view(request, form_url, extra_context)

    @admin.display(description="progress")
    def progress_percent(self, obj):
        return f"{obj.progress}%"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("group", "files", "text_title", "text", "urls")
        return self.readonly

    def get_readonly_fields(self, request, obj=None):
        return self.readonly if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return
        added = add_knowledge(group=form.cleaned_data["group"], data=form.cleaned_data,
                              actor=request.user)  # fmt: skip
        for source, created in added:
            if not created:
                messages.info(request, f"“{source.title}” is already in the knowledge base.")
        obj.pk = added[0][0].pk

    def delete_model(self, request, obj):
        ingestion.source_delete(source=obj, actor=request.user)

    @admin.action(description="Retry the selected failed sources")
    def retry_failed(self, request, queryset):
        retried = 0
        for source in queryset.filter(status=KnowledgeSource.Status.FAILED):
            ingestion.source_retry(source=source, actor=request.user)
            retried += 1
        messages.info(request, f"{retried} source(s) queued again.")


@admin.register(Knowledge)
class KnowledgeChunkAdmin(ReadOnlyTenantAdmin):
    """Chunks are written by ingestion only: look them up here, change their source instead."""

    list_display = ("__str__", "group", "source", "position", "token_count")
    list_filter = (("group", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("title", "section", "content")
    list_select_related = ("group", "source")
    fields = ("group", "source", "title", "section", "position", "token_count", "content")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("source__raw")
