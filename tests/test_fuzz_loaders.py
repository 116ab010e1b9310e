"""Property-based: whatever bytes, JSON or tensors the loaders get, the CLI answers with exit 0/1/2 and at most one
error line - never exit 3 ("internal error") and never a traceback.

Loaders fed: dataset .pt, checkpoint, audit JSON, policy TOML, manifest CSV, and the state files of run and bench
directories (run.json, resume.pt, metrics.csv, the lock, bench_result.json). Derandomized so CI is stable.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.data import save_tensor_dataset
from mmbalance.models import create_model, save_state_dict

runner = CliRunner()
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8,
          torch.uint8, torch.bool, torch.complex64]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def run_cli(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def assert_clean(code: int, err: str, allowed=(0, 2)) -> None:
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error:"), err


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    g = torch.Generator().manual_seed(0)
    data = tmp / "data.pt"
    save_tensor_dataset(data, {"audio": torch.randn(6, 1, 8, 8, generator=g),
                               "visual": torch.randn(6, 3, 2, 8, 8, generator=g)}, torch.arange(6) % 3,
                        ["a", "b", "c"])
    torch.manual_seed(0)
    ckpt = tmp / "tiny.pt"
    save_state_dict(create_model("av-tiny", num_classes=3), ckpt)
    audit_json = tmp / "audit.json"
    code, err = run_cli("audit", "-m", "av-tiny", "-c", ckpt, "-d", data, "--steps", "2", "--bootstrap", "0", "-q",
                        "-o", audit_json, "--method", "ig")
    assert code == 0, err
    return tmp, data, ckpt, audit_json


@st.composite
def random_tensors(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    tensor = torch.zeros(shape, dtype=dtype) if dtype.is_complex else (torch.rand(shape) * 10 - 3).to(dtype)
    if draw(st.booleans()) and tensor.numel() and tensor.is_floating_point():
        tensor.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), -1e30]))
    return tensor


@st.composite
def tensor_documents(draw):
    """Dicts shaped roughly like a dataset file, with random tensors, wrong types and missing keys."""
    doc = {}
    if draw(st.booleans()):
        doc["inputs"] = draw(st.dictionaries(st.sampled_from(["audio", "visual", "", "x"]), random_tensors(),
                                             max_size=3) | random_tensors() | json_values)
    if draw(st.booleans()):
        doc["labels"] = draw(random_tensors() | json_values)
    if draw(st.booleans()):
        doc["classes"] = draw(st.lists(st.text(max_size=3), max_size=4) | json_values)
    return draw(st.just(doc) | random_tensors() | st.lists(random_tensors(), max_size=3))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_as_a_dataset(base, raw):
    tmp, _, ckpt, _ = base
    path = tmp / "random.pt"
    path.write_bytes(raw)
    assert_clean(*run_cli("audit", "-m", "av-tiny", "-c", ckpt, "-d", path, "--steps", "2", "-q"))


@FUZZ
@given(doc=tensor_documents())
def test_random_tensors_as_a_dataset(base, doc):
    tmp, _, ckpt, _ = base
    path = tmp / "tensors.pt"
    torch.save(doc, path)
    assert_clean(*run_cli("audit", "-m", "av-tiny", "-c", ckpt, "-d", path, "--steps", "2", "--bootstrap", "0",
                          "--method", "ig", "-q"))


@st.composite
def plausible_datasets(draw):
    """The right structure with the wrong details: dtypes, NaNs, label values, a shape off by one."""
    n = draw(st.integers(1, 5))

    def tensor(shape):
        dtype = draw(st.sampled_from(DTYPES))
        if draw(st.booleans()):
            shape = (n, *[d + draw(st.integers(-1, 1)) for d in shape[1:]])
        t = torch.zeros(shape, dtype=dtype) if dtype.is_complex else torch.randn(shape).to(dtype)
        if t.is_floating_point() and t.numel() and draw(st.booleans()):
            t.view(-1)[0] = float("nan")
        return t

    labels = torch.tensor(draw(st.lists(st.integers(-1, 4), min_size=n, max_size=n)),
                          dtype=draw(st.sampled_from([torch.int64, torch.int8, torch.uint8, torch.float32])))
    doc = {"inputs": {"audio": tensor((n, 1, 8, 8)), "visual": tensor((n, 3, 2, 8, 8))}, "labels": labels}
    if draw(st.booleans()):
        doc["classes"] = draw(st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=5))
    return doc


@FUZZ
@given(doc=plausible_datasets())
def test_plausible_but_wrong_datasets(base, doc):
    tmp, _, ckpt, _ = base
    path = tmp / "plausible.pt"
    torch.save(doc, path)
    assert_clean(*run_cli("audit", "-m", "av-tiny", "-c", ckpt, "-d", path, "--steps", "2", "--bootstrap", "0",
                          "--method", "ig,ablation", "-q"))
    assert_clean(*run_cli("finetune", "-m", "av-tiny", "-d", path, "-o", tempfile.mkdtemp(dir=tmp), "--epochs", "1",
                          "-q"))


@FUZZ
@given(raw=st.binary(max_size=300) | st.builds(lambda d: d, tensor_documents()))
def test_random_checkpoints(base, raw):
    tmp, data, _, _ = base
    path = tmp / "random_ckpt.pt"
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        torch.save(raw, path)
    assert_clean(*run_cli("audit", "-m", "av-tiny", "-c", path, "-d", data, "--steps", "2", "-q"))


def _mutate(doc: dict, path: list, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


AUDIT_PATHS = [["n_samples"], ["accuracy"], ["modalities"], ["classes"], ["methods"], ["methods", "ig"],
               ["methods", "ig", "shares"], ["methods", "ig", "shares", "audio"], ["methods", "ig", "scores"],
               ["methods", "ig", "per_class"], ["methods", "ig", "ci95"], ["per_class_accuracy"], ["schema"],
               ["primary_method"], ["seconds"]]


@FUZZ
@given(where=st.sampled_from(AUDIT_PATHS), value=json_values, whole=st.none() | json_values)
def test_random_audit_json(base, where, value, whole):
    tmp, _, _, audit_json = base
    doc = json.loads(audit_json.read_text())
    doc = whole if whole is not None and where == ["schema"] else _mutate(doc, where, value)
    path = tmp / "fuzzed_audit.json"
    path.write_text(json.dumps(doc))
    assert_clean(*run_cli("compare", path, audit_json, "-q"))
    assert_clean(*run_cli("check", "--audit", path, "--max-share", "0.9", "--min-accuracy", "0.1", "-q"),
                 allowed=(0, 1, 2))


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_as_an_audit_json(base, raw):
    tmp, _, _, audit_json = base
    path = tmp / "random_audit.json"
    path.write_bytes(raw)
    assert_clean(*run_cli("compare", path, audit_json, "-q"))


toml_text = st.lists(st.sampled_from(["[check]", "[tool]", "max_share = ", "min_share = ", "0.7", "\"audio\"",
                                      "{ limit = 0.5 }", "[1, 2]", "level = \"warn\"", "= =", "\n", "\xff", "9" * 50,
                                      "per_class = true", "baseline = 1", "method = \"ig\"", "[[check]]"]),
                     max_size=12).map("".join)


@FUZZ
@given(raw=st.binary(max_size=200) | toml_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_policy_toml(base, raw):
    tmp, _, _, audit_json = base
    path = tmp / "policy.toml"
    path.write_bytes(raw)
    assert_clean(*run_cli("check", "--audit", audit_json, "--policy", path, "-q"), allowed=(0, 1, 2))


csv_cell = st.text(alphabet=string.printable + "\x00é", max_size=10)


@FUZZ
@given(header=st.sampled_from(["video,label", "video,label,audio,split", "label,video", "clip", ""]),
       rows=st.lists(st.lists(csv_cell, max_size=5).map(",".join), max_size=5), raw=st.none() | st.binary(max_size=80))
def test_random_manifest_csv(base, header, rows, raw):
    tmp, *_ = base
    path = tmp / "manifest.csv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    assert_clean(*run_cli("audit", "-m", "av-tiny", "-d", path, "-q"))
    assert_clean(*run_cli("data", "prepare", path, "-o", Path(tmp) / "prepared", "-q", "--frames", "1",
                          "--size", "16"))


# -- run-directory and bench state files (issue 21): untrusted input, never an exit 3 -----------------------------

FUZZ_STATE = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STATE_DATA = "synthetic:av-dominance?n_train=16&n_val=8&n_test=8"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_run") / "run"
    code, err = run_cli("finetune", "-m", "av-tiny", "-d", STATE_DATA, "-o", out, "--epochs", "1", "--batch-size",
                        "8", "-q", "--device", "cpu")
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def finished_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_bench") / "bench"
    code, err = run_cli("bench", "-m", "av-tiny", "-d", STATE_DATA, "-o", out, "--methods", "plain", "--seeds", "1",
                        "--epochs", "1", "--batch-size", "8", "--steps", "2", "-q", "--device", "cpu")
    assert code == 0, err
    return out


state_values = (st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
                | st.sampled_from([b'{"best_val_accuracy": NaN}', b'{"config": "x"}', b"9" * 5000, b"[]",
                                   b"epoch,val_accuracy\n1,abc\n", b"epoch,train_seconds\n1,-5\n", b"\x00\xff"]))


@FUZZ_STATE
@given(name=st.sampled_from(["run.json", "resume.pt", "metrics.csv", ".mmbalance.lock", "last.pt"]),
       content=state_values, field=st.sampled_from([None, "config", "best_val_accuracy", "epochs_done", "model"]),
       value=json_values)
def test_tampered_run_directory_state_files(finished_run, tmp_path_factory, name, content, field, value):
    import shutil

    out = tmp_path_factory.mktemp("tampered_run") / "run"
    shutil.copytree(finished_run, out)
    if name == "run.json" and field is not None:
        doc = json.loads((out / name).read_text())
        doc[field] = value
        content = json.dumps(doc).encode()
    (out / name).write_bytes(content)
    assert_clean(*run_cli("finetune", "--resume", out, "-q", "--device", "cpu"))
    assert_clean(*run_cli("finetune", "-m", "av-tiny", "-d", STATE_DATA, "-o", out, "--epochs", "1", "--batch-size",
                          "8", "-q", "--device", "cpu", "--force"))


@FUZZ_STATE
@given(name=st.sampled_from(["bench_result.json", "run.json", "metrics.csv", "bench.json"]), content=state_values,
       field=st.sampled_from([None, "test_accuracy", "shares", "seed", "train_seconds", "run", "extra"]),
       value=json_values)
def test_tampered_bench_state_files(finished_bench, tmp_path_factory, name, content, field, value):
    import shutil

    out = tmp_path_factory.mktemp("tampered_bench") / "bench"
    shutil.copytree(finished_bench, out)
    run_dir = out / "runs" / "plain" / "seed0"
    path = out / name if name == "bench.json" else run_dir / name
    if name == "bench_result.json" and field is not None:
        doc = json.loads(path.read_text())
        doc[field] = value
        content = json.dumps(doc).encode()
    path.write_bytes(content)
    if name in ("run.json", "metrics.csv"):
        (run_dir / "bench_result.json").unlink()  # so the tampered file is read again
    assert_clean(*run_cli("bench", "-m", "av-tiny", "-d", STATE_DATA, "-o", out, "--methods", "plain", "--seeds", "1",
                          "--epochs", "1", "--batch-size", "8", "--steps", "2", "-q", "--device", "cpu"))
