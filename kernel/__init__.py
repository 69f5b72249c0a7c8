"""The shared kernel: what every app builds on and nothing of theirs.

Events and their catalogue, the PostgreSQL helpers, the base WebSocket consumer, roles and
permissions, the error family and its DRF mapping, the coalesced trigger, client addresses,
structured logs, the channel layer and small HTTP helpers. It sits at the bottom of the import
graph (``.importlinter``): it imports no app of the project, and the project package
(``contactcentre``: settings, URLs, ASGI, Celery app, demo command) sits on top.
"""
