"""Policy files: the [check] table, pyproject's [tool.mmbalance.check], and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmbalance.check import Rule, load_policy, parse_policy
from mmbalance.errors import UsageError

FULL = """
[check]
method = "ig"
per_class = true
level = "fail"
baseline = "audits/main.json"
max_share = 0.7
min_share = { visual = 0.25, audio = { limit = 0.1, level = "fail" }, level = "warn" }
max_share_variance = { limit = 0.05, level = "warn" }
min_accuracy = 0.6
min_ablation_drop = { limit = 0.1 }
min_ablation_accuracy_drop = { visual = 0.02 }
max_share_increase = 0.05

[report]
ignored = "other tables are not the check's business"
"""


def write(tmp_path: Path, text: str, name: str = "mmbalance.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, FULL))
    assert policy.method == "ig" and policy.per_class is True
    assert policy.baseline == tmp_path / "audits" / "main.json"
    assert policy.rules == (
        Rule("max_share", 0.7),
        Rule("min_share", 0.25, modality="visual", level="warn"),
        Rule("min_share", 0.1, modality="audio", level="fail"),
        Rule("max_share_variance", 0.05, level="warn"),
        Rule("min_accuracy", 0.6),
        Rule("min_ablation_drop", 0.1),
        Rule("min_ablation_accuracy_drop", 0.02, modality="visual"),
        Rule("max_share_increase", 0.05),
    )
    assert "mmbalance.toml" in (policy.source or "")


def test_default_level_applies_to_every_rule() -> None:
    policy = parse_policy({"level": "warn", "max_share": 0.7, "min_share": {"visual": 0.2}})
    assert [r.level for r in policy.rules] == ["warn", "warn"]
    assert policy.method is None and policy.per_class is False and policy.baseline is None


def test_pyproject_tool_table(tmp_path: Path) -> None:
    text = '[project]\nname = "x"\n\n[tool.mmbalance.check]\nmax_share = { limit = 0.8, level = "warn" }\n'
    path = write(tmp_path, text, name="pyproject.toml")
    assert load_policy(path).rules == (Rule("max_share", 0.8, level="warn"),)
    (tmp_path / "bare").mkdir()
    bare = write(tmp_path / "bare", '[project]\nname = "x"\n', name="pyproject.toml")
    with pytest.raises(UsageError, match=r"no \[tool\.mmbalance\.check\] table"):
        load_policy(bare)


def test_unknown_key_names_key_file_and_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, "[check]\nmax_shares = 0.7\n")
    with pytest.raises(UsageError) as err:
        load_policy(path)
    text = str(err.value)
    assert "unknown key 'max_shares'" in text and str(path) in text and "did you mean 'max_share'" in text


def test_unknown_key_inside_a_rule_table(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"min_share\.visual\.levle.*did you mean 'level'"):
        load_policy(write(tmp_path, '[check]\nmin_share = { visual = { limit = 0.2, levle = "warn" } }\n'))
    with pytest.raises(UsageError, match="max_share_variance.audio.*takes no per-modality limits"):
        load_policy(write(tmp_path, "[check]\nmax_share_variance = { audio = 0.1 }\n"))


@pytest.mark.parametrize("line,match", [
    ('max_share = "0.7"', r'max_share in \[check\] of .* must be a number.*got a string "0.7"'),
    ("per_class = 1", r"per_class in .* must be a boolean"),
    ("method = 3", r"method in .* must be a string"),
    ('level = "error"', r"level in .* must be \"warn\" or \"fail\""),
    ('max_share = { limit = 0.7, level = "loud" }', r"max_share.level .* \"warn\" or \"fail\""),
    ("min_share = { visual = true }", r"min_share.visual in .* must be a number, got a boolean"),
    ("min_share = [0.2]", r"min_share in .* must be a number, or a table"),
    ("max_share = 70", r"max_share in .*between 0 and 1, got 70"),
    ("max_share = { level = \"warn\" }", "gives no limit"),
])
def test_bad_values_name_the_key_and_expected_type(tmp_path: Path, line: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_policy(write(tmp_path, f"[check]\n{line}\n"))


def test_missing_table_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \[check\] table.*put max_share under a \[check\] table"):
        load_policy(write(tmp_path, "max_share = 0.7\n"))
    with pytest.raises(UsageError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_policy(write(tmp_path, "[check\nmax_share = 0.7\n"))


def test_the_examples_in_docs_ci_md_parse(tmp_path: Path) -> None:
    """Every TOML example in docs/ci.md is a valid policy."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "ci.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        name = "pyproject.toml" if "[tool.mmbalance.check]" in block else "mmbalance.toml"
        (tmp_path / str(i)).mkdir()
        assert load_policy(write(tmp_path / str(i), block, name=name)).rules
