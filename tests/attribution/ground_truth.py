"""Models whose reliance on each modality is known by construction (the ground-truth suite).

Every case is a small ``nn.Module`` with hand-set weights, data whose labels are the model's own
predictions (accuracy 100%), and the truth: which modality dominates (``None``: balanced) and,
where the construction fixes them, the shares. "Reliance" means what happens to the model's
decision without the modality, so the truth is read off the construction:

* ``ignores``: visual never reaches the logits: audio 100%.
* ``linear_3to1``: the margin is ``3 * audio feature + 1 * visual feature`` with both features ``±1``
  per sample: audio 75%, visual 25%.
* ``decoy``: visual is 48x larger than audio and every visual element carries a large weight, but
  the weights come in pairs ``+c, -c`` over pairs of equal elements, so the visual contributions
  cancel exactly: removing visual changes nothing: audio 100%.
* ``needs_both``: the margin is the product of the two features (XOR of their signs); either
  alone decides nothing: 50% / 50%.
* ``sizes``: three modalities of 8, 80 and 800 elements, equal contributions to the margin (each
  element's attribution is spread over noise that cancels): a third each.
* ``redundant``: visual is a copy of audio and the margin saturates (``clamp(a + v, -1, 1)``):
  either copy alone decides, symmetrically: 50% / 50%.
* ``tokens``: token ids (an ``nn.Embedding`` with pad id 0 at zero) beside an audio float input,
  margin ``3 * text + 1 * audio``: text 75%, audio 25%.

The linear carriers put a feature ``s`` into a modality of ``n`` elements as
``x = s * w / |w|^2 + eta`` with ``eta`` orthogonal to the read-out ``w``: ``w . x = s`` exactly,
while the per-element attributions ``w_i x_i`` have an L1 mass that grows with ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

SAMPLES = 64
#: stated tolerance on a share where the truth is a number
SHARE_TOLERANCE = 0.02


def _readout(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64).float()


def carrier(feature: Tensor, w: Tensor, noise: float, seed: int) -> Tensor:
    """``(N, n)`` inputs whose read-out ``x @ w`` is exactly ``feature`` (plus orthogonal noise of scale ``noise``)."""
    g = torch.Generator().manual_seed(seed)
    eta = torch.randn(feature.shape[0], w.numel(), generator=g) * noise
    eta = eta - (eta @ w).unsqueeze(1) * w / (w @ w)
    return feature.unsqueeze(1) * w / (w @ w) + eta


class Margin(nn.Module):
    """Two-class logits ``[z, -z]`` from a margin ``z`` computed by :meth:`margin`.

    Every float modality passes through an identity "encoder" ``enc.<modality>`` first, so that
    ``--level embedding`` has a module to hook (:data:`EMBEDDING_LAYERS`).
    """

    modalities: tuple[str, ...] = ("audio", "visual")

    def margin(self, **inputs: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def encoders(self) -> None:
        self.enc = nn.ModuleDict({m: nn.Identity() for m in self.modalities})

    def forward(self, **inputs: Tensor) -> Tensor:
        inputs = {m: self.enc[m](x) if m in self.enc else x for m, x in inputs.items()}
        z = self.margin(**inputs)
        return torch.stack([z, -z], 1)


def embedding_layers(model: Margin) -> dict[str, str]:
    """Where each modality's embedding is: the identity encoders (token ids: their ``nn.Embedding``)."""
    return {m: ("emb" if m == "text" else f"enc.{m}") for m in model.modalities}


class LinearMix(Margin):
    """``z = sum_m weight_m * (x_m @ w_m)``: linear in every modality."""

    def __init__(self, sizes: dict[str, int], weights: dict[str, float]) -> None:
        super().__init__()
        self.modalities = tuple(sizes)
        self.encoders()
        for j, (m, n) in enumerate(sizes.items()):
            self.register_buffer(f"w_{m}", _readout(n, 100 + j))
        self.weights = dict(weights)

    def readout(self, m: str) -> Tensor:
        return getattr(self, f"w_{m}")

    def margin(self, **inputs: Tensor) -> Tensor:
        return sum(self.weights[m] * (inputs[m].flatten(1) @ self.readout(m)) for m in self.modalities)  # type: ignore


class Decoy(Margin):
    """Audio decides; visual (48x larger) carries weights ``+c, -c`` over pairs of equal elements."""

    def __init__(self, audio: int = 16, c: float = 5.0) -> None:
        super().__init__()
        self.encoders()
        self.register_buffer("w_audio", _readout(audio, 7))
        signs = torch.tensor([1.0, -1.0]).repeat(audio * 48 // 2)
        self.register_buffer("w_visual", c * signs)

    def margin(self, audio: Tensor, visual: Tensor) -> Tensor:
        return audio.flatten(1) @ self.w_audio + visual.flatten(1) @ self.w_visual


class Product(LinearMix):
    """``z = 4 * (a @ w_a) * (v @ w_v)``: the sign of the product is the XOR of the two signs."""

    def margin(self, **inputs: Tensor) -> Tensor:
        a = inputs["audio"].flatten(1) @ self.readout("audio")
        v = inputs["visual"].flatten(1) @ self.readout("visual")
        return 4.0 * a * v


class Saturating(LinearMix):
    """``z = 4 * clamp(a @ w + v @ w, -1, 1)`` on two copies of the same input: redundant modalities."""

    def margin(self, **inputs: Tensor) -> Tensor:
        a = inputs["audio"].flatten(1) @ self.readout("audio")
        v = inputs["visual"].flatten(1) @ self.readout("audio")
        return 4.0 * torch.clamp(a + v, -1.0, 1.0)


class TokensBesideFloats(Margin):
    """``z = 3 * mean(emb(text)) + 1 * (audio @ w)``; token 1 embeds to +1, token 2 to -1, pad 0 to 0."""

    modalities = ("text", "audio")

    def __init__(self, audio: int = 24) -> None:
        super().__init__()
        self.enc = nn.ModuleDict({"audio": nn.Identity()})
        self.emb = nn.Embedding(3, 1, padding_idx=0)
        with torch.no_grad():
            self.emb.weight.copy_(torch.tensor([[0.0], [1.0], [-1.0]]))
        self.register_buffer("w_audio", _readout(audio, 11))

    def margin(self, text: Tensor, audio: Tensor) -> Tensor:
        return 3.0 * self.emb(text).squeeze(-1).mean(1) + audio.flatten(1) @ self.w_audio


@dataclass
class Case:
    """One ground-truth case: the model, its data, the truth."""

    name: str
    model: nn.Module
    inputs: dict[str, Tensor]
    dominant: str | None
    shares: dict[str, float] | None
    note: str

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def labels(self) -> Tensor:
        """The model's own predictions: accuracy 100%, so every decision is one the model made."""
        with torch.no_grad():
            return self.model(**self.inputs).argmax(1)


def _signs(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=g).float() * 2 - 1


def cases(n: int = SAMPLES) -> list[Case]:
    """Every ground-truth case, built deterministically."""
    out = []
    sa, sv = _signs(n, 1), _signs(n, 2)

    ignores = LinearMix({"audio": 20, "visual": 60}, {"audio": 1.0, "visual": 0.0})
    out.append(Case("ignores", ignores, {
        "audio": carrier(sa, ignores.readout("audio"), 0.3, 3),
        "visual": carrier(sv, ignores.readout("visual"), 0.3, 4)}, "audio", {"audio": 1.0, "visual": 0.0},
        "visual never reaches the logits"))

    mix = LinearMix({"audio": 20, "visual": 60}, {"audio": 3.0, "visual": 1.0})
    out.append(Case("linear_3to1", mix, {
        "audio": carrier(sa, mix.readout("audio"), 0.3, 5),
        "visual": carrier(sa, mix.readout("visual"), 0.3, 6)}, "audio", {"audio": 0.75, "visual": 0.25},
        "margin 3 * audio + 1 * visual"))

    decoy = Decoy()
    g = torch.Generator().manual_seed(8)
    pairs = torch.randn(n, decoy.w_visual.numel() // 2, generator=g) * 2.0
    out.append(Case("decoy", decoy, {
        "audio": carrier(sa, decoy.w_audio, 0.3, 9),
        "visual": pairs.repeat_interleave(2, dim=1)}, "audio", {"audio": 1.0, "visual": 0.0},
        "visual 48x larger, large attributions that cancel"))

    both = Product({"audio": 20, "visual": 60}, {})
    out.append(Case("needs_both", both, {
        "audio": carrier(sa, both.readout("audio"), 0.3, 10),
        "visual": carrier(sv, both.readout("visual"), 0.3, 12)}, None, {"audio": 0.5, "visual": 0.5},
        "XOR of the two signs"))

    sizes = LinearMix({"small": 8, "medium": 80, "large": 800}, {"small": 1.0, "medium": 1.0, "large": 1.0})
    out.append(Case("sizes", sizes, {
        m: carrier(_signs(n, 20 + j), sizes.readout(m), 0.5, 30 + j) for j, m in enumerate(sizes.modalities)},
        None, {"small": 1 / 3, "medium": 1 / 3, "large": 1 / 3}, "8, 80 and 800 elements, equal weight"))

    red = Saturating({"audio": 20, "visual": 20}, {})
    copy = carrier(sa, red.readout("audio"), 0.3, 13)
    out.append(Case("redundant", red, {"audio": copy, "visual": copy.clone()}, None,
                    {"audio": 0.5, "visual": 0.5}, "visual is a copy of audio, saturating margin"))

    tok = TokensBesideFloats()
    text = ((1 - sa) / 2 + 1).long().unsqueeze(1).repeat(1, 6)  # +1 -> token 1, -1 -> token 2
    out.append(Case("tokens", tok, {"text": text, "audio": carrier(sa, tok.w_audio, 0.3, 14)}, "text",
                    {"text": 0.75, "audio": 0.25}, "token ids beside floats, margin 3 * text + 1 * audio"))
    return out


def case(name: str) -> Case:
    """The case called ``name``."""
    return next(c for c in cases() if c.name == name)
