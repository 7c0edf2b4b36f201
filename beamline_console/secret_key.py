"""The development secret key, generated once and kept under ``var/``."""
from pathlib import Path

from django.core.management.utils import get_random_secret_key


def development_secret_key(var_dir: Path) -> str:
    """Return the key stored in ``var_dir``, creating it on first use.

    Keeping the key on disk lets sessions survive a restart of ``make run``.
    """
    key_file = var_dir / "development-secret-key"
    if key_file.exists():
        return key_file.read_text().strip()

    var_dir.mkdir(parents=True, exist_ok=True)
    key = get_random_secret_key()
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key
