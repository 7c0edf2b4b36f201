from django.apps import AppConfig


class ExecutorConfig(AppConfig):
    name = "executor"
    verbose_name = "Executor"

    def ready(self) -> None:
        from executor import checks  # noqa: F401 - registers the system checks
        from executor.probe_admin import register_probe_actions

        # The registry cannot import the executor, so the executor adds its probe to the admin.
        register_probe_actions()
