# The contact centre image. One image, three roles (see docker-compose.yml and
# docs/operations.md): the ASGI web server (default CMD: HTTP and WebSockets through uvicorn),
# the Celery worker and Celery beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=contactcentre.settings \
    PYTHONPATH=/app \
    DATA_DIR=/data \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the runtime lock changes. The
# lock pins every package (pyproject.toml's dependencies and theirs) with its hashes, so the
# image gets the versions the tests ran with (`python3 dev.py lock` writes it).
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --require-hashes -r /tmp/runtime.lock \
    && rm /tmp/runtime.lock

# Then the project itself (the packages of [tool.setuptools.packages.find], manage.py,
# templates/, static/, locale/ with its compiled .mo files; .dockerignore keeps the rest out).
# settings.BASE_DIR is the directory above contactcentre/settings.py and templates/, static/ and
# locale/ are found relative to it, so the code runs from this source tree (PYTHONPATH=/app
# puts it before the copy that `pip install .` places in site-packages).
COPY . .
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q /app

# Static files are collected at build time and served by WhiteNoise (hashed names, compressed).
# The settings need no real secret or database for this: the values below exist only here.
RUN DJANGO_SECRET_KEY=build-time-only-not-a-secret DATA_DIR=/tmp/build-data \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-data \
    && mkdir -p /data/media \
    && chown -R app:app /data

# app (uid 1000): the code is read-only to it; only /data (uploads, DATA_DIR) is writable.
USER 1000:1000

EXPOSE 8000

# /healthz is exempt from the HTTPS redirect. It must be asked for with a Host that
# DJANGO_ALLOWED_HOSTS allows: the first concrete entry is used (a leading dot is dropped).
# It answers 503 when the database, Redis or every Celery worker is unreachable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = [x.strip().lstrip('.') for x in os.environ.get('DJANGO_ALLOWED_HOSTS', 'localhost').split(',') if x.strip() not in ('', '*')]; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': (h or ['localhost'])[0]}), timeout=8)"]

# TLS is terminated by the reverse proxy in front. uvicorn keeps the TCP peer's address
# (--no-proxy-headers): the application reads X-Forwarded-For from TRUSTED_PROXIES only, and
# X-Forwarded-Proto through SECURE_PROXY_SSL_HEADER. Publish port 8000 only to that proxy.
# Django's ASGI handler has no lifespan support, hence --lifespan off (as `manage.py serve`).
# uvicorn reads WEB_CONCURRENCY for its number of worker processes (default 1), and
# UVICORN_WS_PER_MESSAGE_DEFLATE: WebSocket compression is off, since console and chat frames
# are small JSON and each compressed socket keeps about 40 KB of zlib state (docs/benchmarks.md).
ENV UVICORN_WS_PER_MESSAGE_DEFLATE=false
CMD ["uvicorn", "contactcentre.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--no-proxy-headers", "--lifespan", "off"]
