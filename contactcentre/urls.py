from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import auth_views as console_auth
from metrics import views as metrics_views
from sso.views import SingleSignOnLogoutView

from . import views

admin.site.site_header = "Centre de contacts"
admin.site.site_title = "Centre de contacts"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("metrics", metrics_views.metrics, name="metrics"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("accounts/logout/", SingleSignOnLogoutView.as_view(), name="logout"),
    path("accounts/oidc/", include("sso.urls")),
    path("accounts/otp/", console_auth.otp_verify, name="otp-verify"),
    path("accounts/otp/enrol/", console_auth.otp_enrol, name="otp-enrol"),
    path("console/", include("console.urls")),
    path("supervision/", include("supervision.urls")),
    path("privacy/", include("privacy.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("contactcentre.api_urls")),
    path("webhooks/", include("channels_inbound.urls")),
    path("chat/", include("channels_inbound.chat.urls")),
    path("", include("publicquality.urls")),
    path("", include("surveys.urls")),
]
