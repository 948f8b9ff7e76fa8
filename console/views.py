from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what this server is and where its SCIM base URL lives."""
    scim_base = request.build_absolute_uri("/scim/v2/")
    return render(request, "console/home.html", {"scim_base": scim_base})
