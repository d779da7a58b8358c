"""Reading back what the workers wrote: MLflow runs by producer run id, and read-your-writes.

Import the modules themselves (``ingest.tracking.reader``, ``ingest.tracking.consistency``):
this package imports nothing, so that waiting for the workers never loads MLflow.
"""

__all__: list[str] = []
