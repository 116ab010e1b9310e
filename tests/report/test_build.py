"""build_report: self-contained HTML, Markdown with images beside it, and nothing half-written on failure."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mmbalance.errors import MMBalanceError, ResultsError, UsageError
from mmbalance.report import build, build_report, parse_formats
from mmbalance.results import AuditResult, MethodResult

from .fixtures import METRICS_CSV, make_audit
from .test_plots import assert_real_png, assert_real_svg


class Elements(HTMLParser):
    """Collects (tag, attributes) of every start tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse(html_text: str) -> list[tuple[str, dict[str, str]]]:
    p = Elements()
    p.feed(html_text)
    return p.tags


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    metrics = root / "metrics.csv"
    metrics.write_text(METRICS_CSV)
    files = build_report([make_audit(0.81), make_audit(0.56, accuracy=0.61, ablation_audio=0.6)],
                         metrics=metrics, out_dir=root / "out", formats=("html", "md", "png", "svg"))
    return files


def test_files_written(full_report):
    out = full_report.out_dir
    assert full_report.html == out / "report.html" and full_report.markdown == out / "report.md"
    assert all(p.exists() for p in full_report.paths)
    names = {p.name for p in full_report.images}
    for key in ("comparison", "training", "shares-before", "shares-after", "per-class-before",
                "share-distribution-after", "agreement-after"):
        assert f"{key}.png" in names and f"{key}.svg" in names
    for p in full_report.images:
        (assert_real_png if p.suffix == ".png" else assert_real_svg)(p.read_bytes())
    assert not [n for n in files_in(out) if n.startswith(".")]  # no staging leftovers
    assert full_report.verdict.startswith("balanced") and full_report.balanced


def test_html_is_self_contained(full_report):
    text = full_report.html.read_text(encoding="utf-8")
    tags = parse(text)
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed", "base")]
    for tag, attrs in tags:
        for name in ("src", "srcset", "poster", "data"):
            if name in attrs:
                assert attrs[name].startswith("data:"), (tag, attrs[name][:60])
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, re.I)
    assert "url(" not in text and "@import" not in text and "@font-face" not in text
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert any(t == "meta" and a.get("name") == "viewport" for t, a in tags)


def test_html_embeds_every_plot(full_report):
    text = full_report.html.read_text(encoding="utf-8")
    imgs = [a for t, a in parse(text) if t == "img"]
    pngs = [p for p in full_report.images if p.suffix == ".png"]
    assert len(imgs) == len(pngs) >= 9
    for attrs in imgs:
        assert attrs["src"].startswith("data:image/png;base64,") and attrs["alt"]
        assert_real_png(base64.b64decode(attrs["src"].split(",", 1)[1]))


def test_html_summary_comes_first(full_report):
    text = full_report.html.read_text(encoding="utf-8")
    verdict = text.index("balanced: the largest share is audio with 56%")
    assert verdict < text.index("<img")
    for figure in ("accuracy", "max share", "share variance", "entropy", "largest share"):
        assert figure in text
    # balanced: the card names the largest share, not a dominant modality
    assert '<div class="label">largest share</div>' in text
    assert '<div class="label">dominant modality</div>' not in text
    assert text.index("61.0%") < text.index("<img")  # key numbers before the plots
    assert "max-width" in text and "width: 100%" in text  # readable on a phone


def test_markdown_references_existing_files(full_report):
    md = full_report.markdown.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) >= 9
    for ref in refs:
        assert (full_report.out_dir / ref).is_file(), ref
        assert "/" not in ref  # beside report.md
    assert "balanced: the largest share is audio with 56%" in md
    assert "| figure | before | after | change |" in md


def test_text_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    shares = {"au<dio": 0.7, "vis|ual": 0.3}
    audit = AuditResult(model=evil, data="d&<b>", n_samples=4, modalities=list(shares), accuracy=0.5,
                        classes=["<img src=x onerror=alert(1)>"],
                        methods={"ig": MethodResult(name="ig", shares=shares, per_class={
                            "<img src=x onerror=alert(1)>": {"n": 4, "shares": shares}})})
    files = build_report([audit], out_dir=tmp_path / "out", formats="html,md")
    text = files.html.read_text(encoding="utf-8")
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "au&lt;dio" in text
    md = files.markdown.read_text(encoding="utf-8")
    assert "vis\\|ual" in md and "\\<script\\>" in md


def test_svg_only_report_embeds_svg(tmp_path):
    files = build_report([make_audit()], out_dir=tmp_path / "out", formats="html,svg")
    text = files.html.read_text(encoding="utf-8")
    srcs = [a["src"] for t, a in parse(text) if t == "img"]
    assert srcs and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    assert {p.suffix for p in files.images} == {".svg"} and files.markdown is None


def test_format_subsets(tmp_path):
    only_html = build_report([make_audit()], out_dir=tmp_path / "a", formats=["html"])
    assert files_in(tmp_path / "a") == ["report.html"] and only_html.images == []
    md = build_report([make_audit()], out_dir=tmp_path / "b", formats="md")  # images implied, as PNG
    assert md.html is None and md.images and all(p.suffix == ".png" for p in md.images)
    build_report([make_audit()], out_dir=tmp_path / "c", formats="png")
    assert "report.html" not in files_in(tmp_path / "c") and "shares.png" in files_in(tmp_path / "c")


def test_re_renders_from_json_alone(tmp_path, before, after, metrics_csv):
    paths = [before.save(tmp_path / "before.json"), after.save(tmp_path / "after.json")]
    files = build_report([AuditResult.load(p) for p in paths], metrics=metrics_csv, out_dir=tmp_path / "out",
                         labels=["plain", "balanced"], formats="html")
    text = files.html.read_text(encoding="utf-8")
    assert "Before → after: plain → balanced" in text


def test_parse_formats():
    assert parse_formats("HTML, md ,png,svg") == ("html", "md", "png", "svg")
    assert parse_formats(["markdown"]) == ("md",)
    with pytest.raises(UsageError, match="pdf"):
        parse_formats("html,pdf")
    with pytest.raises(UsageError):
        parse_formats(" , ")


# -- nothing half-written -------------------------------------------------------------
def test_bad_metrics_writes_nothing(tmp_path):
    bad = tmp_path / "metrics.csv"
    bad.write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(ResultsError, match="val_accuracy"):
        build_report([make_audit()], metrics=bad, out_dir=tmp_path / "out" / "deep")
    assert not (tmp_path / "out").exists()


def test_out_dir_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(MMBalanceError, match="is a file, not a directory"):
        build_report([make_audit()], out_dir=blocker / "report")
    with pytest.raises(MMBalanceError, match="not a directory"):
        build_report([make_audit()], out_dir=blocker)
    assert files_in(tmp_path) == ["file.txt"] and blocker.read_text() == "x"


def test_failed_write_leaves_previous_contents(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    calls = {"n": 0}
    real = build._write_bytes

    def flaky(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(build, "_write_bytes", flaky)
    with pytest.raises(MMBalanceError, match="no space left on the device holding"):
        build_report([make_audit()], out_dir=out)
    assert files_in(out) == ["notes.txt"]


def test_failed_write_removes_created_dirs(tmp_path, monkeypatch):
    def broken(path: Path, data: bytes) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(build, "_write_bytes", broken)
    with pytest.raises(MMBalanceError):
        build_report([make_audit()], out_dir=tmp_path / "a" / "b")
    assert files_in(tmp_path) == []


def test_failed_render_writes_nothing(tmp_path, monkeypatch):
    def boom(fig, fmt="png"):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(build, "figure_bytes", boom)
    with pytest.raises(RuntimeError):
        build_report([make_audit()], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
