"""Runs the datastore on one machine: ``glitchflow up`` and the process supervisor behind it.

The services are started as processes (``python -m databuffer`` ...), never imported, so this
package depends on ``glitchflow_core`` only. Tests and benchmarks use the supervisor to start,
kill and restart services.
"""

from glitchflow_stack.services import Layout, service_processes
from glitchflow_stack.supervisor import (
    READY_TIMEOUT,
    ManagedProcess,
    ServiceFailed,
    Stack,
    free_port,
    port_in_use,
)

__all__ = [
    "READY_TIMEOUT",
    "Layout",
    "ManagedProcess",
    "ServiceFailed",
    "Stack",
    "free_port",
    "port_in_use",
    "service_processes",
]
