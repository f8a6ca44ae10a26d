"""Ranked results (ICCV/TPAMI style): each query beside its top-k gallery matches.

Gallery entries with the query's id and camera are junk under the protocol and are left out,
as in ``evaluation/metrics.py``. A correct match gets a green frame, a wrong one red. The HTML
report lists queries worst first by average precision and links each to its PNG strip.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnireid.evaluation.metrics import Ids, Matrix, as_numpy, rank_inputs
from omnireid.visualize.canvas import BLUE, GREEN, RED, captioned, framed, hstack, load_cell

if TYPE_CHECKING:
    from omnireid.evaluation.evaluate import Evaluation


@dataclass(frozen=True)
class QueryRanking:
    """One query's ranked gallery (junk removed): ``gallery`` indices best first, with
    ``correct`` flags, its average precision ``ap`` and 1-based ``first_hit`` rank."""

    query: int
    gallery: np.ndarray
    correct: np.ndarray
    ap: float
    first_hit: int


def rank_queries(
    distmat: Matrix, q_pids: Ids, g_pids: Ids, q_camids: Ids, g_camids: Ids, topk: int = 10
) -> list[QueryRanking]:
    """Rank the gallery for each row of the ``(N, M)`` distance matrix.

    Queries without a valid (other-camera) match are left out. ``gallery``/``correct`` hold the
    ``topk`` best entries; ``ap`` is over the whole kept gallery (its mean is the protocol mAP).
    """
    distmat, q_pids, g_pids, q_camids, g_camids = rank_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids
    )
    out = []
    n = len(q_pids)
    for i in range(n):
        order = np.argsort(distmat[i], kind="stable")
        junk = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        order = order[~junk]
        match = g_pids[order] == q_pids[i]
        if not match.any():
            continue
        hits = np.flatnonzero(match)
        ap = float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))
        out.append(QueryRanking(i, order[:topk], match[:topk], ap, int(hits[0]) + 1))
    return out


def draw_strip(
    ranking: QueryRanking,
    q_paths: Sequence[str],
    g_paths: Sequence[str],
    q_pids: Ids,
    g_pids: Ids,
    q_camids: Ids,
    g_camids: Ids,
    height: int = 128,
    width: int = 64,
):
    """The query (blue frame) then its ranked gallery (green correct, red wrong), each captioned
    with rank, id and camera (1-based). Size: ``(k + 1) * width + gaps`` x ``height + 42``."""
    q_pids, g_pids = as_numpy(q_pids), as_numpy(g_pids)
    q_camids, g_camids = as_numpy(q_camids), as_numpy(g_camids)
    q = ranking.query
    cells = [
        captioned(
            framed(load_cell(q_paths[q], height, width), BLUE),
            ["query", f"id {q_pids[q]}", f"cam {q_camids[q] + 1}"],
        )
    ]
    for rank, (g, ok) in enumerate(zip(ranking.gallery, ranking.correct, strict=True), 1):
        image = framed(load_cell(g_paths[g], height, width), GREEN if ok else RED)
        cells.append(captioned(image, [f"#{rank}", f"id {g_pids[g]}", f"cam {g_camids[g] + 1}"]))
    return hstack(cells, gap=3, first_gap=12)


def select_queries(rankings: Sequence[QueryRanking], worst: int, best: int) -> list[QueryRanking]:
    """The ``worst`` lowest-AP queries then the ``best`` highest (no repeats), worst first."""
    ordered = sorted(rankings, key=lambda r: (r.ap, r.query))
    chosen = ordered[:worst]
    taken = {r.query for r in chosen}
    tail = [r for r in ordered[max(len(ordered) - best, 0) :] if r.query not in taken]
    return chosen + tail


def write_ranking_report(
    out_dir: str | Path,
    distmat: Matrix,
    q_paths: Sequence[str],
    g_paths: Sequence[str],
    q_pids: Ids,
    g_pids: Ids,
    q_camids: Ids,
    g_camids: Ids,
    *,
    metrics: Mapping[str, float] | None = None,
    title: str = "ranked results",
    topk: int = 10,
    worst: int = 50,
    best: int = 5,
    height: int = 128,
    width: int = 64,
) -> Path:
    """Write ``out_dir/strips/q*.png`` for the selected queries and ``out_dir/index.html``."""
    out_dir = Path(out_dir)
    (out_dir / "strips").mkdir(parents=True, exist_ok=True)
    rankings = rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, topk)
    if not rankings:
        raise ValueError("no query has a valid match in the gallery: nothing to show")
    ids = (q_pids, g_pids, q_camids, g_camids)
    rows = []
    for r in select_queries(rankings, worst, best):
        name = f"strips/q{r.query:05d}.png"
        draw_strip(r, q_paths, g_paths, *ids, height=height, width=width).save(out_dir / name)
        rows.append(
            f"<tr><td><a href='#{r.query}' id='{r.query}'>{r.query}</a></td>"
            f"<td>{html.escape(Path(q_paths[r.query]).name)}</td><td>{100 * r.ap:.1f}</td>"
            f"<td>{r.first_hit}</td><td><a href='{name}'><img src='{name}' loading='lazy'></a>"
            "</td></tr>"
        )
    summary = "".join(
        f"<th>{html.escape(k)}</th><td>{v:.2f}</td>" for k, v in (metrics or {}).items()
    )
    mean_ap = 100 * float(np.mean([r.ap for r in rankings]))
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:left}}
table.q tr:nth-child(even){{background:#f3f3f3}}</style></head><body>
<h1>{html.escape(title)}</h1>
<table><tr>{summary}<th>queries</th><td>{len(rankings)}</td><th>mean AP</th>
<td>{mean_ap:.2f}</td></tr></table>
<p>The {worst} lowest-AP queries then the {best} best; frames: blue query, green correct,
red wrong; same-id same-camera gallery images are excluded, as in the protocol.</p>
<table class='q'><tr><th>query</th><th>file</th><th>AP (%)</th><th>first hit</th>
<th>top-{topk}</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    return index


def write_evaluation_report(out_dir: str | Path, ev: Evaluation, **options: Any) -> Path:
    """``write_ranking_report`` for an ``evaluate_model`` result (its distances, ids, metrics);
    ``options``: the report's keyword options (``title``, ``topk``, ``worst``, ...)."""
    q, g = ev.query, ev.gallery
    return write_ranking_report(
        out_dir,
        ev.distmat,
        q.paths,
        g.paths,
        q.pids,
        g.pids,
        q.camids,
        g.camids,
        metrics=ev.result.as_dict(),
        **options,
    )
