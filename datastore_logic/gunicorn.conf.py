"""gunicorn settings of datastore_logic, from its `Settings` (``python -m datastore_logic`` passes
this file; ``gunicorn -c datastore_logic/gunicorn.conf.py 'datastore_logic:create_app()'`` works
too). Why one worker per two CPUs and 8 threads: docs/PERFORMANCE.md.
"""

import os
import shutil
import tempfile

from datastore_logic.__main__ import PROG
from datastore_logic.settings import Settings
from glitchflow_core.memory import keep_freed_memory
from glitchflow_core.settings import load_settings

# The master sets it; the workers it forks inherit it (see glitchflow_core/memory.py).
keep_freed_memory()

settings = load_settings(Settings, PROG)
bind = f"{settings.host}:{settings.port}"
workers = settings.logic_workers
threads = settings.logic_threads
worker_class = "gthread"
# SIGTERM: stop accepting, let in-flight writes finish for up to this long, then stop.
graceful_timeout = settings.graceful_timeout
timeout = 60
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = "warning"
proc_name = "glitchflow-logic"

# Several workers each count their own requests; prometheus_client aggregates them through files
# in PROMETHEUS_MULTIPROC_DIR, which must be set before any worker imports prometheus_client.
_OWN_METRICS_DIR = settings.prometheus_multiproc_dir is None
metrics_dir = (
    tempfile.mkdtemp(prefix="glitchflow-logic-metrics-")
    if _OWN_METRICS_DIR
    else str(settings.prometheus_multiproc_dir)
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def on_starting(server):
    """Start from empty metric files: counts of a previous run must not leak in."""
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(metrics_dir, name))


def child_exit(server, worker):
    """Drop the live gauges of a worker that is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metric files' folder if this config created it."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(metrics_dir, ignore_errors=True)
