from django.contrib import admin

from .models import Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "address", "queue", "active"]
    list_filter = ["channel", "active"]
    search_fields = ["name", "address"]
