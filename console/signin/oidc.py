"""OpenID Connect sign-in on django-allauth's ``openid_connect`` provider, made strict.

allauth provides the authorization code flow, the ``state`` it keeps in the session,
PKCE (S256) and the token request. This module adds what an operator console needs
on top (OpenID Connect Core 1.0 §3.1.2.1 and §3.1.3.7):

- a ``nonce`` in every authorization request, checked against the ID token's;
- the ID token's signature always checked (allauth skips it for tokens fetched
  directly), with an asymmetric algorithm the JWKS publishes, and ``iss``, ``aud``,
  ``azp``, ``exp`` and ``iat`` checked with a bounded clock skew;
- the discovery document must name the configured issuer (OpenID Connect Discovery
  §4.3), and its endpoints must use https;
- UserInfo claims only for the ID token's subject (§5.3.2);
- step-up: ``prompt=login`` and ``max_age=0``, and an ``auth_time`` no older than the
  step-up request;
- no authorization parameters or scopes taken from the request's query string.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from allauth.utils import build_absolute_uri
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import urlencode

# The provider id of the one OpenID Connect application (allauth's "sub id"): it
# prefixes the subject in the social account table.
PROVIDER_ID = "sso"
# Asymmetric signatures only: an HMAC "signature" keyed by the client secret, or none,
# proves nothing about who issued the token.
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def _require_https(url: str, what: str) -> None:
    if urlsplit(url).scheme != "https" and not settings.SCIMGATE_OIDC_ALLOW_HTTP:
        raise OAuth2Error(f"The identity provider's {what} is not an https URL")


class OperatorOIDCAdapter(OpenIDConnectOAuth2Adapter):
    """Token exchange and ID token validation for the configured provider."""

    # The state allauth stashed at the authorization request (set by the callback view).
    state: dict | None = None

    def __init__(self, request: HttpRequest, provider_id: str = PROVIDER_ID) -> None:
        super().__init__(request, provider_id)

    @property
    def openid_config(self) -> dict:
        if not hasattr(self, "_openid_config"):
            issuer = settings.SCIMGATE_OIDC_ISSUER
            _require_https(issuer, "issuer")
            config = super().openid_config
            if config.get("issuer") != issuer:
                del self._openid_config
                raise OAuth2Error(
                    "The discovery document names another issuer than SCIMGATE_OIDC_ISSUER"
                )
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(config.get(name), str):
                    del self._openid_config
                    raise OAuth2Error(f"The discovery document has no {name}")
                _require_https(config[name], name)
        return self._openid_config

    def get_callback_url(self, request: HttpRequest, app) -> str:
        return build_absolute_uri(request, reverse("oidc_callback"), self.redirect_uri_protocol)

    def complete_login(self, request: HttpRequest, app, token, **kwargs):
        id_token = kwargs["response"].get("id_token")
        if not id_token:
            raise OAuth2Error("The token response has no ID token")
        try:
            claims = self.validate_id_token(app, id_token)
            data: dict[str, Any] = {"id_token": claims}
            if app.settings.get("fetch_userinfo", True) and self.openid_config.get(
                "userinfo_endpoint"
            ):
                userinfo = self._fetch_user_info(token.token)
                if not isinstance(userinfo, dict) or userinfo.get("sub") != claims["sub"]:
                    raise OAuth2Error("UserInfo answered for another subject than the ID token")
                data["userinfo"] = userinfo
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise OAuth2Error(f"Invalid ID token: {exc}") from exc
        return self.get_provider().sociallogin_from_response(request, data)

    def _signing_key(self, header: dict) -> Any:
        """The JWKS key that signed the ID token: the one with its ``kid`` (or the only
        signing key), whose declared algorithm, if any, is the token's."""
        with get_adapter().get_requests_session() as session:
            response = session.get(self.openid_config["jwks_uri"], timeout=10)
            response.raise_for_status()
            keys = response.json()["keys"]
        kid = header.get("kid")
        candidates = [
            jwk
            for jwk in keys
            if isinstance(jwk, dict)
            and jwk.get("use", "sig") == "sig"
            and (kid is None or jwk.get("kid") == kid)
        ]
        if len(candidates) != 1:
            raise OAuth2Error("No single signing key in the JWKS matches the ID token")
        jwk = candidates[0]
        if jwk.get("alg", header["alg"]) != header["alg"]:
            raise OAuth2Error("The ID token's algorithm is not its key's")
        return jwt.PyJWK(jwk, algorithm=header["alg"]).key

    def validate_id_token(self, app, id_token: str) -> dict:
        """The ID token's claims, after every check of OpenID Connect Core §3.1.3.7."""
        header = jwt.get_unverified_header(id_token)
        if header.get("alg") not in ALGORITHMS:
            raise OAuth2Error(f"ID token algorithm {header.get('alg')!r} is not accepted")
        claims = jwt.decode(
            id_token,
            key=self._signing_key(header),
            algorithms=[header["alg"]],
            issuer=self.openid_config["issuer"],
            audience=app.client_id,
            leeway=settings.SCIMGATE_OIDC_CLOCK_SKEW,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != app.client_id:
            raise OAuth2Error("The ID token was issued to another party (azp)")
        state = self.state or {}
        expected_nonce = state.get("nonce")
        if not isinstance(expected_nonce, str) or not hmac.compare_digest(
            str(claims.get("nonce", "")), expected_nonce
        ):
            raise OAuth2Error("The ID token's nonce is not the one this sign-in sent")
        if state.get("max_age") is not None:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int | float):
                raise OAuth2Error("The ID token has no auth_time, which max_age requires")
            if auth_time < state["requested_at"] - settings.SCIMGATE_OIDC_CLOCK_SKEW:
                raise OAuth2Error("The identity provider did not authenticate the operator again")
        return claims


class OperatorOIDCProvider(OpenIDConnectProvider):
    """allauth's OpenID Connect provider with a nonce and fixed request parameters."""

    oauth2_adapter_class = OperatorOIDCAdapter

    def get_oauth2_adapter(self, request: HttpRequest) -> OperatorOIDCAdapter:
        return OperatorOIDCAdapter(request, self.app.provider_id)

    def get_login_url(self, request: HttpRequest, **kwargs) -> str:
        url = reverse("oidc_login")
        return f"{url}?{urlencode(kwargs)}" if kwargs else url

    def get_callback_url(self) -> str:
        return reverse("oidc_callback")

    # The operator's browser may not add authorization parameters or scopes.
    def get_auth_params_from_request(self, request: HttpRequest, action) -> dict:
        return self.get_auth_params()

    def get_scope_from_request(self, request: HttpRequest) -> list:
        return self.get_scope()

    def redirect(self, request: HttpRequest, process, next_url=None, data=None, **kwargs):
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None) or self.get_auth_params()
        auth_params["nonce"] = nonce
        # The nonce (and a step-up's max_age) are kept in the state allauth stashes in
        # the session, and checked against the ID token by the adapter.
        return super().redirect(
            request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs
        )


def allow_form_posts_to_idp(response: HttpResponse) -> HttpResponse:
    """Let a page's forms lead to the identity provider: the sign-in form posts here and
    is redirected there, and the Content-Security-Policy's form-action covers redirects
    after a submission. The authorization endpoint is on the issuer's origin at every
    provider the README describes."""
    issuer = urlsplit(settings.SCIMGATE_OIDC_ISSUER)
    if issuer.scheme and issuer.netloc:
        response._csp_update = {"form-action": [f"{issuer.scheme}://{issuer.netloc}"]}  # type: ignore[attr-defined]
    return response


def provider(request: HttpRequest) -> OperatorOIDCProvider:
    return get_adapter(request).get_provider(request, PROVIDER_ID)


def start_sign_in(request: HttpRequest, next_url: str | None) -> HttpResponse:
    """Send the browser to the identity provider to sign in."""
    return provider(request).redirect(request, "login", next_url=next_url)


def start_step_up(request: HttpRequest, next_url: str) -> HttpResponse:
    """Send the browser to the identity provider to authenticate again, now."""
    sso = provider(request)
    auth_params = sso.get_auth_params()
    auth_params.update({"prompt": "login", "max_age": "0"})
    return sso.redirect(
        request,
        "login",
        next_url=next_url,
        auth_params=auth_params,
        max_age=0,
        requested_at=time.time(),
        step_up=True,
    )


class OperatorCallbackView(OAuth2CallbackView):
    """allauth's callback, handing the unstashed state to the adapter for its checks."""

    def _get_state(self, request: HttpRequest, provider):
        state, response = super()._get_state(request, provider)
        self.adapter.state = state
        return state, response


_callback = OperatorCallbackView.adapter_view(OperatorOIDCAdapter)


def callback(request: HttpRequest) -> HttpResponse:
    """The redirect back from the identity provider (404 without single sign-on)."""
    if not settings.SCIMGATE_OIDC_ISSUER or not settings.SCIMGATE_OIDC_CLIENT_ID:
        raise Http404("Single sign-on is not configured.")
    return _callback(request)


def failed(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The error page for a sign-in that could not even start (discovery failed)."""
    return render_authentication_error(request, provider(request), exception=exception)
