"""The forms of the Knowledge page and the admin's add-knowledge form."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from agents import catalog
from agents.knowledge import services
from agents.knowledge.ingestion.extract import FORMATS


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


def upload_help() -> str:
    return (
        f"{', '.join(sorted(FORMATS))}; up to {settings.PARLEY_KNOWLEDGE_MAX_FILES} files of "
        f"{settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES / 1e6:.0f} MB each."
    )


def clean_knowledge_input(form: forms.Form, cleaned: dict) -> None:
    """Field errors for an add-knowledge form; the services check the same again on save."""
    files, text, title = (
        cleaned.get("files") or [],
        cleaned.get("text", ""),
        cleaned.get("text_title", ""),
    )
    urls = [u.strip() for u in (cleaned.get("urls") or "").splitlines() if u.strip()]
    cleaned["url_list"] = urls
    if not files and not text.strip() and not urls:
        form.add_error(None, "Add a file, paste some text or enter a URL.")
    if files:
        try:
            services.check_files(files)
        except ValidationError as error:
            form.add_error("files", error)
    if text.strip() and not title.strip():
        form.add_error("text_title", "Give the pasted text a title.")
    if len(urls) > settings.PARLEY_KNOWLEDGE_MAX_URLS:
        form.add_error("urls", f"At most {settings.PARLEY_KNOWLEDGE_MAX_URLS} URLs at a time.")


def add_knowledge(*, group, data: dict, actor) -> list:
    """Call the services for whatever the form carried; [(source, created), ...]."""
    added = []
    with transaction.atomic():
        if data.get("files"):
            added += services.source_add_files(group=group, files=data["files"], actor=actor)
        if data.get("text", "").strip():
            added.append(
                services.source_add_text(
                    group=group, title=data["text_title"], text=data["text"], actor=actor
                )
            )
        if data.get("url_list"):
            added += services.source_add_urls(group=group, urls=data["url_list"], actor=actor)
    return added


class KnowledgeAddForm(forms.Form):
    files = MultipleFileField(required=False, help_text=upload_help)
    text_title = forms.CharField(label="Title", required=False, max_length=300)
    text = forms.CharField(label="Text", widget=forms.Textarea(attrs={"rows": 6}), required=False)
    urls = forms.CharField(
        label="URLs",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One per line; each is fetched by the ingestion job.",
    )

    def clean(self):
        cleaned = super().clean()
        clean_knowledge_input(self, cleaned)
        return cleaned


class EmbeddingModelForm(forms.Form):
    model = forms.ChoiceField(
        label="Embedding model",
        choices=lambda: [
            (m.model, f"{m.model} ({m.provider}, {m.embedding_dimensions} dims)")
            for m in catalog.embedding_models()
        ],
    )
