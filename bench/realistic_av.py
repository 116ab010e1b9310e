"""A realistic audio-visual benchmark: printed letters paired with spoken letter names ("letters-av").

Every sample is one of ten letters (:data:`LETTERS`), seen and heard:

* **visual** ``(3, 4, 32, 32)`` = (C, T, H, W): the letter rendered from one of the fonts matplotlib
  ships (DejaVu Sans, Serif and Mono in their regular, bold, oblique and bold-oblique cuts), small
  (14-21 pixels tall) at a random place, rotation, shear and ink colour on a random background,
  drifting by about a pixel per frame over four frames, under pixel noise as strong as the ink's
  contrast. ``av-tiny``'s visual encoder sees 7-pixel patches: reading a letter from stroke
  statistics is the **slow** modality (alone: near chance for 4 epochs, about 15 % after 10).
* **audio** ``(1, 16, 32)`` = (1, mel bins, frames): the letter's name spoken by ``espeak-ng``
  (several voices, speeds and pitches), each utterance synthesized once and reused with
  augmentation (resampling by ±12 %, which shifts pitch and duration together; gain; a random
  onset in a 1-second window; background noise at 0-20 dB SNR), as a log-mel spectrogram
  (``torchaudio.transforms.MelSpectrogram``, 16 kHz, 16 mels, 32 frames), standardized per
  sample. The ten names have distinct vowels; audio is the **fast** modality (alone: 35-40 %
  after 2-3 epochs).

Corruption (disjoint: a sample has at most one corrupted modality):

* ``--audio-noise`` (default 0.05) of the samples: speech replaced by background noise alone;
* ``--audio-swap`` (default 0.30): speech of another letter (uniformly among the other nine);
* ``--visual-corrupt`` (default 0.15): the letter is absent: noise and a random occluding block.

Oracle bound (the best any model can do, given the corruption rates, K = 10 classes):

* audio only: ``1 - noise - swap + noise / K`` (default 0.655): a swapped name sounds right and
  is always wrong, a noise-only sample is a guess;
* visual only: ``1 - v + v / K`` (default 0.865);
* fused: ``1.0``: every sample has at least one clean modality, and a clean letter can be told
  from a blank frame and overrules the audio when the two disagree.

So an ideal fused model is 13.5 points above the best unimodal bound and 34.5 above audio alone,
but reaching it needs the slow visual stream. Swapped names are the most common corruption on
purpose: they cannot be recognized from the audio, so a fused model that has not yet learned to
read the letters can fit them only by memorizing, and a plainly trained fused model, which leans
on the fast audio, ends up *below* the audio-only model (docs/results.md, "Realistic benchmark:
letters").

Splits ``train``/``val``/``test`` (default 1500/500/500) are written as ``train.pt``, ``val.pt``,
``test.pt`` in mmbalance's tensor format (docs/dataset-format.md); ``meta.json`` records the
settings, the oracle bound, the espeak-ng version and the realized corruption of every split.
Every split has its own random stream seeded from ``(--seed, split)``; the same seed and the same
espeak-ng give bit-identical files. Generation takes a few seconds (about 200 espeak-ng calls).

Needs ``espeak-ng`` (Debian/Ubuntu: ``sudo apt-get install espeak-ng``; macOS: ``brew install
espeak-ng``), and torchaudio and matplotlib (installed with mmbalance's dev extra).

Usage::

    python bench/realistic_av.py --out data/letters-av
    mmbalance finetune --model av-tiny --data data/letters-av --out runs/letters-plain --lr 3e-3
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

LETTERS = ("A", "E", "H", "I", "M", "O", "R", "U", "W", "X")  # names with distinct vowels
SPLITS = ("train", "val", "test")
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
FONT_FILES = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
              "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
              "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSansMono-BoldOblique")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp+f2")
SPEEDS = (130, 190)  # words per minute
PITCHES = (35, 65)  # espeak-ng pitch, 0-99
SAMPLE_RATE = 16000
WINDOW_SECONDS = 1.0
N_MELS = 16
N_FRAMES = 32
FRAME_SIZE = 32
N_TIME = 4
GLYPH_CANVAS = 64  # glyphs are pre-rendered once per (font, letter) at this size
INSTALL_HINT = ("espeak-ng is needed to synthesize the spoken letters: install it with "
                "`sudo apt-get install espeak-ng` (Debian/Ubuntu), `sudo dnf install espeak-ng` (Fedora) "
                "or `brew install espeak-ng` (macOS)")


def corruption_oracle(audio_noise: float, audio_swap: float, visual_corrupt: float, k: int) -> dict[str, float]:
    """Best accuracy when every clean stream is read perfectly and a corrupted one is a guess (K classes).

    A swapped track sounds right and is always wrong; a noise-only or absent stream is a guess; the fused
    model always has one clean stream.
    """
    return {"audio": round(1 - audio_noise - audio_swap + audio_noise / k, 4),
            "visual": round(1 - visual_corrupt + visual_corrupt / k, 4),
            "fused": 1.0}


@dataclass
class LettersConfig:
    """Settings of the generator (all recorded in ``meta.json``).

    Example:
        >>> LettersConfig(n_train=10).oracle()["fused"]
        1.0
    """

    seed: int = 0
    n_train: int = 1500
    n_val: int = 500
    n_test: int = 500
    audio_noise: float = 0.05  # share of samples whose speech is replaced by noise
    audio_swap: float = 0.30  # share of samples with another letter's name
    visual_corrupt: float = 0.15  # share of samples whose letter is absent (noise + occluder)
    visual_contrast: tuple[float, float] = (0.8, 1.6)  # letter/background difference, noise std units
    letter_size: tuple[float, float] = (0.45, 0.65)  # letter height as a share of the frame
    audio_snr_db: tuple[float, float] = (5.0, 25.0)
    letters: tuple[str, ...] = LETTERS
    extra: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def oracle(self) -> dict[str, float]:
        """Best reachable accuracy of an audio-only, a visual-only and a fused model."""
        return corruption_oracle(self.audio_noise, self.audio_swap, self.visual_corrupt, len(self.letters))

    def check(self) -> None:
        rates = (self.audio_noise, self.audio_swap, self.visual_corrupt)
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise SystemExit("error: corruption rates must lie in [0, 1] and sum to at most 1")
        if min(self.sizes().values()) < 1:
            raise SystemExit("error: every split needs at least one sample")
        if len(self.letters) < 2:
            raise SystemExit("error: at least two letters are needed")


# ----------------------------------------------------------------------------------------- sources

def font_paths() -> list[Path]:
    """The matplotlib-shipped font files used for the letters (those present)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [root / f"{name}.ttf" for name in FONT_FILES]
    found = [p for p in paths if p.exists()]
    if not found:
        raise SystemExit(f"error: no DejaVu fonts under {root}; reinstall matplotlib")
    return found


def render_glyphs(letters: Sequence[str], fonts: Sequence[Path], size: int = GLYPH_CANVAS) -> torch.Tensor:
    """Anti-aliased masks ``(len(fonts), len(letters), size, size)`` in [0, 1]: each glyph scaled so
    its height fills 3/4 of the canvas, centred."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    big = 160
    out = torch.zeros(len(fonts), len(letters), size, size)
    for i, font in enumerate(fonts):
        prop = FontProperties(fname=str(font))
        for j, letter in enumerate(letters):
            fig = Figure(figsize=(1, 1), dpi=big)
            canvas = FigureCanvasAgg(fig)
            fig.text(0.5, 0.5, letter, fontproperties=prop, fontsize=60, ha="center", va="center")
            canvas.draw()
            rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8).view(big, big, 4)
            ink = 1.0 - rgba[..., 0].float() / 255.0
            rows = torch.nonzero(ink.sum(1) > 0.05).flatten()
            cols = torch.nonzero(ink.sum(0) > 0.05).flatten()
            crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            h, w = crop.shape
            scale = 0.75 * size / h
            nh, nw = max(1, round(h * scale)), max(1, min(size, round(w * scale)))
            small = F.interpolate(crop[None, None], size=(nh, nw), mode="area")[0, 0]
            top, left = (size - nh) // 2, (size - nw) // 2
            out[i, j, top:top + nh, left:left + nw] = small
    return out


def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit(f"error: {INSTALL_HINT}")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def speak(text: str, voice: str, speed: int, pitch: int, *, pitch_range: int | None = None) -> torch.Tensor:
    """``text`` spoken by espeak-ng as a mono waveform at :data:`SAMPLE_RATE` (silence trimmed).

    ``pitch_range`` (percent of the voice's range, through SSML ``<prosody range>``) is left at the
    voice's default when ``None``.
    Example: ``speak("A", "en-us", 160, 50)``.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit(f"error: {INSTALL_HINT}")
    args = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch)]
    if pitch_range is not None:
        args += ["-m"]
        text = f'<speak><prosody range="{int(pitch_range)}%">{text}</prosody></speak>'
    done = subprocess.run([*args, "--stdout", text], capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        raise SystemExit(f"error: espeak-ng failed for voice {voice!r}: {done.stderr.decode()[:200]}")
    with wave.open(io.BytesIO(done.stdout)) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    x = torch.frombuffer(bytearray(frames), dtype=torch.int16).float() / 32768.0
    x = F.interpolate(x[None, None], size=max(1, round(x.numel() * SAMPLE_RATE / rate)), mode="linear",
                      align_corners=False)[0, 0]
    loud = torch.nonzero(x.abs() > 0.02).flatten()
    return x[loud.min():loud.max() + 1] if loud.numel() else x


def synthesize_speech(letters: Sequence[str]) -> list[list[torch.Tensor]]:
    """All utterances: ``speech[letter][k]`` over every (voice, speed, pitch)."""
    return [[speak(letter, v, s, p) for v in VOICES for s in SPEEDS for p in PITCHES] for letter in letters]


# ----------------------------------------------------------------------------------------- samples

def _stream_seed(seed: int, split: str) -> int:
    return (int(seed) * 1_000_003 + SPLIT_OFFSETS[split] + 17) % (2**63)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _corruption(n: int, cfg: LettersConfig, gen: torch.Generator) -> torch.Tensor:
    """Per sample: 0 clean, 1 audio noise, 2 audio swapped, 3 visual corrupted (exact counts, shuffled)."""
    counts = [round(n * cfg.audio_noise), round(n * cfg.audio_swap), round(n * cfg.visual_corrupt)]
    kind = torch.zeros(n, dtype=torch.long)
    start = 0
    for code, count in enumerate(counts, start=1):
        count = min(count, n - start)
        kind[start:start + count] = code
        start += count
    return kind[torch.randperm(n, generator=gen)]


def make_visual(labels: torch.Tensor, corrupt: torch.Tensor, glyphs: torch.Tensor, cfg: LettersConfig,
                gen: torch.Generator) -> torch.Tensor:
    """``(n, 3, T, H, W)`` frames of small, jittered, drifting, noisy letters (absent where ``corrupt``)."""
    n = labels.numel()
    font = torch.randint(glyphs.shape[0], (n,), generator=gen)
    masks = glyphs[font, labels][:, None]  # (n, 1, G, G)
    height = _uniform(n, *cfg.letter_size, gen)  # letter height / frame
    zoom = 0.75 / height  # glyph height is 3/4 of its canvas
    angle = _uniform(n, -0.25, 0.25, gen)
    shear = _uniform(n, -0.2, 0.2, gen)
    reach = (1 - height * 0.9).clamp(min=0)  # keep the letter inside the frame
    cx, cy = _uniform(n, -1, 1, gen) * reach, _uniform(n, -1, 1, gen) * reach
    vx, vy = _uniform(n, -0.08, 0.08, gen), _uniform(n, -0.08, 0.08, gen)  # drift per frame (about 1 px)
    cos, sin = torch.cos(angle), torch.sin(angle)
    frames = []
    for t in range(N_TIME):
        theta = torch.zeros(n, 2, 3)
        # output -> glyph canvas coordinates: rotate, shear, zoom out, shift
        theta[:, 0, 0], theta[:, 0, 1] = zoom * cos, zoom * (-sin + shear)
        theta[:, 1, 0], theta[:, 1, 1] = zoom * sin, zoom * cos
        ox, oy = cx + vx * (t - 1.5), cy + vy * (t - 1.5)
        theta[:, 0, 2] = -(theta[:, 0, 0] * ox + theta[:, 0, 1] * oy)
        theta[:, 1, 2] = -(theta[:, 1, 0] * ox + theta[:, 1, 1] * oy)
        grid = F.affine_grid(theta, [n, 1, FRAME_SIZE, FRAME_SIZE], align_corners=False)
        frames.append(F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    ink = torch.stack(frames, dim=2)  # (n, 1, T, H, W)
    ink = ink * (corrupt == 0).float()[:, None, None, None, None]
    background = torch.rand(n, 3, generator=gen) - 0.5
    direction = -torch.randn(n, 3, generator=gen).abs()  # ink darker than the background in every channel
    direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-6)
    contrast = _uniform(n, *cfg.visual_contrast, gen) * math.sqrt(3)
    colour = direction * contrast[:, None]
    video = background[:, :, None, None, None] + colour[:, :, None, None, None] * ink
    # occluder: a random block in the background's colour plus its own shade (every sample draws one,
    # so the random stream does not depend on which samples are corrupted; only corrupted ones show it)
    size = torch.randint(10, 20, (n, 2), generator=gen)
    corner = torch.randint(0, FRAME_SIZE - 10, (n, 2), generator=gen)
    shade = torch.rand(n, 3, generator=gen) * 2 - 1
    yy = torch.arange(FRAME_SIZE)[None, :, None]
    xx = torch.arange(FRAME_SIZE)[None, None, :]
    block = ((yy >= corner[:, 0, None, None]) & (yy < (corner[:, 0] + size[:, 0])[:, None, None])
             & (xx >= corner[:, 1, None, None]) & (xx < (corner[:, 1] + size[:, 1])[:, None, None]))
    block = block & (corrupt != 0)[:, None, None]
    video = torch.where(block[:, None, None], shade[:, :, None, None, None], video)
    return video + torch.randn(n, 3, N_TIME, FRAME_SIZE, FRAME_SIZE, generator=gen)


def make_audio(labels: torch.Tensor, corrupt: torch.Tensor, speech: list[list[torch.Tensor]], cfg: LettersConfig,
               gen: torch.Generator) -> torch.Tensor:
    """``(n, 1, N_MELS, N_FRAMES)`` standardized log-mel spectrograms of augmented spoken names."""
    n, k = labels.numel(), len(cfg.letters)
    spoken = torch.where(corrupt == 2, (labels + torch.randint(1, k, (n,), generator=gen)) % k, labels)
    which = torch.randint(len(speech[0]), (n,), generator=gen)
    sources = [None if int(corrupt[i]) == 1 else speech[int(spoken[i])][int(which[i])] for i in range(n)]
    return augment_speech(sources, cfg.audio_snr_db, gen)


def augment_speech(sources: Sequence[torch.Tensor | None], snr_db: tuple[float, float], gen: torch.Generator, *,
                   window_seconds: float = WINDOW_SECONDS, f_max: float = SAMPLE_RATE / 2,
                   rate_range: tuple[float, float] = (0.88, 1.12)) -> torch.Tensor:
    """``(n, 1, N_MELS, N_FRAMES)`` standardized log-mels of ``sources`` (``None``: background noise alone).

    Each waveform is resampled by a factor in ``rate_range`` (pitch and duration together), placed at a random onset in a
    ``window_seconds`` window (cut if longer), scaled by a random gain and mixed with white and
    low-passed noise at an SNR drawn from ``snr_db``.
    Example: ``augment_speech([speak("A", "en-us", 160, 50), None], (5.0, 25.0), torch.Generator())``.
    """
    import torchaudio

    n = len(sources)
    length = int(window_seconds * SAMPLE_RATE)
    rate = _uniform(n, *rate_range, gen)
    onset = torch.rand(n, generator=gen)
    gain = _uniform(n, 0.5, 1.5, gen)
    snr = _uniform(n, *snr_db, gen)
    tilt = torch.rand(n, generator=gen)  # mix of white and low-passed ("rumble") noise
    noise = torch.randn(n, length, generator=gen)
    rumble = F.avg_pool1d(torch.randn(n, 1, length + 7, generator=gen), 8, stride=1)[:, 0] * math.sqrt(8)
    noise = (1 - tilt[:, None]) * noise + tilt[:, None] * rumble
    wave_ = torch.zeros(n, length)
    silent = torch.tensor([x is None for x in sources], dtype=torch.bool)
    for i, x in enumerate(sources):
        if x is None:
            continue
        size = min(length, max(8, round(x.numel() / float(rate[i]))))
        x = F.interpolate(x[None, None], size=size, mode="linear", align_corners=False)[0, 0]
        start = int(float(onset[i]) * (length - size))
        wave_[i, start:start + size] = x / x.abs().max().clamp(min=1e-6)
    speech_power = (wave_ ** 2).sum(1) / (wave_ != 0).sum(1).clamp(min=1)
    noise_power = speech_power.where(~silent, torch.full_like(speech_power, 0.05)) / 10 ** (snr / 10)
    mixed = gain[:, None] * (wave_ + noise * noise_power.sqrt()[:, None])
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=length // N_FRAMES,
                                               n_mels=N_MELS, f_max=f_max)(mixed)[..., :N_FRAMES]
    logmel = torch.log(mel + 1e-6)
    logmel = (logmel - logmel.mean((1, 2), keepdim=True)) / logmel.std((1, 2), keepdim=True).clamp(min=1e-6)
    return logmel[:, None].contiguous()


def make_split(split: str, n: int, cfg: LettersConfig, glyphs: torch.Tensor, speech: list[list[torch.Tensor]]
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One split: ``(inputs, labels, corruption codes)`` (codes as in :func:`_corruption`)."""
    gen = torch.Generator().manual_seed(_stream_seed(cfg.seed, split))
    k = len(cfg.letters)
    labels = torch.randperm(n, generator=gen) % k
    corrupt = _corruption(n, cfg, gen)
    visual = make_visual(labels, corrupt == 3, glyphs, cfg, gen)
    audio = make_audio(labels, corrupt, speech, cfg, gen)
    return {"audio": audio.float(), "visual": visual.float()}, labels.long(), corrupt


def generate(out: str | Path, cfg: LettersConfig, *, log: bool = True) -> dict[str, Any]:
    """Write ``train.pt``/``val.pt``/``test.pt`` and ``meta.json`` under ``out``; returns the metadata.

    Example: ``generate("data/letters-av", LettersConfig(seed=0))``.
    """
    from mmbalance.data import save_tensor_dataset

    cfg.check()
    started = time.perf_counter()
    version = espeak_version()
    torch.manual_seed(cfg.seed)
    glyphs = render_glyphs(cfg.letters, font_paths())
    speech = synthesize_speech(cfg.letters)
    if log:
        print(f"rendered {glyphs.shape[0]} fonts x {glyphs.shape[1]} letters, synthesized "
              f"{sum(len(s) for s in speech)} utterances ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    realized: dict[str, dict[str, float]] = {}
    for split, n in cfg.sizes().items():
        inputs, labels, corrupt = make_split(split, n, cfg, glyphs, speech)
        save_tensor_dataset(out / f"{split}.pt", inputs, labels, list(cfg.letters))
        realized[split] = {"n": n, "audio_noise": float((corrupt == 1).float().mean()),
                           "audio_swap": float((corrupt == 2).float().mean()),
                           "visual_corrupt": float((corrupt == 3).float().mean())}
    meta = {"name": "letters-av", "config": asdict(cfg), "oracle": cfg.oracle(), "realized": realized,
            "espeak_ng": version, "fonts": [p.name for p in font_paths()], "voices": list(VOICES),
            "speeds": list(SPEEDS), "pitches": list(PITCHES),
            "shapes": {"audio": [1, N_MELS, N_FRAMES], "visual": [3, N_TIME, FRAME_SIZE, FRAME_SIZE]}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if log:
        print(f"wrote {out} ({time.perf_counter() - started:.1f}s); oracle bound {cfg.oracle()}", file=sys.stderr)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/letters-av", help="output directory (default data/letters-av)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--audio-noise", type=float, default=LettersConfig.audio_noise)
    parser.add_argument("--audio-swap", type=float, default=LettersConfig.audio_swap)
    parser.add_argument("--visual-corrupt", type=float, default=LettersConfig.visual_corrupt)
    args = parser.parse_args(argv)
    cfg = LettersConfig(seed=args.seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                        audio_noise=args.audio_noise, audio_swap=args.audio_swap,
                        visual_corrupt=args.visual_corrupt)
    generate(args.out, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
