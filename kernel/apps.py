from django.apps import AppConfig
from django.core.checks import register
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class KernelConfig(AppConfig):
    name = "kernel"
    verbose_name = _("Shared kernel")

    def ready(self) -> None:
        from .audit import check_access_recorder
        from .roles import ensure_roles

        # After the last app's permissions exist (they are created on post_migrate too).
        post_migrate.connect(ensure_roles, dispatch_uid="contactcentre.ensure_roles")
        # The privacy app registers the access recorder in its own ready() (kernel/audit.py).
        register(check_access_recorder)
