"""Check policies: the rules of a CI gate, kept in a TOML file next to the code.

A policy is the ``[check]`` table of a TOML file (``mmbalance.toml``), or the
``[tool.mmbalance.check]`` table of a file named ``pyproject.toml``::

    [check]
    method = "ig"                         # whose shares are judged (default: the audit's primary method)
    per_class = true                      # share rules also hold in every class
    level = "fail"                        # default level of every rule: "fail" or "warn"
    baseline = "audits/main.json"         # for max_share_increase; relative to this file
    max_share = 0.7                       # each modality's share ≤ 70%
    min_share = { visual = 0.25, level = "warn" }
    max_share_variance = { limit = 0.05, level = "warn" }
    min_accuracy = 0.6
    max_share_increase = 0.05

Every key is documented in ``docs/ci.md``. Unknown keys and values of the wrong type
raise :class:`~mmbalance.errors.UsageError` naming the key and the file.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mmbalance.toml"
    >>> _ = p.write_text('[check]\\nmax_share = 0.7\\nmin_share = { visual = 0.25, level = "warn" }\\n')
    >>> [r.id for r in load_policy(p).rules]
    ['max_share', 'min_share[visual]']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError
from .rules import LEVELS, RULES, Rule, limit_problem, suggest

try:  # Python ≥ 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 with the tomli backport
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

SETTINGS = {
    "method": "a string (an estimator name such as \"ig\")",
    "per_class": "a boolean (true or false)",
    "level": "\"warn\" or \"fail\"",
    "baseline": "a string (the path of a baseline audit JSON)",
    "require_agreement": "a boolean (true or false)",
    "allow_untrained": "a boolean (true or false)",
}
POLICY_KEYS = (*SETTINGS, *RULES)


@dataclass(frozen=True)
class Policy:
    """A parsed policy: the rules and the settings that apply to all of them.

    ``baseline`` is already resolved against the policy file's directory; ``source``
    names where the policy came from (for messages).
    """

    rules: tuple[Rule, ...] = ()
    method: str | None = None
    per_class: bool = False
    baseline: Path | None = None
    source: str | None = None
    require_agreement: bool = False
    allow_untrained: bool = False


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read the ``[check]`` table of a TOML file (``[tool.mmbalance.check]`` of a ``pyproject.toml``).

    Example:
        >>> policy = load_policy("mmbalance.toml")  # doctest: +SKIP
        >>> report = check(audit, policy.rules, method=policy.method, per_class=policy.per_class)  # doctest: +SKIP
    """
    p = Path(path)
    if _toml is None:  # pragma: no cover
        raise UsageError("reading policy files needs Python 3.11 or the 'tomli' package",
                         hint="pip install tomli")
    try:
        with open(p, "rb") as fh:
            document = _toml.load(fh)
    except FileNotFoundError:
        raise UsageError(f"policy file {p} does not exist") from None
    except OSError as err:
        raise UsageError(f"cannot read policy file {p}: {err.strerror or err}") from None
    except _toml.TOMLDecodeError as err:
        raise UsageError(f"policy file {p} is not valid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"policy file {p} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                         f"{err.start})", hint="TOML files must be UTF-8") from None
    except (ValueError, RecursionError) as err:  # e.g. a 5000-digit integer, or tables nested thousands deep
        raise UsageError(f"policy file {p} is not valid TOML: {err}") from None

    if p.name == "pyproject.toml":
        table_name = "[tool.mmbalance.check]"
        tool = document.get("tool")
        section = tool.get("mmbalance") if isinstance(tool, Mapping) else None
        table = section.get("check") if isinstance(section, Mapping) else None
        if table is None:
            raise UsageError(f"{p} has no {table_name} table", hint="add one with the check rules (see docs/ci.md)")
    else:
        table_name = "[check]"
        table = document.get("check")
        if table is None:
            strays = [k for k in document if k in POLICY_KEYS]
            hint = (f"put {', '.join(strays)} under a [check] table" if strays
                    else "add a [check] table with the rules (see docs/ci.md)")
            raise UsageError(f"policy file {p} has no [check] table", hint=hint)
    if not isinstance(table, Mapping):
        raise UsageError(f"{table_name} in {p} must be a table")
    return parse_policy(table, source=f"{table_name} of {p}", base_dir=p.parent)


def parse_policy(table: Mapping[str, Any], *, source: str = "policy",
                 base_dir: str | os.PathLike[str] | None = None) -> Policy:
    """Build a :class:`Policy` from an already-parsed table (the ``[check]`` mapping).

    Example:
        >>> parse_policy({"max_share": {"limit": 0.7, "level": "warn"}}).rules
        (Rule(name='max_share', limit=0.7, modality=None, level='warn'),)
    """
    for key in table:
        if key not in POLICY_KEYS:
            hint = suggest(str(key), POLICY_KEYS) or f"known keys: {', '.join(POLICY_KEYS)}"
            raise UsageError(f"unknown key '{key}' in {source}", hint=hint)

    def bad(key: str, expected: str, value: Any) -> UsageError:
        return UsageError(f"{key} in {source} must be {expected}, got {_type_name(value)} {_toml_repr(value)}")

    method = table.get("method")
    if method is not None and (not isinstance(method, str) or not method):
        raise bad("method", SETTINGS["method"], method)
    per_class = table.get("per_class", False)
    if not isinstance(per_class, bool):
        raise bad("per_class", SETTINGS["per_class"], per_class)
    flags = {}
    for key in ("require_agreement", "allow_untrained"):
        flags[key] = table.get(key, False)
        if not isinstance(flags[key], bool):
            raise bad(key, SETTINGS[key], flags[key])
    level = table.get("level", "fail")
    if level not in LEVELS:
        raise bad("level", SETTINGS["level"], level)
    baseline = table.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise bad("baseline", SETTINGS["baseline"], baseline)
    baseline_path = None
    if baseline is not None:
        baseline_path = Path(baseline)
        if base_dir is not None and not baseline_path.is_absolute():
            baseline_path = Path(base_dir) / baseline_path

    rules: list[Rule] = []
    for key, value in table.items():
        if key in RULES:
            rules.extend(_rules_for(key, value, level, source))
    return Policy(rules=tuple(rules), method=method, per_class=per_class, baseline=baseline_path, source=source,
                  **flags)


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expected(name: str) -> str:
    if RULES[name].per_modality:
        return "a number, or a table such as { limit = 0.7, level = \"warn\" } or { visual = 0.25 }"
    return "a number, or a table such as { limit = 0.05, level = \"warn\" }"


def _make(name: str, limit: Any, modality: str | None, level: Any, key: str, source: str) -> Rule:
    if not _is_number(limit):
        raise UsageError(f"{key} in {source} must be {_expected(name) if modality is None else 'a number'}, "
                         f"got {_type_name(limit)} {_toml_repr(limit)}")
    if level not in LEVELS:
        raise UsageError(f"{key}.level in {source} must be \"warn\" or \"fail\", got {_toml_repr(level)}")
    problem = limit_problem(name, limit)
    if problem is not None:
        raise UsageError(f"{key} in {source}: {problem[0]}", hint=problem[1])
    return Rule(name, limit, modality=modality, level=level)


def _rules_for(name: str, value: Any, default_level: str, source: str) -> list[Rule]:
    """The rules one policy key stands for: a number, or a table of limit/level/modalities."""
    if _is_number(value):
        return [_make(name, value, None, default_level, name, source)]
    if not isinstance(value, Mapping):
        raise UsageError(f"{name} in {source} must be {_expected(name)}, got {_type_name(value)} {_toml_repr(value)}")
    level = value.get("level", default_level)
    if level not in LEVELS:
        raise UsageError(f"{name}.level in {source} must be \"warn\" or \"fail\", got {_toml_repr(level)}")
    rules: list[Rule] = []
    if "limit" in value:
        rules.append(_make(name, value["limit"], None, level, f"{name}.limit", source))
    for modality, entry in value.items():
        if modality in ("limit", "level"):
            continue
        key = f"{name}.{modality}"
        if not RULES[name].per_modality:
            raise UsageError(f"unknown key '{key}' in {source}: {name} takes no per-modality limits",
                             hint="use { limit = ..., level = \"warn\" }")
        if isinstance(entry, Mapping):
            extra = [k for k in entry if k not in ("limit", "level")]
            if extra:
                raise UsageError(f"unknown key '{key}.{extra[0]}' in {source}",
                                 hint=suggest(str(extra[0]), ("limit", "level")) or "expected limit and level")
            if "limit" not in entry:
                raise UsageError(f"{key} in {source} has no limit")
            rules.append(_make(name, entry["limit"], str(modality), entry.get("level", level), key, source))
        else:
            rules.append(_make(name, entry, str(modality), level, key, source))
    if not rules:
        raise UsageError(f"{name} in {source} gives no limit", hint=f"e.g. {name} = {{ limit = 0.7 }}")
    return rules
