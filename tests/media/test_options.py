"""DecodeOptions and options carried in a source string."""

from __future__ import annotations

import pytest

from mmbalance.errors import UsageError
from mmbalance.media import DecodeOptions, split_source, with_options


def test_defaults_fit_the_builtin_models() -> None:
    opts = DecodeOptions()
    assert opts.num_frames == 4 and opts.size == 112 and opts.sample_rate == 16000
    assert opts.audio_shape == (1, 64, 301)
    assert opts.visual_shape == (3, 4, 112, 112)
    assert DecodeOptions(spectrogram="stft", sample_rate=22050).audio_shape == (1, 257, 188)  # OGM-GE's (257, 188)


def test_fps_gives_frames_over_the_clip_window() -> None:
    assert DecodeOptions(fps=2, clip_seconds=3).num_frames == 6


@pytest.mark.parametrize("kwargs, word", [
    ({"frames": 4, "fps": 2.0}, "either frames or fps"),
    ({"frames": 0}, "frames"),
    ({"size": -1}, "size"),
    ({"clip_seconds": 0}, "clip_seconds"),
    ({"spectrogram": "cqt"}, "spectrogram"),
    ({"normalize": "none"}, "normalize"),
    ({"pad": "reflect"}, "pad"),
    ({"clip_seconds": 0.001}, "analysis window"),
])
def test_invalid_options_are_usage_errors(kwargs: dict, word: str) -> None:
    with pytest.raises(UsageError, match=word):
        DecodeOptions(**kwargs)


def test_source_string_carries_options_skip_bad_and_classes() -> None:
    spec = split_source("data/clips.csv?frames=8&size=96&sample-rate=22050&spectrogram=stft&skip_bad=1&classes=b,a")
    assert spec.path == "data/clips.csv"
    assert (spec.options.frames, spec.options.size, spec.options.sample_rate) == (8, 96, 22050)
    assert spec.options.spectrogram == "stft" and spec.skip_bad and spec.classes == ("b", "a")
    assert split_source("clips.csv").options == DecodeOptions()


def test_unknown_or_malformed_options_name_the_key() -> None:
    with pytest.raises(UsageError, match="unknown decoding option 'frame'") as info:
        split_source("clips.csv?frame=8")
    assert "frames" in info.value.hint
    with pytest.raises(UsageError, match="size='big'"):
        split_source("clips.csv?size=big")


def test_existing_path_with_question_mark_is_literal(tmp_path) -> None:
    odd = tmp_path / "what?.csv"
    odd.write_text("video,label\n")
    assert split_source(str(odd)).path == str(odd)


def test_with_options_merges_and_round_trips() -> None:
    assert with_options("clips.csv") == "clips.csv"
    merged = with_options("clips.csv?size=64&frames=8", DecodeOptions(fps=2.0), skip_bad=True)
    assert merged == "clips.csv?fps=2&size=64&skip_bad=1"
    spec = split_source(merged)
    assert spec.options == DecodeOptions(fps=2.0, size=64) and spec.skip_bad


def test_fingerprint_changes_with_options() -> None:
    assert DecodeOptions().fingerprint() == DecodeOptions().fingerprint()
    assert DecodeOptions(size=64).fingerprint() != DecodeOptions().fingerprint()
