"""Settings for the test run: production settings with a throwaway key and plain HTTP."""
import os
import secrets
import tempfile

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("BEAMLINE_VAR_DIR", tempfile.mkdtemp(prefix="beamline-test-"))

from beamline_console.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
