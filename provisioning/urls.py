from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("scim/v2/", include("provisioning.scim.urls")),
    path("admin/", admin.site.urls),
    path("", include("console.urls")),
]
