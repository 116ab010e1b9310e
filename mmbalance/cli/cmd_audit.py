"""``mmbalance audit``: attribute a model's decisions to its modalities."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import UsageError
from ..io import check_not_same_file, check_output_file
from ._defaults import AUDIT_BOOTSTRAP, AUDIT_METHODS, ESTIMATORS
from ._media_options import SkipBadOpt, media_data, with_decoding_options
from ._options import (BatchSizeOpt, CallOpt, CheckpointOpt, DataOpt, DeterministicOpt, DeviceOpt, JsonOpt,
                       ModalitiesOpt, ModelArgOpt, ModelOpt, OutputOpt, PadIdOpt, PassThroughOpt, QuietOpt, SplitOpt,
                       TrustOpt, TrustRemoteOpt, parse_output, split_list)
from ._render import print_audit, print_warnings
from .app import app, stderr_console, stdout_console

_METHOD_HELP = (f"Comma-separated estimators ({', '.join(ESTIMATORS)}); the first is the primary one. "
                "See docs/estimators.md.")


@app.command("audit")
@with_decoding_options
def audit_command(
    model: ModelOpt,
    data: DataOpt,
    checkpoint: CheckpointOpt = None,
    split: SplitOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the audit JSON here.")] = None,
    method: Annotated[str, typer.Option("--method", help=_METHOD_HELP)] = ",".join(AUDIT_METHODS),
    level: Annotated[str, typer.Option("--level", help="Attribute at the model [bold]input[/] or at each "
                                       "modality's [bold]embedding[/] where it enters the fusion.")] = "input",
    embedding_layer: Annotated[Optional[str], typer.Option(
        "--embedding-layer", help="The module whose output is each modality's embedding, e.g. "
        "audio=audio_net,visual=visual_net (plug-ins at --level embedding); token-id modalities are attributed "
        "there at every level (found automatically when one nn.Embedding takes them). module[0] names element 0 "
        "of a tuple output.")] = None,
    pad_id: PadIdOpt = None,
    pass_through: PassThroughOpt = None,
    call: CallOpt = "auto",
    baseline: Annotated[str, typer.Option("--baseline", help="Reference input: zero, mean (dataset mean), "
                                          "noise or blur.")] = "zero",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integrated Gradients steps (with --tolerance: "
                                       "the most a sample may use).")] = 32,
    quadrature: Annotated[str, typer.Option("--quadrature", help="IG rule: gausslegendre or riemann "
                                            "(trapezoid).")] = "gausslegendre",
    tolerance: Annotated[Optional[float], typer.Option(
        "--tolerance", help="Adaptive IG steps: refine a sample until its completeness error is below this "
        "fraction of |f(x) - f(baseline)|, e.g. 0.01.")] = None,
    pool: Annotated[str, typer.Option("--pool", help="How ig and gradxinput pool a modality's map: l1 (sum of "
                                      "magnitudes) or signed (plain sum, adds up to f(x) - f(baseline)).")] = "l1",
    sanity: Annotated[bool, typer.Option("--sanity", help="Model-randomisation test: audit re-initialised "
                                         "weights too; the shares must move.")] = False,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Shuffles per modality for the "
                                         "permutation estimator.")] = 5,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates for 95% intervals "
                                           "(0: none).")] = AUDIT_BOOTSTRAP,
    per_sample: Annotated[Optional[Path], typer.Option(
        "--per-sample", help="Write per-sample scores and shares to this .csv or .parquet file.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw (noise baseline, shuffles, "
                                      "bootstrap).")] = 0,
    batch_size: BatchSizeOpt = 32,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Audit only the first N samples.")] = None,
    target: Annotated[str, typer.Option("--target", help="Attribute the predicted class (pred) or the label.")] = "pred",
    device: DeviceOpt = "auto",
    deterministic: DeterministicOpt = False,
    precision: Annotated[str, typer.Option("--precision", help="Arithmetic of the IG passes: fp32 (default, "
                                           "exact), tf32 (CUDA matrix units) or bf16 (autocast, sums in fp32; "
                                           "check the completeness error).")] = "fp32",
    probe: Annotated[bool, typer.Option("--probe", help="Also fit a linear probe on each modality's frozen embedding "
                                        "(train split -> the audited split) and report its accuracy "
                                        "(extra.probe in the JSON).")] = False,
    probe_unimodal: Annotated[Optional[str], typer.Option(
        "--probe-unimodal", help="With --probe: unimodal runs to compare each encoder with, e.g. "
                                 "visual=runs/v/best.pt (from finetune --unimodal visual); gives the probe gap.")] = None,
    output: OutputOpt = None,
    modalities: ModalitiesOpt = None,
    model_arg: ModelArgOpt = None,
    trust_checkpoint: TrustOpt = False,
    trust_remote_code: TrustRemoteOpt = False,
    skip_bad: SkipBadOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    *,
    decoding: dict[str, Any],
) -> None:
    """Measure each modality's share of the model's decisions (Shapley values of modality removal and ablation by default).

    Example: [bold]mmbalance audit --model av-tiny --checkpoint run/best.pt --data synthetic:av-dominance --out audit.json[/]

    More estimators: [bold]--method shapley,ablation,ig,permutation,branch --per-sample samples.csv[/]

    Encoder probe: [bold]--probe --probe-unimodal visual=runs/v/best.pt[/] (linear probe per modality, train -> test split)

    Hugging Face: [bold]mmbalance audit --model hf:runs/vilt --data vqa.pt[/] (token ids at their embedding,
    masks passed through).
    """
    from ..audit import audit as run_audit  # lazy: torch only once a command runs
    from ..models import parse_model_args
    from ..models.warm import parse_init
    from ..probe import probe_lines, probe_model

    if probe_unimodal is not None and not probe:
        raise UsageError("--probe-unimodal needs --probe")
    parse_init(probe_unimodal, option="--probe-unimodal")  # a malformed value fails before the audit
    if out is not None:
        check_output_file(out, what="--out", example="audit.json")  # fail now, not after the audit
    if per_sample is not None:
        check_output_file(per_sample, what="--per-sample", example="samples.csv")
    inputs = (("--data", data), ("--checkpoint", str(checkpoint) if checkpoint else None))
    if out is not None:
        check_not_same_file(out, *inputs, ("--per-sample", per_sample), what="--out")
    if per_sample is not None:
        check_not_same_file(per_sample, *inputs, what="--per-sample")
    data = media_data(data, skip_bad=skip_bad, **decoding)
    from ..models.hf import remote_code_trusted

    with remote_code_trusted(trust_remote_code):
        result = run_audit(
            model, data, checkpoint=str(checkpoint) if checkpoint else None, trust_checkpoint=trust_checkpoint,
            model_args=parse_model_args(model_arg or []), split=split, modalities=split_list(modalities),
            output=parse_output(output), methods=split_list(method) or [], steps=steps, batch_size=batch_size,
            limit=limit, target=target, device=device, progress=not quiet and not as_json,
            level=level, baseline=baseline, quadrature=quadrature, tolerance=tolerance,
            embedding_layers=embedding_layer, repeats=repeats, bootstrap=bootstrap,
            per_sample=str(per_sample) if per_sample is not None else None, seed=seed, deterministic=deterministic,
            precision=precision, pass_through=pass_through, call=call, pad_id=pad_id, pool=pool, sanity=sanity,
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 writes and prints
    if probe:
        result.extra["probe"] = probe_model(
            model, data, checkpoint=str(checkpoint) if checkpoint else None, model_args=parse_model_args(model_arg or []),
            unimodal=parse_init(probe_unimodal, option="--probe-unimodal"), test_split=split,
            modalities=split_list(modalities), embedding_layers=embedding_layer, device=device, batch_size=batch_size,
            trust_checkpoint=trust_checkpoint)
    if out is not None:
        result.save(out)
    if as_json:
        typer.echo(result.to_json())
        print_warnings(result, stderr_console())  # stdout stays one JSON document
        return
    if quiet:
        print_warnings(result, stderr_console())
    else:
        print_audit(result, stdout_console())
        if probe:
            for line in probe_lines(result.extra["probe"]):
                stdout_console().print(line, soft_wrap=True)
        if out is not None:
            stderr_console().print(f"wrote {out}")
        if per_sample is not None:
            stderr_console().print(f"wrote {per_sample}")
