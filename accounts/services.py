import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from .models import ApiKey, generate_key, hash_secret

# last_used_at is written at most this often per key, so authenticating is
# not a database write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def apikey_create(*, owner, name: str = "") -> tuple[ApiKey, str]:
    """Create an API key for `owner`; return the row and the key, shown only now."""
    full_key, lookup, secret = generate_key()
    salt = secrets.token_hex(16)
    api_key = ApiKey.objects.create(
        owner=owner, name=name, lookup=lookup, salt=salt, key_hash=hash_secret(secret, salt)
    )
    return api_key, full_key


def apikey_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def apikey_authenticate(raw_key: str) -> ApiKey | None:
    """Return the active key matching `raw_key`, or None."""
    if not raw_key.startswith("pb_"):
        return None
    lookup, _, secret = raw_key[3:].partition("_")
    if not lookup or not secret:
        return None

    api_key = (
        ApiKey.objects.select_related("owner")
        .filter(lookup=lookup, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not api_key.matches(secret) or not api_key.owner.is_active:
        return None

    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def user_get_or_create(*, username: str):
    user, _ = get_user_model().objects.get_or_create(username=username)
    return user
