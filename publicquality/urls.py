from django.urls import path

from . import views

app_name = "publicquality"

urlpatterns = [
    path("suivi/<str:token>/", views.follow_page, name="follow"),
    path("qualite/<slug:org_slug>/", views.quality_page, name="quality"),
    path("qualite/<slug:org_slug>/donnees.csv", views.quality_csv, name="quality-csv"),
    path("qualite/<slug:org_slug>/donnees.json", views.quality_json, name="quality-json"),
]
