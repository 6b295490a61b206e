"""The agent form: one field per agent property, validated by agents.properties."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from agents import catalog
from agents.models import Agent, KnowledgeSource
from agents.properties import AGENT_DEFAULTS, validate_agent_properties
from agents.tools.registry import TOOLS
from billing.services import ensure_agent_capacity
from ontology.scoping import group_scope
from ontology.tenant_admin import apply_service_errors


def _provider_choices(blank: bool = False) -> list:
    choices = [(p.key, p.label) for p in catalog.PROVIDERS.values()]
    return [("", "— none —"), *choices] if blank else choices


class ModelInput(forms.TextInput):
    """A model id typed or picked from the catalog's chat models (a <datalist>).

    Typed, because the simulator's models take a behaviour suffix no list can hold
    (`sim-gpt@offline;ttft_ms=600`); agents.properties checks the id against the provider.
    """

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"{(attrs or {}).get('id', 'id_' + name)}-catalog"
        field = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join(
            "",
            '<option value="{}">{}</option>',
            (
                (m.model, provider.label)
                for provider in catalog.PROVIDERS.values()
                for m in catalog.chat_models(provider.key)
            ),
        )
        return format_html('{}<datalist id="{}">{}</datalist>', field, list_id, options)


def _model_field(**kwargs) -> forms.CharField:
    return forms.CharField(
        max_length=catalog.MAX_MODEL_CHARS,
        widget=ModelInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        **kwargs,
    )


class AgentForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=_provider_choices)
    model = _model_field(
        help_text="A model of the provider (pick from the list or type it). The simulator's "
        "models take a behaviour suffix, e.g. sim-gpt@text;tps=40;ttft_ms=300."
    )
    temperature = forms.FloatField(help_text="0 (focused) to 2 (creative).")
    fallbackProvider = forms.ChoiceField(
        label="Fallback provider", choices=lambda: _provider_choices(blank=True), required=False
    )
    fallbackModel = _model_field(
        label="Fallback model",
        required=False,
        help_text="Used when the main model keeps failing.",
    )
    systemPrompt = forms.CharField(
        label="System prompt", widget=forms.Textarea(attrs={"rows": 12}), required=False
    )
    tools = forms.MultipleChoiceField(
        choices=lambda: [(t.name, f"{t.label} — {t.description}") for t in TOOLS.values()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    maxConsecutiveToolCalls = forms.IntegerField(label="Max consecutive tool calls")
    toolCallTimeout = forms.FloatField(label="Tool call timeout (s)")
    ragEnabled = forms.BooleanField(
        label="Use knowledge automatically",
        required=False,
        help_text="Search the group's knowledge for every message and add the passages "
        "to the context.",
    )
    ragTopK = forms.IntegerField(label="Passages per search (top-k)")
    embeddingModel = forms.ChoiceField(
        label="Embedding model",
        choices=lambda: [
            ("", "The organisation's model"),
            *[(m.model, f"{m.model} ({m.provider})") for m in catalog.embedding_models()],
        ],
        required=False,
        help_text="Changing it embeds the knowledge again in the background; "
        "the current vectors keep answering meanwhile.",
    )
    knowledgeSources = forms.TypedMultipleChoiceField(
        label="Knowledge sources",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Search only these sources; none ticked searches all of the organisation's.",
    )
    maxTokens = forms.IntegerField(label="Max output tokens")
    requestTimeout = forms.FloatField(label="Request timeout (s)")

    property_fields = tuple(AGENT_DEFAULTS)

    class Meta:
        model = Agent
        fields = ("group", "name", "status")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = {**AGENT_DEFAULTS, **(self.instance.properties or {})}
        for key in self.property_fields:
            self.fields[key].initial = current[key]
        self.fields["knowledgeSources"].choices = self._source_choices()
        self.cleaned_properties: dict | None = None

    def _source_choices(self) -> list[tuple[int, str]]:
        """The sources of the agent's group: its own, or for a new agent the group posted or
        offered (one the admin may pick); none until a group is known."""
        group = self.instance.group if self.instance.pk else self._group_being_added()
        if group is None:
            return []
        with group_scope(group):
            return list(KnowledgeSource.objects.order_by("title").values_list("pk", "title"))

    def _group_being_added(self):
        if "group" not in self.fields:
            return None
        picked = self.data.get(self.add_prefix("group")) if self.is_bound else None
        picked = picked or self.initial.get("group")
        if not str(picked or "").isdigit():
            return None
        return self.fields["group"].queryset.filter(pk=picked).first()

    def clean(self):
        cleaned = super().clean()
        if any(key in self.errors for key in self.property_fields):
            return cleaned
        properties = {key: cleaned.get(key) for key in self.property_fields}
        properties["fallbackProvider"] = properties["fallbackProvider"] or ""
        properties["fallbackModel"] = properties["fallbackModel"] or ""
        properties["embeddingModel"] = properties["embeddingModel"] or ""
        properties["knowledgeSources"] = properties["knowledgeSources"] or []
        try:
            self.cleaned_properties = validate_agent_properties(properties)
            if not self.instance.pk and cleaned.get("group") is not None:
                ensure_agent_capacity(cleaned["group"])
        except ValidationError as error:
            apply_service_errors(self, error)
        return cleaned
