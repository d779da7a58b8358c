"""The ``matih-ingest`` command line: one module per command, registered in ``main``."""

__all__: list[str] = []
