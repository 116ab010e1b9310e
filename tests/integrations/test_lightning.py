"""``ModalityBalance`` in a real Lightning ``Trainer`` on CPU, with the penalty in ``training_step``."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

lightning = pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from mmbalance import AttributionPenalty  # noqa: E402
from mmbalance.integrations.lightning import ModalityBalance  # noqa: E402


class AVModule(lightning.LightningModule):
    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.audio_net, self.visual_net = nn.Linear(4, 6), nn.Linear(4, 6)
        self.head = nn.Linear(12, 2)
        self.lam = lam
        self.pen = AttributionPenalty(self, modalities=["audio", "visual"],
                                      embedding_layers={"audio": self.audio_net, "visual": self.visual_net})

    def forward(self, audio, visual):
        return self.head(torch.tanh(torch.cat([self.audio_net(audio), self.visual_net(visual)], 1)))

    def training_step(self, batch, batch_idx):
        audio, visual, y = batch
        logits, penalty = self.pen(audio, visual, labels=y)
        loss = F.cross_entropy(logits, y) + self.lam * penalty
        self.log("penalty", penalty.detach(), on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (32,), generator=g)
    s = (2 * y - 1).float().unsqueeze(1)
    return DataLoader(TensorDataset(s + torch.randn(32, 4, generator=g), 0.3 * s + torch.randn(32, 4, generator=g), y),
                      batch_size=16)


def test_fit_logs_the_shares_every_epoch(tmp_path):
    torch.manual_seed(0)
    module = AVModule()
    callback = ModalityBalance(_loader(1), penalty=module.pen)
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", logger=CSVLogger(tmp_path, name="run"),
                                callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                                enable_checkpointing=False)
    trainer.fit(module, _loader(0))
    with open(next(tmp_path.rglob("metrics.csv"))) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("modality_share/audio")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for row, logged in zip(rows, callback.history):
        a, v = float(row["modality_share/audio"]), float(row["modality_share/visual"])
        assert a + v == pytest.approx(1.0, abs=1e-6)
        assert a == pytest.approx(logged["modality_share/audio"], abs=1e-6)
        assert float(row["share_variance"]) == pytest.approx(((a - v) / 2) ** 2, abs=1e-6)
        assert float(row["modality_balanced"]) in (0.0, 1.0) and float(row["penalty"]) >= 0
    assert callback.verdict and ("balanced" in callback.verdict or "dominates" in callback.verdict)
    # the logged shares are those of the trained module, measured again by hand
    again = module.pen.shares(_loader(1))
    assert again["audio"] == pytest.approx(float(rows[-1]["modality_share/audio"]), abs=1e-6)


def test_every_n_epochs_skips_the_others(tmp_path):
    torch.manual_seed(0)
    module = AVModule()
    callback = ModalityBalance(_loader(1), every_n_epochs=2, penalty=module.pen)
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", logger=False, callbacks=[callback],
                                enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, _loader(0))
    assert len(callback.history) == 1  # epoch 2 of 3
