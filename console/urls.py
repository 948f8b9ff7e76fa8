from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    # Public: the only console views without require_role (see tests/console/test_url_permissions.py).
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("users/", views.user_list, name="user_list"),
    path("users/<uuid:user_id>/", views.user_detail, name="user_detail"),
    path(
        "users/<uuid:user_id>/deactivate/confirm/",
        views.user_deactivate_confirm,
        name="user_deactivate_confirm",
    ),
    path("users/<uuid:user_id>/deactivate/", views.user_deactivate, name="user_deactivate"),
    path("users/<uuid:user_id>/reactivate/", views.user_reactivate, name="user_reactivate"),
    path("groups/", views.group_list, name="group_list"),
    path("groups/<uuid:group_id>/", views.group_detail, name="group_detail"),
]
