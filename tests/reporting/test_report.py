"""The report renders typed results: the best value per class is data, drawn in bold in
Markdown and highlighted in HTML, and nobody is marked on a tie."""

from seglab.reporting.report import Cell, html_page, markdown, tables
from seglab.reporting.results import Bootstrap, Comparison, Cost, ModelResult, Setup


def model(name, ious):
    per_class = {c: {"iou": v, "dice": v, "accuracy": v, "pixels": 10} for c, v in ious.items()}
    present = [v for v in ious.values() if v is not None]
    return ModelResult(
        name=name,
        encoder="mobilenet_v2",
        metrics={
            "miou": sum(present) / len(present),
            "pixel_accuracy": 0.5,
            "mean_class_accuracy": 0.5,
            "per_class": per_class,
            "absent_classes": [c for c, v in ious.items() if v is None],
        },
        cost=Cost(6.6, 0.5, 10.0, 11.0, 100.0, 900.0, 90.0, None, "fp32"),
        history=[],
        setup=Setup(f"runs/{name}", f"runs/{name}/best.pt", "random initialisation", "3 steps"),
    )


def comparison():
    a = model("a/mobilenet_v2", {"sky": 0.5, "road": 0.25, "sign": None})
    b = model("b/mobilenet_v2", {"sky": 0.75, "road": 0.25, "sign": None})
    b.versus_first = Bootstrap(0.125, 0.05, 0.2, 0.95, 0.99, 2000, 8)
    return Comparison(
        [a, b],
        "synthetic",
        "val",
        8,
        (64, 80),
        ("sky", "road", "sign"),
        {"cpu": "x86_64", "threads": 2, "torch": "2", "python": "3", "cuda": None},
        "0.1.0",
    )


def test_the_best_per_class_is_data_and_each_writer_draws_it(tmp_path):
    c = comparison()
    per_class = next(t for t in tables(c) if t.title.startswith("Per-class"))
    rows = {row[0].text: row[1:] for row in per_class.rows}
    assert rows["sky"] == (Cell("50.00"), Cell("75.00", best=True))
    assert rows["road"] == (Cell("25.00"), Cell("25.00"))  # a tie marks nobody
    assert rows["sign"] == (Cell("absent"), Cell("absent"))
    assert "left out of mIoU: sign" in per_class.note
    figures = {}
    for key in ("per_class", "frontier", "curves", "examples"):
        figures[key] = tmp_path / f"{key}.png"
        figures[key].write_bytes(b"\x89PNG")
    md = markdown(c, figures)
    assert "| sky | 50.00 | **75.00** |" in md and "| road | 25.00 | 25.00 |" in md
    page = html_page(c, figures)
    assert "<td class='best'>75.00</td>" in page and page.count("class='best'") == 1
    assert "**" not in page
    summary = tables(c)[0]
    assert summary.rows[0][-1] == Cell("-")  # no recorded training time
