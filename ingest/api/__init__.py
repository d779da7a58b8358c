"""The REST gateway: the spec's run endpoints over Kafka (writes) and MLflow (reads)."""

from ingest.api.app import create_app
from ingest.api.server import build_server
from ingest.api.settings import ApiSettings

__all__ = ["ApiSettings", "build_server", "create_app"]
