"""The built-in synthetic dataset ``synthetic:av-dominance``: a planted modality imbalance.

"Audio is fast to learn but incomplete, visual is slower but complementary":

* Classes come in pairs: class ``c`` belongs to *group* ``c // 2`` (4 classes: groups {0, 1}
  and {2, 3}) and is *member* ``c % 2`` of it. Names say so: ``low-a, low-b, high-a, high-b``.
* **audio** ``(1, 32, 32)`` = (channels, freq, time): unit noise plus a loud striped band in a
  group-specific frequency range; the stripes' orientation is group-specific too (steady
  horizontal tones for ``low``, vertical clicks for ``high``). It names the group every time
  and is learned within about one epoch, but it is the same for both members of a group, so
  audio alone tops out near 50% with 4 classes. On :data:`AUDIO_CUE_FRACTION` of the samples
  the band also carries a faint checkerboard, fine for member ``a`` and coarse for ``b``:
  a weak within-pair cue that lifts the audio-only ceiling to about 60% ("incomplete").
* **visual** ``(3, 4, 32, 32)`` = (C, T, H, W): unit noise over a faint grating, the same in
  every frame and channel, with a random phase. Its orientation names the class: the two
  members of a group are orthogonal, neighbouring orientations belong to other groups. On
  :data:`VISUAL_GROUP_CONFUSION` of the samples it shows the same member of *another* group.
  So visual always knows the member, usually the group; at this low signal-to-noise ratio it
  is learned several times slower than audio and alone reaches about 75-80%.
* Together they give the class almost always (audio: the group, visual: the member), and a
  fused model can reach ~100%. A plainly trained fused model first learns audio, sits near
  the audio-only plateau for a while, and under-uses the visual stream.

All patterns are local textures, so they survive global average pooling (as in ``av-tiny``).
Each split is drawn from its own :class:`torch.Generator` seeded from ``(seed, split)``: the
same seed gives bit-identical tensors, and the test split does not depend on ``n_train``.

Example:
    >>> inputs, labels, classes = synthesize_av_dominance(8, seed=0)
    >>> tuple(inputs["audio"].shape), tuple(inputs["visual"].shape), classes
    ((8, 1, 32, 32), (8, 3, 4, 32, 32), ['low-a', 'low-b', 'high-a', 'high-b'])
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..limits import MAX_SAMPLES, check_int
from ..errors import UsageError

NAME = "av-dominance"
MODALITIES = ("audio", "visual")
AUDIO_SHAPE = (1, 32, 32)
VISUAL_SHAPE = (3, 4, 32, 32)
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
#: environment variable that shrinks the default split sizes (docs tests, CI smoke runs): "train=64,val=32,test=32"
SIZES_ENV = "MMBALANCE_SYNTHETIC_SIZES"


def _default_sizes() -> dict[str, int]:
    """2000/500/1000 samples, or the sizes named in ``$MMBALANCE_SYNTHETIC_SIZES`` (malformed: ignored)."""
    sizes = {"train": 2000, "val": 500, "test": 1000}
    for part in os.environ.get(SIZES_ENV, "").split(","):
        name, _, value = part.partition("=")
        if name.strip() in sizes and value.strip().isdigit() and int(value) > 0:
            sizes[name.strip()] = int(value)
    return sizes


DEFAULT_SIZES = _default_sizes()
DEFAULT_NUM_CLASSES = 4
MAX_NUM_CLASSES = 16

# audio: a loud striped band (easy to learn) that names the group only
AUDIO_NOISE_STD = 1.0
AUDIO_BAND_AMPLITUDE = 3.0  # stripe peak above the noise floor, in noise standard deviations
AUDIO_BAND_JITTER = 0.2  # per-sample level is scaled by U(1 - j, 1 + j)
AUDIO_BAND_MARGIN = 2  # frequency bins left empty at each edge of a group's slot
AUDIO_PERIOD = 4.0  # stripe period (bins)
AUDIO_CUE_FRACTION = 0.2  # share of samples with the faint within-pair cue
AUDIO_CUE_AMPLITUDE = 0.5  # level of that checkerboard cue

# visual: a faint grating (slow to learn) that names the class, sometimes with the wrong group
VISUAL_NOISE_STD = 1.0
VISUAL_AMPLITUDE = 0.12  # grating amplitude (peak), in noise standard deviations
VISUAL_PERIOD = 6.0  # grating period (pixels)
VISUAL_GROUP_CONFUSION = 0.2  # share of samples showing the same member of another group


def class_names(num_classes: int = DEFAULT_NUM_CLASSES) -> list[str]:
    """Readable class names: ``<band>-<member>``, e.g. ``["low-a", "low-b", "high-a", "high-b"]``.

    The band is what audio hears (the group), the member what only visual (or the faint
    audio cue) tells apart.

    Example:
        >>> class_names(6)
        ['low-a', 'low-b', 'mid-a', 'mid-b', 'high-a', 'high-b']
    """
    _check_num_classes(num_classes)
    groups = math.ceil(num_classes / 2)
    bands = {1: ["band"], 2: ["low", "high"], 3: ["low", "mid", "high"]}.get(
        groups, [f"band{g}" for g in range(groups)])
    return [f"{bands[c // 2]}-{'ab'[c % 2]}" for c in range(num_classes)]


def synthesize_av_dominance(
    n: int,
    *,
    seed: int = 0,
    num_classes: int = DEFAULT_NUM_CLASSES,
    split_offset: int = 0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]:
    """Draw ``n`` samples of the planted-imbalance dataset (see the module docstring).

    ``split_offset`` picks an independent stream for the same ``seed`` (train 0, val 1,
    test 2). Labels are balanced (``n // num_classes`` each, the rest spread) and shuffled.

    Example:
        >>> a, _, _ = synthesize_av_dominance(4, seed=1)
        >>> b, _, _ = synthesize_av_dominance(4, seed=1)
        >>> torch.equal(a["visual"], b["visual"])
        True
    """
    _check_num_classes(num_classes)
    if n < 1:
        raise UsageError(f"the synthetic dataset needs at least 1 sample, got {n}")
    gen = torch.Generator().manual_seed(_stream_seed(seed, split_offset))
    labels = torch.randperm(n, generator=gen) % num_classes
    audio = _audio(labels, num_classes, gen)
    visual = _visual(labels, num_classes, gen)
    return {"audio": audio, "visual": visual}, labels.long(), class_names(num_classes)


def write_synthetic(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_train: int = DEFAULT_SIZES["train"],
    n_val: int = DEFAULT_SIZES["val"],
    n_test: int = DEFAULT_SIZES["test"],
    num_classes: int = DEFAULT_NUM_CLASSES,
    overwrite: bool = True,
) -> dict[str, Path]:
    """Write ``train.pt``, ``val.pt`` and ``test.pt`` in the tensor dataset format.

    Existing split files are replaced (atomically) unless ``overwrite=False``, which refuses
    instead (``mmbalance data synth`` does that without ``--force``). Returns the path per split.

    Example:
        >>> import tempfile
        >>> paths = write_synthetic(tempfile.mkdtemp(), n_train=8, n_val=4, n_test=4)
        >>> sorted(paths)
        ['test', 'train', 'val']
    """
    from ..io import check_output_dir, check_output_file
    from .tensor_format import save_tensor_dataset

    out = Path(out_dir)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in sizes.items():
        check_int(f"--n-{split}", n, 1, MAX_SAMPLES)
    _check_num_classes(num_classes)
    check_output_dir(out, what="--out")
    targets = {split: out / f"{split}.pt" for split in sizes}
    for target in targets.values():
        check_output_file(target)
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise UsageError(f"refusing to overwrite {', '.join(existing)}",
                         hint="choose another directory, or overwrite them with --force (overwrite=True)")
    for split, n in sizes.items():
        inputs, labels, classes = synthesize_av_dominance(
            n, seed=seed, num_classes=num_classes, split_offset=SPLIT_OFFSETS[split])
        save_tensor_dataset(targets[split], inputs, labels, classes)
    return targets


def _stream_seed(seed: int, split_offset: int) -> int:
    # one independent stream per (seed, split); stays inside the generator's 64-bit range
    return (int(seed) * 1_000_003 + int(split_offset)) % (2**63)


def _check_num_classes(num_classes: int) -> None:
    if not 2 <= num_classes <= MAX_NUM_CLASSES:
        raise UsageError(f"num_classes must be between 2 and {MAX_NUM_CLASSES}, got {num_classes}")


def _grating(n: int, height: int, width: int, angle: torch.Tensor, period: float,
             gen: torch.Generator) -> torch.Tensor:
    """``0.5 + 0.5 cos(...)`` stripes at ``angle`` (n,) with a random phase per sample: (n, H, W) in [0, 1]."""
    phase = 2 * math.pi * torch.rand(n, generator=gen)
    yy = torch.arange(height).float()[None, :, None]
    xx = torch.arange(width).float()[None, None, :]
    proj = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    return 0.5 + 0.5 * torch.cos(2 * math.pi * proj / period + phase[:, None, None])


def _audio(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    n = labels.numel()
    _, n_freq, n_time = AUDIO_SHAPE
    groups = math.ceil(num_classes / 2)
    group = labels // 2
    noise = torch.randn((n, *AUDIO_SHAPE), generator=gen) * AUDIO_NOISE_STD
    level = AUDIO_BAND_AMPLITUDE * (1 + AUDIO_BAND_JITTER * (2 * torch.rand(n, generator=gen) - 1))
    stripes = _grating(n, n_freq, n_time, math.pi * group.float() / groups + math.pi / 2, AUDIO_PERIOD, gen)
    has_cue = (torch.rand(n, generator=gen) < AUDIO_CUE_FRACTION).float()

    slot = n_freq // groups
    margin = min(AUDIO_BAND_MARGIN, (slot - 1) // 2)
    freq = torch.arange(n_freq)
    lo = group * slot + margin
    in_band = ((freq[None, :] >= lo[:, None]) & (freq[None, :] < (lo + slot - 2 * margin)[:, None])).float()
    # the faint within-pair cue: a fine (member a) or coarse (member b) checkerboard
    f = freq[:, None]
    t = torch.arange(n_time)[None, :]
    fine = ((f + t) % 2).float()
    coarse = ((f // 2 + t // 2) % 2).float()
    cue = torch.where((labels % 2 == 0)[:, None, None], fine, coarse)  # (n, F, T)
    band = level[:, None, None] * stripes + AUDIO_CUE_AMPLITUDE * has_cue[:, None, None] * cue
    return noise + (in_band[:, :, None] * band)[:, None]


def _visual(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    n = labels.numel()
    _, _, height, width = VISUAL_SHAPE
    groups = math.ceil(num_classes / 2)
    noise = torch.randn((n, *VISUAL_SHAPE), generator=gen) * VISUAL_NOISE_STD
    # pair members are orthogonal; neighbouring orientations belong to different groups
    group = labels // 2
    if groups > 1:  # some samples show the same member of another group
        confused = torch.rand(n, generator=gen) < VISUAL_GROUP_CONFUSION
        other = (group + torch.randint(1, groups, (n,), generator=gen)) % groups
        group = torch.where(confused, other, group)
    angle = math.pi * (group.float() / (2 * groups) + (labels % 2).float() / 2)
    stripes = VISUAL_AMPLITUDE * (2 * _grating(n, height, width, angle, VISUAL_PERIOD, gen) - 1)
    return noise + stripes[:, None, None]
