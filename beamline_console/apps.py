from django.apps import AppConfig


class BeamlineConsoleConfig(AppConfig):
    name = "beamline_console"
    verbose_name = "Beamline Console"
