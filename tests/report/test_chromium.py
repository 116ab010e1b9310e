"""Open report.html in headless Chromium: it renders, every image decodes, no errors, nothing blocked.

Skipped when Debian's ``chromium`` is not installed (``.ci/ensure-chromium`` installs it).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from .fixtures import METRICS_CSV, make_audit
from .test_plots import assert_real_png

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (run .ci/ensure-chromium to install it)")

# Runs before the page's Content-Security-Policy <meta> (a meta policy only covers what follows it),
# so it may run while everything after it stays under the policy.
PROBE = """<script>
window.__mmbErrors = [];
window.addEventListener("error", function (e) {
  __mmbErrors.push("error: " + (e.message || (e.target && (e.target.src || "").slice(0, 40)) || "?"));
}, true);
document.addEventListener("securitypolicyviolation", function (e) {
  __mmbErrors.push("blocked: " + e.violatedDirective + " " + String(e.blockedURI).slice(0, 40));
});
var __mmbConsoleError = console.error;
console.error = function () { __mmbErrors.push("console: " + Array.from(arguments).join(" ")); };
window.addEventListener("load", function () { setTimeout(report, 300); });  // violations are reported async
function report() {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  parent.postMessage(JSON.stringify({images: imgs.length, bad: bad, errors: __mmbErrors,
                                     width: document.documentElement.scrollWidth,
                                     viewport: window.innerWidth}), "*");
}
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


# Headless Chromium lays pages out at least 500 px wide, so the page runs in an iframe of the wanted
# width; the probe posts its findings to this wrapper, whose DOM --dump-dom prints.
WRAPPER = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:2000px;border:0"></iframe>
<script>window.addEventListener("message", function (e) {{
  var pre = document.createElement("pre"); pre.id = "mmb-probe"; pre.textContent = e.data;
  document.body.appendChild(pre);
}});</script></body></html>"""


def probe(tmp_path: Path, page: Path, width: int = 1200) -> dict:
    """Load ``page`` at ``width`` CSS px with the probe injected; return what the probe found."""
    copy = page.with_name("probe-" + page.name)
    copy.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    wrapper = page.with_name(f"wrapper-{width}-" + page.name)
    wrapper.write_text(WRAPPER.format(src=copy.name, width=width), encoding="utf-8")
    done = chromium(tmp_path, f"--window-size={max(width, 500) + 20},2100", "--virtual-time-budget=5000",
                    "--dump-dom", wrapper.as_uri())
    found = re.search(r'<pre id="mmb-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not report (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    from mmbalance.report import build_report

    root = tmp_path_factory.mktemp("chromium")
    metrics = root / "metrics.csv"
    metrics.write_text(METRICS_CSV)
    files = build_report([make_audit(0.81), make_audit(0.56, accuracy=0.61, ablation_audio=0.6)],
                         metrics=metrics, out_dir=root / "report", formats="html")
    return files.html


@pytest.mark.parametrize("width", [1200, 390])
def test_screenshot_is_not_blank(report_html, tmp_path, width):
    shot = tmp_path / f"shot-{width}.png"
    done = chromium(tmp_path, f"--window-size={width},2000", f"--screenshot={shot}", report_html.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    assert_real_png(shot.read_bytes())


@pytest.mark.parametrize("width", [1200, 390])
def test_every_image_decodes_without_errors(report_html, tmp_path, width):
    result = probe(tmp_path, report_html, width)
    assert result["images"] >= 9
    assert result["bad"] == 0
    assert result["errors"] == []
    assert result["viewport"] == width
    assert result["width"] <= result["viewport"]  # no sideways scrolling, on a phone too


def test_probe_catches_broken_images_and_blocked_content(report_html, tmp_path):
    broken = report_html.with_name("broken.html")
    broken.write_text(report_html.read_text(encoding="utf-8").replace(
        "</main>", '<img src="data:image/png;base64,AAAA" alt="broken"><script>document.title="ran"</script></main>'),
        encoding="utf-8")
    result = probe(tmp_path, broken)
    assert result["bad"] == 1
    assert any(e.startswith("blocked: script-src") for e in result["errors"]), result["errors"]
