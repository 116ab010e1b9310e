"""``ModalityBalanceCallback`` with the real Hugging Face ``Trainer`` (tiny model, CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from mmbalance import AttributionPenalty  # noqa: E402
from mmbalance.integrations.transformers import ModalityBalanceCallback  # noqa: E402


class AVNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audio_net, self.visual_net = nn.Linear(4, 6), nn.Linear(4, 6)
        self.head = nn.Linear(12, 2)

    def forward(self, audio, visual, labels=None):
        logits = self.head(torch.tanh(torch.cat([self.audio_net(audio), self.visual_net(visual)], 1)))
        return {"logits": logits} if labels is None else {"loss": F.cross_entropy(logits, labels), "logits": logits}


class Rows(torch.utils.data.Dataset):
    def __init__(self, seed: int, n: int = 32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        s = (2 * self.y - 1).float().unsqueeze(1)
        self.a, self.v = s + torch.randn(n, 4, generator=g), 0.3 * s + torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return {"audio": self.a[i], "visual": self.v[i], "labels": self.y[i]}


class BalancedTrainer(transformers.Trainer):
    """The documented pattern: the penalty added in compute_loss."""

    def __init__(self, *args, lam: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pen = AttributionPenalty(self.model, modalities=["audio", "visual"],
                                      embedding_layers="audio=audio_net,visual=visual_net")
        self.lam = lam

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        logits, penalty = self.pen(inputs["audio"], inputs["visual"], labels=inputs["labels"])
        loss = F.cross_entropy(logits, inputs["labels"]) + self.lam * penalty
        return (loss, {"logits": logits}) if return_outputs else loss


def test_evaluate_returns_the_shares(tmp_path):
    torch.manual_seed(0)
    model = AVNet()
    args = transformers.TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=8,
                                          per_device_eval_batch_size=8, report_to=[], use_cpu=True,
                                          save_strategy="no", logging_strategy="no", disable_tqdm=True)
    callback = ModalityBalanceCallback(modalities=["audio", "visual"],
                                       embedding_layers="audio=audio_net,visual=visual_net")
    trainer = BalancedTrainer(model=model, args=args, train_dataset=Rows(0), eval_dataset=Rows(1),
                              callbacks=[callback])
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    metrics = trainer.evaluate()
    a, v = metrics["eval_modality_share/audio"], metrics["eval_modality_share/visual"]
    assert a + v == pytest.approx(1.0, abs=1e-6)
    assert metrics["eval_share_variance"] == pytest.approx(((a - v) / 2) ** 2, abs=1e-9)
    ds = Rows(1)
    by_hand = trainer.pen.shares([(ds.a, ds.v, ds.y)])
    assert a == pytest.approx(by_hand["audio"], abs=1e-6)
    assert any("eval_modality_share/audio" in row for row in trainer.state.log_history)
