"""What the management API keeps: the first answer to each idempotency key."""

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` an operator sent with a changing request, the request it
    came with (method, path, SHA-256 of the body) and, once answered, the response.

    A record without a status is a request still in progress. Records expire
    (``SCIMGATE_API_IDEMPOTENCY_HOURS``); an expired key may be used again.
    """

    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2048)
    request_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    etag = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["operator", "key"], name="idempotency_operator_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"
