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


def test_bootstrap_intervals_cover_the_share_and_shrink_with_more_data():
    g = torch.Generator().manual_seed(0)
    small, large = ShareAccumulator(("a", "v"), 2, bootstrap=200), ShareAccumulator(("a", "v"), 2, bootstrap=200)
    scores = torch.rand(2000, 2, generator=g)
    labels = torch.randint(0, 2, (2000,), generator=g)
    small.update(scores[:100], labels[:100])
    for i in range(0, 2000, 100):
        large.update(scores[i:i + 100], labels[i:i + 100])
    for acc in (small, large):
        out = acc.compute()
        lo, hi = out["ci95"]["a"]
        assert lo < out["shares"]["a"] < hi
    width = lambda acc: acc.compute()["ci95"]["a"][1] - acc.compute()["ci95"]["a"][0]  # noqa: E731
    assert width(large) < width(small) / 2
    assert ShareAccumulator(("a", "v"), 2).compute()["ci95"] is None


def test_bootstrap_state_merges_with_shared_weights():
    from mmbalance.attribution import poisson_weights

    scores = torch.rand(30, 2)
    labels = torch.randint(0, 2, (30,))
    weights = poisson_weights(30, 50, torch.Generator().manual_seed(1))
    whole = ShareAccumulator(("a", "v"), 2, bootstrap=50)
    whole.update(scores, labels, weights)
    left, right = ShareAccumulator(("a", "v"), 2, bootstrap=50), ShareAccumulator(("a", "v"), 2, bootstrap=50)
    left.update(scores[:10], labels[:10], weights[:10])
    right.update(scores[10:], labels[10:], weights[10:])
    merged = ShareAccumulator(("a", "v"), 2, bootstrap=50)
    merged.load_state(left.state() + right.state())
    for mod in ("a", "v"):
        for got, want in zip(merged.compute()["ci95"][mod], whole.compute()["ci95"][mod]):
            assert abs(got - want) < 1e-12


def test_extra_accumulator_summaries_and_merge():
    from mmbalance.attribution import ExtraAccumulator

    a, b = ExtraAccumulator(("a", "v")), ExtraAccumulator(("a", "v"))
    a.update({"err": torch.tensor([1.0, float("nan")]), "drop": torch.tensor([[1.0, 0.0]])})
    b.update({"err": torch.tensor([5.0]), "drop": torch.tensor([[0.0, 1.0], [0.0, 0.0]])})
    a.merge(b)
    assert a.compute() == {"err": {"mean": 3.0, "max": 5.0}, "drop": {"a": 1 / 3, "v": 1 / 3}}


def test_signed_scores_count_by_magnitude():
    assert scores_to_shares(torch.tensor([[-3.0, 1.0]])).tolist() == [[0.75, 0.25]]
