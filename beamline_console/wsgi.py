"""WSGI entry point for Beamline Console."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beamline_console.settings")

application = get_wsgi_application()
