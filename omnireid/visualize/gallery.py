"""Gallery lookups shown: a text table, a PNG strip, a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

from PIL import Image

from omnireid.data.images import parse_market_name
from omnireid.deploy.index_records import SearchResult
from omnireid.visualize.canvas import (
    BLUE,
    CAPTION_HEIGHT,
    GREEN,
    GREY,
    RED,
    captioned,
    framed,
    hstack,
    load_cell,
    vstack,
)

THUMB = (64, 128)  # width, height of a thumbnail
PAD = 4
COLOURS = {"query": BLUE, "match": GREEN, "other": RED, None: GREY}


def _query_pid(path: str) -> int:
    """The query's Market-style pid, -1 when its name does not give one."""
    parsed = parse_market_name(path)
    return parsed[0] if parsed else -1


def _verdict(query_pid: int, pid: int) -> str | None:
    """``match``/``other`` when both ids are known (>= 0), else None."""
    if query_pid < 0 or pid < 0:
        return None
    return "match" if pid == query_pid else "other"


def format_results(queries: list[str], result: SearchResult) -> str:
    """One block per query: rank, score, path, pid, camid of each hit."""
    kind = "similarity" if result.higher_is_better else "distance"
    lines = []
    for q, query in enumerate(queries):
        lines.append(f"query {query}")
        lines.append(f"  {'rank':>4}  {kind:>10}  {'pid':>5}  {'camid':>5}  path")
        for r, (j, s) in enumerate(zip(result.indices[q], result.scores[q], strict=True)):
            if j < 0:
                break
            pid, cam = int(result.pids[q, r]), int(result.camids[q, r])
            lines.append(f"  {r + 1:>4}  {s:>10.4f}  {pid:>5}  {cam:>5}  {result.paths[q][r]}")
    return "\n".join(lines)


def strip_size(num_queries: int, k: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the strip ``render_strip`` draws when every query has
    ``k`` hits (rows with fewer hits are narrower)."""
    w, h = THUMB
    width = (k + 1) * w + k * PAD + w // 2
    return width, num_queries * (h + CAPTION_HEIGHT) + (num_queries - 1) * PAD


def _thumb(path: str) -> Image.Image:
    w, h = THUMB
    return load_cell(path, h, w)


def render_strip(queries: list[str], result: SearchResult, out: str | Path) -> Path:
    """One row per query: the query, a gap, then its top-k hits framed green (same pid), red
    (other pid) or grey (unknown), the rank and score below each. Saved as PNG/JPEG by suffix."""
    rows = []
    for q, query in enumerate(queries):
        qpid = _query_pid(query)
        cells = [captioned(framed(_thumb(query), COLOURS["query"], 3), ["query"])]
        for r, j in enumerate(result.indices[q]):
            if j >= 0:
                verdict = _verdict(qpid, int(result.pids[q, r]))
                thumb = framed(_thumb(result.paths[q][r]), COLOURS[verdict], 3)
                cells.append(captioned(thumb, [f"{r + 1}: {result.scores[q, r]:.2f}"]))
        rows.append(hstack(cells, gap=PAD, first_gap=PAD + THUMB[0] // 2))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vstack(rows, gap=PAD).save(out)
    return out


def _data_uri(path: str) -> str:
    buf = io.BytesIO()
    _thumb(path).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(queries: list[str], result: SearchResult, out: str | Path) -> Path:
    """A self-contained page (thumbnails embedded as base64 JPEG) with one table row per query."""
    kind = "similarity" if result.higher_is_better else "distance"
    css = {k or "unknown": "#{:02x}{:02x}{:02x}".format(*c) for k, c in COLOURS.items()}
    rows = []
    for q, query in enumerate(queries):
        qpid = _query_pid(query)
        cells = [
            f'<td><img src="{_data_uri(query)}" style="border:3px solid {css["query"]}">'
            f"<br>query<br><small>{html.escape(Path(query).name)}</small></td>"
        ]
        for r, j in enumerate(result.indices[q]):
            if j < 0:
                break
            pid, cam, score = int(result.pids[q, r]), int(result.camids[q, r]), result.scores[q, r]
            colour = css[_verdict(qpid, pid) or "unknown"]
            score_text = f"{score:.4f}" if math.isfinite(score) else str(score)
            cells.append(
                f'<td><img src="{_data_uri(result.paths[q][r])}" '
                f'style="border:3px solid {colour}"><br>#{r + 1} {score_text}<br>'
                f"<small>pid {pid} cam {cam}<br>{html.escape(Path(result.paths[q][r]).name)}"
                "</small></td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>omnireid search</title>'
        "<style>body{font-family:sans-serif}td{text-align:center;vertical-align:top;"
        "padding:4px}</style></head><body>\n"
        f"<h1>omnireid gallery search</h1><p>{len(queries)} queries, top {result.indices.shape[1]}"
        f" by {kind}; green frame: same person id as the query, red: another id, grey: unknown."
        "</p>\n<table>\n" + "\n".join(rows) + "\n</table></body></html>\n"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
