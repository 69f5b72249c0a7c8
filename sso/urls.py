from django.urls import path

from . import views

urlpatterns = [
    path("<slug:org_slug>/login/", views.sso_login, name="sso-login"),
    path("<slug:org_slug>/callback/", views.sso_callback, name="sso-callback"),
]
