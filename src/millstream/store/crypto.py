"""Fernet encryption of secrets at rest (Variables, Connection passwords and extras).

The key is the ``core.fernet_key`` setting; without one, ``$MILLSTREAM_HOME/fernet.key``,
which the first process to need it creates (atomically, mode 0600, so a scheduler and
an API server starting together agree on one key). Several keys, comma-separated and
newest first, decrypt with any and encrypt with the first: that is how a key is rotated
(:func:`rotate`). A value that no key decrypts is an error naming the key's source, never
a silent empty value.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from millstream.settings import ConfigError, Settings

KEY_FILE = "fernet.key"
_cache: dict[tuple[str | None, str | None, str | None], MultiFernet] = {}


class DecryptError(ConfigError):
    """A stored secret that the configured key cannot decrypt."""


def _key_file(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def ensure_key(settings: Settings | None = None) -> str:
    """The key text in effect, creating the key file on first use when no setting gives one."""
    settings = settings or Settings.load()
    if settings.fernet_key:
        return settings.fernet_key
    path = _key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()


def source(settings: Settings | None = None) -> str:
    settings = settings or Settings.load()
    return "the core.fernet_key setting" if settings.fernet_key else str(_key_file(settings))


def fernet() -> MultiFernet:
    """The process's cipher, rebuilt when the settings that name the key change."""
    env = os.environ
    marker = (
        env.get("MILLSTREAM__CORE__FERNET_KEY"),
        env.get("MILLSTREAM_HOME"),
        env.get("MILLSTREAM_CONFIG"),
    )
    cipher = _cache.get(marker)
    if cipher is None:
        cipher = make(ensure_key())
        _cache.clear()
        _cache[marker] = cipher
    return cipher


def make(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"the Fernet key is not valid ({e}); generate one with `millstream rotate-fernet-key --generate`"
        ) from None


def encrypt(text: str) -> str:
    return fernet().encrypt(text.encode()).decode()


def decrypt(token: str, what: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptError(
            f"{what} cannot be decrypted with the Fernet key from {source()}: it was written with "
            "another key. Give every process the same core.fernet_key (old keys may follow the new, "
            "comma-separated)"
        ) from None


def generate() -> str:
    return Fernet.generate_key().decode()
