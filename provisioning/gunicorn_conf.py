"""gunicorn settings for scimgate:

    gunicorn -c provisioning/gunicorn_conf.py

Limits are set so that every request the application accepts reaches it, and is
answered by it (a SCIM Error body, never gunicorn's HTML page):

- the request line: a filter may be 4,096 characters (``provisioning.scim.filters``);
  percent-encoded, one character can take 12 bytes (4 UTF-8 bytes as ``%XX`` each), so
  a list request with the longest filter and other parameters needs about 50 KB.
  gunicorn caps the setting at 8,190 bytes (0 would mean unbounded); the cap is raised
  here to ``LIMIT_REQUEST_LINE``, a bound still.
- header fields: bearer tokens and federated JWTs, cookies, the proxy's
  ``X-Forwarded-*``: 16 KiB each, 128 of them.
- bodies are not limited here: the application reads at most
  ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (chunked ones too, ``provisioning/wsgi.py``) and
  answers 413 beyond it.

Environment: ``GUNICORN_BIND`` (``0.0.0.0:8000``), ``WEB_CONCURRENCY`` (workers, 4),
``GUNICORN_THREADS`` (1: sync workers), ``GUNICORN_TIMEOUT`` (seconds, 60). Anything
else can be given on the command line or in ``GUNICORN_CMD_ARGS``, which win over this
file. ``X-Forwarded-Proto`` is believed from ``SCIMGATE_TRUSTED_PROXIES``, the proxies
whose ``X-Forwarded-For`` the application believes (default: this host).
"""

import gc
import os

from gunicorn.http import message

wsgi_app = "provisioning.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")

workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# More than one thread makes gunicorn use its gthread worker instead of sync.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A worker silent for this long is killed and replaced. SCIM requests are bounded far
# below it; a database that cannot be reached fails within its connect timeout (503).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# gthread only: idle connections from the proxy are kept this long.
keepalive = 5

LIMIT_REQUEST_LINE = 64 * 1024
# gunicorn clamps limit_request_line to this module constant; raise it to ours.
message.MAX_REQUEST_LINE = max(message.MAX_REQUEST_LINE, LIMIT_REQUEST_LINE)
limit_request_line = LIMIT_REQUEST_LINE
limit_request_fields = 128
limit_request_field_size = 16 * 1024

# X-Forwarded-Proto (wsgi.url_scheme) from the same proxies as X-Forwarded-For.
forwarded_allow_ips = (
    os.environ.get("SCIMGATE_TRUSTED_PROXIES") or os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
)

# No access log: the application's request log records every SCIM request, with secrets
# redacted (an access log line would hold query strings as sent).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def post_worker_init(worker) -> None:
    """Once a worker has loaded the application: import every view (the URLconf is
    otherwise read by the first request), then move everything alive to the collector's
    permanent generation (``gc.freeze``).

    Modules, classes, functions and settings live as long as the worker, and about 150,000
    of them are tracked by the cyclic garbage collector. Each full collection walked them
    all, about 100 ms a time, some twenty times a minute under SCIM load: 120 µs of every
    request on average, measured in process over the benchmark's IdP mix, and 14 µs once
    they are frozen. Objects created later are collected as before. A frozen object that
    later ends up in an unreachable cycle would not be freed; what is alive at this point
    is the worker's code and configuration, kept for its life anyway.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module
    gc.collect()
    gc.freeze()
