"""``GET /metrics``: Prometheus' text format, for the operators' scraper only.

Refused unless ``METRICS_TOKEN`` is set (404: the endpoint is off), refused to callers outside
``METRICS_ALLOWED_NETWORKS`` (404: nothing to see here from outside; the client address is
read as for ``/healthz``, through ``TRUSTED_PROXIES`` only), and refused without
``Authorization: Bearer <METRICS_TOKEN>`` (403). A signed-in user, whatever their role, gets
no more than anybody: these are the installation's figures, every organisation's.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kernel import instruments
from kernel.clientip import request_from_networks

from .collector import ScrapeTimeCollector


def _refused(status: int, text: str) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 403:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _bearer(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def allowed(request: HttpRequest) -> int:
    """200 when the caller may read the metrics, else the status to refuse with."""
    token = settings.METRICS_TOKEN
    if not token or not request_from_networks(request, settings.METRICS_ALLOWED_NETWORKS):
        return 404
    if not hmac.compare_digest(_bearer(request).encode(), token.encode()):
        return 403
    return 200


def exposition() -> bytes:
    """Every process's metrics (multi-process mode: the files of ``PROMETHEUS_MULTIPROC_DIR``;
    otherwise this process's registry), then the scrape-time figures."""
    path = settings.PROMETHEUS_MULTIPROC_DIR
    if path:
        from prometheus_client import multiprocess

        instruments.prune_dead_processes(path)
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes, path=path)
        text = generate_latest(processes)
    else:
        text = generate_latest(REGISTRY)
    scrape_time = CollectorRegistry(auto_describe=False)
    scrape_time.register(ScrapeTimeCollector())
    return text + generate_latest(scrape_time)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    status = allowed(request)
    if status == 404:
        return _refused(404, "Not Found")
    if status == 403:
        return _refused(403, "a valid bearer token is required")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
