"""The foundation path through the CLI: every bad input is one line and exit 2, never a traceback."""

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import EXIT_ERROR, app
from mmbalance.data import save_tensor_dataset
from mmbalance.models import create_model, save_state_dict

runner = CliRunner()


def write_data(path, n=12, classes=3, nan_at=None, label_override=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(n, 1, 8, 8, generator=g)
    visual = torch.randn(n, 3, 2, 8, 8, generator=g)
    labels = torch.arange(n) % classes
    if nan_at is not None:
        visual[nan_at, 0, 0, 0, 0] = float("nan")
    if label_override is not None:
        labels[label_override[0]] = label_override[1]
    save_tensor_dataset(path, {"audio": audio, "visual": visual}, labels, [f"c{i}" for i in range(classes)])
    return path


@pytest.fixture()
def setup(tmp_path):
    data = write_data(tmp_path / "data.pt")
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    save_state_dict(create_model("av-tiny", num_classes=3), ckpt)
    return tmp_path, data, ckpt


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def audit_args(data, ckpt, *extra):
    return ["audit", "--model", "av-tiny", "--checkpoint", ckpt, "--data", data, "--steps", "4", "--quiet", *extra]


def test_audit_writes_the_documented_json(setup):
    tmp, data, ckpt = setup
    out = tmp / "audit.json"
    result, text = run(*audit_args(data, ckpt, "--out", out))
    assert result.exit_code == 0, text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mmbalance.audit/1"
    assert doc["model"] == "av-tiny" and doc["checkpoint"] == str(ckpt) and doc["n_samples"] == 12
    assert doc["modalities"] == ["audio", "visual"]
    assert doc["primary_method"] == "shapley" and list(doc["methods"]) == ["shapley", "ablation"]
    shares = doc["methods"]["shapley"]["shares"]
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert set(doc["methods"]["shapley"]["per_class"]) == {"c0", "c1", "c2"}
    assert doc["verdict"]["status"] in ("balanced", "dominant", "inconclusive")
    assert doc["dominant_modality"] == max(shares, key=shares.get)
    assert doc["imbalance"]["max_share"] == pytest.approx(max(shares.values()))
    assert 0 <= doc["accuracy"] <= 1


def test_audit_json_to_stdout_and_limit(setup):
    _, data, ckpt = setup
    result, text = run("audit", "--model", "av-tiny", "--checkpoint", ckpt, "--data", data, "--steps", "2",
                       "--limit", "5", "--json")
    assert result.exit_code == 0, text
    assert json.loads(result.stdout)["n_samples"] == 5


def test_audit_table_shows_shares(setup):
    _, data, ckpt = setup
    result, text = run("audit", "--model", "av-tiny", "--checkpoint", ckpt, "--data", data, "--steps", "2")
    assert result.exit_code == 0, text
    assert "audio" in result.stdout and "visual" in result.stdout
    # the caption names the modality with the largest share: "dominant" only when the verdict says it dominates
    out = " ".join(result.stdout.split())
    assert ("· dominant " in out) == ("dominates" in out) and ("· dominant " in out or "· largest share " in out)


def assert_one_line_error(result, text, *needles):
    assert result.exit_code == EXIT_ERROR, text
    assert "Traceback" not in text
    err = result.stderr.strip()
    assert err.startswith("error:"), err
    for needle in needles:
        assert needle in err, err


def test_unknown_model_suggests_close_names(setup):
    _, data, _ = setup
    result, text = run("audit", "--model", "av-tiyn", "--data", data, "--quiet")
    assert_one_line_error(result, text, "av-tiny")


def test_factory_that_fails_to_import(setup):
    _, data, _ = setup
    result, text = run("audit", "--model", "no_such_pkg.models:build", "--data", data, "--quiet")
    assert_one_line_error(result, text, "no_such_pkg")


def test_missing_corrupt_and_truncated_checkpoints(setup):
    tmp, data, ckpt = setup
    result, text = run(*audit_args(data, tmp / "missing.pt"))
    assert_one_line_error(result, text, "missing.pt")
    corrupt = tmp / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    result, text = run(*audit_args(data, corrupt))
    assert_one_line_error(result, text, "corrupt.pt")
    truncated = tmp / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    result, text = run(*audit_args(data, truncated))
    assert_one_line_error(result, text, "truncated.pt")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_does_not_run(setup):
    tmp, data, _ = setup
    marker = tmp / "pwned"
    evil = tmp / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, evil)
    result, text = run(*audit_args(data, evil))
    assert_one_line_error(result, text, "--trust-checkpoint", "system")
    assert not marker.exists()


def test_mismatched_keys_and_shapes(setup):
    tmp, data, _ = setup
    other = tmp / "resnet.pt"
    save_state_dict(create_model("av-tiny", num_classes=5), other)
    result, text = run(*audit_args(data, other))
    assert_one_line_error(result, text, "shape")
    extra = tmp / "extra.pt"
    sd = create_model("av-tiny", num_classes=3).state_dict()
    sd["bogus.weight"] = torch.zeros(2)
    torch.save(sd, extra)
    result, text = run(*audit_args(data, extra))
    assert_one_line_error(result, text, "bogus.weight")


def test_missing_and_malformed_dataset(setup):
    tmp, _, ckpt = setup
    result, text = run(*audit_args(tmp / "nope.pt", ckpt))
    assert_one_line_error(result, text, "nope.pt")
    bad = tmp / "bad.pt"
    torch.save({"labels": torch.zeros(3, dtype=torch.long)}, bad)
    result, text = run(*audit_args(bad, ckpt))
    assert_one_line_error(result, text, "inputs")


def test_modality_names_the_model_does_not_take(setup):
    tmp, _, ckpt = setup
    data = tmp / "renamed.pt"
    save_tensor_dataset(data, {"sound": torch.randn(4, 1, 8, 8), "video": torch.randn(4, 3, 2, 8, 8)},
                        torch.zeros(4, dtype=torch.long), ["a", "b", "c"])
    result, text = run(*audit_args(data, ckpt))
    assert_one_line_error(result, text, "sound")


def test_labels_out_of_range_and_nan_inputs_name_the_sample(setup):
    tmp, _, ckpt = setup
    nan_data = write_data(tmp / "nan.pt", nan_at=7)
    result, text = run(*audit_args(nan_data, ckpt))
    assert_one_line_error(result, text, "sample 7", "visual")
    bad_labels = tmp / "labels.pt"
    torch.save({"inputs": {"audio": torch.randn(4, 1, 8, 8), "visual": torch.randn(4, 3, 2, 8, 8)},
                "labels": torch.tensor([0, 1, 9, 0]), "classes": ["a", "b", "c"]}, bad_labels)
    result, text = run(*audit_args(bad_labels, ckpt))
    assert result.exit_code == EXIT_ERROR and "Traceback" not in text
    assert "9" in result.stderr


def test_debug_shows_the_traceback(setup):
    _, data, _ = setup
    result = runner.invoke(app, ["--debug", "audit", "--model", "av-tiyn", "--data", str(data)])
    assert result.exit_code == EXIT_ERROR  # --debug adds the traceback; the exit code stays 2
    assert "Traceback (most recent call last)" in result.stderr and "ModelError" in result.stderr


def test_ignored_modality_gets_share_zero(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text(
        "import torch\n"
        "class AudioOnly(torch.nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__(); self.fc = torch.nn.Linear(64, num_classes)\n"
        "    def forward(self, audio, visual):\n"
        "        return self.fc(audio.flatten(1))\n"
        "def build(num_classes):\n"
        "    return AudioOnly(num_classes)\n")
    data = write_data(tmp_path / "d.pt")
    out = tmp_path / "a.json"
    result, text = run("audit", "--model", f"{plugin}:build", "--data", data, "--steps", "3", "--out", out,
                       "--quiet")
    assert result.exit_code == 0, text
    doc = json.loads(out.read_text())
    assert doc["methods"]["shapley"]["shares"]["visual"] == 0.0
    assert doc["methods"]["shapley"]["shares"]["audio"] == 1.0


def test_ogm_ge_style_tuple_output_with_output_index(tmp_path):
    plugin = tmp_path / "ogm.py"
    plugin.write_text(
        "import torch\n"
        "class AVClassifier(torch.nn.Module):\n"
        "    def __init__(self, n_classes=3):\n"
        "        super().__init__(); self.a = torch.nn.Linear(64, 8); self.v = torch.nn.Linear(384, 8)\n"
        "        self.fc = torch.nn.Linear(16, n_classes)\n"
        "    def forward(self, audio, visual):\n"
        "        a = self.a(audio.flatten(1)); v = self.v(visual.flatten(1))\n"
        "        return a, v, self.fc(torch.cat([a, v], 1))\n")
    data = write_data(tmp_path / "d.pt")
    result, text = run("audit", "--model", f"{plugin}:AVClassifier", "--data", data, "--steps", "2", "--output",
                       "2", "--json")
    assert result.exit_code == 0, text
    assert json.loads(result.stdout)["n_samples"] == 12
    result, text = run("audit", "--model", f"{plugin}:AVClassifier", "--data", data, "--steps", "2", "--output",
                       "0", "--quiet")
    # element 0 is the audio embedding (width 8)... which has more columns than classes: accepted as logits
    # only if wide enough, so pick a model whose element 0 is narrower than the class count.
    plugin.write_text(plugin.read_text().replace("torch.nn.Linear(64, 8)", "torch.nn.Linear(64, 2)")
                      .replace("torch.nn.Linear(16, n_classes)", "torch.nn.Linear(10, n_classes)"))
    result, text = run("audit", "--model", f"{plugin}:AVClassifier", "--data", data, "--steps", "2", "--output",
                       "0", "--quiet")
    assert_one_line_error(result, text, "--output")
