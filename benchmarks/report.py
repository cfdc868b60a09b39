"""Medians over rounds, the printed table, and the plot."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Row = dict[str, Any]
SYSTEM_ORDER = {"ours": 0, "ours-nfs": 1, "go": 2, "floor": 3}
# One colour per system in both panels; line style tells the sizes apart.
COLORS = {"ours": "tab:blue", "ours-nfs": "tab:purple", "go": "tab:orange", "floor": "tab:green"}
LINE_STYLES = (":", "-.", "--", "-")
# The stages of a claim in the breakdown (runner.STAGE_SPANS), in order, with their column
# names. The floor makes no directory: its PV save is "dequeued -> saved".
STAGE_COLUMNS = (
    ("create_to_seen", "seen"),
    ("seen_to_dequeued", "queued"),
    ("dequeued_to_made", "dir made"),
    ("made_to_saved", "PV saved"),
    ("saved_to_pv_seen", "PV back"),
)
STAGE_COLORS = ("tab:gray", "tab:red", "tab:olive", "tab:cyan", "tab:pink")


def _color(system: str) -> str:
    return COLORS.get(system, "tab:gray")


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[Row]) -> list[Row]:
    """One row per (system, N): medians over the rounds of each controller-manager setting.

    Provisioner figures come from the runs with the controller-manager's limits raised;
    "all Bound (default)" comes from the runs with its default limits.
    """
    groups: dict[tuple[str, int], list[Row]] = {}
    for run in runs:
        if not run.get("seed_pairs"):
            groups.setdefault((run["system"], run["n"]), []).append(run)
    rows = [_row(system, n, members) for (system, n), members in groups.items()]
    rows.sort(key=lambda r: (r["n"], SYSTEM_ORDER.get(r["system"], 9)))
    _add_ratios(rows)
    return rows


def _row(system: str, n: int, members: list[Row]) -> Row:
    raised = [r for r in members if r["cm_limits"] == "raised"]
    default = [r for r in members if r["cm_limits"] == "default"]

    def med(key: str, group: list[Row] = raised) -> float | None:
        return _median(r[key] for r in group)

    def lat(kind: str, stat: str) -> float | None:
        return _median(r["latency_s"].get(kind, {}).get(stat) for r in raised)

    return {
        "system": system,
        "label": members[0]["label"],
        "n": n,
        "rounds": len(raised),
        "complete_rounds": sum(1 for r in raised if r["complete"]),
        "default_rounds": len(default),
        "all_pvs_s": med("all_pvs_s"),
        "all_bound_raised_s": med("all_bound_s"),
        "all_bound_default_s": med("all_bound_s", default),
        "all_pvs_default_s": med("all_pvs_s", default),
        "all_deleted_s": med("all_deleted_s"),
        "throughput_per_s": med("throughput_per_s"),
        "claim_to_pv_p50_s": lat("claim_to_pv", "p50"),
        "claim_to_pv_p99_s": lat("claim_to_pv", "p99"),
        "annotated_to_pv_p50_s": lat("annotated_to_pv", "p50"),
        "claim_to_bound_p50_s": lat("claim_to_bound", "p50"),
        "cpu_burst_s": med("cpu_burst_s"),
        "cpu_delete_s": med("cpu_delete_s"),
        "peak_rss_bytes": med("peak_rss_bytes"),
        "floor_all_acked_s": med("floor_all_acked_s"),
        "problem_count": sum(r["problem_count"] for r in members),
        "stages_s": _stage_medians(raised),
    }


def _stage_medians(runs: list[Row]) -> dict[str, dict[str, float]]:
    """Per stage, the median over rounds of each run's p50 and p99."""
    medians: dict[str, dict[str, float]] = {}
    for span in {name for run in runs for name in run.get("stages_s") or {}}:
        for stat in ("p50", "p99"):
            value = _median((run.get("stages_s") or {}).get(span, {}).get(stat) for run in runs)
            if value is not None:
                medians.setdefault(span, {})[stat] = value
    return medians


def stage(row: Row, span: str, stat: str) -> float | None:
    """One stage's figure of a summary row; the PV save of a system that makes no directory
    (the floor) is its dequeued -> saved."""
    stages = row.get("stages_s") or {}
    if span == "made_to_saved" and span not in stages:
        span = "dequeued_to_saved"
    value: float | None = stages.get(span, {}).get(stat)
    return value


def _add_ratios(rows: list[Row]) -> None:
    """Throughput ratios; the Go provisioner's throughput is flat in N, so a size it did not
    run is compared with its nearest measured size (marked ``approx``)."""
    by_system: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["throughput_per_s"]:
            by_system.setdefault(row["system"], {})[row["n"]] = row["throughput_per_s"]
    for row in rows:
        for other, key in (("go", "vs_go"), ("floor", "vs_floor")):
            measured = by_system.get(other, {})
            row[key] = None
            row[f"{key}_approx"] = False
            if not measured or not row["throughput_per_s"]:
                continue
            n = row["n"] if row["n"] in measured else min(measured, key=lambda m: abs(m - row["n"]))
            row[key] = row["throughput_per_s"] / measured[n]
            row[f"{key}_approx"] = n != row["n"]


def format_number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(row: Row, key: str) -> str:
    if row[key] is None:
        return "-"
    return f"{row[key]:.2f}" + ("~" if row[f"{key}_approx"] else "")


COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("system", lambda r: r["system"]),
    ("N", lambda r: str(r["n"])),
    ("rounds", lambda r: f"{r['complete_rounds']}/{r['rounds']}"),
    ("all PVs s", lambda r: format_number(r["all_pvs_s"])),
    ("PVs/s", lambda r: format_number(r["throughput_per_s"])),
    ("Bound s", lambda r: format_number(r["all_bound_raised_s"])),
    ("Bound s (cm 20qps)", lambda r: format_number(r["all_bound_default_s"])),
    (
        "claim->PV p50/p99 s",
        lambda r: (
            f"{format_number(r['claim_to_pv_p50_s'], 2)}/{format_number(r['claim_to_pv_p99_s'], 2)}"
        ),
    ),
    ("annot->PV p50 s", lambda r: format_number(r["annotated_to_pv_p50_s"], 2)),
    ("delete all s", lambda r: format_number(r["all_deleted_s"])),
    ("CPU s", lambda r: format_number(r["cpu_burst_s"])),
    (
        "peak RSS MiB",
        lambda r: format_number(r["peak_rss_bytes"] / 2**20 if r["peak_rss_bytes"] else None, 0),
    ),
    ("vs Go", lambda r: _ratio(r, "vs_go")),
    ("vs floor", lambda r: _ratio(r, "vs_floor")),
    *(
        (
            f"{title} p50/p99",
            lambda r, span=span: (
                f"{format_number(stage(r, span, 'p50'), 2)}/"
                f"{format_number(stage(r, span, 'p99'), 2)}"
            ),
        )
        for span, title in STAGE_COLUMNS
    ),
]


# The columns of each table: speed first, then what it cost and how it compares. Two tables of
# about 100 characters read on any terminal; one of every column did not.
_SPEED = (
    "system",
    "N",
    "rounds",
    "all PVs s",
    "PVs/s",
    "Bound s",
    "Bound s (cm 20qps)",
    "claim->PV p50/p99 s",
    "annot->PV p50 s",
)
_COST = ("system", "N", "delete all s", "CPU s", "peak RSS MiB", "vs Go", "vs floor")
# Where a claim's time goes, for the systems that record their stages.
_STAGES = ("system", "N", *(f"{title} p50/p99" for _, title in STAGE_COLUMNS))


def table(rows: list[Row]) -> str:
    """The summary as aligned tables (speed, cost, stages); a column no row has a value for
    is left out, and the stage table lists only the rows that have stages."""
    formatters = dict(COLUMNS)
    parts = []
    staged = [row for row in rows if row.get("stages_s")]
    for names, members in ((_SPEED, rows), (_COST, rows), (_STAGES, staged)):
        if not members:
            continue
        cells = [[formatters[name](row) for name in names] for row in members]
        kept = [
            index
            for index, name in enumerate(names)
            if index < 2 or any(line[index] not in ("-", "-/-") for line in cells)
        ]
        parts.append(
            _aligned([names[i] for i in kept], [[line[i] for i in kept] for line in cells])
        )
    return "\n\n".join(parts)


def shown_columns(rows: list[Row]) -> set[str]:
    """The column names table() prints for these rows (footnotes explain only those)."""
    return {name for name, fmt in COLUMNS if any(fmt(row) not in ("-", "-/-") for row in rows)}


def _aligned(header: list[str], body: list[list[str]]) -> str:
    lines_in = [header, *body]
    widths = [max(len(line[i]) for line in lines_in) for i in range(len(header))]
    lines = []
    for index, line in enumerate(lines_in):
        lines.append(
            "  ".join(
                cell.ljust(width) if column == 0 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def plot(runs: list[Row], rows: list[Row], path: Path) -> str | None:
    """Claim latency CDFs and throughput per system and N; None, or why there is no plot."""
    try:
        import matplotlib  # noqa: PLC0415 - a benchmark-only dependency, imported on use

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]'); no plot"

    figure, (cdf, bars, stages) = plt.subplots(
        1, 3, figsize=(21, 5.5), gridspec_kw={"width_ratios": [1, 1, 1.1]}
    )
    curves: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        if run["cm_limits"] != "raised" or run.get("seed_pairs"):
            continue
        for claim in run["claims"]:
            created, _annotated, pv = claim[0], claim[1], claim[2]
            if created is not None and pv is not None:
                curves.setdefault((run["system"], run["n"]), []).append(pv - created)
    sizes_seen = sorted({n for _, n in curves})
    for (system, n), values in sorted(
        curves.items(), key=lambda item: (SYSTEM_ORDER.get(item[0][0], 9), item[0][1])
    ):
        values.sort()
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        cdf.step(
            values,
            fractions,
            where="post",
            label=f"{system} N={n}",
            color=_color(system),
            linestyle=LINE_STYLES[sizes_seen.index(n) % len(LINE_STYLES)],
        )
    cdf.set_xscale("log")
    cdf.set_xlabel("claim created -> PV exists (s, log scale)")
    cdf.set_ylabel("fraction of claims")
    cdf.set_title("Claim latency CDF (all rounds, controller-manager limits raised)")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize=8)

    sizes = sorted({row["n"] for row in rows})
    systems = sorted({row["system"] for row in rows}, key=lambda s: SYSTEM_ORDER.get(s, 9))
    width = 0.8 / max(len(systems), 1)
    for index, system in enumerate(systems):
        values = []
        for n in sizes:
            match = [r for r in rows if r["system"] == system and r["n"] == n]
            values.append((match[0]["throughput_per_s"] or 0.0) if match else 0.0)
        positions = [i + index * width for i in range(len(sizes))]
        drawn = bars.bar(positions, values, width=width, label=system, color=_color(system))
        # Three significant digits: on a log axis near-equal bars look alike, their labels do not.
        bars.bar_label(
            drawn,
            labels=[f"{v:.3g}" if v else "" for v in values],
            fontsize=7,
            rotation=90,
            padding=2,
        )
    bars.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(sizes))])
    bars.set_xticklabels([f"N={n}" for n in sizes])
    bars.set_ylabel("claims provisioned per second (N / all PVs created)")
    bars.set_yscale("log")
    # Bars on a log axis need a fixed base, or the shortest bar looks like nothing; room above
    # the tallest keeps its rotated label inside the frame.
    tallest = max((row["throughput_per_s"] or 0.0 for row in rows), default=1.0)
    bars.set_ylim(bottom=1, top=max(tallest, 1.0) * 6)
    bars.set_title("Throughput per system and N (median of rounds)")
    bars.grid(True, axis="y", which="both", alpha=0.3)
    # Beside the axes, never over a bar.
    bars.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _plot_stages(stages, rows)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return None


def _plot_stages(axes: Any, rows: list[Row]) -> None:
    """Per system and N, two stacked bars: the stages' p50s, and their p99s."""
    staged = [row for row in rows if row.get("stages_s")]
    labels: list[str] = []
    for row in staged:
        labels += [f"{row['system']} N={row['n']} p50", f"{row['system']} N={row['n']} p99"]
    for index, ((span, title), color) in enumerate(zip(STAGE_COLUMNS, STAGE_COLORS, strict=True)):
        values = [stage(row, span, stat) or 0.0 for row in staged for stat in ("p50", "p99")]
        lefts = [
            sum(stage(row, other, stat) or 0.0 for other, _ in STAGE_COLUMNS[:index])
            for row in staged
            for stat in ("p50", "p99")
        ]
        axes.barh(labels, values, left=lefts, color=color, label=title)
    axes.invert_yaxis()
    axes.set_xlabel("seconds (stacked per-stage percentiles)")
    axes.set_title("Where a claim's time goes: create -> seen -> queued -> dir -> PV saved -> back")
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.tick_params(axis="y", labelsize=7)
    if not staged:
        axes.text(0.5, 0.5, "no stage times recorded", ha="center", transform=axes.transAxes)
