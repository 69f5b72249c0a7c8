"""Provider webhooks, mounted under /webhooks/ (each channel adds its own routes)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
