from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("scim/v2/", include("provisioning.scim.urls")),
    path("admin/", admin.site.urls),
    path("", include("console.urls")),
]

# Uncaught failures on SCIM paths answer a SCIM Error (503 when the database is down).
handler500 = "provisioning.scim.api.server_error"

if settings.SCIMGATE_BENCH_FLOOR:
    # Benchmarking only: the framework floor for make bench (provisioning/benchmark/floor.py).
    from provisioning.benchmark.floor import floor

    urlpatterns.insert(0, path("bench/floor", floor, name="bench-floor"))
