"""Reference inputs ("baselines") that estimators compare a sample against.

* ``zero``: all zeros (the default; what "removing" a modality means for centred data).
* ``mean``: the dataset mean of each modality, element by element (one sample-shaped
  tensor per modality, computed by :func:`mmbalance.audit.audit` in a first streaming pass).
* ``noise``: Gaussian noise with each sample's own mean and standard deviation per modality,
  drawn from a seeded generator (Sturmfels et al. 2020, "Visualizing the impact of feature
  attribution baselines").
* ``blur``: each sample Gaussian-blurred over its last two axes (frequency x time for
  spectrograms, height x width for frames); not defined for flat embeddings.

Example:
    >>> import torch
    >>> x = {"audio": torch.ones(2, 1, 4, 4)}
    >>> Baseline("zero")(x)["audio"].abs().sum().item()
    0.0
    >>> Baseline("mean", means={"audio": torch.full((1, 4, 4), 0.5)})(x)["audio"][1, 0, 0, 0].item()
    0.5
    >>> torch.allclose(Baseline("blur")(x)["audio"], x["audio"])  # blurring a constant changes nothing
    True
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import UsageError

BASELINES = ("zero", "mean", "noise", "blur")


class Baseline:
    """Makes the baseline of every modality for a batch ``{modality: (B, ...)}``.

    Args:
        kind: one of :data:`BASELINES`.
        means: ``{modality: sample-shaped mean}``; required for ``mean``.
        seed: seeds the generator of the ``noise`` baseline (draws follow the batch order).
        blur_sigma: Gaussian width of ``blur`` as a fraction of each blurred axis (default 1/8).
    """

    def __init__(self, kind: str = "zero", *, means: Mapping[str, Tensor] | None = None, seed: int = 0,
                 blur_sigma: float = 0.125) -> None:
        if kind not in BASELINES:
            raise UsageError(f"unknown baseline {kind!r}", hint=f"use --baseline {'|'.join(BASELINES)}")
        if blur_sigma <= 0:
            raise UsageError(f"the blur width must be positive, got {blur_sigma}")
        self.kind = kind
        self.means = {m: t.detach() for m, t in means.items()} if means is not None else None
        self.seed = int(seed)
        self.blur_sigma = float(blur_sigma)
        self._generator: torch.Generator | None = None

    @classmethod
    def coerce(cls, value: "str | Baseline") -> "Baseline":
        """Accept a kind name or a ready :class:`Baseline`."""
        return value if isinstance(value, Baseline) else cls(value)

    def params(self) -> dict[str, Any]:
        """Settings recorded in the audit JSON."""
        out: dict[str, Any] = {"baseline": self.kind}
        if self.kind == "noise":
            out["seed"] = self.seed
        if self.kind == "blur":
            out["blur_sigma"] = self.blur_sigma
        return out

    def __call__(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The baseline of every modality, same shapes, dtypes and devices as ``inputs``."""
        return {m: self.one(m, x.detach()) for m, x in inputs.items()}

    def one(self, modality: str, x: Tensor) -> Tensor:
        """The baseline of one modality's batch ``x``."""
        if self.kind == "zero":
            return torch.zeros_like(x)
        if self.kind == "mean":
            if self.means is None or modality not in self.means:
                raise UsageError(f"the mean baseline needs the dataset mean of {modality!r}",
                                 hint="let audit() compute it (--baseline mean) or pass means={modality: tensor}")
            mean = self.means[modality].to(device=x.device, dtype=x.dtype)
            if tuple(mean.shape) != tuple(x.shape[1:]):
                raise UsageError(f"the mean of {modality!r} has shape {tuple(mean.shape)} but samples have "
                                 f"shape {tuple(x.shape[1:])}",
                                 hint="samples of different sizes have no element-wise mean; use --baseline zero")
            return mean.unsqueeze(0).expand_as(x).clone()
        if self.kind == "noise":
            if self._generator is None:
                self._generator = torch.Generator().manual_seed(self.seed)
            flat = x.flatten(1)
            mu = flat.mean(1)
            sd = flat.std(1, unbiased=False) if flat.shape[1] > 1 else torch.ones_like(mu)
            eps = torch.randn(x.shape, generator=self._generator, dtype=x.dtype).to(x.device)
            shape = (-1,) + (1,) * (x.dim() - 1)
            return mu.view(shape) + sd.view(shape) * eps
        return gaussian_blur(x, self.blur_sigma, modality=modality)


def gaussian_blur(x: Tensor, sigma: float = 0.125, *, modality: str = "input") -> Tensor:
    """Blur ``x`` (B, C, ...) over its last two axes (its last axis when ``x`` is 3-D).

    ``sigma`` is the Gaussian's standard deviation as a fraction of each axis length; weights
    are renormalized at the borders, so a constant input is returned unchanged.

    Example:
        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1.0
        >>> y = gaussian_blur(x, 0.2)
        >>> y[0, 0, 2, 2].item() < 1.0 and y[0, 0, 2, 3].item() > 0.0
        True
    """
    if x.dim() < 3:
        raise UsageError(f"the blur baseline needs spatial axes, but {modality!r} has shape {tuple(x.shape)}",
                         hint="use --baseline zero|mean|noise for flat inputs and at --level embedding")
    out = x
    for dim in range(max(2, x.dim() - 2), x.dim()):
        n = x.shape[dim]
        if n < 2:
            continue
        s = max(sigma * n, 1e-6)
        pos = torch.arange(n, dtype=torch.float64)
        kernel = torch.exp(-0.5 * ((pos[:, None] - pos[None, :]) / s) ** 2)
        kernel = kernel / kernel.sum(1, keepdim=True)
        out = torch.movedim(torch.movedim(out, dim, -1) @ kernel.T.to(out.dtype).to(out.device), -1, dim)
    return out.contiguous()


class MeanAccumulator:
    """Streaming element-wise mean per modality; float64 sums, mergeable across processes.

    Example:
        >>> acc = MeanAccumulator()
        >>> acc.update({"a": torch.ones(2, 3)}); acc.update({"a": torch.zeros(2, 3)})
        >>> acc.compute()["a"].tolist()
        [0.5, 0.5, 0.5]
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def update(self, batch: Mapping[str, Tensor]) -> None:
        """Fold in one batch ``{modality: (B, ...)}``."""
        n = None
        for m, x in batch.items():
            x = x.detach()
            total = x.double().sum(0).cpu()
            if m in self.sums and self.sums[m].shape != total.shape:
                raise UsageError(f"samples of {m!r} change shape ({tuple(self.sums[m].shape)} then "
                                 f"{tuple(total.shape)}): there is no element-wise mean",
                                 hint="use --baseline zero|noise|blur")
            self.sums[m] = self.sums[m] + total if m in self.sums else total
            n = int(x.shape[0])
        self.count += n or 0

    def compute(self) -> dict[str, Tensor]:
        """``{modality: mean sample}`` in float32."""
        if self.count == 0:
            raise UsageError("the mean baseline needs at least one sample")
        return {m: (s / self.count).float() for m, s in self.sums.items()}
