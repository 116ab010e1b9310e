"""Decoding with PyAV: frames, audio, spectrograms, and the files that cannot be decoded."""

from __future__ import annotations

import pytest
import torch

from mmbalance.media import (DecodeOptions, MediaError, frames_to_tensor, probe, read_frames, read_waveform,
                             spectrogram)
from mmbalance.media.testing import video_encoder


def test_this_pyav_build_encodes_h264() -> None:
    assert video_encoder() in ("libx264", "h264")


def test_probe_reports_tracks(media) -> None:
    info = probe(media.clips[0])
    assert info.has_video and info.has_audio and info.duration == pytest.approx(1.0, abs=0.1)
    assert not probe(media.no_audio).has_audio
    assert probe(media.wav).has_audio and not probe(media.wav).has_video
    assert probe(media.frames).kind == "frames"


def test_frames_are_sampled_evenly_in_time(media, tiny) -> None:
    frames = read_frames(media.clips[0], DecodeOptions(frames=4, size=32, clip_seconds=1))
    assert frames.shape == (4, 32, 32, 3) and frames.dtype.name == "uint8"
    # blue rises with the frame index (i * 255 / 7): frames 1, 3, 5, 7 of 8
    blue = frames[:, 0, 0, 2].astype(int).tolist()
    assert blue == pytest.approx([36, 109, 182, 255], abs=6)


def test_fps_sampling_repeats_the_last_frame_past_the_end(media) -> None:
    frames = read_frames(media.clips[0], DecodeOptions(fps=4, size=16, clip_seconds=2))
    assert frames.shape[0] == 8
    assert (frames[4:] == frames[3]).all()


def test_frame_folder_and_very_short_clip(media, tiny) -> None:
    folder = read_frames(media.frames, DecodeOptions(frames=4, size=16, clip_seconds=1))
    blue = folder[..., 2].reshape(4, -1).mean(axis=1).tolist()  # images 0, 1, 3, 4 of 5: blue = i * 255 / 4
    assert blue == pytest.approx([0, 64, 191, 255], abs=12)
    short = read_frames(media.short, tiny)
    assert short.shape == (2, 32, 32, 3) and (short[0] == short[1]).all()
    wave = read_waveform(media.short, tiny)
    assert wave.shape == (16000,) and wave[4000:].abs().max() == 0  # zero padded after 0.125 s


def test_audio_is_mono_resampled_cut_and_padded(media, tiny) -> None:
    wave = read_waveform(media.wav, tiny)  # 0.5 s stereo at 22050 Hz
    assert wave.shape == (16000,) and wave.dtype == torch.float32
    assert 0.35 < float(wave[:7000].abs().max()) < 0.45  # channels averaged, not summed
    assert float(wave[8100:].abs().max()) == 0.0
    looped = read_waveform(media.wav, DecodeOptions(clip_seconds=1.0, pad="loop"))
    assert float(looped[8100:].abs().max()) > 0.3
    aac = read_waveform(media.clips[0], DecodeOptions(clip_seconds=0.5, sample_rate=8000))
    assert aac.shape == (4000,) and float(aac.abs().max()) > 0.3


def test_non_ascii_file_names(media, tiny) -> None:
    assert read_frames(media.unicode, tiny).shape == (2, 32, 32, 3)
    assert read_waveform(media.unicode, tiny).shape == (16000,)


@pytest.mark.parametrize("spec", ["mel", "stft"])
def test_spectrogram_shape_matches_the_options(spec: str) -> None:
    opts = DecodeOptions(spectrogram=spec, clip_seconds=1.0, n_mels=16)
    wave = torch.sin(torch.arange(opts.n_samples) * 0.1)
    spec_t = spectrogram(wave, opts)
    assert tuple(spec_t.shape) == opts.audio_shape and bool(torch.isfinite(spec_t).all())


def test_frame_normalization() -> None:
    import numpy as np

    white = np.full((2, 4, 4, 3), 255, np.uint8)
    unit = frames_to_tensor(white, DecodeOptions(normalize="unit"))
    assert unit.shape == (3, 2, 4, 4) and float(unit.max()) == 1.0
    imagenet = frames_to_tensor(white, DecodeOptions())
    assert float(imagenet[0].mean()) == pytest.approx((1 - 0.485) / 0.229)


@pytest.mark.parametrize("name, reason", [
    ("corrupt", "cannot open media"),
    ("truncated", "cannot open media"),
    ("missing", "file not found"),
])
def test_unreadable_files_raise_media_errors_naming_the_file(media, tiny, name: str, reason: str) -> None:
    path = media.root / "missing.mp4" if name == "missing" else getattr(media, name)
    for read in (read_frames, read_waveform):
        with pytest.raises(MediaError, match=reason) as info:
            read(path, tiny)
        assert info.value.path == str(path) and str(path) in str(info.value)
        assert "--skip-bad" in info.value.hint


def test_video_without_audio_track(media, tiny) -> None:
    with pytest.raises(MediaError, match="no audio track") as info:
        read_waveform(media.no_audio, tiny)
    assert "noaudio.mp4" in str(info.value)
    with pytest.raises(MediaError, match="no video track"):
        read_frames(media.wav, tiny)
