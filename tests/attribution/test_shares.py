import torch

from mmbalance.attribution import ShareAccumulator, scores_to_shares


def test_scores_to_shares_rows_sum_to_one_and_zero_rows_are_equal():
    shares = scores_to_shares(torch.tensor([[3.0, 1.0], [0.0, 0.0], [0.0, 2.0]]))
    assert shares.tolist() == [[0.75, 0.25], [0.5, 0.5], [0.0, 1.0]]


def test_accumulator_dataset_and_per_class_shares():
    acc = ShareAccumulator(("audio", "visual"), num_classes=3)
    acc.update(torch.tensor([[3.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1]))
    acc.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    out = acc.compute(["a", "b", "c"])
    assert out["n"] == 3
    assert abs(out["shares"]["audio"] - (0.75 + 0.5 + 0.0) / 3) < 1e-12
    assert out["per_class"]["a"]["n"] == 2
    assert abs(out["per_class"]["a"]["shares"]["audio"] - 0.375) < 1e-12
    assert "c" not in out["per_class"]  # no samples of class c
    assert abs(out["scores"]["visual"] - 1.0) < 1e-12
    assert sum(out["histogram"]["audio"]["counts"]) == 3


def test_states_from_two_shards_add_up_to_one_pass():
    scores = torch.rand(10, 2)
    labels = torch.randint(0, 2, (10,))
    whole = ShareAccumulator(("a", "v"), 2)
    whole.update(scores, labels)
    left, right = ShareAccumulator(("a", "v"), 2), ShareAccumulator(("a", "v"), 2)
    left.update(scores[:4], labels[:4])
    right.update(scores[4:], labels[4:])
    merged = ShareAccumulator(("a", "v"), 2)
    merged.load_state(left.state() + right.state())
    got, want = merged.compute(), whole.compute()
    assert got["n"] == want["n"] and got["histogram"] == want["histogram"]
    for mod in ("a", "v"):
        assert abs(got["shares"][mod] - want["shares"][mod]) < 1e-12
        for cls in want["per_class"]:
            assert abs(got["per_class"][cls]["shares"][mod] - want["per_class"][cls]["shares"][mod]) < 1e-12
    whole.reset()
    assert whole.compute()["n"] == 0
