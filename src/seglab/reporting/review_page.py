"""What `seglab data review` writes: review.json, and review.html with its pictures (the image,
the mask and the prediction overlaid, the disagreeing regions outlined), a page that opens from
the disk without a server and sorts by any column."""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from seglab.data.info import DatasetInfo
from seglab.data.show import overlay
from seglab.outputs import write_atomic, write_text_atomic
from seglab.reporting.label_scores import Candidate, Review
from seglab.reporting.report import CSS

OUTLINE = (255, 0, 255)  # the disagreeing regions' outline: magenta, in no class palette here
PICTURE_WIDTH = 640  # pictures wider than this are drawn smaller on the page


@dataclass
class Drawn:
    """An image of the page: what to draw and the files it goes to."""

    files: dict[str, str]  # picture kind -> file name in pictures/
    image: torch.Tensor
    mask: torch.Tensor | None
    predicted: torch.Tensor
    outline: np.ndarray | None


def write_review(found: Review, drawn: list[Drawn], out: Path) -> None:
    """``out``/review.json, review.html and the pictures of ``drawn`` in ``out``/pictures."""
    (out / "pictures").mkdir(parents=True)
    for picture in drawn:
        for kind, name in picture.files.items():
            _save_png(out / "pictures" / name, _picture(picture, kind, found.info))
    write_text_atomic(out / "review.json", json.dumps(found.to_dict(), indent=2))
    write_text_atomic(out / "review.html", html_page(found))


def _picture(drawn: Drawn, kind: str, info: DatasetInfo) -> Image.Image:
    """The image as it is, or with the mask or the prediction overlaid and the disagreeing
    regions outlined."""
    if kind == "image":  # every pixel ignored: the image as it is, in RGB uint8
        picture = overlay(drawn.image, torch.full(drawn.image.shape[-2:], 255), info)
    else:
        classes = drawn.mask if kind == "mask" else drawn.predicted
        picture = overlay(drawn.image, classes.long(), info)
    array = picture.permute(1, 2, 0).numpy().copy()
    if kind != "image" and drawn.outline is not None:
        array[outline(drawn.outline)] = OUTLINE
    image = Image.fromarray(array)
    if image.width > PICTURE_WIDTH:
        height = round(image.height * PICTURE_WIDTH / image.width)
        image = image.resize((PICTURE_WIDTH, height), Image.NEAREST)
    return image


def outline(region: np.ndarray) -> np.ndarray:
    """The border of ``region`` (H x W bool), two pixels wide: its pixels with a 4-neighbour
    outside it (the image's edge counts as outside), and their 4-neighbours inside."""
    inside = region.astype(np.uint8)
    edge = inside & ~cv2.erode(inside, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    grown = cv2.dilate(edge, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (grown & inside).astype(bool)


CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # a pixel and its 4 neighbours


def _save_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    write_atomic(path, lambda f: f.write(data), len(data))


# --- the page -----------------------------------------------------------------------------------

PAGE_CSS = """
h1 { overflow-wrap: anywhere; }
table.sortable th[data-sort] { cursor: pointer; user-select: none; }
table.sortable th[data-dir=asc]::after { content: " \\25B2"; }
table.sortable th[data-dir=desc]::after { content: " \\25BC"; }
td.pictures { white-space: normal; text-align: left; border-top: none; }
div.panels { display: flex; flex-wrap: wrap; gap: .4rem; position: sticky; left: .6rem;
  max-width: calc(100vw - 3rem); }
figure { margin: 0; } figure img { width: 240px; max-width: calc(100vw - 4rem); }
figcaption { font-size: .8rem; color: #555; text-align: left; }
"""

# Click a column's header to sort by it (numbers by their data-value), again to reverse. Each
# item is a tbody of its row and, for the first items, the row of its pictures under it.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-sort]').forEach(function (th) {
    th.addEventListener('click', function () {
      var column = th.cellIndex, numeric = th.dataset.sort === 'number';
      var dir = th.dataset.dir === 'desc' ? 'asc' : (th.dataset.dir === 'asc' ? 'desc'
        : (numeric ? 'desc' : 'asc'));
      table.querySelectorAll('th[data-sort]').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var items = Array.prototype.slice.call(table.tBodies);
      var value = function (item) {
        var cell = item.rows[0].cells[column];
        return numeric ? parseFloat(cell.dataset.value) : cell.textContent.trim();
      };
      items.sort(function (a, b) {
        var x = value(a), y = value(b);
        var order = numeric ? x - y : String(x).localeCompare(String(y));
        return dir === 'asc' ? order : -order;
      });
      items.forEach(function (item) { table.appendChild(item); });
    });
  });
});
"""


def html_page(found: Review) -> str:
    """One page that opens from the file system (pictures beside it in pictures/, referenced
    relatively) and reads on a phone: the viewport follows the device, tables scroll sideways."""
    esc = html.escape
    heading = f"Label review: {Path(found.checkpoint).name} on {found.data}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title><style>{CSS}{PAGE_CSS}</style></head>",
        f"<body><h1>{esc(heading)}</h1>",
        f"<p class='note'>Model {esc(found.checkpoint)}; splits {esc(', '.join(found.splits))}; "
        "probabilities averaged with the mirror image. Magenta outlines the regions where the "
        "model contradicts the mask.</p>",
        *(f"<p class='note'>{esc(note)}</p>" for note in found.notes),
        "<h2>Suspect labels</h2>",
        "<p class='note'>Highest score first: the share of the image in its most confidently "
        "contradicted region, times the model's confidence there. Click a column to sort.</p>",
        _suspects_table(found),
        _classes_table(found),
    ]
    if found.candidates is not None:
        parts += [
            "<h2>What to label next</h2>",
            "<p class='note'>In the order to label them: uncertainty (1 - the mean margin "
            "between the two likeliest classes) x distance to the nearest image chosen before "
            "(encoder features), so near-identical frames are not chosen together.</p>",
            _candidates_table(found.candidates),
        ]
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _th(text: str, sort: str | None = None, direction: str | None = None) -> str:
    sort_attr = f" data-sort='{sort}'" if sort else ""
    dir_attr = f" data-dir='{direction}'" if direction else ""
    return f"<th{sort_attr}{dir_attr}>{html.escape(text)}</th>"


def _number(value: float, text: str) -> str:
    return f"<td data-value='{value:.9g}'>{html.escape(text)}</td>"


def _text(value: str) -> str:
    return f"<td>{html.escape(value)}</td>"


def _item(cells: list[str], pictures: dict[str, str] | None = None) -> str:
    """One item of a table: its row, and its pictures side by side in a row under it."""
    row = f"<tr class='row'>{''.join(cells)}</tr>"
    if not pictures:
        return f"<tbody>{row}</tbody>"
    figures = "".join(
        f"<figure><img alt='{html.escape(kind)}' src='{html.escape(src)}'>"
        f"<figcaption>{html.escape(kind)}</figcaption></figure>"
        for kind, src in pictures.items()
    )
    panels = f"<td class='pictures' colspan='{len(cells)}'><div class='panels'>{figures}</div></td>"
    return f"<tbody>{row}<tr>{panels}</tr></tbody>"


def _table(table_id: str, header: list[str], items: list[str]) -> str:
    return (
        f"<div class='scroll'><table id='{table_id}' class='sortable'><thead><tr>"
        + "".join(header)
        + "</tr></thead>"
        + "\n".join(items)
        + "</table></div>"
    )


def _suspects_table(found: Review) -> str:
    names = found.info.classes
    several = len({s.model for s in found.suspects}) > 1  # out-of-fold: say which model
    header = [
        _th("#", "number", "asc"),
        _th("image", "text"),
        _th("split", "text"),
        *([_th("scored by", "text")] if several else []),
        _th("trained on", "text"),
        _th("score", "number"),
        _th("class (mask → model)", "text"),
        _th("region (pixels)", "number"),
        _th("confidence", "number"),
    ]
    items = []
    for rank, s in enumerate(found.suspects, start=1):
        region = s.regions[0] if s.regions else None
        cells = [
            _number(rank, str(rank)),
            _text(s.name),
            _text(s.split),
            *([_text(s.model)] if several else []),
            _text({True: "yes", False: "no", None: "unknown"}[s.trained_on]),
            _number(s.score, f"{100 * s.score:.2f}%"),
        ]
        if region:
            cells += [
                _text(f"{names[region.mask_class]} → {names[region.predicted_class]}"),
                _number(region.area, str(region.area)),
                _number(region.confidence, f"{region.confidence:.2f}"),
            ]
        else:
            cells += [_text(""), _number(0, ""), _number(0, "")]
        items.append(_item(cells, s.pictures))
    return _table("suspects", header, items)


def _classes_table(found: Review) -> str:
    header = [_th("class", "text"), _th("pixels", "number"), _th("contradicted", "number")]
    items = [
        _item(
            [
                _text(name),
                _number(c["pixels"], str(c["pixels"])),
                _number(c["contradicted"], f"{100 * c['contradicted']:.2f}%"),
            ]
        )
        for name, c in found.classes.items()
    ]
    return (
        "<h2>Per class</h2><p class='note'>The share of each class's labelled pixels the model "
        "contradicts, weighted by its confidence.</p>" + _table("classes", header, items)
    )


def _candidates_table(candidates: list[Candidate]) -> str:
    header = [
        _th("#", "number", "asc"),
        _th("image", "text"),
        _th("uncertainty", "number"),
        _th("distance", "number"),
        _th("score", "number"),
    ]
    items = [
        _item(
            [
                _number(rank, str(rank)),
                _text(c.name),
                _number(c.uncertainty, f"{c.uncertainty:.3f}"),
                _number(c.distance, f"{c.distance:.3f}"),
                _number(c.score, f"{c.score:.3f}"),
            ],
            c.pictures,
        )
        for rank, c in enumerate(candidates, start=1)
    ]
    return _table("label-next", header, items)
