"""Operator commands: ``adopt`` (move stuck claims onto a class) and ``doctor`` (check the setup).

They run once and exit, talk to the API server through ``nfs_provisioner.kube`` and keep
their decisions in pure functions (``claims``, ``checks``, ``mounts``) apart from the I/O.
"""
