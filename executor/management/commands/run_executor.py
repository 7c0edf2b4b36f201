"""``manage.py run_executor``: serve pipelines on NATS until SIGINT or SIGTERM."""
import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from executor.core.flags import FlagConfigError
from executor.flag_source import DatabaseFlagSource
from executor.process import ExecutorProcess


class Command(BaseCommand):
    help = (
        "Run the executor service on NATS subject beamline.executor.v1.execute "
        "(queue group beamline-executor) until SIGINT or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--nats-url", default=settings.NATS_URL, help="NATS server URL (default: NATS_URL).")
        parser.add_argument(
            "--max-in-flight",
            type=int,
            default=settings.EXECUTOR_MAX_IN_FLIGHT,
            help="Pipelines run at once before new requests get an overloaded reply (default: %(default)s).",
        )

    def handle(self, *args: object, nats_url: str, max_in_flight: int, **options: object) -> None:
        if not nats_url:
            raise CommandError("No NATS server: set NATS_URL or pass --nats-url.")
        flag_source = DatabaseFlagSource()
        try:
            flag_source.check_environment()
        except FlagConfigError as error:
            raise CommandError(str(error)) from error

        process = ExecutorProcess(
            nats_url,
            flag_source,
            max_in_flight=max_in_flight,
            poll_interval_s=settings.EXECUTOR_SNAPSHOT_POLL_SECONDS,
            metrics_port=settings.EXECUTOR_METRICS_PORT,
            metrics_address=settings.EXECUTOR_METRICS_ADDRESS,
        )
        asyncio.run(_serve_until_signalled(process))


async def _serve_until_signalled(process: ExecutorProcess) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)

    async with process:
        await stopping.wait()
