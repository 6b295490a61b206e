from django.contrib import admin

from chat.models import AIThread, Message
from ontology.tenant_admin import ReadOnlyTenantAdmin


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "status", "content", "error_code")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        # Shown only inside a thread page, which has already checked the user's groups.
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AIThread)
class AIThreadAdmin(ReadOnlyTenantAdmin):
    """Conversations, for a group's admins to look at (handed-off threads first of all)."""

    list_display = ("__str__", "group", "agent", "user", "status", "last_activity_at")
    list_filter = ("status", ("group", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "messages__content")
    list_select_related = ("group", "agent", "user")
    inlines = [MessageInline]
