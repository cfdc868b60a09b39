"""Build the container image with podman (``make image``); print its name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devcluster.image import main

main()
