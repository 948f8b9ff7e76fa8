"""Operator sign-in: local passwords with MFA, OpenID Connect single sign-on, session
timeouts and step-up re-authentication, on django-allauth."""
