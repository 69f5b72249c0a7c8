from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class KernelConfig(AppConfig):
    name = "kernel"
    verbose_name = _("Shared kernel")

    def ready(self) -> None:
        from .roles import ensure_roles

        # After the last app's permissions exist (they are created on post_migrate too).
        post_migrate.connect(ensure_roles, dispatch_uid="contactcentre.ensure_roles")
