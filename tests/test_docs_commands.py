"""Every shell block of README.md and docs/*.md runs verbatim (on tiny data), so no example can fail again.

Each ```` ```bash ````, ```` ```sh ````, ```` ```shell ```` and ```` ```console ```` block is extracted and
run as written, the blocks of one file in order in one ``bash`` session (``set -euo pipefail``)
in a fresh workspace, so a block can use what an earlier one made (``cd``, variables, files).
A ``console`` block runs its ``$ `` lines. Two HTML comments, on the line before a code block, change
that (docs/README: "Docs that run"):

* ``<!-- docs-test: skip REASON -->``: the shell block is not run; ``REASON`` (required) says why;
* ``<!-- docs-test: exit 0,1 REASON -->``: the block may end with any of these exit statuses
  (a ``mmbalance check`` gate whose verdict depends on the model); it runs in a subshell;
* ``<!-- docs-test: file NAME -->``: any code block (Python, TOML, ...) is written to ``NAME`` in the
  workspace before the file's shell blocks run, so the commands use the page's own example code.

Nothing in the command text is substituted. The workspace is prepared instead: ``mmbalance`` and
``python`` on ``PATH`` run this checkout, ``.venv/bin/activate`` exists, the synthetic dataset's
default sizes are tiny (``MMBALANCE_SYNTHETIC_SIZES``), and the files the pages assume a reader
already has are there: ``data/avd`` (tiny synthetic tensor files), ``runs/best.pt`` (av-tiny trained
on it, its ``metrics.csv`` also as ``runs/balanced/metrics.csv``), ``audit.json``, ``plain.json``, ``balanced.json``, ``audits/main.json`` (audits of it),
``data/letters-av`` (a tiny synthetic stand-in for the letters benchmark, which needs espeak-ng) with av-small's
``runs/plain``, ``runs/a`` and ``runs/v`` (fused, audio-only and visual-only runs of it) and
``mmbalance.toml`` (a policy), each left out of a page that makes it itself (``--out PATH``). The test is generic: a new page's blocks run without changing it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELLS = ("bash", "sh", "shell", "console")
MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|file|exit)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
TINY_SIZES = "train=32,val=16,test=16"

pytestmark = pytest.mark.timeout(1200)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and its docs-test marker."""

    path: Path
    line: int
    lang: str
    text: str
    skip: str | None = None
    file: str | None = None
    exits: tuple[int, ...] = (0,)

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELLS

    def script(self) -> str:
        """The block as a shell script: verbatim, or the ``$ `` lines of a console block."""
        if self.lang != "console":
            return self.text
        return "\n".join(line[2:] for line in self.text.splitlines() if line.startswith("$ "))

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


def extract_blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced code block of a Markdown file, with the marker on the line before it (if any)."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            j += 1
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        skip = file = None
        exits: tuple[int, ...] = (0,)
        if marker and marker.group(1) == "skip":
            if not marker.group(2):
                raise ValueError(f"{path}:{k + 1}: `docs-test: skip` needs a reason")
            skip = marker.group(2)
        elif marker and marker.group(1) == "exit":
            codes = re.match(r"^(\d+(?:,\d+)*)\s+\S", marker.group(2))
            if codes is None:
                raise ValueError(f"{path}:{k + 1}: `docs-test: exit` takes codes and a reason: exit 0,1 REASON")
            exits = tuple(int(c) for c in codes.group(1).split(","))
        elif marker:
            file = marker.group(2)
        blocks.append(Block(path, i + 1, lang, body, skip, file, exits))
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# -- the extraction itself --------------------------------------------------------------------------------------

def test_blocks_markers_and_console_prompts_are_read_as_documented(tmp_path):
    page = tmp_path / "page.md"
    text = ("# t\n\n```bash\necho one\n```\n\n<!-- docs-test: skip needs a GPU -->\n```bash\nnvidia-smi\n```\n"
            "<!-- docs-test: file net.py -->\n\n```python\nx = 1\n```\n\n```console\n$ echo two\ntwo\n```\n"
            "```text\n$ not run\n```\n")
    blocks = extract_blocks(page, text)
    assert [(b.lang, b.skip, b.file) for b in blocks] == [
        ("bash", None, None), ("bash", "needs a GPU", None), ("python", None, "net.py"), ("console", None, None),
        ("text", None, None)]
    assert [b.line for b in blocks] == [3, 8, 13, 17, 21]
    assert blocks[3].script() == "echo two" and blocks[0].script() == "echo one"
    assert [b.is_shell for b in blocks] == [True, True, False, True, False]
    with pytest.raises(ValueError, match="needs a reason"):
        extract_blocks(page, "<!-- docs-test: skip -->\n```bash\nls\n```\n")
    gate = extract_blocks(page, "<!-- docs-test: exit 0,1 a gate -->\n```bash\nmmbalance check\n```\n")
    assert gate[0].exits == (0, 1) and gate[0].skip is None
    with pytest.raises(ValueError, match="codes and a reason"):
        extract_blocks(page, "<!-- docs-test: exit 1 -->\n```bash\nls\n```\n")


def test_a_failing_block_fails_the_page_and_an_allowed_exit_does_not(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\ncd sub 2>/dev/null || mkdir sub\necho made > sub/f\n```\n"
                    "<!-- docs-test: exit 0,1 a gate -->\n```bash\nfalse\n```\n```bash\ncat sub/f\nexit 3\n```\n")
    template = tmp_path / "template"
    (template / ".venv" / "bin").mkdir(parents=True)
    code, output, runnable = _run_page(page, template, tmp_path / "work")
    assert len(runnable) == 3 and code == 3  # the allowed `false` passed; the third block's exit 3 did not
    assert "made" in output  # state (files) carries from one block to the next
    assert re.findall(r">>> docs block (\d+): \S+:(\d+)", output) == [("0", "1"), ("1", "6"), ("2", "9")]


def test_every_page_has_shell_blocks_to_run_and_every_skip_says_why():
    blocks = [b for p in doc_files() for b in extract_blocks(p)]
    shell = [b for b in blocks if b.is_shell]
    assert len(shell) >= 20  # the docs are full of commands: an extraction that finds none is broken
    assert sum(b.skip is None for b in shell) >= 10  # the walk-throughs run; the rest name their reason
    assert all(b.skip is None or len(b.skip) > 10 for b in shell)


# -- running them ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The files a reader of the docs is assumed to have, made once (in-process: no CLI start-up)."""
    import torch

    from mmbalance.audit import audit
    from mmbalance.data import write_synthetic
    from mmbalance.training import TrainConfig, finetune

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("docs-template")
    write_synthetic(d / "data" / "avd", n_train=64, n_val=32, n_test=32, seed=0)
    data = str(d / "data" / "avd")
    finetune(TrainConfig(model="av-tiny", data=data, out=str(d / "runs"), epochs=1, batch_size=16, seed=0),
             progress=False)
    result = audit("av-tiny", data, checkpoint=str(d / "runs" / "best.pt"), split="test", steps=4, bootstrap=0,
                   device="cpu", progress=False)  # the default estimators, as the pages' own audits
    (d / "runs" / "balanced").mkdir()
    shutil.copy(d / "runs" / "metrics.csv", d / "runs" / "balanced" / "metrics.csv")
    (d / "audits").mkdir()
    for name in ("audit.json", "plain.json", "balanced.json", "audits/main.json"):
        result.save(d / name)
    (d / "mmbalance.toml").write_text("[check]\nmax_share = 0.99\nmin_accuracy = 0.0\n")
    # the letters benchmark needs espeak-ng (bench/realistic_av.py): a tiny stand-in in its format, and av-small's
    # fused and unimodal runs of it (docs/estimators.md's probe)
    letters = str(d / "data" / "letters-av")
    write_synthetic(letters, n_train=64, n_val=32, n_test=32, seed=1)
    for run, unimodal in (("plain", None), ("a", "audio"), ("v", "visual")):
        finetune(TrainConfig(model="av-small", data=letters, out=str(d / "runs" / run), epochs=1, batch_size=16,
                             seed=0, unimodal=unimodal), progress=False)
    bin_dir = d / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("mmbalance", f'"{sys.executable}" -m mmbalance'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    for name in ("bench", "scripts"):  # copies, not links: a page's `--out bench/...` must not write into the repo
        shutil.copytree(ROOT / name, d / name, ignore=shutil.ignore_patterns("__pycache__", "avd", "letters*"))
    return d


def _media_project(work: Path) -> None:
    """bring-your-own-data.md: the clips its manifest names, and the reader's own 2-class checkpoint."""
    import csv

    from mmbalance.media.testing import write_clip, write_wav
    from mmbalance.models import load_model, save_state_dict

    manifest = work / "project" / "clips.csv"
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        write_clip(manifest.parent / row["video"], seconds=0.5, fps=8, width=32, height=24, seed=i)
        if row.get("audio"):
            write_wav(manifest.parent / row["audio"], seconds=0.5, seed=i)
    (work / "run").mkdir()
    save_state_dict(load_model("av-tiny", num_classes=len({r["label"] for r in rows})), work / "run" / "best.pt")


#: what a page assumes its reader has beyond the common template (run after its `file` blocks are written)
PAGE_SETUP = {"bring-your-own-data.md": _media_project}


def _run_page(page: Path, template: Path, work: Path) -> tuple[int, str, list[Block]]:
    blocks = extract_blocks(page)
    shell_text = "\n".join(b.script() for b in blocks if b.is_shell and b.skip is None)
    made_here = {m.group(2).rstrip("/") for m in re.finditer(r"(--out|-o)\s+(\S+)", shell_text)}
    # what the page makes itself is not handed to it: `data synth --out data/avd` must really write data/avd
    shutil.copytree(template, work, symlinks=True,
                    ignore=lambda d, names: [n for n in names
                                             if (Path(d) / n).relative_to(template).as_posix() in made_here])
    for block in blocks:
        if block.file:
            target = work / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text + "\n")
    if page.name in PAGE_SETUP:
        PAGE_SETUP[page.name](work)
    runnable = [b for b in blocks if b.is_shell and b.skip is None]
    parts = ["set -euo pipefail"]
    for n, block in enumerate(runnable):
        (work / f".docs-block-{n}.sh").write_text(block.script() + "\n")
        parts.append(f"echo '>>> docs block {n}: {block.where()}' >&2")
        if block.exits == (0,):
            parts.append(f'source "{work}/.docs-block-{n}.sh"')
        else:  # a gate that may fail on this data: its exit status is a result (in a subshell)
            allowed = "|".join(str(c) for c in block.exits)
            parts.append(f'set +e; (set -e; source "{work}/.docs-block-{n}.sh"); rc=$?; set -e; '
                         f'case $rc in {allowed}) ;; *) exit $rc ;; esac')
        parts.append(f'cd "{work}"')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PATH=f"{work / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1",
               OMP_NUM_THREADS="1", MMBALANCE_SYNTHETIC_SIZES=TINY_SIZES, COLUMNS="120")
    env.pop("GITHUB_ACTIONS", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    proc = subprocess.run(["bash", "-c", "\n".join(parts)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=1100)
    return proc.returncode, proc.stdout[-4000:] + proc.stderr[-6000:], runnable


@pytest.mark.parametrize("page", doc_files(), ids=lambda p: p.name)
def test_every_shell_block_of_the_page_runs_verbatim(page, template, tmp_path):
    if not any(b.is_shell and b.skip is None for b in extract_blocks(page)):
        pytest.skip(f"{page.name} has no shell block to run")
    code, output, runnable = _run_page(page, template, tmp_path / "work")
    started = re.findall(r">>> docs block (\d+): (\S+)", output)
    failed = started[-1][1] if started else "?"
    assert code == 0, f"the block at {failed} failed (exit {code}):\n{output}"
    assert len(started) == len(runnable)
