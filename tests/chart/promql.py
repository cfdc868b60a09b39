"""What a PromQL expression of the chart reads: metric names and label names.

Not a PromQL parser: the chart's expressions follow one shape (every series selector carries
braces, grouping is written `by (...)`/`on (...)`), and ``references`` checks that shape, so an
expression it cannot read fully is an error, not a silent pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?')
_GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[0-9a-z]+\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_FUNCTION = re.compile(r"\b([a-z_0-9]+)\s*\(")
_IDENTIFIER = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}
_FUNCTIONS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "rate",
    "increase",
    "absent",
    "histogram_quantile",
}
# Labels Prometheus itself adds to every series it scrapes through a ServiceMonitor.
TARGET_LABELS = frozenset({"job", "instance", "pod", "service", "endpoint", "container"})


@dataclass(frozen=True)
class References:
    # metric name -> label names its selectors match on
    selectors: dict[str, set[str]]
    # label names of by/without/on/ignoring clauses
    grouping: set[str]


def references(expr: str) -> References:
    selectors: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(expr):
        labels = selectors.setdefault(name, set())
        rest = matchers
        for match in _MATCHER.finditer(matchers):
            labels.add(match.group(1))
            rest = rest.replace(match.group(0), "", 1)
        if rest.strip():
            raise ValueError(f"cannot read the matchers {matchers!r} of {expr!r}")
    grouping = {
        label.strip()
        for _, labels in _GROUPING.findall(expr)
        for label in labels.split(",")
        if label.strip()
    }
    # Whatever is left once selectors, clauses, ranges and known functions are gone must be
    # numbers and operators: a bare metric name (no braces) would have escaped the check.
    rest = _GROUPING.sub(" ", _SELECTOR.sub(" ", _STRING.sub('""', expr)))
    rest = _RANGE.sub(" ", rest)
    for function in _FUNCTION.findall(rest):
        if function not in _FUNCTIONS:
            raise ValueError(f"unknown function {function!r} in {expr!r}")
    rest = _FUNCTION.sub("(", rest)
    leftovers = set(_IDENTIFIER.findall(rest)) - _KEYWORDS
    if leftovers:
        raise ValueError(f"cannot read {sorted(leftovers)} in {expr!r}")
    return References(selectors, grouping)


def exposed_labels(exposition: str) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry, from a /metrics text exposition."""
    found: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        head = line.rsplit(" ", 1)[0]
        name, _, labels = head.partition("{")
        found.setdefault(name, set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', labels))
    return found


def problems(exprs: Iterable[str], exposed: Mapping[str, set[str]]) -> list[str]:
    """Each metric or label an expression reads that the exposition does not have."""
    found: list[str] = []
    for expr in exprs:
        refs = references(expr)
        for name, labels in refs.selectors.items():
            if name not in exposed:
                found.append(f"{name} is not exported (in {expr!r})")
                continue
            for label in sorted(labels - exposed[name] - TARGET_LABELS):
                found.append(f"{name} has no label {label} (in {expr!r})")
        for label in sorted(refs.grouping - TARGET_LABELS):
            for name in refs.selectors:
                if name in exposed and label not in exposed[name]:
                    found.append(f"grouping by {label}: {name} has no such label (in {expr!r})")
    return found
