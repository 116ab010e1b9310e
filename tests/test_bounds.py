"""Every count and size option is bounded where it enters the library (issue 21, cases 4 and 13)."""

from __future__ import annotations

import pytest

from mmbalance.audit import audit
from mmbalance.errors import UsageError
from mmbalance.training import TrainConfig

D = "synthetic:av-dominance?n_train=8&n_val=8&n_test=8"


@pytest.mark.parametrize("kwargs, flag", [
    (dict(batch_size=10**20), "--batch-size"),
    (dict(limit=10**20), "--limit"),
    (dict(pad_id=2**63), "--pad-id"),
    (dict(pad_id=-1), "--pad-id"),
])
def test_audit_bounds(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        audit("av-tiny", D, progress=False, device="cpu", **kwargs)


def test_finetune_batch_size_bound():
    with pytest.raises(UsageError, match="--batch-size must be between"):
        TrainConfig(model="av-tiny", data=D, out="x", batch_size=10**20).validate()
