from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = _("Personal data")

    def ready(self) -> None:
        from kernel.audit import set_access_recorder, set_actor_scope

        from .audit import record_access
        from .middleware import acting_as
        from .triggers import install_after_migrate, on_connection_created

        # Every access to personal data (kernel.audit.log_access) is written to the access log.
        set_access_recorder(record_access)
        # Actions that reach the app without a request (the console socket's) name their user
        # to the configuration audit triggers the way the middleware does for a request.
        set_actor_scope(acting_as)

        # The embedded SQLite default: the audit triggers' functions on every connection, the
        # triggers themselves after every migrate (docs/quality-and-privacy.md, "Audit log").
        connection_created.connect(on_connection_created, dispatch_uid="privacy.sqlite_functions")
        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="privacy.triggers")
