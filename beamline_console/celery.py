"""The Celery application that runs the console's periodic work."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beamline_console.settings")

app = Celery("beamline_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
