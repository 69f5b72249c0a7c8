from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SupervisionConfig(AppConfig):
    name = "supervision"
    verbose_name = _("Supervision")

    def ready(self) -> None:
        from interactions.signals import interaction_status_changed
        from routing.signals import claims_written, interaction_requeued

        from . import receivers, stats

        interaction_status_changed.connect(
            stats.on_status_changed, dispatch_uid="supervision.stats"
        )
        claims_written.connect(stats.on_claims, dispatch_uid="supervision.claims")
        interaction_requeued.connect(stats.on_requeued, dispatch_uid="supervision.requeued")
        claims_written.connect(
            receivers.on_claims_published, dispatch_uid="supervision.claims_published"
        )
