"""scimgate settings, read from environment variables with safe defaults.

Embedded default: SQLite in var/, tasks in-process, DEBUG off unless asked for.
Production: set SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, CELERY_BROKER_URL and
SCIMGATE_SECURE=true (HTTPS-only cookies, HSTS, SSL redirect).
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECURE = env.bool("SCIMGATE_SECURE", default=False)

_DEV_KEY = "insecure-development-key-do-not-use-in-production-0123456789abcdef"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_KEY)
if SECURE and SECRET_KEY == _DEV_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when SCIMGATE_SECURE is on")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # allauth's WebAuthn pages use its filters.
    "django.contrib.humanize",
    # Before WhiteNoise's runserver: its own extends it to read chunked request bodies.
    "provisioning.scim",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_htmx",
    "axes",
    "template_partials",
    # Operator sign-in: local passwords with MFA (TOTP, recovery codes, WebAuthn) and
    # OpenID Connect single sign-on (console/signin).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "provisioning.access",
    "provisioning.directory",
    "auditlog",
    "provisioning.audit",
    "provisioning.events",
    "provisioning.oversight",
    "console",
    # The management API (console/api) and its OpenAPI schema; the docs page's assets are
    # served from our static files (drf-spectacular-sidecar), as the CSP requires.
    "console.api",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]
# The benchmark app (the loadsynthetic and runbench commands of make bench; no models) is
# installed only when benchmarking: make bench and the test suite (tests/settings.py) set it.
SCIMGATE_BENCHMARK = env.bool("SCIMGATE_BENCHMARK", default=False)
if SCIMGATE_BENCHMARK:
    INSTALLED_APPS.append("provisioning.benchmark")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Correlation id, change-set scope and SCIM request log (provisioning/audit/middleware.py).
    "provisioning.audit.middleware.AuditMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Idle and absolute session timeouts, sessions of operators who lost their role,
    # MFA enrolment where it is required (console/signin/middleware.py).
    "console.signin.middleware.OperatorSessionMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "provisioning.urls"
WSGI_APPLICATION = "provisioning.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'scimgate.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the request log and concurrent requests share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            # IMMEDIATE takes the write lock at BEGIN, so concurrent writers wait
            # for each other instead of failing on a read-to-write upgrade.
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # A health check is one more round trip (SELECT 1) at the start of every request.
    # Without it, a connection broken by a database restart fails one request per
    # worker (an IdP retries it) and is then replaced.
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=False))
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A database host that does not answer fails the request (SCIM: 503 with Retry-After)
        # within seconds, well inside gunicorn's worker timeout.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
        )
        # Parameters bound by the server (extended protocol) instead of quoted into the SQL
        # text by psycopg, and a statement run five times on a connection prepared: the
        # repeated queries of every request (the token lookup, a user by id, the write
        # path's inserts) are parsed and planned once per connection instead of once per
        # request. DATABASE_PREPARED_STATEMENTS=false for a connection pooler that cannot
        # carry prepared statements (PgBouncer in transaction mode before 1.21, or without
        # max_prepared_statements).
        DATABASES["default"]["OPTIONS"].setdefault(
            "server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
        )
        DATABASES["default"]["OPTIONS"].setdefault(
            "prepare_threshold", 5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if SECURE
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Console operators: django-axes throttles password guessing. AxesStandaloneBackend
# first (it refuses locked-out credentials), then the ordinary model backend.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # The model backend, refusing local passwords when they are turned off (except for
    # the break-glass accounts); see SCIMGATE_LOCAL_PASSWORDS below.
    "console.signin.backends.OperatorPasswordBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Lock the username from that address: one attacker cannot lock an operator out everywhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client's address behind SCIMGATE_TRUSTED_PROXIES, as everywhere else: five wrong
# passwords from one operator behind the proxy lock out that operator's address only.
AXES_CLIENT_IP_CALLABLE = "provisioning.access.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Security headers. The secure-transport settings follow SCIMGATE_SECURE so the
# embedded server works over plain HTTP on 127.0.0.1.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# A console session ends with the browser and after SESSION_COOKIE_AGE at the latest.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
if SECURE:
    # __Host- cookies are only accepted over HTTPS, for this host, on path /.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_SSL_REDIRECT = SECURE and env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp 4), on every response: the console, the admin,
# the login page and SCIM's JSON alike. Scripts and styles come from the site only:
# no inline <script>, <style>, style="" or event-handler attribute, and no eval (htmx's
# hx-on and inline indicator styles are off; console/console.js holds the console's
# own behaviour). Django's admin needs nothing more. Pages may not be framed, forms
# post only to the site, and nothing else is fetched from anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "manifest-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
        "upgrade-insecure-requests": SECURE,
    },
}

# Request bodies: SCIM requests are JSON; Bulk has its own cap below.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)

REST_FRAMEWORK = {
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    # Read only when the OpenAPI schema is generated (the management API's, /api/schema/).
    "DEFAULT_SCHEMA_CLASS": "console.api.schema.ApiAutoSchema",
}

# The management API (/api/v1/, console/api): its classes are set on its base view, not
# here, so the SCIM views keep theirs. Requests per token (per operator for a session)
# per minute; idempotency keys are remembered this many hours.
SCIMGATE_API_RATE_LIMIT = env.str("SCIMGATE_API_RATE_LIMIT", default="600/min")
SCIMGATE_API_IDEMPOTENCY_HOURS = env.int("SCIMGATE_API_IDEMPOTENCY_HOURS", default=24)
SPECTACULAR_SETTINGS = {
    "TITLE": "scimgate management API",
    "DESCRIPTION": "Automation for console operators: the console's services over REST. "
    "Authenticate with an operator API token (Authorization: Bearer scgop_...).",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["console.api.schema.only_management_api"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "DEFAULT_GENERATOR_CLASS": "drf_spectacular.generators.SchemaGenerator",
    # Choice sets whose field names ("kind", "action") other components use too.
    "ENUM_NAME_OVERRIDES": {
        "PolicyRuleKindEnum": "provisioning.oversight.models.PolicyRule.Kind",
        "PolicyRuleActionEnum": "provisioning.oversight.models.RuleAction",
        "ScimTokenStateEnum": ["active", "expired", "revoked"],
        "EventStreamStateEnum": "provisioning.events.models.EventStream.State",
        # The audit log's record actions and the resource types keep the names they had.
        "ActionEnum": ["create", "update", "delete", "access"],
        "TypeEnum": ["User", "Group"],
    },
}

# SCIM protocol limits, advertised in ServiceProviderConfig.
SCIM = {
    # A page of 200 resources of at most SCIM_MAX_DOCUMENT_BYTES is read within
    # SCIM_LIST_TIMEOUT_MS; a larger count is lowered to it (RFC 7644 §3.4.2.4).
    "MAX_RESULTS": env.int("SCIM_MAX_RESULTS", default=200),
    "DEFAULT_COUNT": env.int("SCIM_DEFAULT_COUNT", default=100),
    # Each operation is a write of its own (transaction, audit rows): 100 take about a
    # second on a busy machine, and fit in one request's work (SCIM_MAX_REQUEST_WORK).
    "BULK_MAX_OPERATIONS": env.int("SCIM_BULK_MAX_OPERATIONS", default=100),
    "BULK_MAX_PAYLOAD_SIZE": env.int("SCIM_BULK_MAX_PAYLOAD_SIZE", default=1024 * 1024),
    "DOCUMENTATION_URI": env.str("SCIM_DOCUMENTATION_URI", default=""),
    # Seconds a cursor (RFC 9865) stays valid after the page that issued it; an older one
    # is refused with 400 expiredCursor. Advertised as pagination.cursorTimeout.
    "CURSOR_TIMEOUT": env.int("SCIM_CURSOR_TIMEOUT", default=3600),
}
# What one request may ask and one resource may hold (provisioning/scim/limits.py): the
# values of a multi-valued attribute (emails, phoneNumbers, roles, ...) of one resource;
# group members named by one request (a group itself may hold any number); PATCH
# operations of one request; the size of one stored resource as JSON (group members not
# counted). A Bulk request counts as one request.
SCIM_MAX_MULTI_VALUES = env.int("SCIM_MAX_MULTI_VALUES", default=100)
SCIM_MAX_MEMBERS_PER_REQUEST = env.int("SCIM_MAX_MEMBERS_PER_REQUEST", default=4000)
SCIM_MAX_PATCH_OPERATIONS = env.int("SCIM_MAX_PATCH_OPERATIONS", default=1000)
# The work one request may cause, in units of roughly a microsecond (weights in
# provisioning/scim/limits.py): PATCH paths parsed, values filters examine and PATCH
# writes, resources written and their size. Bounds Bulk requests and pathological PATCHes.
SCIM_MAX_REQUEST_WORK = env.int("SCIM_MAX_REQUEST_WORK", default=1_000_000)
# Database time one SCIM list or search may take (its count and page queries together);
# a filter no index serves that needs more is refused (400 tooMany). 0: no limit.
SCIM_LIST_TIMEOUT_MS = env.int("SCIM_LIST_TIMEOUT_MS", default=750)
SCIM_MAX_DOCUMENT_BYTES = env.int("SCIM_MAX_DOCUMENT_BYTES", default=64 * 1024)
# Requests per SCIM client, e.g. "600/min" (DRF rate syntax); unset: no limit. Counted
# in the default cache, so several web processes need a shared one (CACHE_URL=redis://...).
SCIM_RATE_LIMIT = env.str("SCIM_RATE_LIMIT", default="") or None
# Requests without valid credentials (and to the public discovery endpoints), per client
# address (provisioning/access/client_address.py), answered 429 beyond it; empty: no limit.
SCIM_UNAUTHENTICATED_RATE_LIMIT = env.str("SCIM_UNAUTHENTICATED_RATE_LIMIT", default="60/min") or None
# Bulk requests may be larger than ordinary requests; Django's cap must allow them.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(DATA_UPLOAD_MAX_MEMORY_SIZE, SCIM["BULK_MAX_PAYLOAD_SIZE"])

# django-scim2 reads this at import time; we use its schema documents and errors.
SCIM_SERVICE_PROVIDER = {
    "NETLOC": env.str("SCIM_NETLOC", default="127.0.0.1:8000"),
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued to a SCIM client",
            "primary": True,
        }
    ],
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TIMEZONE = TIME_ZONE

CACHES = {
    "default": env.cache_url("CACHE_URL", default="locmemcache://scimgate")
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # 4xx answers are ordinary SCIM traffic; the request log records them.
        "django.request": {"level": env.str("LOG_LEVEL_REQUESTS", default="ERROR")},
    },
}

# Absolute base URL for meta.location and $ref values; derived from the request when empty.
SCIM_BASE_URL = env.str("SCIM_BASE_URL", default="").rstrip("/")

# --- Audit (provisioning/audit) ---------------------------------------------------
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
# auditlog's own migrations would create its (swapped-out, unused) logentry table,
# whose foreign keys then block TRUNCATE of content types and users on PostgreSQL.
MIGRATION_MODULES = {**globals().get("MIGRATION_MODULES", {}), "auditlog": None}
AUDITLOG_STORE_JSON_CHANGES = True
# Correlation ids come from our middleware (a UUIDv7 per request), never from a request header.
AUDITLOG_CID_GETTER = "provisioning.audit.context.current_correlation_id"
AUDITLOG_DISABLE_REMOTE_ADDR = False
# Keys the per-row HMAC of the audit trail; rotating it makes old rows fail verifyaudit.
SCIMGATE_AUDIT_KEY = env.str("SCIMGATE_AUDIT_KEY", default=SECRET_KEY)
# Rows younger than this are left for the next seal: their transaction may still be open.
SCIMGATE_AUDIT_SEAL_GRACE_SECONDS = env.int("SCIMGATE_AUDIT_SEAL_GRACE_SECONDS", default=300)
SCIMGATE_REQUEST_LOG_ENABLED = env.bool("SCIMGATE_REQUEST_LOG_ENABLED", default=True)
# Benchmarking switch only (make bench measures the audit trail's cost with it off):
# false skips change records and django-auditlog registration. Never turn it off in production.
SCIMGATE_AUDIT_ENABLED = env.bool("SCIMGATE_AUDIT_ENABLED", default=True)
# Benchmarking only: mount the framework-floor view at /bench/floor (provisioning/benchmark/floor.py).
SCIMGATE_BENCH_FLOOR = env.bool("SCIMGATE_BENCH_FLOOR", default=False)
SCIMGATE_REQUEST_LOG_MAX_BODY = env.int("SCIMGATE_REQUEST_LOG_MAX_BODY", default=64 * 1024)
# Anyone can send a body: of a request without valid credentials only this much is kept.
SCIMGATE_REQUEST_LOG_UNAUTHENTICATED_MAX_BODY = env.int(
    "SCIMGATE_REQUEST_LOG_UNAUTHENTICATED_MAX_BODY", default=1024
)
REQUEST_LOG_RETENTION_DAYS = env.int("REQUEST_LOG_RETENTION_DAYS", default=30)
# Proxies (addresses or CIDRs) whose X-Forwarded-For is believed; empty: use REMOTE_ADDR.
SCIMGATE_TRUSTED_PROXIES = env.list("SCIMGATE_TRUSTED_PROXIES", default=[])
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "audit-seal": {"task": "provisioning.audit.tasks.seal_audit_log", "schedule": 300.0},
    "request-log-retention": {
        "task": "provisioning.audit.tasks.prune_request_log",
        "schedule": 3600.0,
    },
    # The sweep: approved operations a lost message or a killed worker left unapplied.
    "apply-approved-operations": {
        "task": "provisioning.oversight.tasks.apply_approved_operations",
        "schedule": 60.0,
    },
    "expire-pending-operations": {
        "task": "provisioning.oversight.tasks.expire_pending_operations",
        "schedule": 900.0,
    },
    # Deactivate before delete: users whose scheduled hard delete is due.
    "delete-scheduled-users": {
        "task": "provisioning.oversight.tasks.delete_scheduled_users",
        "schedule": 300.0,
    },
    # Rollback jobs a lost message left queued or a dead worker left running.
    "sweep-rollback-jobs": {
        "task": "provisioning.oversight.tasks.sweep_rollback_jobs",
        "schedule": 60.0,
    },
    # Event deliveries due (retries, and what a lost message or a dead broker left).
    "sweep-event-deliveries": {
        "task": "provisioning.events.tasks.sweep_deliveries",
        "schedule": 30.0,
    },
    "event-retention": {"task": "provisioning.events.tasks.prune_events", "schedule": 3600.0},
}

# --- Outbound events (provisioning/events) -----------------------------------------
# The SET "iss" claim; default: SCIM_BASE_URL.
SCIMGATE_EVENTS_ISSUER = env.str("SCIMGATE_EVENTS_ISSUER", default="")
# Encrypts the secrets stored for event streams and the SET signing keys; default: SECRET_KEY.
SCIMGATE_EVENTS_KEY = env.str("SCIMGATE_EVENTS_KEY", default="")
# The algorithm of a signing key created on first need or by rotateeventkey (RS256 | ES256),
# and how long a replaced key stays published (retiring) after rotateeventkey.
SCIMGATE_EVENTS_SIGNING_ALGORITHM = env.str("SCIMGATE_EVENTS_SIGNING_ALGORITHM", default="RS256")
SCIMGATE_EVENTS_KEY_OVERLAP_HOURS = env.int("SCIMGATE_EVENTS_KEY_OVERLAP_HOURS", default=48)
# /.well-known/jwks.json: how long receivers and proxies may cache it.
SCIMGATE_EVENTS_JWKS_MAX_AGE = env.int("SCIMGATE_EVENTS_JWKS_MAX_AGE", default=300)
# Push and webhook: seconds to connect, and to send and read the answer (each); a receiver
# slower than that is a failed attempt, retried.
SCIMGATE_EVENTS_CONNECT_TIMEOUT = env.float("SCIMGATE_EVENTS_CONNECT_TIMEOUT", default=3.0)
SCIMGATE_EVENTS_TIMEOUT = env.float("SCIMGATE_EVENTS_TIMEOUT", default=10.0)
# Retries: exponential backoff from BASE seconds, doubling per attempt up to MAX, with jitter.
SCIMGATE_EVENTS_RETRY_BASE_SECONDS = env.float("SCIMGATE_EVENTS_RETRY_BASE_SECONDS", default=10.0)
SCIMGATE_EVENTS_RETRY_MAX_SECONDS = env.float("SCIMGATE_EVENTS_RETRY_MAX_SECONDS", default=3600.0)
# Poll (RFC 8936): longest long-poll, how often a waiting poll looks for new events, the most
# SETs in one answer, and after how long a handed-out, unacknowledged SET is handed out again.
SCIMGATE_EVENTS_POLL_WAIT_SECONDS = env.float("SCIMGATE_EVENTS_POLL_WAIT_SECONDS", default=20.0)
# Delivery kicks from one web process: at most one per stream in this many seconds (the
# rest are folded into one sent when the interval ends), so a burst of writes asks for one
# delivery run, not one per write. 0 sends one per commit.
SCIMGATE_EVENTS_KICK_INTERVAL = env.float("SCIMGATE_EVENTS_KICK_INTERVAL", default=0.1)
SCIMGATE_EVENTS_POLL_INTERVAL_SECONDS = env.float(
    "SCIMGATE_EVENTS_POLL_INTERVAL_SECONDS", default=0.5
)
SCIMGATE_EVENTS_POLL_MAX_EVENTS = env.int("SCIMGATE_EVENTS_POLL_MAX_EVENTS", default=100)
SCIMGATE_EVENTS_POLL_ACK_TIMEOUT_SECONDS = env.int(
    "SCIMGATE_EVENTS_POLL_ACK_TIMEOUT_SECONDS", default=300
)
# Delivered (or refused) events older than this many days are deleted with their delivery
# log; events still owed to a stream are kept.
SCIMGATE_EVENTS_RETENTION_DAYS = env.int("SCIMGATE_EVENTS_RETENTION_DAYS", default=30)
# Without a broker (tasks in-process, `make run`), push and webhook sends run on a
# background thread ("thread") so a SCIM request never waits for a receiver; "inline"
# sends within the task call (the test suite).
SCIMGATE_EVENTS_EAGER_DELIVERY = env.str("SCIMGATE_EVENTS_EAGER_DELIVERY", default="thread")
# Development only: deliver to http:// receivers, and to loopback and private addresses.
SCIMGATE_EVENTS_ALLOW_HTTP = env.bool("SCIMGATE_EVENTS_ALLOW_HTTP", default=False)
SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES", default=False
)

# Held operations expire after this many days unless decided (or held by a quarantine).
PENDING_OPERATION_TTL_DAYS = env.int("PENDING_OPERATION_TTL_DAYS", default=7)
# Rollbacks of more change sets (or change records) than this run as a job, off the request.
SCIMGATE_INLINE_ROLLBACK_LIMIT = env.int("SCIMGATE_INLINE_ROLLBACK_LIMIT", default=5)
SCIMGATE_INLINE_ROLLBACK_RECORDS = env.int("SCIMGATE_INLINE_ROLLBACK_RECORDS", default=200)
# A rollback job commits its progress after this many change sets.
SCIMGATE_ROLLBACK_CHUNK = env.int("SCIMGATE_ROLLBACK_CHUNK", default=10)
# Where approver notifications point, and an optional webhook (JSON POST) for them.
SCIMGATE_CONSOLE_URL = env.str("SCIMGATE_CONSOLE_URL", default="http://127.0.0.1:8000")
SCIMGATE_WEBHOOK_URL = env.str("SCIMGATE_WEBHOOK_URL", default="")
# Mail for approver notifications, e.g. EMAIL_URL=smtp+tls://user:password@smtp.example.com:587
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="scimgate@localhost")
AXES_VERBOSE = False

# OAuth 2.0 for SCIM clients (provisioning/access/oauth_*.py).
# The authorization server's issuer identifier (RFC 8414), e.g. https://scim.example.com;
# empty: the origin each request was sent to. The token endpoint is <issuer>/oauth/token.
SCIMGATE_OAUTH_ISSUER = env.str("SCIMGATE_OAUTH_ISSUER", default="")
# Failed token requests per claimed client id and client address, and token requests per
# client address ("N/s", "N/min", "N/hour").
OAUTH_TOKEN_RATE_LIMIT_CLIENT = env.str("OAUTH_TOKEN_RATE_LIMIT_CLIENT", default="30/min")
OAUTH_TOKEN_RATE_LIMIT_ADDRESS = env.str("OAUTH_TOKEN_RATE_LIMIT_ADDRESS", default="300/min")
# Clock skew tolerated on assertion exp/nbf/iat, in seconds.
SCIMGATE_OAUTH_CLOCK_SKEW = env.int("SCIMGATE_OAUTH_CLOCK_SKEW", default=60)
# How long fetched JWKS and discovery documents are kept, and the shortest time between
# two refetches of one URL forced by an unknown key id.
SCIMGATE_OAUTH_KEYS_CACHE_SECONDS = env.int("SCIMGATE_OAUTH_KEYS_CACHE_SECONDS", default=3600)
SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS = env.int("SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS", default=60)
# Development only: accept http:// JWKS URLs and issuers (https is required otherwise).
SCIMGATE_OAUTH_ALLOW_HTTP = env.bool("SCIMGATE_OAUTH_ALLOW_HTTP", default=False)
# Development only: allow JWKS URLs and issuers on loopback, private and link-local
# addresses (only public addresses are fetched otherwise).
SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES", default=False
)

# --- Operator sign-in (console/signin) ---------------------------------------------
# django-allauth: local passwords (with MFA) and OpenID Connect single sign-on.
# OpenID Connect: the issuer URL (its /.well-known/openid-configuration is read), the
# client registered there, and the scopes asked for. Empty issuer: no single sign-on.
SCIMGATE_OIDC_ISSUER = env.str("SCIMGATE_OIDC_ISSUER", default="").rstrip("/")
SCIMGATE_OIDC_CLIENT_ID = env.str("SCIMGATE_OIDC_CLIENT_ID", default="")
SCIMGATE_OIDC_CLIENT_SECRET = env.str("SCIMGATE_OIDC_CLIENT_SECRET", default="")
SCIMGATE_OIDC_SCOPES = env.list("SCIMGATE_OIDC_SCOPES", default=["openid", "profile", "email"])
# The button's label on the sign-in page ("Sign in with <name>").
SCIMGATE_OIDC_NAME = env.str("SCIMGATE_OIDC_NAME", default="single sign-on")
# client_secret_basic or client_secret_post; empty: what the discovery document offers.
SCIMGATE_OIDC_TOKEN_AUTH_METHOD = env.str("SCIMGATE_OIDC_TOKEN_AUTH_METHOD", default="")
# Read the UserInfo endpoint too (claims there win over the ID token's, same subject).
SCIMGATE_OIDC_FETCH_USERINFO = env.bool("SCIMGATE_OIDC_FETCH_USERINFO", default=True)
# The claim that carries the operator's groups or roles (a string or a list of strings),
# and the values of it that grant each console role; the highest role granted wins. An
# operator whose claim grants none cannot sign in.
SCIMGATE_OIDC_ROLE_CLAIM = env.str("SCIMGATE_OIDC_ROLE_CLAIM", default="groups")
SCIMGATE_OIDC_ROLE_VALUES = {
    "viewer": env.list("SCIMGATE_OIDC_VIEWER_VALUES", default=["scimgate-viewers"]),
    "approver": env.list("SCIMGATE_OIDC_APPROVER_VALUES", default=["scimgate-approvers"]),
    "administrator": env.list(
        "SCIMGATE_OIDC_ADMINISTRATOR_VALUES", default=["scimgate-administrators"]
    ),
}
# The claims tried, in order, for a new operator's username (made unique if taken).
SCIMGATE_OIDC_USERNAME_CLAIMS = env.list(
    "SCIMGATE_OIDC_USERNAME_CLAIMS", default=["preferred_username", "email", "sub"]
)
# Clock skew tolerated on the ID token's exp, iat and auth_time, in seconds.
SCIMGATE_OIDC_CLOCK_SKEW = env.int("SCIMGATE_OIDC_CLOCK_SKEW", default=60)
# Development only: an http:// issuer (https is required otherwise).
SCIMGATE_OIDC_ALLOW_HTTP = env.bool("SCIMGATE_OIDC_ALLOW_HTTP", default=False)

# Local passwords: on by default only when there is no single sign-on. Off, only the
# break-glass accounts named here may sign in with a password (plus MFA where required).
SCIMGATE_LOCAL_PASSWORDS = env.bool("SCIMGATE_LOCAL_PASSWORDS", default=not SCIMGATE_OIDC_ISSUER)
SCIMGATE_BREAK_GLASS_ACCOUNTS = env.list("SCIMGATE_BREAK_GLASS_ACCOUNTS", default=[])
# Approvers and administrators who sign in with a local password must use MFA: one without
# an authenticator is sent to enrol before anything else. (Single sign-on leaves MFA to
# the identity provider.)
SCIMGATE_MFA_REQUIRED = env.bool("SCIMGATE_MFA_REQUIRED", default=True)
# A session ends after this many minutes without a request, and this many hours after
# sign-in whatever happens (0: no limit).
SCIMGATE_SESSION_IDLE_MINUTES = env.int("SCIMGATE_SESSION_IDLE_MINUTES", default=30)
SCIMGATE_SESSION_MAX_HOURS = env.int("SCIMGATE_SESSION_MAX_HOURS", default=8)
# Decisions that matter (approving, rejecting, rolling back, releasing quarantines,
# issuing or rotating credentials, changing roles and policies) need an authentication
# no older than this many minutes: a step-up (password and MFA code, or a fresh sign-in
# at the identity provider) when the last one is older. 0: no step-up.
SCIMGATE_STEP_UP_MINUTES = env.int("SCIMGATE_STEP_UP_MINUTES", default=15)

ACCOUNT_ADAPTER = "console.signin.adapters.OperatorAccountAdapter"
SOCIALACCOUNT_ADAPTER = "console.signin.adapters.OperatorSocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_FORMS = {"login": "console.signin.forms.OperatorLoginForm"}
# django-axes throttles password guessing (the account adapter leaves passwords to it);
# allauth's own limits still throttle MFA codes (5 wrong codes per 5 minutes per operator).
# Reauthentication for MFA changes counts for as long as a step-up does (at least 5 min).
ACCOUNT_REAUTHENTICATION_TIMEOUT = max(SCIMGATE_STEP_UP_MINUTES, 5) * 60
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_REQUIRED = False
SOCIALACCOUNT_QUERY_EMAIL = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # Nonce, max_age and strict ID token checks (console/signin/oidc.py).
        "provider_class": "console.signin.oidc.OperatorOIDCProvider",
        "OAUTH_PKCE_ENABLED": True,
    }
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="scimgate")
MFA_PASSKEY_LOGIN_ENABLED = False
# WebAuthn needs a secure context; http://localhost is one, plain http elsewhere is not.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
