"""Benchmarks of nfs_provisioner against the Go original and the API server's own limit.

They use the development control plane helpers in ``hack/devcluster``, which are not part of
the installed package, so importing this package puts ``hack/`` on ``sys.path``.
"""

import sys
from pathlib import Path

_HACK = str(Path(__file__).resolve().parent.parent / "hack")
if _HACK not in sys.path:
    sys.path.insert(0, _HACK)
