"""Exit codes everywhere: 0 success, 1 failed check, 2 any bad input (also with --debug), 130/143 on Ctrl-C/SIGTERM,
and exit 3 ("internal error") unreachable from each bad input of issue 12."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import mmbalance
from mmbalance.cli import EXIT_ERROR, app
from mmbalance.data import save_tensor_dataset
from mmbalance.models import create_model, save_state_dict

runner = CliRunner()
ROOT = Path(mmbalance.__file__).resolve().parent.parent
TINY = "synthetic:av-dominance?n_train=64&n_val=32&n_test=16"


def invoke(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    return result.exit_code, result.stderr, result.stdout


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_ERROR, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def write_data(path: Path, n: int = 12, classes: int = 3, labels=None) -> Path:
    g = torch.Generator().manual_seed(0)
    inputs = {"audio": torch.randn(n, 1, 8, 8, generator=g), "visual": torch.randn(n, 3, 2, 8, 8, generator=g)}
    save_tensor_dataset(path, inputs, torch.arange(n) % classes if labels is None else labels,
                        [f"c{i}" for i in range(classes)])
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exit")
    data = write_data(tmp / "data.pt")
    torch.manual_seed(0)
    ckpt = tmp / "tiny.pt"
    save_state_dict(create_model("av-tiny", num_classes=3), ckpt)
    audit_json = tmp / "audit.json"
    code, err, _ = invoke("audit", "-m", "av-tiny", "-c", ckpt, "-d", data, "--steps", "2", "--bootstrap", "0",
                          "-q", "-o", audit_json)
    assert code == 0, err
    return tmp, data, ckpt, audit_json


def subprocess_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                OMP_NUM_THREADS="1", NO_COLOR="1")


# -- --debug -------------------------------------------------------------------------------------------------

def test_debug_keeps_exit_2_and_adds_the_traceback(files):
    tmp, *_ = files
    code, err, _ = invoke("--debug", "audit", "-m", "av-tiny", "-d", tmp / "missing.pt", "-q")
    assert code == EXIT_ERROR
    assert "Traceback (most recent call last)" in err and "DataError" in err
    assert err.strip().splitlines()[-1].startswith("error: dataset file not found")


def test_without_debug_there_is_no_traceback(files):
    tmp, *_ = files
    code, err, _ = invoke("audit", "-m", "av-tiny", "-d", tmp / "missing.pt", "-q")
    assert_one_line_error(code, err, "missing.pt")


def test_keyboard_interrupt_in_a_command_is_exit_130_with_one_line(files, monkeypatch):
    _, data, ckpt, _ = files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    audit_module = importlib.import_module("mmbalance.audit")  # the CLI imports audit() when the command runs
    monkeypatch.setattr(audit_module, "audit", interrupted)
    result = runner.invoke(app, ["audit", "-m", "av-tiny", "-d", str(data), "-q"])
    assert result.exit_code == 130
    assert result.stderr.strip() == "error: interrupted (Ctrl-C)"


# -- each exit-3 case of the issue is now exit 2 with one line -----------------------------------------------

def test_validation_labels_beyond_the_training_classes(tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    write_data(split / "train.pt", classes=2)
    write_data(split / "val.pt", classes=10, labels=torch.arange(12) % 10)
    code, err, _ = invoke("finetune", "-m", "av-tiny", "-d", split, "-o", tmp_path / "run", "--epochs", "1", "-q")
    assert_one_line_error(code, err, "has 10 classes", "only 2")


def test_policy_toml_with_a_non_utf8_byte(files, tmp_path):
    *_, audit_json = files
    policy = tmp_path / "policy.toml"
    policy.write_bytes(b"[check]\nmax_share = 0.9 # \xff\n")
    code, err, _ = invoke("check", "--audit", audit_json, "--policy", policy)
    assert_one_line_error(code, err, "not UTF-8", "0xff")


def test_sparse_tensor_in_a_dataset(files, tmp_path):
    _, data, ckpt, _ = files
    doc = torch.load(data, weights_only=True)
    doc["inputs"]["audio"] = doc["inputs"]["audio"].to_sparse()
    torch.save(doc, tmp_path / "sparse.pt")
    code, err, _ = invoke("audit", "-m", "av-tiny", "-c", ckpt, "-d", tmp_path / "sparse.pt", "--steps", "2", "-q")
    assert_one_line_error(code, err, "sparse_coo tensor", "'audio'")


@pytest.mark.parametrize(("args", "words"), [
    (["--steps", "99999999999999999999"], ["--steps must be between"]),
    (["--seed", "1" * 23], ["--seed must be between"]),
    (["--bootstrap", "9" * 40], ["--bootstrap must be between", "40-digit"]),
])
def test_absurd_integers_in_audit(files, args, words):
    _, data, ckpt, _ = files
    code, err, _ = invoke("audit", "-m", "av-tiny", "-c", ckpt, "-d", data, "-q", *args)
    assert_one_line_error(code, err, *words)


def test_absurd_seed_in_finetune(files, tmp_path):
    _, data, *_ = files
    code, err, _ = invoke("finetune", "-m", "av-tiny", "-d", data, "-o", tmp_path / "run", "--seed", "1" * 23, "-q")
    assert_one_line_error(code, err, "--seed must be between")
    assert not (tmp_path / "run").exists()


def test_absurd_sample_count_in_a_synthetic_source():
    code, err, _ = invoke("audit", "-m", "av-tiny", "-d", "synthetic:av-dominance?n_test=100000000000", "-q")
    assert_one_line_error(code, err, "n_test must be at most 100000000")


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize(("case", "words"), [
    ("digits", ["not an mmbalance audit", "4300 digits"]),
    ("share", ["methods.shapley.shares.audio must be a finite number", '"x"']),
    ("accuracy", ["accuracy must be a finite number, got null"]),
])
def test_bad_numbers_in_an_audit_json(files, tmp_path, command, case, words):
    *_, audit_json = files
    text = audit_json.read_text()
    doc = json.loads(text)
    if case == "digits":
        bad_text = text.replace('"n_samples": 12', '"n_samples": ' + "9" * 5000)
        assert bad_text != text
    elif case == "share":
        doc["methods"]["shapley"]["shares"]["audio"] = "x"
        bad_text = json.dumps(doc)
    else:
        doc["accuracy"] = None
        bad_text = json.dumps(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(bad_text)
    args = ["report", bad, "-o", tmp_path / "report", "-q"] if command == "report" else ["compare", bad, audit_json]
    code, err, _ = invoke(*args)
    assert_one_line_error(code, err, *words)


def test_nul_byte_in_a_media_path(tmp_path):
    manifest = tmp_path / "clips.csv"
    manifest.write_text("video,label\nclip\x00.mp4,cat\nother.mp4,dog\n")
    code, err, _ = invoke("data", "prepare", manifest, "-o", tmp_path / "out", "-q")
    assert_one_line_error(code, err, "NUL byte", "line 2")


@pytest.mark.parametrize(("source_suffix", "args", "words"), [
    ("?n_fft=1", [], ["n_fft must be at least 2"]),
    ("", ["--sample-rate", "1"], ["sample_rate must be at least 1000 Hz"]),
])
def test_absurd_decoding_options_in_data_prepare(tmp_path, source_suffix, args, words):
    manifest = tmp_path / "clips.csv"
    manifest.write_text("video,label\na.mp4,cat\nb.mp4,dog\n")
    code, err, _ = invoke("data", "prepare", f"{manifest}{source_suffix}", "-o", tmp_path / "out", "-q", *args)
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize("where", ["factory", "import"])
def test_plugin_raising_systemexit(files, tmp_path, where):
    _, data, *_ = files
    body = "raise SystemExit(5)\n" if where == "import" else ""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(body + "def make(num_classes=3):\n    raise SystemExit(7)\n")
    code, err, _ = invoke("audit", "-m", f"{plugin}:make", "-d", data, "-q")
    assert_one_line_error(code, err, "plugin.py")
    if where == "factory":
        assert "sys.exit(7)" in err


# -- messages that say what happened ---------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refused_pickle_in_resume_pt_names_the_global(files, tmp_path):
    _, data, *_ = files
    run = tmp_path / "run"
    code, err, _ = invoke("finetune", "-m", "av-tiny", "-d", data, "-o", run, "--epochs", "1", "-q")
    assert code == 0, err
    (run / "resume.pt").write_bytes(pickle.dumps({"format": _Evil()}, protocol=2))
    code, err, _ = invoke("finetune", "--resume", run)
    assert_one_line_error(code, err, "refused as unsafe", f"{os.system.__module__}.system")
    assert "truncated" not in err


def test_checkpoint_of_another_architecture_names_all_three_counts(files):
    _, data, ckpt, _ = files
    code, err, _ = invoke("audit", "-m", "av-resnet18", "-c", ckpt, "-d", data, "-q")
    assert_one_line_error(code, err, "missing keys", "unexpected keys", "keys of other shapes")
    assert "missing keys 240: encoders.audio.net.conv1.weight" in err


def test_training_file_as_its_own_validation_split_warns(files, tmp_path):
    _, data, *_ = files
    code, err, _ = invoke("finetune", "-m", "av-tiny", "-d", data, "-o", tmp_path / "run", "--epochs", "1", "-q")
    assert code == 0, err
    assert "warning:" in err and "both the training and the validation data" in err


def test_a_split_directory_gives_no_such_warning(tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    write_data(split / "train.pt")
    write_data(split / "val.pt")
    code, err, _ = invoke("finetune", "-m", "av-tiny", "-d", split, "-o", tmp_path / "run", "--epochs", "1", "-q")
    assert code == 0, err
    assert "both the training and the validation data" not in err


NOISY_PLUGIN = """
import logging, warnings
from mmbalance.models import create_model

def make(num_classes=3):
    warnings.warn("a library's deprecation noise", DeprecationWarning)
    logging.getLogger("matplotlib.font_manager").warning("findfont: noise")
    return create_model("av-tiny", num_classes=num_classes)
"""


@pytest.mark.parametrize(("flags", "shown"), [([], True), (["-q"], False), (["--debug", "-q"], True)])
def test_quiet_silences_library_warnings(files, tmp_path, caplog, flags, shown):
    _, data, *_ = files
    plugin = tmp_path / "noisy.py"
    plugin.write_text(NOISY_PLUGIN)
    debug = ["--debug"] if "--debug" in flags else []
    rest = [f for f in flags if f != "--debug"]
    code, err, _ = invoke(*debug, "audit", "-m", f"{plugin}:make", "-d", data, "--steps", "2", "--bootstrap", "0",
                          "--json", *rest)
    assert code == 0, err
    assert ("deprecation noise" in err) is shown, err
    # pytest's own log handler stands in for stderr (where logging's last-resort handler writes in a real run)
    assert ("findfont: noise" in caplog.text) is shown, caplog.text


@pytest.mark.parametrize("no_color", ["1", "yes", ""])
def test_no_color_means_no_styling_at_all(monkeypatch, no_color):
    from mmbalance.cli.app import stderr_console, stdout_console

    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, as far as rich knows
    monkeypatch.setenv("NO_COLOR", no_color)
    for make in (stderr_console, stdout_console):
        console = make()
        with console.capture() as cap:
            console.print("[bold red]error:[/] [bold]bold[/]")
        assert ("\x1b[" in cap.get()) is (not no_color), repr(cap.get())


# -- signals and pipes, as a real process ----------------------------------------------------------------------

def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the command ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} never appeared")
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code", "reason"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                     (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_signal_during_finetune_says_where_to_resume(tmp_path, sig, code, reason):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mmbalance", "finetune", "-m", "av-tiny", "-d", TINY,
                             "-o", str(run), "--epochs", "1000", "-q"], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(run / "resume.pt", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(reason), err
    assert f"mmbalance finetune --resume {run}" in lines[0] and "Traceback" not in err


def test_ctrl_c_while_starting_up_is_one_line(tmp_path):
    # The start-up guard of a CLI process, then a Ctrl-C while importing mmbalance (torch): no traceback.
    script = textwrap.dedent("""
        import os, signal, sys
        sys.orig_argv = [sys.executable, "-m", "mmbalance", "models"]
        from mmbalance._startup import guard_cli_startup
        guard_cli_startup()
        os.kill(os.getpid(), signal.SIGINT)
        import mmbalance.cli
        print("not reached")
    """)
    # mmbalance/__init__ is imported by `from mmbalance._startup ...` already; the interrupt lands right after.
    proc = subprocess.run([sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "mmbalance: interrupted while starting up; nothing was run"
    assert "not reached" not in proc.stdout


def test_importing_mmbalance_as_a_library_installs_no_handler():
    # compared with the handler before the import: a harness may start Python with SIGINT ignored
    proc = subprocess.run([sys.executable, "-c", "import signal; before = signal.getsignal(signal.SIGINT); "
                           "import mmbalance; print(signal.getsignal(signal.SIGINT) is before)"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr


def test_is_cli_process():
    from mmbalance._startup import is_cli_process

    assert is_cli_process(["python", "-m", "mmbalance", "audit"])
    assert is_cli_process(["python", "-X", "importtime", "-m", "mmbalance"])
    assert is_cli_process(["python", "/venv/bin/mmbalance", "audit", "-m", "x"])
    assert not is_cli_process(["python", "-m", "pytest", "-m", "mmbalance"])
    assert not is_cli_process(["python", "-c", "import mmbalance"])
    assert not is_cli_process(["python", "script.py", "mmbalance"])


@pytest.mark.parametrize("command", ["audit", "finetune"])
def test_a_closed_stdout_ends_quietly_with_the_outputs_written(files, tmp_path, command):
    _, data, ckpt, _ = files
    if command == "audit":
        target = tmp_path / "audit.json"
        args = ["audit", "-m", "av-tiny", "-c", str(ckpt), "-d", str(data), "--steps", "2", "-o", str(target)]
    else:
        target = tmp_path / "run" / "best.pt"
        args = ["finetune", "-m", "av-tiny", "-d", TINY, "-o", str(tmp_path / "run"), "--epochs", "1"]
    read, write = os.pipe()
    os.close(read)  # `| head -0`: nobody reads stdout
    try:
        proc = subprocess.run([sys.executable, "-m", "mmbalance", *args], env=subprocess_env(), stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr, proc.stderr
    assert target.is_file()
    if command == "audit":
        assert json.loads(target.read_text())["schema"] == "mmbalance.audit/1"
