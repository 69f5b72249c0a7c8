"""Web chat pages, mounted under /chat/."""

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("widget/<str:key>/config.json", views.widget_config, name="chat-widget-config"),
    path("demo/", views.demo, name="chat-demo"),
    path("transcript/<str:token>/", views.transcript_confirm, name="chat-transcript-confirm"),
]
