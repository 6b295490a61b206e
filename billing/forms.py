from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.utils import timezone

from billing.models import AICall
from billing.selectors import month_start

MAX_DAYS = 366
PRESETS = {
    "this-month": "This month",
    "last-month": "Last month",
    "7-days": "Last 7 days",
    "30-days": "Last 30 days",
}


def preset_period(preset: str, today: date) -> tuple[date, date]:
    if preset == "last-month":
        last = month_start(today) - timedelta(days=1)
        return month_start(last), last
    if preset == "7-days":
        return today - timedelta(days=6), today
    if preset == "30-days":
        return today - timedelta(days=29), today
    return month_start(today), today


class PeriodForm(forms.Form):
    """A period of whole days, this month unless asked otherwise."""

    preset = forms.ChoiceField(choices=list(PRESETS.items()), required=False)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        today = timezone.localdate()
        start, end = preset_period(cleaned.get("preset") or "this-month", today)
        if cleaned.get("start") or cleaned.get("end"):
            start = cleaned.get("start") or start
            end = cleaned.get("end") or today
        if end < start:
            raise forms.ValidationError("The period must end on or after its first day.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def period(self) -> tuple[date, date]:
        if self.is_valid():
            return self.cleaned_data["start"], self.cleaned_data["end"]
        return preset_period("this-month", timezone.localdate())


class CallsFilterForm(PeriodForm):
    model = forms.ChoiceField(required=False)
    agent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    user = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *AICall.Status.choices])

    def __init__(self, *args, models: list[str], agents: list, users: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any model")] + [(m, m) for m in sorted(models)]
        self.fields["agent"].choices = [("", "Any agent")] + [(a.pk, a.name) for a in agents]
        self.fields["user"].choices = [("", "Anyone")] + [(u.pk, str(u)) for u in users]

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "model": data.get("model") or "",
            "agent_id": data.get("agent"),
            "user_id": data.get("user"),
            "status": data.get("status") or "",
        }


class StatementForm(forms.Form):
    month = forms.DateField(input_formats=["%Y-%m"], required=False)

    def month_value(self) -> date:
        if self.is_valid() and self.cleaned_data.get("month"):
            return month_start(self.cleaned_data["month"])
        return month_start(timezone.localdate())
