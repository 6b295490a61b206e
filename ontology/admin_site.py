"""The admin site: every admin view runs with tenant scopes disabled.

The admin is one of the few places allowed to use the escape hatch, because
it filters by the signed-in user's groups itself (ontology.tenant_admin).
"""

from functools import update_wrapper

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from ontology.scoping import scopes_disabled


class ParleyAdminSite(admin.AdminSite):
    site_header = "Parley administration"
    site_title = "Parley admin"
    index_title = "Organisation settings"

    def admin_view(self, view, cacheable=False):
        wrapped = super().admin_view(view, cacheable)

        def scoped_view(request, *args, **kwargs):
            with scopes_disabled():
                return wrapped(request, *args, **kwargs)

        return update_wrapper(scoped_view, wrapped)

    def login(self, request, extra_context=None):
        # Imported here: this module loads while the app registry is still being built.
        from billing.ratelimits import check_limits

        refusal = check_limits(request, "login") if request.method == "POST" else None
        return refusal or super().login(request, extra_context)


class ParleyAdminConfig(AdminConfig):
    default_site = "ontology.admin_site.ParleyAdminSite"
