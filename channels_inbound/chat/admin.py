from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline

from .models import ChatSession, ChatTopic, ChatWidget
from .views import widget_script_url


class ChatTopicInline(ScopedTabularInline):
    model = ChatTopic
    extra = 1
    fields = ["position", "label", "label_en", "skills"]


@admin.register(ChatWidget)
class ChatWidgetAdmin(ScopedModelAdmin):
    list_display = ["__str__", "endpoint", "key_display", "transcripts_enabled"]
    search_fields = ["title", "endpoint__name", "endpoint__address"]
    inlines = [ChatTopicInline]
    readonly_fields = ["snippet"]

    @admin.display(description=_("widget key"))
    def key_display(self, obj: ChatWidget) -> str:
        return obj.key

    @admin.display(description=_("embedding snippet"))
    def snippet(self, obj: ChatWidget) -> str:
        if not obj.pk:
            return "-"
        return format_html(
            '<code>&lt;script src="{}" data-widget="{}" data-lang="fr" defer&gt;&lt;/script&gt;'
            "</code>",
            widget_script_url(None),
            obj.key,
        )


@admin.register(ChatSession)
class ChatSessionAdmin(ScopedModelAdmin):
    list_display = ["created_at", "widget", "display_name", "topic_label", "state", "interaction"]
    list_filter = ["state", "widget"]
    search_fields = ["display_name", "visitor_id"]
    raw_id_fields = ["interaction", "topic", "flow_version"]
    readonly_fields = [f.name for f in ChatSession._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
