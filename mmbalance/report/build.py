"""``build_report()``: audits (+ training metrics) → ``report.html``, ``report.md`` and plot images.

The three steps are kept apart: :func:`~mmbalance.report.content.assemble_report`
decides what to say, the renderers (:mod:`.html`, :mod:`.markdown`, :mod:`.plots`)
produce bytes in memory, and only then is anything written. Writing goes through a
staging folder inside the output directory whose files are moved into place at the
end, so a failure (bad input, full disk, unwritable folder) leaves no half-written
report behind: the output directory keeps whatever it held before.

Example:
    >>> from mmbalance import AuditResult  # doctest: +SKIP
    >>> files = build_report([AuditResult.load("audit.json")], metrics=Path("run/metrics.csv"),
    ...                      out_dir=Path("report"))  # doctest: +SKIP
    >>> files.html  # doctest: +SKIP
    PosixPath('report/report.html')
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..io import check_output_dir, output_error, place_file
from ..results import AuditResult
from ._plot_style import figure_bytes
from .compare import require_methods
from .content import ReportDocument, assemble_report
from .html import render_html
from .markdown import render_markdown
from .metrics import TrainingMetrics, load_metrics

DOCUMENT_FORMATS = ("html", "md")
IMAGE_FORMATS = ("png", "svg")
FORMATS = DOCUMENT_FORMATS + IMAGE_FORMATS
DEFAULT_FORMATS = ("html", "md", "png")
HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"
_MIME = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote, and the headline verdict."""

    out_dir: Path
    html: Path | None
    markdown: Path | None
    images: list[Path] = field(default_factory=list)
    verdict: str = ""
    balanced: bool = True

    @property
    def paths(self) -> list[Path]:
        """Every written file: the HTML, the Markdown, then the images."""
        return [p for p in (self.html, self.markdown) if p is not None] + list(self.images)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``mmbalance report --json``)."""
        return {"out_dir": str(self.out_dir), "html": str(self.html) if self.html else None,
                "markdown": str(self.markdown) if self.markdown else None,
                "images": [str(p) for p in self.images], "verdict": self.verdict, "balanced": self.balanced}


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Normalize ``"html,md,png"`` or a sequence to a tuple of known formats (``UsageError`` otherwise).

    Example:
        >>> parse_formats("HTML, md,png")
        ('html', 'md', 'png')
    """
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(str(f).strip().lower().lstrip(".") for f in items if str(f).strip()))
    out = tuple(dict.fromkeys("md" if f == "markdown" else f for f in out))
    unknown = [f for f in out if f not in FORMATS]
    if unknown:
        raise UsageError(f"unknown report format(s): {', '.join(unknown)}", hint=f"use {','.join(FORMATS)}")
    if not out:
        raise UsageError("no report format chosen", hint=f"use --format {','.join(DEFAULT_FORMATS)}")
    return out


def build_report(
    audits: Sequence[AuditResult],
    *,
    metrics: str | os.PathLike[str] | TrainingMetrics | None = None,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> ReportFiles:
    """Render a report of ``audits`` (and a fine-tuning run's ``metrics.csv``) into ``out_dir``.

    ``formats``: ``html`` (one self-contained ``report.html``), ``md`` (``report.md``
    with images as files beside it; implies ``png`` if no image format is chosen),
    ``png`` and ``svg`` (one image file per plot). With two or more audits the first is
    "before", the last "after", and the report gets a comparison section; ``labels``
    names them (default ``before``/``after`` or ``audit N``).

    Raises :class:`~mmbalance.errors.ResultsError` for an unreadable metrics CSV,
    :class:`~mmbalance.errors.UsageError` for bad options and
    :class:`~mmbalance.errors.MMBalanceError` for an output directory that cannot be
    written; in every case nothing is left half-written.

    Example:
        >>> files = build_report([before, after], out_dir="report", formats="html")  # doctest: +SKIP
        >>> [p.name for p in files.paths]  # doctest: +SKIP
        ['report.html']
    """
    fmts = parse_formats(formats)
    audits = list(audits)
    if not audits:
        raise UsageError("no audit to report on", hint="pass at least one audit JSON")
    for audit in audits:
        require_methods(audit)
    if labels is not None and len(labels) != len(audits):
        raise UsageError(f"{len(labels)} labels for {len(audits)} audits")
    training = metrics if isinstance(metrics, TrainingMetrics) or metrics is None else load_metrics(metrics)
    out = Path(out_dir)
    check_writable_dir(out)
    doc = assemble_report(audits, labels=labels, metrics=training, title=title)
    files = render_files(doc, fmts)
    write_files(out, files)
    images = [out / name for name in files if name not in (HTML_NAME, MARKDOWN_NAME)]
    return ReportFiles(
        out_dir=out,
        html=out / HTML_NAME if HTML_NAME in files else None,
        markdown=out / MARKDOWN_NAME if MARKDOWN_NAME in files else None,
        images=images,
        verdict=doc.verdict,
        balanced=doc.balanced,
    )


def render_files(doc: ReportDocument, formats: Sequence[str]) -> dict[str, bytes]:
    """Render every output file in memory: ``{file name: bytes}`` (nothing is written).

    Example:
        >>> sorted(render_files(doc, ("html",)))  # doctest: +SKIP
        ['report.html']
    """
    image_fmts = [f for f in formats if f in IMAGE_FORMATS]
    if "md" in formats and not image_fmts:
        image_fmts = ["png"]
    embed = "svg" if image_fmts == ["svg"] else "png"
    needed = set(image_fmts) | ({embed} if "html" in formats else set())
    rendered = {(p.key, f): figure_bytes(p.figure, f) for p in doc.plots() for f in sorted(needed)}
    files: dict[str, bytes] = {}
    if "html" in formats:
        images = {p.key: (_MIME[embed], rendered[(p.key, embed)]) for p in doc.plots()}
        files[HTML_NAME] = render_html(doc, images).encode("utf-8")
    if "md" in formats:
        md_fmt = "png" if "png" in image_fmts else "svg"
        files[MARKDOWN_NAME] = render_markdown(doc, {p.key: f"{p.key}.{md_fmt}" for p in doc.plots()}).encode()
    for p in doc.plots():
        for f in image_fmts:
            files[f"{p.key}.{f}"] = rendered[(p.key, f)]
    return files


def check_writable_dir(out: Path) -> None:
    """Fail early, with one clear line, when ``out`` cannot become a writable directory.

    Kept for callers of the report package; the check itself is :func:`mmbalance.io.check_output_dir`.

    Example:
        >>> check_writable_dir(Path("/etc/hostname/report"))  # doctest: +SKIP
        Traceback (most recent call last):
        mmbalance.errors.OutputError: cannot write --out /etc/hostname/report: /etc/hostname is a file, ...
    """
    check_output_dir(out, what="--out")


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into ``out`` all or nothing: stage them in a hidden folder, then move them in.

    Directories created for ``out`` are removed again when writing fails.
    """
    missing: list[Path] = []
    probe = out
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    staging: Path | None = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".mmbalance-report-", dir=out))
        for name, data in files.items():
            _write_bytes(staging / name, data)
        for name in files:
            place_file(staging / name, out / name)  # through symlinks, into FIFOs; never over them
    except OSError as err:
        _cleanup(staging, missing)
        raise output_error(err, out / next(iter(files), "")) from None
    except BaseException:
        _cleanup(staging, missing)
        raise
    _cleanup(staging, [])


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _cleanup(staging: Path | None, created: list[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for d in created:  # deepest first
        with contextlib.suppress(OSError):
            d.rmdir()
