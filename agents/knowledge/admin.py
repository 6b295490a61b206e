"""The admin for knowledge sources and their chunks (registered by agents/admin.py)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from agents.knowledge import services
from agents.knowledge.forms import (
    MultipleFileField,
    add_knowledge,
    clean_knowledge_input,
    upload_help,
)
from agents.models import Knowledge, KnowledgeSource
from billing.ratelimits import check_limits
from ontology.tenant_admin import ReadOnlyTenantAdmin, TenantAdmin


class KnowledgeSourceForm(forms.ModelForm):
    """Add knowledge: files, pasted text or URLs (any of them, in one go)."""

    files = MultipleFileField(required=False, help_text=upload_help)
    text_title = forms.CharField(label="Title of the pasted text", required=False, max_length=300)
    text = forms.CharField(
        label="Pasted text", widget=forms.Textarea(attrs={"rows": 8}), required=False
    )
    urls = forms.CharField(
        label="URLs",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One per line; each is fetched by the ingestion job.",
    )

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
    list_display = (
        "title",
        "group",
        "kind",
        "status",
        "chunk_count",
        "progress_percent",
        "created_at",
    )
    list_filter = ("status", "kind", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "filename", "url")
    list_select_related = ("group",)
    autocomplete_fields = ("group",)
    actions = ("retry_failed",)
    readonly = (
        "group",
        "title",
        "kind",
        "filename",
        "url",
        "content_type",
        "size_bytes",
        "content_hash",
        "status",
        "error",
        "chunk_count",
        "progress_percent",
        "created_by",
        "created_at",
        "updated_at",
    )

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
        added = add_knowledge(
            group=form.cleaned_data["group"], data=form.cleaned_data, actor=request.user
        )
        for source, created in added:
            if not created:
                messages.info(request, f"“{source.title}” is already in the knowledge base.")
        obj.pk = added[0][0].pk

    def delete_model(self, request, obj):
        services.source_delete(source=obj, actor=request.user)

    @admin.action(description="Retry the selected failed sources")
    def retry_failed(self, request, queryset):
        retried = 0
        for source in queryset.filter(status=KnowledgeSource.Status.FAILED):
            services.source_retry(source=source, actor=request.user)
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
