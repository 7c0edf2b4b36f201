from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Extension registry"

    def ready(self) -> None:
        # Registers the token scheme with drf-spectacular; the import is the registration.
        from registry import schema  # noqa: F401
