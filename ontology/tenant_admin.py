"""The base of every admin for tenant-owned rows.

Superusers see everything. A staff user who is owner or admin of some groups
sees and edits only those groups' rows: querysets, foreign-key choices,
autocomplete and list filters are all narrowed to them, and a URL naming
another group's row is a 404, exactly like a row that does not exist.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest

from ontology.models import Group, TenantModel
from ontology.selectors import admin_group_ids

_CACHE_ATTR = "_parley_admin_group_ids"


def admin_groups_of(request: HttpRequest) -> set[int] | None:
    """Ids of the groups the signed-in user administers; None means all (superuser)."""
    user = request.user
    if user.is_active and user.is_superuser:
        return None
    if not hasattr(request, _CACHE_ATTR):
        setattr(request, _CACHE_ATTR, admin_group_ids(user=user) if user.is_staff else set())
    return getattr(request, _CACHE_ATTR)


def narrow_foreign_key(db_field, request: HttpRequest, kwargs: dict) -> None:
    """Limit a foreign-key form field to rows of the user's administered groups."""
    ids = admin_groups_of(request)
    if ids is None:
        return
    related = db_field.remote_field.model
    if related is Group:
        kwargs["queryset"] = Group.objects.filter(pk__in=ids)
    elif issubclass(related, TenantModel):
        kwargs["queryset"] = related.objects.filter(group_id__in=ids)
    elif related is get_user_model() or db_field.remote_field.model == settings.AUTH_USER_MODEL:
        kwargs["queryset"] = (
            get_user_model().objects.filter(memberships__group_id__in=ids).distinct()
        )


def apply_service_errors(form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form, on the named fields where they exist."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)


class TenantAdmin(admin.ModelAdmin):
    list_per_page = 50

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = admin_groups_of(request)
        return queryset if ids is None else queryset.filter(group_id__in=ids)

    def _allowed(self, request, obj=None) -> bool:
        if not (request.user.is_active and request.user.is_staff):
            return False
        ids = admin_groups_of(request)
        if ids is None:
            return True
        return bool(ids) and (obj is None or obj.group_id in ids)

    def has_module_permission(self, request):
        return self._allowed(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_add_permission(self, request):
        return self._allowed(request)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def get_object(self, request, object_id, from_field=None):
        # Missing and forbidden look the same; Django's default is a redirect with a message.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        narrow_foreign_key(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def delete_queryset(self, request, queryset):
        # Bulk deletes go through delete_model one by one, so each writes its Event.
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        ids = admin_groups_of(request)
        if ids is not None and len(ids) == 1:
            initial.setdefault("group", next(iter(ids)))
        return initial


class ReadOnlyTenantAdmin(TenantAdmin):
    """For rows written only by services (audit events, connections): look, never touch."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
