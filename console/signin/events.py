"""Signal receivers: the session learns how the operator signed in, and the audit log
records sign-ins, failures and MFA changes (``provisioning.access.operator_signin``).

Connected by ``console.apps.ConsoleConfig.ready``.
"""

from __future__ import annotations

from allauth.account import signals as account_signals
from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth import get_user_model
from django.contrib.auth import signals as auth_signals

from provisioning.access.operator_signin import SignInEvent, operator_event_record

from . import session

_STRONG = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def on_logged_in(sender, request, user, **kwargs) -> None:
    """Django's ``user_logged_in`` (every login, the test client's too): start the
    session's clocks. allauth's signal, sent next for its own logins, adds the method."""
    if request is not None and hasattr(request, "session"):
        session.mark_signed_in(request, method=session.PASSWORD)


def on_allauth_logged_in(sender, request, user, **kwargs) -> None:
    """allauth's ``user_logged_in``: a sign-in through the sign-in page or the IdP."""
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        subject = sociallogin.account.uid
        session.mark_signed_in(request, method=session.OIDC, subject=subject)
        operator_event_record(
            event=SignInEvent.SIGNED_IN, user=user, method=session.OIDC, idp_subject=subject
        )
        return
    factors = [
        record.get("type")
        for record in get_authentication_records(request, user)
        if record.get("method") == "mfa"
    ]
    method = session.PASSWORD + "".join(f"+{factor}" for factor in factors[-1:])
    session.mark_signed_in(request, method=session.PASSWORD)
    if factors:
        request.session[session.MFA_OK] = True
    operator_event_record(event=SignInEvent.SIGNED_IN, user=user, method=method)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """A wrong password (or a locked-out or refused account): who was named, not the secret."""
    User = get_user_model()
    username = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    user = (
        User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).first()
        if username
        else None
    )
    operator_event_record(
        event=SignInEvent.SIGN_IN_FAILED,
        user=user,
        username=username or "(no username)",
        method=session.PASSWORD,
        reason="locked out" if getattr(request, "axes_locked_out", False) else "wrong credentials",
    )


def _authenticator_event(event: str):
    def receiver(sender, request, user, authenticator, **kwargs) -> None:
        operator_event_record(event=event, user=user, authenticator=authenticator.type)
        if request is not None and hasattr(request, "session"):
            if event == SignInEvent.MFA_ADDED and authenticator.type in _STRONG:
                request.session[session.MFA_OK] = True
            elif event == SignInEvent.MFA_REMOVED:
                request.session.pop(session.MFA_OK, None)

    return receiver


on_mfa_added = _authenticator_event(SignInEvent.MFA_ADDED)
on_mfa_removed = _authenticator_event(SignInEvent.MFA_REMOVED)
on_mfa_reset = _authenticator_event(SignInEvent.MFA_RESET)


def on_mfa_failed(sender, request, user, authenticator, **kwargs) -> None:
    operator_event_record(
        event=SignInEvent.MFA_FAILED,
        user=user,
        authenticator=authenticator.type,
        during="re-authentication" if kwargs.get("reauthentication") else "sign-in",
    )


def connect() -> None:
    uid = "scimgate-signin-"
    auth_signals.user_logged_in.connect(on_logged_in, dispatch_uid=uid + "logged-in")
    auth_signals.user_login_failed.connect(on_login_failed, dispatch_uid=uid + "failed")
    account_signals.user_logged_in.connect(on_allauth_logged_in, dispatch_uid=uid + "allauth")
    mfa_signals.authenticator_added.connect(on_mfa_added, dispatch_uid=uid + "mfa-added")
    mfa_signals.authenticator_removed.connect(on_mfa_removed, dispatch_uid=uid + "mfa-removed")
    mfa_signals.authenticator_reset.connect(on_mfa_reset, dispatch_uid=uid + "mfa-reset")
    mfa_signals.authentication_failed.connect(on_mfa_failed, dispatch_uid=uid + "mfa-failed")
