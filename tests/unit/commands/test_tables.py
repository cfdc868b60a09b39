"""Plain-text tables."""

from __future__ import annotations

from nfs_provisioner.commands.tables import render


def test_columns_are_aligned_to_the_widest_cell_and_lines_not_padded() -> None:
    text = render(("NAMESPACE", "CLAIM"), [("kubeflow", "minio-pvc"), ("istio-system", "a")])
    assert text.splitlines() == [
        "NAMESPACE     CLAIM",
        "kubeflow      minio-pvc",
        "istio-system  a",
    ]


def test_headers_only() -> None:
    assert render(("A", "B"), []) == "A  B"
