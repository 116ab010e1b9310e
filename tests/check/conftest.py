"""Shared fixtures for the check tests: audits built in code, a CLI runner."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any, Callable

import pytest

from mmbalance.results import AuditResult, MethodResult


def make_audit(
    shares: dict[str, float] | None = None,
    *,
    accuracy: float = 0.9,
    per_class: dict[str, dict[str, float]] | None = None,
    ablation: dict[str, float] | None = None,
    accuracy_drop: dict[str, float] | None = None,
    extra_methods: dict[str, dict[str, float]] | None = None,
    model: str = "av-tiny",
) -> AuditResult:
    """An audit with IG shares (and optionally per-class shares and an ablation method)."""
    shares = shares if shares is not None else {"audio": 0.6, "visual": 0.4}
    modalities = list(shares)
    methods = {"ig": MethodResult(
        name="ig", shares=dict(shares), scores={m: 10 * s for m, s in shares.items()},
        per_class={c: {"n": 10, "shares": s} for c, s in (per_class or {}).items()},
    )}
    for name, s in (extra_methods or {}).items():
        methods[name] = MethodResult(name=name, shares=dict(s))
    if ablation is not None:
        extra = {"accuracy_drop": accuracy_drop} if accuracy_drop is not None else {}
        methods["ablation"] = MethodResult(name="ablation", shares={m: 1 / len(modalities) for m in modalities},
                                           scores=dict(ablation), extra=extra)
    return AuditResult(model=model, data="synthetic:av-dominance", n_samples=40, modalities=modalities,
                       accuracy=accuracy, methods=methods, primary_method="ig", checkpoint="run/best.pt",
                       split="test", classes=list(per_class or {}))


@pytest.fixture(name="make_audit")
def _make_audit_fixture() -> Callable[..., AuditResult]:
    """:func:`make_audit` as a fixture (test modules don't import conftest)."""
    return make_audit


@pytest.fixture
def write_audit(tmp_path: Path) -> Callable[..., Path]:
    """Write an audit (built by :func:`make_audit` from the keyword arguments) to a JSON file."""
    counter = iter(range(1000))

    def write(audit: AuditResult | None = None, name: str | None = None, **kwargs: Any) -> Path:
        path = tmp_path / (name or f"audit{next(counter)}.json")
        (audit or make_audit(**kwargs)).save(path)
        return path

    return write


@pytest.fixture(autouse=True)
def _no_ci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run inside CI too: never write to the real job summary or print real annotations."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("MMBALANCE_DEBUG", raising=False)


def _import_cli() -> types.ModuleType:
    """``mmbalance.cli.app`` with the check command registered.

    The check tests only need ``app`` and ``cmd_check``. ``mmbalance/cli/__init__.py``
    imports every command module, some written concurrently; if that import fails, the
    package is registered bare so that these two modules still import on their own.
    """
    try:
        importlib.import_module("mmbalance.cli")
    except ImportError:
        import mmbalance

        package = types.ModuleType("mmbalance.cli")
        package.__path__ = [str(Path(mmbalance.__file__).parent / "cli")]
        package.__package__ = "mmbalance.cli"
        sys.modules["mmbalance.cli"] = package
    app_module = importlib.import_module("mmbalance.cli.app")
    importlib.import_module("mmbalance.cli.cmd_check")
    return app_module


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Invoke ``mmbalance <args>`` in-process; returns the typer ``Result``."""
    from typer.testing import CliRunner

    app_module = _import_cli()
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(app_module.app, list(args), env=env)

    return invoke
