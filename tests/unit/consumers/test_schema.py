"""The bulk path writes MLflow's tables only at schema revisions it was tested against.

The MLflow the project installs must create its stores at one of them; otherwise every
fresh store would quietly take the slower API path, and the failure would show only as
the bulk path's tests finding it unused.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import mlflow.store
from alembic.script import ScriptDirectory

from consumers.sink.schema import TESTED_REVISIONS


def test_the_installed_mlflow_creates_stores_at_a_revision_the_bulk_path_knows() -> None:
    migrations = ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations"))
    head = migrations.get_current_head()
    assert head in TESTED_REVISIONS, (
        f"MLflow {version('mlflow')} creates stores at schema revision {head}: check that its"
        " migrations since the last tested revision leave runs, tags, params, metrics and"
        " latest_metrics as the bulk path writes them, run the write-path tests, then add"
        " the revision to TESTED_REVISIONS"
    )
