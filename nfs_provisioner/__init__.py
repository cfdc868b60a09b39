"""Kubernetes dynamic provisioner: PersistentVolumeClaims served from an NFS export."""

import sys

__version__ = "0.1.0"

# structlog imports rich whenever it is installed (a development environment has it), for
# pretty tracebacks; our records are JSON lines or plain console text, and rich would cost
# every process about 5 MB of resident memory. The image does not install it either.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
