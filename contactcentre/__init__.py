"""Project package: settings, ASGI entry point, Celery app, root URLs and shared API helpers."""

from .celery import app as celery_app

__all__ = ["celery_app"]
