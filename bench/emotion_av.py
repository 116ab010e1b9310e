"""A CREMA-D-like audio-visual benchmark: acted emotions in synthetic speech and drawn faces ("emotion-av").

Every sample is an actor saying a short carrier sentence with one of six emotions
(:data:`EMOTIONS`: anger, disgust, fear, happy, neutral, sad) at one of three intensities
(low, medium, high; neutral has none), heard and seen:

* **audio** ``(1, 16, 32)`` = (1, mel bins, frames): one of CREMA-D's sentences ("It's eleven
  o'clock", "Don't forget a jacket", "The surface is slick") spoken by ``espeak-ng`` in one of six
  voices (three male, three female), with the emotion in its prosody: espeak-ng's pitch, pitch
  range (SSML ``<prosody range>``) and speed move from a neutral setting towards the emotion's
  target by the intensity (0.4, 0.7, 1.0), plus a per-sample spread. Every sample is synthesized
  on its own, then augmented with letters-av's ``realistic_av.augment_speech`` (resampling by
  ±5 %, which shifts pitch and speed together; gain; a random onset in a 2-second window;
  background noise at 10-30 dB SNR) and shown as a standardized log-mel spectrogram (16 mels up to
  2.5 kHz, 32 frames). Loudness is no cue: the per-sample standardization removes it, as in a
  gain-normalized corpus. Speed is easy to hear: audio is the **fast** modality.
* **visual** ``(3, 4, 32, 32)`` = (C, T, H, W): a drawn face over four frames. Its expression is
  six numbers (mouth curvature, mouth opening, mouth width, eyebrow angle, eyebrow height, eye
  openness) moved from neutral towards the emotion's target by the intensity, plus a per-sample
  spread, building up over the frames; the mouth also moves as if talking. Identity nuisances:
  face shape and size (12-14.5 pixel half-height), position (a face detector's crop: ±2.5
  pixels), skin tone, feature contrast and background colour, small head drift, shake and
  rotation, pixel noise. Eyebrows and mouth corners move by a pixel or two: faces are the **slow**
  modality.

The emotions are confusable in pairs, differently in each modality: anger and happy sound alike
(high, wide, fast), as do disgust and sad (low, slow); anger and disgust look alike (lowered
brows, narrowed eyes), as do fear and sad (raised inner brows). Low intensity is close to neutral
in both. So each modality alone is genuinely ambiguous, and the two together resolve most of it.

Corruption (disjoint: a sample has at most one corrupted modality):

* ``--audio-noise`` (default 0.05) of the samples: speech replaced by background noise alone;
* ``--audio-swap`` (default 0.20): the sound track of another take, with another emotion (uniformly
  among the other five) at the same intensity;
* ``--visual-corrupt`` (default 0.15): the face turned away: no features, an occluding block.

Oracle bound. ``meta.json`` records the **Bayes accuracy given the generating parameters**
(prosody, expression, intensity, corruption): the expected best posterior of an audio-only, a
visual-only and a fused classifier that knows the generator's distributions, estimated on 20,000
fresh draws (``oracle``) and on every split's own draws (``realized``). Rendering (voice, sentence,
resampling, noise, identity, pixels) only adds nuisances independent of the label, so this bounds
what any model can reach on the tensors; it is not tight. ``oracle_corruption_only`` is the looser
bound that ignores the ambiguity (``1 - noise - swap + noise / K`` and so on, as in letters-av).
With the defaults the bound is about 0.60 audio, 0.66 visual and 0.82 fused.

Measured (``mmbalance finetune -m av-small --lr 3e-3 --epochs 6``, best-validation checkpoint, test
accuracy, data seeds 0 / 1 / 2): audio alone 36.0 / 38.4 / 34.0 % (at its plateau after 2-3
epochs), faces alone 43.4 / 35.4 / 41.2 % (near chance for an epoch, still rising at 6), plain
fused 51.4 / 50.4 / 53.0 % with 75 / 82 / 78 % of its validation share on audio: fusion beats
each stream alone, leans on the fast one, and stays about 30 points under the fused bound, as on
CREMA-D, where plain joint training under-uses the faces.

Splits ``train``/``val``/``test`` (default 1500/500/500) are written as ``train.pt``, ``val.pt``,
``test.pt`` in mmbalance's tensor format (docs/dataset-format.md), the same shapes as letters-av
(``-m av-small`` and ``-m av-tiny`` take either); ``meta.json`` records the settings, the oracle
bounds, the espeak-ng version and the realized corruption and intensity of every split. Every split
has its own random stream seeded from ``(--seed, split)``; the same seed and the same espeak-ng give
bit-identical files. Generation runs one espeak-ng call per sample (2,500 by default, on all CPU
cores): 40-50 seconds on two busy cores.

Needs ``espeak-ng`` (Debian/Ubuntu: ``sudo apt-get install espeak-ng``; macOS: ``brew install
espeak-ng``), and torchaudio and matplotlib (installed with mmbalance's dev extra).

Usage::

    python bench/emotion_av.py --out data/emotion-av
    mmbalance finetune -m av-small -d data/emotion-av --lr 3e-3 --epochs 6 --out runs/emotion-plain
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mmbalance.errors import MMBalanceError  # noqa: E402
from mmbalance.io import check_output_dir  # noqa: E402
from realistic_av import (FRAME_SIZE, N_FRAMES, N_MELS, N_TIME, SPLITS, _corruption, corruption_oracle,  # noqa: E402
                          _stream_seed, _uniform, augment_speech, espeak_version, speak)

__all__ = ["EMOTIONS", "EmotionConfig", "generate", "latent_oracle", "make_split"]

EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
INTENSITIES = (("low", 0.4), ("medium", 0.7), ("high", 1.0))
SENTENCES = ("It's eleven o'clock.", "Don't forget a jacket.", "The surface is slick.")
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+f2", "en-029+m3", "en-gb-scotland+f4")
WINDOW_SECONDS = 2.0
F_MAX = 2500.0
SKIN_LIGHT = torch.tensor([0.8, 0.5, 0.3])  # in the frames' [-1, 1] colour range
SKIN_DARK = torch.tensor([-0.3, -0.55, -0.7])

# prosody: espeak-ng pitch (0-99), pitch range (% of the voice's), speed (words per minute)
PROSODY_NEUTRAL = (45.0, 50.0, 155.0)
PROSODY_LIMITS = ((0, 99), (0, 100), (80, 400))
PROSODY_TARGET = {  # offsets from neutral at full intensity
    "anger": (24.0, 40.0, 40.0),
    "disgust": (-14.0, 5.0, -40.0),
    "fear": (36.0, 10.0, 55.0),
    "happy": (30.0, 45.0, 15.0),
    "neutral": (0.0, 0.0, 0.0),
    "sad": (-25.0, -35.0, -55.0),
}
# expression: mouth curvature (+ smile), mouth opening, mouth width, brow angle (+ inner end raised),
# brow height, eye openness; neutral is all zeros
EXPRESSION_TARGET = {
    "anger": (-0.3, 0.0, -0.15, -1.0, -0.5, -0.3),
    "disgust": (-0.8, 0.25, 0.0, -0.6, -0.3, -0.5),
    "fear": (-0.3, 0.7, 0.1, 0.9, 0.5, 0.4),
    "happy": (1.0, 0.35, 0.3, 0.0, 0.15, -0.2),
    "neutral": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "sad": (-0.8, 0.05, -0.1, 0.9, 0.15, -0.3),
}


@dataclass
class EmotionConfig:
    """Settings of the generator (all recorded in ``meta.json``).

    Example:
        >>> EmotionConfig(n_train=10).oracle_corruption_only()["fused"]
        1.0
    """

    seed: int = 0
    n_train: int = 1500
    n_val: int = 500
    n_test: int = 500
    audio_noise: float = 0.05  # share of samples whose speech is replaced by noise
    audio_swap: float = 0.20  # share of samples with the sound track of another emotion
    visual_corrupt: float = 0.15  # share of samples with the face turned away (no features)
    prosody_spread: tuple[float, ...] = (5.0, 12.0, 12.0)  # per-sample std of pitch, range, speed
    expression_spread: float = 0.3  # per-sample std of every expression parameter
    visual_noise: float = 0.2  # pixel noise std (features are 0.4-1.8 darker than the skin)
    audio_snr_db: tuple[float, float] = (10.0, 30.0)
    resample: tuple[float, float] = (0.95, 1.05)  # resampling factor (pitch and speed together)
    oracle_draws: int = 20000
    emotions: tuple[str, ...] = EMOTIONS
    extra: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def oracle_corruption_only(self) -> dict[str, float]:
        """The letters-av bound: every clean modality read perfectly (ignores the ambiguity)."""
        return corruption_oracle(self.audio_noise, self.audio_swap, self.visual_corrupt, len(self.emotions))

    def check(self) -> None:
        rates = (self.audio_noise, self.audio_swap, self.visual_corrupt)
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) >= 1:
            raise SystemExit("error: corruption rates must lie in [0, 1] and sum to less than 1")
        if min(self.sizes().values()) < 1:
            raise SystemExit("error: every split needs at least one sample")
        if len(self.prosody_spread) != len(PROSODY_NEUTRAL) or min(self.prosody_spread) <= 0 \
                or self.expression_spread <= 0:
            raise SystemExit("error: the spreads must be positive (three for the prosody: pitch, range, speed)")
        unknown = set(self.emotions) - set(EMOTIONS)
        if len(self.emotions) < 2 or unknown:
            raise SystemExit(f"error: emotions must be at least two of {', '.join(EMOTIONS)}")


# ----------------------------------------------------------------------------------------- latents

def _targets(cfg: EmotionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    prosody = torch.tensor([PROSODY_TARGET[e] for e in cfg.emotions])
    expression = torch.tensor([EXPRESSION_TARGET[e] for e in cfg.emotions])
    return prosody, expression


def draw_latents(n: int, cfg: EmotionConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Labels, intensity, corruption codes and the generating parameters of ``n`` samples.

    ``prosody`` is the offset from :data:`PROSODY_NEUTRAL` of what is *heard* (the other emotion's
    for a swapped track), ``expression`` the offset from a neutral face; codes are 0 clean,
    1 audio noise, 2 audio swap, 3 visual corrupted.
    """
    k = len(cfg.emotions)
    labels = torch.randperm(n, generator=gen) % k
    level = torch.randint(len(INTENSITIES), (n,), generator=gen)
    corrupt = _corruption(n, cfg, gen)  # type: ignore[arg-type]
    heard = torch.where(corrupt == 2, (labels + torch.randint(1, k, (n,), generator=gen)) % k, labels)
    scale = torch.tensor([s for _, s in INTENSITIES])[level][:, None]
    prosody_target, expression_target = _targets(cfg)
    spread = torch.tensor(cfg.prosody_spread)
    prosody = scale * prosody_target[heard] + spread * torch.randn(n, len(PROSODY_NEUTRAL), generator=gen)
    expression = scale * expression_target[labels] + cfg.expression_spread * torch.randn(n, 6, generator=gen)
    return {"labels": labels, "level": level, "corrupt": corrupt, "heard": heard, "prosody": prosody,
            "expression": expression}


def _log_gauss(x: torch.Tensor, means: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``log N(x_i; means[y, l], std)`` as ``(n, K, L)`` (constants dropped: they cancel)."""
    z = (x[:, None, None, :] - means[None]) / std
    return -0.5 * (z ** 2).sum(-1)


def posterior_max(latents: dict[str, torch.Tensor], cfg: EmotionConfig) -> dict[str, torch.Tensor]:
    """Per sample, the Bayes posterior's largest value for audio only, visual only and fused.

    Its mean is the Bayes accuracy given the generating parameters (the oracle bound).
    """
    k, n_levels = len(cfg.emotions), len(INTENSITIES)
    prosody_target, expression_target = _targets(cfg)
    scales = torch.tensor([s for _, s in INTENSITIES])
    la = _log_gauss(latents["prosody"], scales[None, :, None] * prosody_target[:, None, :],
                    torch.tensor(cfg.prosody_spread))  # (n, K, L)
    lv = _log_gauss(latents["expression"], scales[None, :, None] * expression_target[:, None, :],
                    torch.full((6,), cfg.expression_spread))
    # another emotion's track at the same intensity: mean over y' != y
    others = (1 - torch.eye(k)) / (k - 1)  # (K, K')
    shift = la.amax((1, 2), keepdim=True)
    la_other = torch.log(torch.einsum("yz,nzl->nyl", others, (la - shift).exp()).clamp(min=1e-300)) + shift
    n_, s_, c_ = cfg.audio_noise, cfg.audio_swap, cfg.visual_corrupt
    log_l = math.log(n_levels)

    def mix(*terms: tuple[float, torch.Tensor]) -> torch.Tensor:  # log sum_j w_j mean_l exp(term_j)
        parts = [math.log(w) + t for w, t in terms if w > 0]
        return torch.logsumexp(torch.stack(parts), 0).logsumexp(-1) - log_l

    def best(log_lik: torch.Tensor) -> torch.Tensor:
        return log_lik.softmax(-1).amax(-1)

    code = latents["corrupt"]
    guess = torch.full((code.numel(),), 1.0 / k)
    audio = best(mix(((1 - n_ - s_) / (1 - n_), la), (s_ / (1 - n_), la_other)))
    visual = best(mix((1.0, lv)))
    both = best(mix(((1 - n_ - s_ - c_) / (1 - n_ - c_), la + lv), (s_ / (1 - n_ - c_), la_other + lv)))
    fused = torch.where(code == 1, visual, torch.where(code == 3, best(mix((1.0, la))), both))
    return {"audio": torch.where(code == 1, guess, audio), "visual": torch.where(code == 3, guess, visual),
            "fused": fused}


def latent_oracle(cfg: EmotionConfig, n: int | None = None) -> dict[str, float]:
    """Bayes accuracy given the generating parameters, on ``n`` fresh draws (default ``cfg.oracle_draws``).

    Example:
        >>> b = latent_oracle(EmotionConfig(), n=4000)
        >>> b["fused"] > max(b["audio"], b["visual"])
        True
    """
    gen = torch.Generator().manual_seed(_stream_seed(cfg.seed, "train") + 99)
    best = posterior_max(draw_latents(n or cfg.oracle_draws, cfg, gen), cfg)
    return {m: round(float(v.mean()), 4) for m, v in best.items()}


# ----------------------------------------------------------------------------------------- audio

def _espeak_settings(prosody: torch.Tensor) -> list[tuple[int, ...]]:
    value = torch.tensor(PROSODY_NEUTRAL) + prosody
    lo, hi = (torch.tensor([b[i] for b in PROSODY_LIMITS]) for i in (0, 1))
    return [tuple(int(v) for v in row) for row in torch.minimum(torch.maximum(value.round(), lo), hi).tolist()]


def synthesize(prosody: torch.Tensor, voice: torch.Tensor, sentence: torch.Tensor,
               workers: int | None = None) -> list[torch.Tensor]:
    """One espeak-ng utterance per sample (run on ``workers`` threads; the order is the samples')."""
    settings = _espeak_settings(prosody)

    def one(i: int) -> torch.Tensor:
        pitch, pitch_range, speed = settings[i]
        return speak(SENTENCES[int(sentence[i])], VOICES[int(voice[i])], speed, pitch, pitch_range=pitch_range)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(prosody.shape[0])))


def make_audio(latents: dict[str, torch.Tensor], cfg: EmotionConfig, gen: torch.Generator) -> torch.Tensor:
    """``(n, 1, N_MELS, N_FRAMES)`` log-mels of the samples' utterances (background noise alone for code 1)."""
    n = latents["labels"].numel()
    voice = torch.randint(len(VOICES), (n,), generator=gen)
    sentence = torch.randint(len(SENTENCES), (n,), generator=gen)
    speech = synthesize(latents["prosody"], voice, sentence)
    sources = [None if int(c) == 1 else x for c, x in zip(latents["corrupt"], speech)]
    return augment_speech(sources, cfg.audio_snr_db, gen, window_seconds=WINDOW_SECONDS, f_max=F_MAX,
                          rate_range=cfg.resample)


# ----------------------------------------------------------------------------------------- faces

def _soft(signed_distance: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage of a shape from its signed distance in pixels (positive inside)."""
    return torch.sigmoid(signed_distance * 2.5)


def _segment_distance(px: torch.Tensor, py: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance in pixels from points ``(px, py)`` to segments ``a -> b`` (``(..., 2)`` broadcastable)."""
    dx, dy = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    t = (((px - a[..., 0]) * dx + (py - a[..., 1]) * dy) / (dx ** 2 + dy ** 2).clamp(min=1e-6)).clamp(0, 1)
    return torch.hypot(px - a[..., 0] - t * dx, py - a[..., 1] - t * dy)


def draw_faces(expression: torch.Tensor, hidden: torch.Tensor, cfg: EmotionConfig, gen: torch.Generator
               ) -> torch.Tensor:
    """``(n, 3, T, H, W)`` frames of drawn faces with ``expression`` (features absent where ``hidden``)."""
    n = expression.shape[0]
    radius = _uniform(n, 12.0, 14.5, gen)  # half-height in pixels
    aspect = _uniform(n, 0.72, 0.92, gen)  # half-width / half-height
    # a face detector's crop: the face roughly centred, a few pixels off
    cx = FRAME_SIZE / 2 + _uniform(n, -2.5, 2.5, gen)
    cy = FRAME_SIZE / 2 + _uniform(n, -2.5, 2.5, gen)
    drift = _uniform(n * 2, -0.5, 0.5, gen).view(n, 2)  # pixels per frame
    shake = 0.4 * torch.randn(n, N_TIME, 2, generator=gen)
    tilt = _uniform(n, -0.15, 0.15, gen)[:, None] + 0.04 * torch.randn(n, N_TIME, generator=gen)
    talk = _uniform(n, 0, 2 * math.pi, gen)  # phase of the speaking mouth
    background = torch.rand(n, 3, generator=gen) * 2 - 1
    # skin tones between a light and a dark one, each channel a little off
    tone = torch.rand(n, 1, generator=gen)
    skin = (SKIN_LIGHT + tone * (SKIN_DARK - SKIN_LIGHT)) + 0.1 * torch.randn(n, 3, generator=gen)
    # keep the face visible: at least 0.6 from the background (move the background away if needed)
    gap = background - skin
    far = gap.norm(dim=1, keepdim=True).clamp(min=1e-6)
    background = torch.where(far < 0.6, skin + gap / far * 0.6, background)
    # features (eyes, brows, mouth) darker than the skin
    ink = skin - _uniform(n, 1.0, 1.6, gen)[:, None] * (skin + 1.5) / 2
    # occluder for hidden faces (drawn for every sample: the stream does not depend on which are hidden)
    block_size = torch.randint(8, 16, (n, 2), generator=gen).float()
    block_at = torch.stack([cx, cy], 1) + _uniform(n * 2, -4, 4, gen).view(n, 2)
    block_shade = torch.rand(n, 3, generator=gen) * 2 - 1

    ys, xs = torch.meshgrid(torch.arange(FRAME_SIZE).float() + 0.5, torch.arange(FRAME_SIZE).float() + 0.5,
                            indexing="ij")
    frames = []
    for t in range(N_TIME):
        build = 0.55 + 0.15 * t  # the expression builds up over the clip
        e = expression * build
        curve, mouth_open, width, brow_angle, brow_height, eye_open = e.unbind(1)
        mouth_open = mouth_open + 0.25 * torch.sin(talk + 1.7 * t).abs()
        ox = cx + drift[:, 0] * (t - 1.5) + shake[:, t, 0]
        oy = cy + drift[:, 1] * (t - 1.5) + shake[:, t, 1]
        cos, sin = torch.cos(tilt[:, t]), torch.sin(tilt[:, t])
        dx, dy = xs[None] - ox[:, None, None], ys[None] - oy[:, None, None]
        # face coordinates in pixels (rotated with the head), and normalized to the face's half-axes
        fx = cos[:, None, None] * dx + sin[:, None, None] * dy
        fy = -sin[:, None, None] * dx + cos[:, None, None] * dy
        half_w, half_h = (aspect * radius)[:, None, None], radius[:, None, None]
        u, v = fx / half_w, fy / half_h

        def col(x: torch.Tensor) -> torch.Tensor:  # per-sample value broadcast over the frame
            return x[:, None, None]

        face = _soft((1 - torch.sqrt(u ** 2 + v ** 2)) * half_h)
        # eyes: ellipses at (+-0.4, -0.15)
        eye_h = col((0.13 * (1 + eye_open)).clamp(min=0.03))
        eyes = sum(_soft((1 - torch.sqrt(((u - s) / 0.2) ** 2 + ((v + 0.15) / eye_h) ** 2)) * half_w * 0.2)
                   for s in (-0.4, 0.4))
        # brows: segments from the inner to the outer end above each eye
        base = -0.45 - 0.25 * brow_height
        brows = 0.0
        for s in (-1.0, 1.0):
            inner = torch.stack([s * 0.15 * half_w[:, 0, 0], (base - 0.25 * brow_angle) * radius], 1)
            outer = torch.stack([s * 0.65 * half_w[:, 0, 0], (base + 0.08 * brow_angle) * radius], 1)
            dist = _segment_distance(fx, fy, inner[:, None, None, :], outer[:, None, None, :])
            brows = brows + _soft(0.75 - dist)
        # mouth: a band around a parabola (corners up for a smile), thicker when open
        w = col((0.4 + 0.15 * width).clamp(min=0.15))
        along = (1 - (u / w) ** 2).clamp(min=0)
        centre = 0.5 + 0.3 * col(curve) * (along - 0.5)
        thick = (0.03 + (0.04 + 0.2 * col(mouth_open).clamp(min=-0.2)).clamp(min=0) * along.sqrt())
        mouth = _soft((thick - (v - centre).abs()) * half_h) * _soft((w - u.abs()) * half_w)
        features = (eyes + brows + mouth).clamp(max=1) * face * (~hidden).float()[:, None, None]
        frame = background[:, :, None, None] + (skin - background)[:, :, None, None] * face[:, None]
        frame = frame + (ink - skin)[:, :, None, None] * features[:, None]
        bx = (xs[None] - block_at[:, 0, None, None]).abs() < block_size[:, 0, None, None] / 2
        by = (ys[None] - block_at[:, 1, None, None]).abs() < block_size[:, 1, None, None] / 2
        block = bx & by & hidden[:, None, None]
        frames.append(torch.where(block[:, None], block_shade[:, :, None, None], frame))
    video = torch.stack(frames, dim=2)  # (n, 3, T, H, W)
    return video + cfg.visual_noise * torch.randn(video.shape, generator=gen)


# ----------------------------------------------------------------------------------------- splits

def make_split(split: str, n: int, cfg: EmotionConfig
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """One split: ``(inputs, labels, latents)`` (latents as in :func:`draw_latents`)."""
    gen = torch.Generator().manual_seed(_stream_seed(cfg.seed, split))
    latents = draw_latents(n, cfg, gen)
    visual = draw_faces(latents["expression"], latents["corrupt"] == 3, cfg, gen)
    audio = make_audio(latents, cfg, gen)
    return {"audio": audio.float(), "visual": visual.float()}, latents["labels"].long(), latents


def generate(out: str | Path, cfg: EmotionConfig, *, log: bool = True) -> dict[str, Any]:
    """Write ``train.pt``/``val.pt``/``test.pt`` and ``meta.json`` under ``out``; returns the metadata.

    Example: ``generate("data/emotion-av", EmotionConfig(seed=0))``.
    """
    from mmbalance.data import save_tensor_dataset
    from mmbalance.io import atomic_write_text

    cfg.check()
    started = time.perf_counter()
    version = espeak_version()
    torch.manual_seed(cfg.seed)
    oracle = latent_oracle(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    realized: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        n = cfg.sizes()[split]
        inputs, labels, latents = make_split(split, n, cfg)
        save_tensor_dataset(out / f"{split}.pt", inputs, labels, list(cfg.emotions))
        code, best = latents["corrupt"], posterior_max(latents, cfg)
        realized[split] = {"n": n, "audio_noise": float((code == 1).float().mean()),
                           "audio_swap": float((code == 2).float().mean()),
                           "visual_corrupt": float((code == 3).float().mean()),
                           "intensity": {name: int((latents["level"] == i).sum())
                                         for i, (name, _) in enumerate(INTENSITIES)},
                           "oracle": {m: round(float(v.mean()), 4) for m, v in best.items()}}
        if log:
            print(f"{split}: {n} samples ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
    meta = {"name": "emotion-av", "config": asdict(cfg), "oracle": oracle,
            "oracle_corruption_only": cfg.oracle_corruption_only(), "realized": realized, "espeak_ng": version,
            "voices": list(VOICES), "sentences": list(SENTENCES), "intensities": dict(INTENSITIES),
            "prosody_neutral": dict(zip(("pitch", "range", "speed"), PROSODY_NEUTRAL)),
            "prosody_target": {e: PROSODY_TARGET[e] for e in cfg.emotions},
            "expression_target": {e: EXPRESSION_TARGET[e] for e in cfg.emotions},
            "shapes": {"audio": [1, N_MELS, N_FRAMES], "visual": [3, N_TIME, FRAME_SIZE, FRAME_SIZE]}}
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    if log:
        print(f"wrote {out} ({time.perf_counter() - started:.1f}s); oracle bound {oracle}", file=sys.stderr)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/emotion-av", help="output directory (default data/emotion-av)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--audio-noise", type=float, default=EmotionConfig.audio_noise)
    parser.add_argument("--audio-swap", type=float, default=EmotionConfig.audio_swap)
    parser.add_argument("--visual-corrupt", type=float, default=EmotionConfig.visual_corrupt)
    args = parser.parse_args(argv)
    cfg = EmotionConfig(seed=args.seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                        audio_noise=args.audio_noise, audio_swap=args.audio_swap,
                        visual_corrupt=args.visual_corrupt)
    try:
        check_output_dir(args.out)
        generate(args.out, cfg)
    except MMBalanceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SystemExit as err:  # a refused setting: one line, usage error
        if isinstance(err.code, str):
            print(err.code, file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
