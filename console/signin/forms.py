"""The sign-in form: allauth's, with the username field named ``username``."""

from __future__ import annotations

from allauth.account.forms import LoginForm


class OperatorLoginForm(LoginForm):
    def add_prefix(self, field_name: str) -> str:
        # allauth calls it "login"; the page, password managers and scripts say "username".
        return "username" if field_name == "login" else super().add_prefix(field_name)
