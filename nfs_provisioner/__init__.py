"""Kubernetes dynamic provisioner: PersistentVolumeClaims served from an NFS export."""

__version__ = "0.1.0"
