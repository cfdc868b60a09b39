"""Build (or reuse) etcd, kube-apiserver, kube-controller-manager and helm; print their paths."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devcluster.binaries import main

main()
