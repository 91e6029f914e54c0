"""StreamFlow's runtime core, shared by the API and the jobs: settings, the feature schema, SQL
tables, the Feast repository, data sets, the model artifact, logging and progress, and the
drift job's promises to its readers. It imports nothing from api/, jobs/ or tools/
(import-linter contracts in pyproject.toml)."""

import os

__version__ = "0.1.0"

# Telemetry off, before Feast or Evidently is imported anywhere (both read these at import):
# clusters often have no route out, and users did not ask to be reported on. Set here, in the
# one package every StreamFlow process imports first; an explicit value from the environment wins.
os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")
