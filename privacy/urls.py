"""The data-protection officer's pages (docs/quality-and-privacy.md, "Data subject rights")."""

from django.urls import path

from . import views

app_name = "privacy"

urlpatterns = [
    path("", views.search, name="search"),
    path("citizens/<int:contact_id>/", views.citizen, name="citizen"),
    path("citizens/<int:contact_id>/export/", views.export, name="export"),
    path("citizens/<int:contact_id>/rectify/", views.rectify, name="rectify"),
    path("citizens/<int:contact_id>/erase/", views.erase, name="erase"),
    path("retention/", views.retention, name="retention"),
    path("audit/", views.audit, name="audit"),
]
