"""SET signing keys: created on first need, published as a JWKS, rotated with an overlap
during which SETs signed by the previous key still verify."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from provisioning.events import signing
from provisioning.events.crypto import unseal
from provisioning.events.models import SigningKey

pytestmark = pytest.mark.django_db


def served(client) -> KeySet:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    return KeySet.import_key_set(response.json())


def test_the_first_key_is_created_on_first_need_and_only_once(client):
    assert not SigningKey.objects.exists()
    document = client.get("/.well-known/jwks.json").json()
    [key] = SigningKey.objects.all()
    assert key.status == SigningKey.Status.ACTIVE and key.algorithm == "RS256"
    assert document == {"keys": [key.public_jwk]}
    # Public halves only; kid is the RFC 7638 thumbprint.
    assert set(key.public_jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert key.kid == KeySet.import_key_set(document).keys[0].thumbprint()
    # The private key is stored encrypted.
    assert "PRIVATE KEY" not in key.private_key
    assert "PRIVATE KEY" in unseal(key.private_key)
    signing.sign({"jti": "1"})
    assert SigningKey.objects.count() == 1


def test_a_concurrent_first_key_loses_to_the_one_already_stored(monkeypatch):
    """Two processes creating the first key at once: the one_active_signing_key
    constraint keeps one; the loser signs with the winner's key."""
    original = signing._new_key

    def race(algorithm):
        winner = original(algorithm)
        winner.save()
        return original(algorithm)

    monkeypatch.setattr(signing, "_new_key", race)
    key = signing.active_key()
    assert SigningKey.objects.count() == 1
    assert SigningKey.objects.get().kid == key.kid


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_signed_sets_verify_with_the_served_keys(client, settings, algorithm):
    settings.SCIMGATE_EVENTS_SIGNING_ALGORITHM = algorithm
    token = signing.sign({"jti": "abc", "events": {}})
    decoded = jwt.decode(token, served(client), algorithms=[algorithm])
    assert decoded.claims == {"jti": "abc", "events": {}}
    assert decoded.header == {
        "alg": algorithm,
        "kid": SigningKey.objects.get().kid,
        "typ": "secevent+jwt",
    }


def test_rotation_keeps_the_previous_key_published_during_the_overlap(client):
    old_token = signing.sign({"jti": "before"})
    old = SigningKey.objects.get()
    new = signing.rotate(algorithm="ES256", overlap=timedelta(hours=2))
    old.refresh_from_db()
    assert old.status == SigningKey.Status.RETIRING
    assert old.retired_at - old.retiring_since == timedelta(hours=2)
    assert signing.active_key().kid == new.kid

    keys = served(client)
    assert {k.kid for k in keys.keys} == {old.kid, new.kid}
    # A SET signed before the rotation still verifies; new SETs use the new key.
    assert jwt.decode(old_token, keys).claims == {"jti": "before"}
    new_token = signing.sign({"jti": "after"})
    assert jwt.decode(new_token, keys).header["kid"] == new.kid

    # After the overlap the old key is no longer published, and old SETs fail.
    SigningKey.objects.filter(pk=old.pk).update(retired_at=timezone.now() - timedelta(seconds=1))
    keys = served(client)
    assert [k.kid for k in keys.keys] == [new.kid]
    with pytest.raises((JoseError, ValueError)):
        jwt.decode(old_token, keys)
    assert signing.retire_due() == 1
    old.refresh_from_db()
    assert old.status == SigningKey.Status.RETIRED


def test_rotation_without_overlap_retires_at_once(client):
    old = signing.active_key()
    signing.rotate(overlap=timedelta(0))
    old.refresh_from_db()
    assert old.status == SigningKey.Status.RETIRED
    assert old.kid not in {k["kid"] for k in signing.jwks()["keys"]}


def test_rotateeventkey_command(settings):
    settings.SCIMGATE_EVENTS_KEY_OVERLAP_HOURS = 48
    first = signing.active_key()
    out = StringIO()
    call_command("rotateeventkey", "--algorithm", "ES256", stdout=out)
    new = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    assert new.algorithm == "ES256"
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"active key {new.kid} (ES256)"
    assert lines[0].startswith(f"previous key {first.kid} (RS256): published until ")
    first.refresh_from_db()
    assert first.retired_at - first.retiring_since == timedelta(hours=48)

    out = StringIO()
    call_command("rotateeventkey", "--retire-previous-after-hours", "0", stdout=out)
    assert f"previous key {new.kid} (ES256): no longer published" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("rotateeventkey", "--retire-previous-after-hours", "-1")
    with pytest.raises(CommandError):
        call_command("rotateeventkey", "--algorithm", "HS256")
