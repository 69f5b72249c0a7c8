from django.contrib import admin

from organisations.admin_base import ScopedModelAdmin

from .models import Endpoint


@admin.register(Endpoint)
class EndpointAdmin(ScopedModelAdmin):
    list_display = ["name", "channel", "address", "queue", "active", "acknowledge"]
    list_filter = ["channel", "active"]
    search_fields = ["name", "address"]
