"""Benchmarks of nfs_provisioner against the Go original and the API server's own limit.

They use the development helpers in ``hack/`` (``devcluster``, ``nfsworld``), which the
development install puts on ``sys.path`` (``dev-mode-dirs`` in pyproject.toml); the installed
wheel, and so the image, carries ``nfs_provisioner`` only.
"""
