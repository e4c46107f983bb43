"""gunicorn settings of datastore_logic (``python -m datastore_logic`` passes this file).

Workers and threads were chosen with ``bench/bench_e2e.py``: the logic hop only relays bytes and
waits on the buffer most of the time, so threads, not processes, give it concurrency. On the 2-CPU
development VM (buffer, logic, API and the load generator sharing both CPUs), 16 concurrent
writers of 375 kB chunks, medians of 3 runs with the httpx client: 1 worker x 8 threads 130
chunks/s (p99 266 ms), 2 x 8 105/s (p99 378 ms), 2 x 4 92/s, 1 x 16 86/s. With urllib3, in one
slow phase of the VM: 1 x 8 192/s, 1 x 16 238/s, 2 x 4 211/s, 1 x 4 182/s, differences within
the machine's noise (the same 1 x 8 did 220-275/s in other runs). Extra processes only compete
with the buffer and the API for CPU, hence one worker per two CPUs and 8 threads each; set
``GLITCHFLOW_LOGIC_WORKERS`` / ``--workers`` where the pod has its own CPUs.
"""

import os
import shutil
import tempfile

from glitchflow_core.memory import keep_freed_memory

# The master sets it; the workers it forks inherit it (see glitchflow_core/memory.py).
keep_freed_memory()

bind = os.environ.get("GLITCHFLOW_LOGIC_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("GLITCHFLOW_LOGIC_WORKERS", str(max(1, (os.cpu_count() or 2) // 2))))
threads = int(os.environ.get("GLITCHFLOW_LOGIC_THREADS", "8"))
worker_class = "gthread"
# SIGTERM: stop accepting, let in-flight writes finish for up to this long, then stop.
graceful_timeout = 30
timeout = 60
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = "warning"
proc_name = "glitchflow-logic"

# Several workers each count their own requests; prometheus_client aggregates them through files
# in PROMETHEUS_MULTIPROC_DIR. It must be set before any worker imports prometheus_client.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="glitchflow-logic-metrics-")


def on_starting(server):
    """Start from empty metric files: counts of a previous run must not leak in."""
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
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
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
