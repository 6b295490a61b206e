import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.http import Http404

from ontology import services, tokens
from ontology.models import ApiToken, Connection, Event, Group, Membership, Thing, User
from ontology.properties import validate_properties
from ontology.tenant_admin import (
    ReadOnlyTenantAdmin,
    TenantAdmin,
    admin_groups_of,
    apply_service_errors,
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Platform staff only: tenant admins have no Django permissions on users."""

    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Profile", {"fields": ("display_name", "preferences")}),
    )


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "type", "plan", "created_at")
    list_filter = ("type", "plan")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = admin_groups_of(request)
        return queryset if ids is None else queryset.filter(pk__in=ids)

    def _allowed(self, request, obj=None) -> bool:
        if not (request.user.is_active and request.user.is_staff):
            return False
        ids = admin_groups_of(request)
        return ids is None or (bool(ids) and (obj is None or obj.pk in ids))

    def has_module_permission(self, request):
        return self._allowed(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        if admin_groups_of(request) is None:
            return ("created_at",)
        return ("slug", "type", "plan", "created_at")

    def get_prepopulated_fields(self, request, obj=None):
        # A read-only slug is not in the form, and prepopulating it would be a KeyError (500).
        return self.prepopulated_fields if admin_groups_of(request) is None else {}

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such group.")
        return obj

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            original = Group.objects.get(pk=obj.pk)
            services.group_update(group=original, actor=request.user, **fields)
        else:
            created = services.group_create(
                name=obj.name,
                slug=obj.slug,
                type=obj.type,
                plan=obj.plan,
                properties=obj.properties,
                actor=request.user,
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.group_delete(group=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            services.group_delete(group=group, actor=request.user)


class MembershipForm(forms.ModelForm):
    actor = None  # set per request by MembershipAdmin.get_form

    class Meta:
        model = Membership
        fields = ("group", "user", "role")

    def clean(self):
        cleaned = super().clean()
        try:
            if self.instance.pk:
                if cleaned.get("role") and cleaned["role"] != self.instance.role:
                    services.ensure_may_grant(
                        group=self.instance.group,
                        actor=self.actor,
                        roles=(self.instance.role, cleaned["role"]),
                    )
                    services.ensure_owner_remains(self.instance, field="role")
            elif cleaned.get("group") and cleaned.get("user"):
                services.ensure_may_grant(
                    group=cleaned["group"], actor=self.actor, roles=(cleaned.get("role"),)
                )
                services.ensure_not_member(group=cleaned["group"], user=cleaned["user"])
        except ValidationError as error:
            apply_service_errors(self, error)
        return cleaned


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    form = MembershipForm

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.actor = request.user
        return form

    list_display = ("user", "group", "role", "created_at")
    list_filter = ("role", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "user__email", "user__display_name")
    list_select_related = ("user", "group")
    autocomplete_fields = ("group",)

    def get_readonly_fields(self, request, obj=None):
        return ("group", "user") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            original = Membership.objects.get(pk=obj.pk)
            services.membership_update(
                membership=original, role=form.cleaned_data["role"], actor=request.user
            )
        else:
            created = services.membership_create(
                group=obj.group, user=obj.user, role=obj.role, actor=request.user
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.membership_delete(membership=obj, actor=request.user)


class ThingForm(forms.ModelForm):
    type = forms.ChoiceField(
        choices=[(value, label) for value, label in Thing.Type.choices if value != Thing.Type.AGENT]
    )

    class Meta:
        model = Thing
        fields = ("group", "type", "name", "status", "properties")

    def clean(self):
        cleaned = super().clean()
        thing_type = self.instance.type if self.instance.pk else cleaned.get("type")
        if thing_type and "properties" in cleaned:
            try:
                cleaned["properties"] = validate_properties(thing_type, cleaned["properties"])
            except ValidationError as error:
                messages = [f"{key}: {' '.join(msgs)}" for key, msgs in error.message_dict.items()]
                self.add_error("properties", messages)
        return cleaned


@admin.register(Thing)
class ThingAdmin(TenantAdmin):
    """Things other than agents (agents have their own admin)."""

    form = ThingForm
    list_display = ("name", "type", "group", "status", "updated_at")
    list_filter = ("type", "status", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name",)
    list_select_related = ("group",)
    autocomplete_fields = ("group",)

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(type=Thing.Type.AGENT)

    def get_readonly_fields(self, request, obj=None):
        return ("group", "type", "created_at", "updated_at") if obj else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.thing_update(
                thing=Thing.objects.get(pk=obj.pk),
                actor=request.user,
                name=data["name"],
                status=data["status"],
                properties=data["properties"],
            )
        else:
            created = services.thing_create(
                group=data["group"],
                type=data["type"],
                name=data["name"],
                status=data["status"],
                properties=data["properties"],
                actor=request.user,
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.thing_delete(thing=obj, actor=request.user)


@admin.register(Connection)
class ConnectionAdmin(ReadOnlyTenantAdmin):
    list_display = ("__str__", "type", "group", "created_at")
    list_filter = ("type", ("group", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("group", "from_thing", "from_user", "to_thing", "to_user")


@admin.register(Event)
class EventAdmin(ReadOnlyTenantAdmin):
    list_display = ("timestamp", "type", "actor", "target_type", "target_label", "group")
    list_filter = ("type", "target_type", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("type", "target_label")
    date_hierarchy = "timestamp"
    list_select_related = ("actor", "group")
    readonly_fields = ("pretty_metadata",)
    exclude = ("metadata",)

    @admin.display(description="metadata")
    def pretty_metadata(self, obj):
        return json.dumps(obj.metadata, indent=2, ensure_ascii=False)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyTenantAdmin):
    """Tokens are made on the "API tokens" page, where their secret is shown once; here they
    are seen and revoked (their hash never shows)."""

    list_display = ("name", "user", "group", "prefix", "scopes", "created_at", "expires_at")
    list_display += ("last_used_at", "revoked_at")
    list_filter = (("group", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user", "group")
    exclude = ("digest",)
    actions = ("revoke",)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at=None).select_related("group"):
            tokens.token_revoke(token=token, actor=request.user)
            revoked += 1
        messages.info(request, f"{revoked} token(s) revoked.")
