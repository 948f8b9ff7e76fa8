from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from provisioning.access import oauth_views
from provisioning.events import views as event_views

# The admin signs in through the console's sign-in (MFA, single sign-on, throttling),
# never with a password form of its own.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    # OAuth 2.0 for SCIM clients (RFC 6749 token endpoint, RFC 8414 metadata).
    path("oauth/token", oauth_views.token_endpoint, name="oauth-token"),
    path(
        ".well-known/oauth-authorization-server",
        oauth_views.authorization_server_metadata,
        name="oauth-authorization-server",
    ),
    # Outbound events: the keys that verify SETs, and RFC 8936 polling per stream.
    path(".well-known/jwks.json", event_views.jwks_document, name="events-jwks"),
    path("events/v1/streams/<uuid:stream_id>/poll", event_views.poll_stream, name="events-poll"),
    path("scim/v2/", include("provisioning.scim.urls")),
    path("admin/", admin.site.urls),
    # The management API for operators' scripts (console/api), its schema and docs.
    path("api/", include("console.api.urls")),
    # Sign-in, MFA and step-up (console/signin/urls.py), then the console.
    path("", include("console.signin.urls")),
    path("", include("console.urls")),
]

# Uncaught failures on SCIM paths answer a SCIM Error (503 when the database is down).
handler500 = "provisioning.scim.api.server_error"

if settings.SCIMGATE_BENCH_FLOOR:
    # Benchmarking only: the framework floor for make bench (provisioning/benchmark/floor.py).
    from provisioning.benchmark.floor import floor

    urlpatterns.insert(0, path("bench/floor", floor, name="bench-floor"))
