"""MLflow's tracking-store plugin for ``matih://`` URIs: existing MLflow code logs through
the pipeline unchanged.

MLflow loads ``producers.mlflow.store`` through its ``mlflow.tracking_store`` entry point;
``import producers`` never imports this package (nor MLflow).
"""

__all__: list[str] = []
