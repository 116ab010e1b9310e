"""``mmbalance check``: gate a build on how evenly a model uses its modalities.

A thin shell over :mod:`mmbalance.check`: gather the rules (policy file, then flags),
get the audit (``--audit FILE``, or run it), call :func:`~mmbalance.check.check`, render.
Exit 0 when no rule fails (warnings allowed), 1 when one fails, 2 on errors.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from ..errors import MMBalanceError, UsageError
from ..io import check_not_same_file, check_output_file
from ._options import (BatchSizeOpt, CallOpt, CheckpointOpt, DataOpt, DeviceOpt, ModalitiesOpt, ModelArgOpt,
                       ModelOpt, OutputOpt, PadIdOpt, PassThroughOpt, QuietOpt, SplitOpt, TrustOpt, TrustRemoteOpt,
                       parse_output, split_list)
from .app import EXIT_CHECK_FAILED, EXIT_OK, app, record_verdict, stderr_console, stdout_console

if TYPE_CHECKING:
    from ..check import CheckReport

_RULES_PANEL = "Rules ([MODALITY=]NUMBER[:warn|:fail])"
_AUDIT_PANEL = "Run the audit (instead of --audit)"
_OUTPUT_PANEL = "Output"


def _in_panel(shared: Any, panel: str = _AUDIT_PANEL) -> Any:
    """A shared option's ``typer.Option`` (from ``_options``) shown under another help panel.

    The value types are restated here: ``--model``/``--data`` are required for ``audit``
    but optional here, where ``--audit FILE`` replaces them.
    """
    info = copy.copy(shared.__metadata__[0])
    info.rich_help_panel = panel
    return info


_Model = Annotated[Optional[str], _in_panel(ModelOpt)]
_Data = Annotated[Optional[str], _in_panel(DataOpt)]
_Checkpoint = Annotated[Optional[Path], _in_panel(CheckpointOpt)]
_Split = Annotated[Optional[str], _in_panel(SplitOpt)]
_ModelArg = Annotated[Optional[list[str]], _in_panel(ModelArgOpt)]
_Modalities = Annotated[Optional[str], _in_panel(ModalitiesOpt)]
_Output = Annotated[Optional[str], _in_panel(OutputOpt)]
_Device = Annotated[str, _in_panel(DeviceOpt)]
_BatchSize = Annotated[int, _in_panel(BatchSizeOpt)]
_Trust = Annotated[bool, _in_panel(TrustOpt)]
_TrustRemote = Annotated[bool, _in_panel(TrustRemoteOpt)]
_PassThrough = Annotated[Optional[str], _in_panel(PassThroughOpt)]
_Call = Annotated[str, _in_panel(CallOpt)]
_PadId = Annotated[Optional[int], _in_panel(PadIdOpt)]
_Quiet = Annotated[bool, _in_panel(QuietOpt, _OUTPUT_PANEL)]


def _rule_opt(flag: str, help: str, *, many: bool = True) -> Any:
    return typer.Option(flag, help=help + (" Repeatable." if many else ""), rich_help_panel=_RULES_PANEL,
                        metavar="SPEC")


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@app.command("check")
def check_command(
    audit_file: Annotated[Optional[Path], typer.Option(
        "--audit", "-a", help="Audit JSON to judge (from `mmbalance audit --out`).")] = None,
    policy_file: Annotated[Optional[Path], typer.Option(
        "--policy", "-p", help="TOML policy: its \\[check] table, or \\[tool.mmbalance.check] of a pyproject.toml. "
                               "Flags override its rules.")] = None,
    max_share: Annotated[Optional[list[str]], _rule_opt(
        "--max-share", "Largest share a modality may take: 0.7, audio=0.8, 0.7:warn.")] = None,
    min_share: Annotated[Optional[list[str]], _rule_opt(
        "--min-share", "Smallest share a modality must get: visual=0.25, or 0.1 for each.")] = None,
    max_share_variance: Annotated[Optional[str], _rule_opt(
        "--max-share-variance", "Largest variance of the shares across modalities.", many=False)] = None,
    min_accuracy: Annotated[Optional[str], _rule_opt(
        "--min-accuracy", "Smallest top-1 accuracy, e.g. 0.6.", many=False)] = None,
    min_ablation_drop: Annotated[Optional[list[str]], _rule_opt(
        "--min-ablation-drop", "Smallest target-logit drop when a modality is ablated (needs the ablation "
                               "estimator).")] = None,
    min_ablation_accuracy_drop: Annotated[Optional[list[str]], _rule_opt(
        "--min-ablation-accuracy-drop", "Smallest accuracy drop when a modality is ablated.")] = None,
    max_share_increase: Annotated[Optional[list[str]], _rule_opt(
        "--max-share-increase", "Largest growth of a share over --baseline, e.g. 0.05.")] = None,
    max_completeness_error: Annotated[Optional[str], _rule_opt(
        "--max-completeness-error", "Largest mean IG completeness error as a fraction of |F(x) - F(baseline)|, "
                                    "e.g. 0.05 (needs the ig estimator).", many=False)] = None,
    min_probe_gap: Annotated[Optional[list[str]], _rule_opt(
        "--min-probe-gap", "Smallest encoder probe gap to the unimodal run, e.g. -0.05 or visual=-0.05 "
                           "(needs audit --probe --probe-unimodal).")] = None,
    baseline: Annotated[Optional[Path], typer.Option(
        "--baseline", help="Baseline audit JSON for --max-share-increase.", rich_help_panel=_RULES_PANEL)] = None,
    method: Annotated[Optional[str], typer.Option(
        "--method", help="Estimator whose shares are judged (default: the audit's primary method).",
        rich_help_panel=_RULES_PANEL)] = None,
    require_agreement: Annotated[bool, typer.Option(
        "--require-agreement", help="Fail (not only warn) when the audit's estimators name different dominant "
        "modalities (verdict inconclusive).", rich_help_panel=_RULES_PANEL)] = False,
    allow_untrained: Annotated[bool, typer.Option(
        "--allow-untrained", help="Accept an audit run without --checkpoint (a model that loads its own weights).",
        rich_help_panel=_RULES_PANEL)] = False,
    per_class: Annotated[Optional[bool], typer.Option(
        "--per-class/--no-per-class", help="Share rules must also hold in every class.",
        rich_help_panel=_RULES_PANEL, show_default=False)] = None,
    model: _Model = None,
    data: _Data = None,
    checkpoint: _Checkpoint = None,
    split: _Split = None,
    model_arg: _ModelArg = None,
    modalities: _Modalities = None,
    output: _Output = None,
    pass_through: _PassThrough = None,
    call: _Call = "auto",
    pad_id: _PadId = None,
    device: _Device = "auto",
    batch_size: _BatchSize = 32,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Audit only the first N samples.", rich_help_panel=_AUDIT_PANEL)] = None,
    steps: Annotated[int, typer.Option(
        "--steps", min=1, help="Integrated Gradients steps.", rich_help_panel=_AUDIT_PANEL)] = 32,
    trust_checkpoint: _Trust = False,
    trust_remote_code: _TrustRemote = False,
    save_audit: Annotated[Optional[Path], typer.Option(
        "--save-audit", help="Also write the audit it ran to this JSON file.", rich_help_panel=_AUDIT_PANEL)] = None,
    junit: Annotated[Optional[Path], typer.Option(
        "--junit", help="Write JUnit XML here (one testcase per rule).", rich_help_panel=_OUTPUT_PANEL)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the verdict as JSON on stdout instead of the table.",
        rich_help_panel=_OUTPUT_PANEL)] = False,
    quiet: _Quiet = False,
) -> None:
    """Fail the build when a model leans on one modality beyond the agreed limits.

    Rules come from [bold]--policy[/] and from flags; each is a [bold]fail[/] (exit 1) or, with a
    [bold]:warn[/] suffix, only a warning. Exit 0: no rule failed; 1: a rule failed; 2: error.

    Example: [bold]mmbalance check --audit audit.json --max-share 0.7 --min-share visual=0.25:warn --junit junit.xml[/]
    """
    from ..check import Policy, check, load_policy, merge_rules, rules_from_options  # lazy: torch only once a command runs
    from ..check.rules import ABLATION
    from ..results import DEFAULT_METHODS, AuditResult

    for flag, target, example in (("--junit", junit, "junit.xml"), ("--save-audit", save_audit, "audit.json")):
        if target is not None:
            check_output_file(target, what=flag, example=example)  # fail now, not after the audit
            check_not_same_file(target, ("--audit", audit_file), ("--baseline", baseline), ("--policy", policy_file),
                                ("--data", data), ("--checkpoint", checkpoint), what=flag)
    if junit is not None and save_audit is not None:
        check_not_same_file(junit, ("--save-audit", save_audit), what="--junit")
    policy = load_policy(policy_file) if policy_file is not None else Policy()
    flag_rules = rules_from_options(
        max_share=max_share or (), min_share=min_share or (), max_share_variance=max_share_variance,
        min_accuracy=min_accuracy, min_ablation_drop=min_ablation_drop or (),
        min_ablation_accuracy_drop=min_ablation_accuracy_drop or (), max_share_increase=max_share_increase or (),
        max_completeness_error=max_completeness_error, min_probe_gap=min_probe_gap or (),
    )
    rules = merge_rules(policy.rules, flag_rules)
    if not rules:
        raise UsageError("no check rules given",
                         hint="pass e.g. --max-share 0.7 or --min-share visual=0.25, or --policy mmbalance.toml")
    judged_method = method or policy.method
    baseline_path = baseline if baseline is not None else policy.baseline
    if baseline_path is not None and not any(r.name == "max_share_increase" for r in rules):
        raise UsageError("a baseline audit was given, but no rule uses it",
                         hint="add --max-share-increase 0.05 (or max_share_increase in the policy)")

    base = AuditResult.load(baseline_path, finite=False) if baseline_path is not None else None

    if audit_file is not None:
        if model is not None or data is not None:
            raise UsageError("pass either --audit FILE or --model/--data to run the audit, not both")
        run_only = {"--checkpoint": checkpoint, "--split": split, "--model-arg": model_arg,
                    "--modalities": modalities, "--output": output, "--limit": limit, "--save-audit": save_audit,
                    "--pass-through": pass_through, "--call": call != "auto", "--pad-id": pad_id is not None}
        stray = [flag for flag, value in run_only.items() if value]
        if stray:
            verb = "apply" if len(stray) > 1 else "applies"
            raise UsageError(f"{', '.join(stray)} only {verb} when check runs the audit (--model/--data), "
                             "not with --audit FILE")
        result = AuditResult.load(audit_file, finite=False)  # missing/NaN figures fail the check
    elif model is not None and data is not None:
        methods = [judged_method] if judged_method else list(DEFAULT_METHODS)
        if any(r.name.startswith("min_ablation") for r in rules) and ABLATION not in methods:
            methods.append(ABLATION)
        if any(r.name == "max_completeness_error" for r in rules) and "ig" not in methods:
            methods.append("ig")
        from ..audit import audit as run_audit  # lazy: the audit stack (torch, models) only when needed
        from ..models import parse_model_args
        from ..models.hf import remote_code_trusted

        with remote_code_trusted(trust_remote_code):
            result = run_audit(
                model, data, checkpoint=str(checkpoint) if checkpoint else None, trust_checkpoint=trust_checkpoint,
                model_args=parse_model_args(model_arg or []), split=split, modalities=split_list(modalities),
                output=parse_output(output), methods=methods, steps=steps, batch_size=batch_size, limit=limit,
                device=device, progress=not quiet and not as_json, pass_through=pass_through, call=call,
                pad_id=pad_id,
            )
        if save_audit is not None:
            result.save(save_audit)
    elif model is not None or data is not None:
        raise UsageError("running the audit needs both --model and --data")
    else:
        raise UsageError("nothing to check", hint="pass --audit audit.json, or --model and --data to run the audit")

    report = check(result, rules, baseline=base, method=judged_method,
                   per_class=per_class if per_class is not None else policy.per_class,
                   require_agreement=require_agreement or policy.require_agreement,
                   allow_untrained=allow_untrained or policy.allow_untrained)
    record_verdict(EXIT_OK if report.passed else EXIT_CHECK_FAILED)  # before printing: a closed pipe cannot change it
    _emit(report, junit=junit, as_json=as_json, quiet=quiet)
    if not report.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _emit(report: CheckReport, *, junit: Path | None, as_json: bool, quiet: bool) -> None:
    """Write every output the options and the CI environment ask for."""
    from ..check import append_step_summary, to_annotations, to_table, write_junit
    from ..check.rules import Verdict

    if junit is not None:
        write_junit(report, junit)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            append_step_summary(report, summary_file)
        except MMBalanceError as err:  # the verdict matters more than the summary: warn, go on
            stderr_console().print(f"[yellow]warning:[/] {escape(str(err))}")
    if as_json:
        # stdout stays one JSON document, so no annotation lines are mixed in.
        typer.echo(report.to_json())
        return
    if _truthy_env("GITHUB_ACTIONS"):
        for line in to_annotations(report):
            typer.echo(line)
    if quiet:
        return
    console = stdout_console()
    console.print(to_table(report))
    for o in [*report.failed, *report.warnings]:
        style = "bold red" if o.verdict is Verdict.FAIL else "yellow"
        console.print(f"[{style}]{o.verdict.value}[/] {escape(o.rule)}: {escape(o.message)}")
    for text in report.audit.get("warnings", []):
        console.print(f"[yellow]audit warning:[/] {escape(str(text))}", highlight=False)
    if junit is not None:
        stderr_console().print(f"wrote {junit}")
