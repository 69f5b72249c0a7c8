"""The Celery queues, named once (the app in ``contactcentre/celery.py`` routes tasks to them;
the metrics collector reports their lengths)."""

# Queues by kind of work, so one kind can never starve another (docs/operations.md, "Celery
# workers and queues", says how many processes each gets):
# - ingest: turning received deliveries (SMS rows, IMAP mailboxes) into interactions;
# - route: routing passes, offer expiry, wrap-up ends, lost consoles (the live loop);
# - outbound: calls to providers (call bridging, SMS and e-mail sending, provider media): a
#   slow or stalled provider holds these processes only;
# - reports: heavy reads (supervision reports and exports, history rebuilds);
# - the default queue (``celery``): the periodic sweeps and housekeeping.
DEFAULT_QUEUE = "celery"
INGEST_QUEUE = "ingest"
ROUTE_QUEUE = "route"
OUTBOUND_QUEUE = "outbound"
REPORTS_QUEUE = "reports"
QUEUES = (DEFAULT_QUEUE, INGEST_QUEUE, ROUTE_QUEUE, OUTBOUND_QUEUE, REPORTS_QUEUE)
