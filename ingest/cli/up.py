"""``matih-ingest up``: the whole local stack in one command.

Starts the local Kafka broker if none answers, a worker, the REST gateway and the
MLflow UI on the same store; with ``--demo`` also runs the demo. Ctrl-C stops what
it started. The gateway runs in open mode (no API keys) unless ``--no-open``: this
is the local development stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Annotated

import typer

from consumers import ConsumerSettings, MlflowSink, build_worker
from ingest.api import ApiSettings, build_server
from ingest.cli.demo import show_run, simulate_training
from ingest.cli.options import (
    BootstrapOption,
    TrackingUriOption,
    VerboseOption,
    configure_logging,
    kafka_settings,
    mlflow_settings,
)
from ingest.settings import DEFAULT_DATA_DIR
from producers import ProducerSettings

logger = logging.getLogger(__name__)

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
UI_LOG = DEFAULT_DATA_DIR / "mlflow-ui.log"


def up(
    bootstrap_servers: BootstrapOption = None,
    tracking_uri: TrackingUriOption = None,
    ui_port: Annotated[int, typer.Option(help="Port of the MLflow UI; 0 for none.")] = 5000,
    run_demo: Annotated[
        bool, typer.Option("--demo", help="Run the demo once the stack is up.")
    ] = False,
    *,
    api_port: Annotated[int, typer.Option(help="Port of the REST gateway; 0 for none.")] = 8000,
    open_mode: Annotated[
        bool,
        typer.Option(
            "--open/--no-open",
            help="Gateway without API keys (local development); --no-open uses MATIH_API_API_KEYS.",
        ),
    ] = True,
    verbose: VerboseOption = False,
) -> None:
    """Start the local stack: Kafka (if none answers), a worker, the REST gateway and the
    MLflow UI."""
    configure_logging(verbose)
    kafka = kafka_settings(bootstrap_servers, None, None)
    mlflow = mlflow_settings(tracking_uri)
    host, _, port = kafka.servers[0].rpartition(":")
    started_broker = False
    if not _reachable(host, int(port)):
        _start_local_broker(host, port)
        started_broker = True
    settings = ConsumerSettings(kafka=kafka, mlflow=mlflow)
    sink = MlflowSink(mlflow)  # creates the store before the UI opens it
    ui = _start_ui(mlflow.tracking_uri, ui_port) if ui_port else None
    try:
        api = None
        if api_port:
            api = ApiSettings(kafka=kafka, mlflow=mlflow, port=api_port, open_mode=open_mode)
        asyncio.run(_serve(settings, sink, run_demo, api))
    finally:
        if ui is not None:
            ui.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                ui.wait(10)
        if started_broker:
            subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False, env=_broker_env(port))


async def _serve(
    settings: ConsumerSettings, sink: MlflowSink, run_demo: bool, api: ApiSettings | None
) -> None:
    app = build_worker(settings, sink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    logger.info("worker started: %s -> %s", settings.kafka.topic, settings.mlflow.tracking_uri)
    gateway = build_server(api, embedded=True) if api is not None else None
    serving = asyncio.create_task(gateway.serve()) if gateway is not None else None
    if api is not None:
        _announce_gateway(api)
    try:
        if run_demo:
            producer = ProducerSettings(kafka=settings.kafka, mlflow=settings.mlflow)
            run_id = await asyncio.to_thread(simulate_training, producer, "acme-corp", 100)
            await asyncio.to_thread(show_run, producer, "acme-corp", run_id)
        logger.info("up; Ctrl-C stops the worker, the MLflow UI and a broker started here")
        await stop.wait()
    finally:
        if gateway is not None and serving is not None:
            gateway.should_exit = True
            await serving
        await app.stop()


def _announce_gateway(api: ApiSettings) -> None:
    url = f"http://{api.host}:{api.port}"
    logger.info("REST gateway on %s (OpenAPI docs: %s/docs)", url, url)
    if api.open_mode:
        banner = "=" * 78
        logger.warning(
            "\n%s\n OPEN MODE: the gateway at %s checks no API key; any caller acts for any"
            " tenant.\n Local development only. `matih-ingest api` (without --open) is the secure"
            " default.\n%s",
            banner,
            url,
            banner,
        )


def _reachable(host: str, port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection((host or "127.0.0.1", port), timeout=1),
    ):
        return True
    return False


def _broker_env(port: str) -> dict[str, str]:
    return {**os.environ, "KAFKA_PORT": port}


def _start_local_broker(host: str, port: str) -> None:
    if host not in ("127.0.0.1", "localhost", "") or not KAFKA_SCRIPT.exists():
        typer.echo(
            f"no Kafka broker answers at {host}:{port};"
            " start one or set MATIH_KAFKA_BOOTSTRAP_SERVERS",
            err=True,
        )
        raise typer.Exit(1)
    logger.info("no broker at %s:%s: starting the local one (deploy/kafka)", host, port)
    subprocess.run([str(KAFKA_SCRIPT), "start"], check=True, env=_broker_env(port))


def _start_ui(tracking_uri: str, port: int) -> subprocess.Popen[bytes]:
    UI_LOG.parent.mkdir(parents=True, exist_ok=True)
    logger.info("MLflow UI on http://127.0.0.1:%d (store %s, log %s)", port, tracking_uri, UI_LOG)
    with UI_LOG.open("ab") as log:
        return _spawn_ui(tracking_uri, port, log)


def _spawn_ui(tracking_uri: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C in the terminal reaches ``up`` alone, which then stops
    # the UI; MLflow's server otherwise passes it to job workers it is still starting,
    # each printing a KeyboardInterrupt traceback. The UI runs no jobs (GenAI features a
    # local look at runs does not use), and its start-up notices go to its log.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
