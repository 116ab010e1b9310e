"""Tiny versions of the model families people train, for the real-model audit tests.

Every model is built from a config with random weights (nothing downloaded) and is small
enough that an audit takes about a second. Factories are used as ``file.py:factory`` specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmbalance.data import save_tensor_dataset

VOCAB, SEQ, TAB = 20, 6, 5


class TextTabular(nn.Module):
    """Token ids + a mask + tabular features; the masked mean makes the output depend on the mask."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, 16)
        self.tab_in = nn.Identity()  # the tabular input as a layer, for captum's multi-layer LIG
        self.text_net = nn.Sequential(nn.Linear(16, 16), nn.Tanh())
        self.tab_net = nn.Sequential(nn.Linear(TAB, 16), nn.Tanh())
        self.head = nn.Linear(32, num_classes)

    def forward(self, text: Tensor, tabular: Tensor, attention_mask: Tensor) -> Tensor:
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        t = (self.text_net(self.emb(text)) * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.head(torch.cat([t, self.tab_net(self.tab_in(tabular))], 1))


class DictForward(TextTabular):
    """Lightning habit: ``forward(batch)`` with every input in one dict."""

    def forward(self, batch: dict[str, Tensor]) -> Tensor:  # type: ignore[override]
        return super().forward(batch["text"], batch["tabular"], batch["attention_mask"])


class KeywordOnly(TextTabular):
    """Keyword-only inputs."""

    def forward(self, *, tabular: Tensor, text: Tensor, attention_mask: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(text, tabular, attention_mask)


class TwoEmbeddings(TextTabular):
    """Two embeddings read the same ids: the layer must be named."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__(num_classes)
        self.emb2 = nn.Embedding(VOCAB, 16)

    def forward(self, text: Tensor, tabular: Tensor, attention_mask: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(text, tabular, attention_mask) + 0 * self.emb2(text).sum()


class NoEmbedding(nn.Module):
    """Casts ids to floats itself: no embedding layer to attribute at."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(SEQ + TAB, num_classes)

    def forward(self, text: Tensor, tabular: Tensor, attention_mask: Tensor) -> Tensor:
        return self.fc(torch.cat([text.float(), tabular], 1))


class WaveImage(nn.Module):
    """A torchaudio wav2vec2 waveform encoder (returns ``(features, lengths)``) and a timm image encoder."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        import timm
        from torchaudio.models import wav2vec2_model
        torch.manual_seed(0)
        self.audio_encoder = wav2vec2_model(
            extractor_mode="group_norm", extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2)],
            extractor_conv_bias=False, encoder_embed_dim=16, encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2, encoder_num_layers=1, encoder_num_heads=2,
            encoder_attention_dropout=0.0, encoder_ff_interm_features=32, encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0, encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)
        self.image_encoder = timm.create_model("test_resnet", pretrained=False, num_classes=0)
        self.head = nn.Linear(16 + self.image_encoder.num_features, num_classes)

    def forward(self, audio: Tensor, image: Tensor, lengths: Tensor) -> Tensor:
        feats, _ = self.audio_encoder(audio, lengths)
        return self.head(torch.cat([feats.mean(1), self.image_encoder(image)], 1))


def build_text_tabular(num_classes: int) -> nn.Module:
    return TextTabular(num_classes)


def build_dict_forward(num_classes: int) -> nn.Module:
    return DictForward(num_classes)


def build_keyword_only(num_classes: int) -> nn.Module:
    return KeywordOnly(num_classes)


def build_two_embeddings(num_classes: int) -> nn.Module:
    return TwoEmbeddings(num_classes)


def build_no_embedding(num_classes: int) -> nn.Module:
    return NoEmbedding(num_classes)


def build_wave_image(num_classes: int) -> nn.Module:
    return WaveImage(num_classes)


def build_clip_match(path: str) -> nn.Module:
    """CLIP as an image-text match classifier: the few lines a user writes around CLIPModel."""
    from mmbalance.models.hf import load_hf_model

    class ClipMatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = load_hf_model(f"hf:{path}")
            self.pixels = nn.Identity()  # only for the test's captum reference (LIG on the pixels as a layer)

        def forward(self, input_ids: Tensor, pixel_values: Tensor, attention_mask: Tensor) -> Tensor:
            out = self.clip(input_ids=input_ids, pixel_values=self.pixels(pixel_values), attention_mask=attention_mask)
            s = (out.image_embeds * out.text_embeds).sum(-1) * self.clip.logit_scale.exp()
            return torch.stack([-s, s], 1)

    return ClipMatch()


# -- data ---------------------------------------------------------------------------------------


def token_batch(n: int = 8, seed: int = 0) -> dict[str, Tensor]:
    """Ids (no pad in the first two positions), a mask with padded tails, tabular features, labels."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, VOCAB, (n, SEQ), generator=g)
    keep = torch.randint(2, SEQ + 1, (n,), generator=g)
    mask = (torch.arange(SEQ)[None] < keep[:, None]).long()
    text = text * mask  # pad id 0 after the end
    return {"text": text, "tabular": torch.randn(n, TAB, generator=g), "attention_mask": mask,
            "labels": torch.randint(0, 3, (n,), generator=g)}


def save_token_data(path: Path, n: int = 8, *, mask_in_extra: bool = True) -> Path:
    b = token_batch(n)
    inputs = {"text": b["text"], "tabular": b["tabular"]}
    extra = {"attention_mask": b["attention_mask"]}
    if not mask_in_extra:
        inputs.update(extra)
        extra = {}
    return save_tensor_dataset(path, inputs, b["labels"], classes=["a", "b", "c"], extra=extra)


def save_wave_data(path: Path, n: int = 6) -> Path:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(300, 401, (n,), generator=g)
    return save_tensor_dataset(path, {"audio": torch.randn(n, 400, generator=g),
                                      "image": torch.randn(n, 3, 32, 32, generator=g)},
                               torch.randint(0, 3, (n,), generator=g), classes=["a", "b", "c"],
                               extra={"lengths": lengths})


def vilt_config(**kw: Any) -> Any:
    from transformers import ViltConfig
    return ViltConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                      image_size=32, patch_size=16, max_image_length=-1, vocab_size=VOCAB,
                      max_position_embeddings=SEQ, num_labels=3, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, **kw)


def save_vilt(path: Path) -> Path:
    from transformers import ViltForQuestionAnswering
    torch.manual_seed(0)
    ViltForQuestionAnswering(vilt_config()).eval().save_pretrained(path)
    return path


def save_clip(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel
    torch.manual_seed(0)
    text = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=SEQ, projection_dim=16)
    vision = dict(image_size=32, patch_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, projection_dim=16)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval().save_pretrained(path)
    return path


def save_vision_text_data(path: Path, n: int = 6, *, names: tuple[str, str] = ("input_ids", "pixel_values"),
                          labels: int = 3) -> Path:
    b = token_batch(n)
    g = torch.Generator().manual_seed(2)
    inputs = {names[0]: b["text"], names[1]: torch.randn(n, 3, 32, 32, generator=g),
              "attention_mask": b["attention_mask"]}
    return save_tensor_dataset(path, inputs, b["labels"] % labels, classes=[str(k) for k in range(labels)])
