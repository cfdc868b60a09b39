"""A seeded chaos soak of the provisioner, with its invariants checked all the time.

Two replicas with leader election run on the real local control plane (devcluster) and a real
NFS server (nfsworld: NFS-Ganesha, a fuse-nfs mount), each talking to the API server through
its own proxy (``proxy``). A schedule drawn from the seed (``schedule``) creates, deletes and
grows claims across namespaces and classes, and injects faults one at a time; a writer puts
known content into every Bound volume through the mount, as a pod would. Every second a
snapshot of the API and the export is checked (``invariants``); any violation stops the run
with the seed, the schedule so far and the command that replays it. The report (``report``)
goes to ``.soak-results/``.

``make soak`` runs it (``SOAK_DURATION``, ``SOAK_SEED``); ``python hack/soak --help``.
"""
