"""The admin site: every admin view runs in the scope of the groups the user administers.

Superusers run with scopes disabled (they manage every tenant); a tenant admin's views
run inside `group_scope(*their groups)`, so a tenant-owned query can only ever see those
groups' rows, whatever an admin class forgets; anyone else sees none. The admin classes
narrow querysets, choices and filters by hand too (ontology.tenant_admin).
"""

from functools import update_wrapper

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import path

from ontology.scoping import group_scope, scopes_disabled


def admin_scope(request):
    """Scopes disabled for a superuser, else the groups the user administers (maybe none)."""
    from ontology.models import Group
    from ontology.tenant_admin import admin_groups_of

    ids = admin_groups_of(request)
    if ids is None:
        return scopes_disabled()
    return group_scope(*Group.objects.filter(pk__in=ids))


class ParleyAdminSite(admin.AdminSite):
    site_header = "Parley administration"
    site_title = "Parley admin"
    index_title = "Organisation settings"

    def admin_view(self, view, cacheable=False):
        wrapped = super().admin_view(view, cacheable)

        def scoped_view(request, *args, **kwargs):
            with admin_scope(request):
                return wrapped(request, *args, **kwargs)

        return update_wrapper(scoped_view, wrapped)

    def get_urls(self):
        urls = super().get_urls()
        for index, url in enumerate(urls):
            if getattr(url, "name", None) == "view_on_site":
                view = self.admin_view(self.view_on_site)
                urls[index] = path(str(url.pattern), view, name="view_on_site")
        return urls

    def view_on_site(self, request, content_type_id, object_id):
        """Django's "view on site" redirect, for rows the user administers only.

        Unscoped, it would tell another tenant's staff which ids exist; for anyone but
        a superuser, a row outside their groups and a missing row get the same 404.
        """
        from django.contrib.contenttypes.views import shortcut

        if not self._may_view(request, content_type_id, object_id):
            raise Http404("No such object.")
        return shortcut(request, content_type_id, object_id)

    def _may_view(self, request, content_type_id, object_id) -> bool:
        from django.contrib.contenttypes.models import ContentType

        from ontology.tenant_admin import admin_groups_of

        if admin_groups_of(request) is None:
            return True
        try:
            model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
        except (ContentType.DoesNotExist, ValueError):
            return False
        model_admin = self._registry.get(model)
        if model_admin is None:
            return False
        try:
            obj = model_admin.get_queryset(request).filter(pk=object_id).first()
        except (ValidationError, ValueError):
            return False
        return obj is not None and model_admin.has_view_permission(request, obj)

    def login(self, request, extra_context=None):
        # Imported here: this module loads while the app registry is still being built.
        from billing.ratelimits import check_limits

        refusal = check_limits(request, "login") if request.method == "POST" else None
        return refusal or super().login(request, extra_context)


class ParleyAdminConfig(AdminConfig):
    default_site = "config.admin_site.ParleyAdminSite"
