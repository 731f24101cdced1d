"""The app Celery workers run: `celery -A mlops_assets.celery_app worker -n NAME@%h -c CORES`.

It reads the same environment as the code location (`MLOPS_CELERY_BROKER_URL`, ...), so workers
and runs meet on the same queue with the same settings; each task loads its job from
`mlops_assets.definitions`. Only workers import this module.
"""

from mlops_assets.executors import celery_worker_app
from mlops_assets.settings import Settings

app = celery_worker_app(Settings.from_env())
