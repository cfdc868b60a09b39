"""Build the container image with podman (``make image``); print its name."""

from devcluster.image import main

main()
