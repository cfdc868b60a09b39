"""Build (or reuse) etcd, kube-apiserver, kube-controller-manager and helm; print their paths."""

from devcluster.binaries import main

main()
