# syntax=docker/dockerfile:1
# nfs-provisioner image. `make image` builds it with podman (hack/devcluster/image.py); by hand,
# from the repository root:
#   docker build -t ghcr.io/nfs-provisioner/nfs-provisioner:0.1.0 .
# Run as another user (see charts/nfs-provisioner/README.md, "Root squash"):
#   docker build --build-arg UID=65534 --build-arg GID=65534 -t ... .
ARG PYTHON_IMAGE=python:3.11-slim

# Builder: a wheel of the project and a virtualenv with it and its runtime dependencies.
FROM ${PYTHON_IMAGE} AS builder
# A CA bundle for pip (behind a TLS-intercepting proxy): mount the host's bundle into the build
# and name it here, e.g. --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro
# --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt. Empty: pip's own CA bundle.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nfs_provisioner ./nfs_provisioner
COPY hack/image-install.sh /usr/local/bin/image-install.sh
RUN sh /usr/local/bin/image-install.sh /src /opt/nfs-provisioner

# Final: the same slim base (no compilers, no build tools) plus the virtualenv only. The
# virtualenv keeps its path, so its scripts' interpreter lines stay valid.
FROM ${PYTHON_IMAGE}
# The Go image runs as root, and exports prepared for it are often root-owned: 0 keeps them
# working. Under root squash the server maps uid 0 to its anonymous uid anyway.
ARG UID=0
ARG GID=0
COPY --from=builder /opt/nfs-provisioner /opt/nfs-provisioner
# Settings come from the Go image's variables (NFS_SERVER, NFS_PATH, PROVISIONER_NAME,
# ENABLE_LEADER_ELECTION, POD_NAMESPACE) and the export is mounted at /persistentvolumes, as
# there. No VOLUME: a forgotten mount must fail at start ("the export is not mounted"), not
# fill an anonymous volume.
ENV PATH=/opt/nfs-provisioner/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NFS_MOUNT_PATH=/persistentvolumes
USER ${UID}:${GID}
# /metrics, /healthz and /readyz (the chart's probes).
EXPOSE 8080
ENTRYPOINT ["nfs-provisioner", "run"]
