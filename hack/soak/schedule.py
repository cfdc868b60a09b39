"""The soak's schedule: claim operations and faults, drawn from one seed, and nothing else.

Pure: the same seed, duration and world give the same operations and faults (kinds, targets,
offsets, hold times), so a failing run is replayed by its seed. What an operation finds when
it runs (which claim a delete picks, say) depends on the run; ``pick`` makes even that choice
seeded among what exists then.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from typing import Final

NAMESPACES: Final = ("soak-a", "soak-b", "soak-c")
# StorageClass name -> what happens to a released volume's directory, and how it is named.
CLASSES: Final = {
    "soak-delete": "delete",
    "soak-archive": "archive",
    "soak-retain": "retain",
    # pathPattern ${.PVC.namespace}/${.PVC.name}; archived on release.
    "soak-pattern": "archive",
    # volumeBindingMode WaitForFirstConsumer; removed on release.
    "soak-late": "delete",
}
PATTERN_CLASS: Final = "soak-pattern"
LATE_CLASS: Final = "soak-late"

OPERATION_RATE: Final = 3.5  # operations per second, a Poisson process
OPERATION_WEIGHTS: Final = {"create": 48, "delete": 45, "expand": 7}

FIRST_FAULT_AT: Final = 8.0
# Faults come one at a time: the next starts this long (uniform) after the last one healed.
FAULT_GAP: Final = (3.0, 9.0)
# Faults stop this long before the end, so the run ends on a converged system.
QUIET_TAIL: Final = 10.0

# Kind -> (low, high) of its hold time in seconds: how long the fault lasts before it is healed
# (a killed replica restarted, a stopped one continued, a server started again...).
FAULT_HOLDS: Final = {
    "kill-leader": (0.5, 4.0),
    "kill-standby": (0.5, 4.0),
    "pause-leader": (1.0, 9.0),
    "pause-standby": (1.0, 9.0),
    "apiserver-restart": (1.0, 5.0),
    "etcd-compaction": (0.0, 0.0),
    "controller-manager-restart": (0.5, 3.0),
    "nfs-restart": (1.0, 5.0),
    "export-full": (2.0, 6.0),
    "export-read-only": (2.0, 6.0),
    "api-delay": (3.0, 8.0),
    "api-stall": (1.0, 6.0),
    "api-drop": (1.0, 4.0),
}
# Which replicas' API connections a proxy fault hits.
PROXY_TARGETS: Final = ("leader", "standby", "both")
API_DELAY_MS: Final = (50, 400)


@dataclass(frozen=True)
class Operation:
    at: float
    kind: str
    namespace: str
    storage_class: str
    # Which of the candidates (sorted by name) a delete or expand takes: int(pick * count).
    pick: float


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    hold: float
    # "leader", "standby" or "both" for proxy faults; "" otherwise.
    target: str = ""
    # Milliseconds per forwarded chunk, for api-delay.
    delay_ms: int = 0

    @property
    def heals_at(self) -> float:
        return self.at + self.hold


@dataclass(frozen=True)
class Schedule:
    seed: int
    duration: float
    operations: tuple[Operation, ...]
    faults: tuple[Fault, ...]

    def fingerprint(self) -> str:
        """A short digest of everything the schedule injects, to compare two runs at a glance."""
        body = json.dumps(
            {
                "operations": [asdict(o) for o in self.operations],
                "faults": [asdict(f) for f in self.faults],
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def faults_until(self, offset: float) -> list[Fault]:
        return [f for f in self.faults if f.at <= offset]


def build_schedule(seed: int, duration: float) -> Schedule:
    if duration <= 0:
        raise ValueError(f"the soak's duration must be positive, not {duration}")
    return Schedule(
        seed=seed,
        duration=duration,
        operations=tuple(_operations(random.Random(f"{seed}/operations"), duration)),
        faults=tuple(_faults(random.Random(f"{seed}/faults"), duration)),
    )


def _operations(rng: random.Random, duration: float) -> list[Operation]:
    kinds = list(OPERATION_WEIGHTS)
    weights = list(OPERATION_WEIGHTS.values())
    classes = list(CLASSES)
    found: list[Operation] = []
    at = 0.0
    while True:
        at += rng.expovariate(OPERATION_RATE)
        if at >= duration:
            return found
        found.append(
            Operation(
                at=round(at, 3),
                kind=rng.choices(kinds, weights)[0],
                namespace=rng.choice(NAMESPACES),
                storage_class=rng.choice(classes),
                pick=round(rng.random(), 6),
            )
        )


def _faults(rng: random.Random, duration: float) -> list[Fault]:
    kinds = list(FAULT_HOLDS)
    found: list[Fault] = []
    at = FIRST_FAULT_AT
    while True:
        kind = rng.choice(kinds)
        low, high = FAULT_HOLDS[kind]
        hold = round(rng.uniform(low, high), 3)
        target = rng.choice(PROXY_TARGETS) if kind.startswith("api-") else ""
        delay_ms = rng.randint(*API_DELAY_MS) if kind == "api-delay" else 0
        if at + hold > duration - QUIET_TAIL:
            return found
        found.append(Fault(round(at, 3), kind, hold, target, delay_ms))
        at = round(at + hold + rng.uniform(*FAULT_GAP), 3)


def parse_duration(text: str) -> float:
    """``180``, ``180s``, ``3m``, ``1h``: seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            seconds = float(value[:-1]) * units[value[-1]]
        else:
            seconds = float(value)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 180, 180s, 3m or 1h)") from None
    if seconds <= 0:
        raise ValueError(f"the soak's duration must be positive, not {text!r}")
    return seconds
