"""The test suite's settings: the project's own, with the benchmark app installed.

tests/benchmark runs the benchmark app's commands (loadsynthetic), and the app is
installed only with SCIMGATE_BENCHMARK on. pytest-django loads the settings once,
before any conftest runs, so the switch is set here, ahead of them.
"""

import os

os.environ["SCIMGATE_BENCHMARK"] = "true"

from provisioning.settings import *  # noqa: E402, F403

# Requests without credentials are limited per address (60/min by default); tests send
# many from 127.0.0.1 (discovery checks, fuzzing). Tests of the limit set their own rate.
SCIM_UNAUTHENTICATED_RATE_LIMIT = "10000/min"

# The OAuth tests publish keys from a local server on 127.0.0.1; the tests of the
# address guard switch this off.
SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES = True

# Event receivers in the tests are local servers on 127.0.0.1 (plain http); sends happen
# within the task call so tests see their outcome.
SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES = True
SCIMGATE_EVENTS_ALLOW_HTTP = True
SCIMGATE_EVENTS_EAGER_DELIVERY = "inline"
# Step-up and MFA enrolment are on by default (provisioning/settings.py); the suite's
# operators sign in with force_login and no authenticator. The tests of sign-in
# (tests/signin) turn them on.
SCIMGATE_STEP_UP_MINUTES = 0
SCIMGATE_MFA_REQUIRED = False
