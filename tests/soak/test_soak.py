"""The soak tier: the 3-minute seeded chaos soak, run as `make soak` runs it.

It needs root (NFS-Ganesha, fuse-nfs, the export's tmpfs), as CI has; without it the soak
exits with that reason and this test fails with it: a soak that did not run proves nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from soak.__main__ import DEFAULT_DURATION, DEFAULT_SEED
from soak.schedule import build_schedule, parse_duration

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1200)]


def test_the_seeded_soak_injects_its_schedule_and_finds_no_violation() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "hack/soak",
            "--duration",
            DEFAULT_DURATION,
            "--seed",
            str(DEFAULT_SEED),
            "--results",
            str(ROOT / ".soak-results"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = re.search(r"report: (\S+\.json)", result.stdout)
    assert found is not None, output
    report = json.loads(Path(found[1]).read_text())
    schedule = build_schedule(DEFAULT_SEED, parse_duration(DEFAULT_DURATION))
    assert report["violations"] == []
    assert report["errors"] == []
    # Deterministic in what it injects: the faults are the schedule's, kind and offset.
    assert report["schedule_fingerprint"] == schedule.fingerprint()
    assert [(f["kind"], f["at"]) for f in report["faults"]] == [
        (f.kind, f.at) for f in schedule.faults
    ]
    assert all(not f["error"] for f in report["faults"]), report["faults"]
    assert report["claim_lifecycles"] > 100
    assert report["final_convergence_s"] is not None
