"""Kubernetes dynamic provisioner serving PersistentVolumeClaims from directories on an NFS export."""

__version__ = "0.1.0"
