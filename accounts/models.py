import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

KEY_PREFIX = "pb_"
# Characters of the key after "pb_" that are stored in clear to find the row.
LOOKUP_LENGTH = 10


def hash_secret(secret: str, salt: str) -> str:
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


class ApiKey(models.Model):
    """An API key; only a salted HMAC of the key is stored, never the key."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    lookup = models.CharField(max_length=LOOKUP_LENGTH, unique=True)
    salt = models.CharField(max_length=32)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.owner})"

    @property
    def prefix(self) -> str:
        return KEY_PREFIX + self.lookup

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_secret(secret, self.salt))


def generate_key() -> tuple[str, str, str]:
    """Return a new key's (full key, lookup part, secret part)."""
    lookup = secrets.token_hex(LOOKUP_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{lookup}_{secret}", lookup, secret
