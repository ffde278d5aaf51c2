from django.contrib import admin
from django.template.response import TemplateResponse

from .models import ApiKey
from .services import apikey_create, apikey_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "owner", "created_at", "last_used_at", "active", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "lookup", "owner__username"]
    fields = ["owner", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["owner"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            # The key does not exist yet: only its owner and name can be chosen.
            return ["owner", "name"]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["owner", *self.readonly_fields]
        return []

    @admin.display(description="Active", boolean=True)
    def active(self, api_key):
        return api_key.is_active

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return

        api_key, full_key = apikey_create(owner=obj.owner, name=obj.name)
        obj.pk = api_key.pk
        obj.__dict__.update(api_key.__dict__)
        # response_add shows the key in the response to this request, so the key
        # never travels in a redirect, a message cookie or the session.
        request.new_api_key = full_key

    def response_add(self, request, obj, post_url_continue=None):
        full_key = getattr(request, "new_api_key", None)
        if full_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "full_key": full_key,
        }
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        active = list(queryset.filter(revoked_at__isnull=True))
        for api_key in active:
            apikey_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(active)} key(s).")
