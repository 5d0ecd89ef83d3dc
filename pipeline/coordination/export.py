"""Write a coordination network: GraphML and GEXF for Gephi and networkx, CSV nodes/edges, Parquet groups and engagements.

GraphML and GEXF have no list type, so list attributes (an edge's targets and windows, a node's
nothing) are written as ';'-joined strings. Null attributes are left out of the element (both
formats allow a missing value). The GEXF is GEXF 1.2 in mode "dynamic": each edge carries the
interval [first_ts, last_ts] of its co-engagements and each node [first, last engagement], as
ISO 8601 UTC times (timeformat "date", which Gephi parses as date-times and networkx reads back as
text), so Gephi's timeline replays a campaign. An untimed network is a static GEXF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from pipeline.coordination.network import CoordinationResult
from pipeline.errors import ZombieScanError
from pipeline.io import atomic_path

if TYPE_CHECKING:  # networkx is imported only when a GraphML or GEXF file is written (~0.2 s, ~25 MB)
    import networkx as nx

FORMATS = ("graphml", "gexf", "csv")
REPORT = "report.json"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_formats(texts: Iterable[str] | None) -> tuple[str, ...]:
    """Network formats from `--format` values (repeatable, or comma-separated); all of them when none.

    Raises:
        ZombieScanError: naming an unknown format.
    """
    chosen: list[str] = []
    for text in texts or ():
        for part in text.split(","):
            name = part.strip().lower()
            if name not in FORMATS:
                raise ZombieScanError(f"--format {part.strip()!r}: unknown format; expected some of {', '.join(FORMATS)}")
            if name not in chosen:
                chosen.append(name)
    return tuple(f for f in FORMATS if f in chosen) or FORMATS


def is_coordination_output(folder: Path) -> bool:
    """A folder an earlier `coordination` run wrote (its report.json says so), or an empty one."""
    if not any(folder.iterdir()):
        return True
    try:
        return "min_repeats" in json.loads((folder / REPORT).read_text()) and (folder / "engagements.parquet").is_file()
    except (OSError, ValueError):
        return False


def check_output(out: Path | str, overwrite: bool) -> None:
    """Refuse, before any work, an output folder that exists (without `overwrite`) or that another command wrote.

    Raises:
        ZombieScanError: naming the folder and what to do.
    """
    out = Path(out)
    if out.is_file():
        raise ZombieScanError(f"--out {out}: is an existing file; give a folder path for the coordination network")
    if not out.is_dir():
        return
    if not overwrite:
        raise ZombieScanError(f"--out {out}: exists; give --overwrite to replace it, or choose another folder")
    if not is_coordination_output(out):
        raise ZombieScanError(
            f"--out {out}: is an existing folder that `zombiescan coordination` did not write; refusing to replace it "
            "(choose another path, or remove it)"
        )


def write_coordination(out: Path | str, result: CoordinationResult, formats: Sequence[str] = FORMATS, overwrite: bool = False) -> None:
    """Write `result` as the folder `out`, whole (a temporary folder beside it, renamed into place).

    Always: groups.parquet, engagements.parquet and report.json; per format: network.graphml,
    network.gexf, nodes.csv + edges.csv.

    Raises:
        ZombieScanError: `out` exists and `overwrite` is false, or it is not an earlier coordination output.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ZombieScanError(f"--format {', '.join(unknown)}: unknown format; expected some of {', '.join(FORMATS)}")
    check_output(out, overwrite)
    with atomic_path(Path(out), replaceable_dir=is_coordination_output) as tmp:
        tmp.mkdir()
        result.groups.write_parquet(tmp / "groups.parquet")
        result.engagements.write_parquet(tmp / "engagements.parquet")
        nodes, edges = flat(result.nodes), flat(result.edges)
        if "csv" in formats:
            nodes.write_csv(tmp / "nodes.csv")
            edges.write_csv(tmp / "edges.csv")
        if "graphml" in formats or "gexf" in formats:
            import networkx as nx

            if "graphml" in formats:
                nx.write_graphml(to_networkx(nodes, edges, gexf=False), tmp / "network.graphml")
            if "gexf" in formats:
                write_gexf(to_networkx(nodes, edges, gexf=True), tmp / "network.gexf", result.report.get("last_ts"))
        (tmp / REPORT).write_text(json.dumps({**result.report, "formats": list(formats)}, indent=2, sort_keys=True) + "\n")


def write_gexf(graph: nx.Graph, path: Path, last_ts: str | None) -> None:
    """networkx's GEXF 1.2 writer, with the file's date taken from the data (the last engagement)
    instead of today's, so the same input gives the same bytes."""
    import networkx as nx

    text = "\n".join(nx.generate_gexf(graph, version="1.2draft"))
    day = (last_ts or "1970-01-01")[:10]
    path.write_text(re.sub(r'lastmodifieddate="[^"]*"', f'lastmodifieddate="{day}"', text, count=1) + "\n", encoding="utf-8")


def flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists as ';'-joined text and times as ISO 8601 UTC text: what CSV, GraphML and GEXF can hold."""
    out = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            out.append(col.cast(pl.List(pl.String)).list.join(";"))
        elif isinstance(dtype, pl.Datetime):
            out.append(col.dt.convert_time_zone("UTC").dt.strftime(TIME_FORMAT))
        else:
            out.append(col)
    return frame.select(out)


def _attributes(row: dict[str, Any], skip: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None and k not in skip}


def to_networkx(nodes: pl.DataFrame, edges: pl.DataFrame, *, gexf: bool) -> nx.Graph:
    """An undirected graph of flat (see `flat`) nodes and edges; nodes by account_id, edge weight = shared targets.

    For GEXF, `start`/`end` (node: first/last engagement; edge: first/last co-engagement) make the
    writer declare a dynamic graph; for GraphML they stay ordinary attributes named as the columns.
    """
    import networkx as nx

    graph = nx.Graph(name="zombiescan coordination network")
    for row in nodes.iter_rows(named=True):
        attrs = _attributes(row, ("account_id",))
        if gexf:
            attrs["label"] = row["account_id"]
            if row.get("first_ts") is not None:
                attrs["start"], attrs["end"] = row["first_ts"], row["last_ts"]
        graph.add_node(row["account_id"], **attrs)
    for row in edges.iter_rows(named=True):
        attrs = _attributes(row, ("source", "target"))
        attrs["weight"] = row["shared_targets"]
        if gexf and row.get("first_ts") is not None:
            attrs["start"], attrs["end"] = row["first_ts"], row["last_ts"]
        graph.add_edge(row["source"], row["target"], **attrs)
    return graph
