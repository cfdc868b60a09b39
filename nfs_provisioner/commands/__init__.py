"""The one-shot commands beside ``run``: ``adopt`` (move stuck claims onto a class), ``audit``
(what the exports hold that no PV accounts for) and ``doctor`` (check the setup).

Each runs once and exits, talks to the API server through ``nfs_provisioner.kube`` and keeps its
decisions in pure functions (``claims``, ``checks``, ``mounts``) apart from the I/O; ``tables``
is their shared output.
"""
