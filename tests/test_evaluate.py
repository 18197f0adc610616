import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from benchmark.evaluate import knn_predict, linear_probe


def clustered(n_per_class: int, classes: int, dim: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    feats = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return torch.tensor(feats, dtype=torch.float32), torch.tensor(labels)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_weighted_knn_matches_scikit_learn(k):
    bank, bank_y = clustered(30, 4, 8, spread=1.5, seed=0)
    queries, _ = clustered(10, 4, 8, spread=1.5, seed=1)
    temperature = 0.07
    ours = knn_predict(bank, bank_y, queries, k=k, temperature=temperature, num_classes=4, chunk=7)
    reference = KNeighborsClassifier(
        n_neighbors=k,
        metric="cosine",
        algorithm="brute",
        weights=lambda d: np.exp((1 - d) / temperature),  # cosine distance d = 1 - similarity
    ).fit(bank.numpy(), bank_y.numpy())
    np.testing.assert_array_equal(ours.numpy(), reference.predict(queries.numpy()))


def test_knn_weights_votes_by_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    # with a small temperature the single very close neighbour outweighs two far ones
    assert knn_predict(bank, labels, query, k=3, temperature=0.07, num_classes=2).item() == 0
    # with a huge temperature weights are nearly equal and the majority wins
    assert knn_predict(bank, labels, query, k=3, temperature=1e4, num_classes=2).item() == 1
    assert math.isclose(float(torch.exp(torch.tensor(1 / 0.07))), math.exp(1 / 0.07), rel_tol=1e-5)


def test_linear_probe_chooses_on_validation_and_never_reads_test_labels():
    feats, labels = clustered(100, 3, 16, spread=2.0, seed=2)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    feats, labels = feats[order], labels[order]
    (train_f, val_f, test_f), (train_y, val_y, test_y) = feats.split([180, 60, 60]), labels.split([180, 60, 60])
    result = linear_probe(train_f, train_y, val_f, val_y, test_f, test_y, num_classes=3)
    assert result.val_acc > 0.6 and result.test_acc > 0.6
    shuffled = test_y[torch.randperm(len(test_y), generator=torch.Generator().manual_seed(0))]
    again = linear_probe(train_f, train_y, val_f, val_y, test_f, shuffled, num_classes=3)
    assert (again.l2, again.val_acc) == (result.l2, result.val_acc)  # the choice ignores test labels


def test_linear_probe_reaches_perfect_accuracy_on_separable_data():
    train_f, train_y = clustered(40, 5, 10, spread=0.05, seed=5)
    result = linear_probe(train_f, train_y, train_f, train_y, train_f, train_y, num_classes=5)
    assert result.val_acc == 1.0 and result.test_acc == 1.0
