"""DINO's loss against its formula (eq. 1), its teacher temperature schedule, centre and frozen prototypes."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods import METHODS
from benchmark.methods.dino import dino_loss

from .reference import TOL, D, N, build, rand, rows, views

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_dino(student, teacher, center, student_temperature, teacher_temperature):
    """DINO eq. (1) over the two global views: H(P_t(x_a), P_s(x_b)) for a != b, P_t = softmax((t - c) / T_t),
    P_s = softmax(s / T_s), H(q, p) = -sum_k q_k log p_k, averaged over rows and the two view pairs."""

    def softmax(row, temperature, shift):
        exps = [math.exp((x - c) / temperature) for x, c in zip(row, shift)]
        return [e / sum(exps) for e in exps]

    s, t, n = rows(student), rows(teacher), len(student) // 2
    zero = [0.0] * len(s[0])
    total = 0.0
    for i in range(n):
        for a, b in ((i, i + n), (i + n, i)):  # teacher on one view, student on the other
            q, p = softmax(t[a], teacher_temperature, center), softmax(s[b], student_temperature, zero)
            total += -sum(qk * math.log(pk) for qk, pk in zip(q, p))
    return total / (2 * n)


@pytest.mark.parametrize("temperatures", [(0.1, 0.07), (0.5, 0.04)])
@pytest.mark.parametrize("seed", [0, 1])
def test_dino_loss_matches_reference(temperatures, seed):
    student, teacher, center = rand(2 * N, D, seed=seed), rand(2 * N, D, seed=seed + 60), rand(D, seed=seed + 70)
    got = dino_loss(student, teacher, center, *temperatures).item()
    assert got == pytest.approx(ref_dino(student, teacher, center.tolist(), *temperatures), **TOL)


def test_dino_schedules_centre_and_frozen_prototypes():
    method = build("dino", warmup_teacher_temperature_epochs=3, num_train=50)
    method.epochs = 10
    assert [method.teacher_temperature_at(e) for e in (0, 1, 2, 3, 9)] == pytest.approx([0.04, 0.055, 0.07, 0.07, 0.07])
    assert METHODS.get("dino").Params().warmup_teacher_temperature_epochs == 0  # CIFAR: 0.07 from the start
    assert float(method.prototypes.frozen) == 1.0  # first epoch: the prototypes do not learn
    method.train()
    loss = method(*views())
    loss.backward()
    assert method.prototypes.weight.grad.abs().sum() == 0 and method.projector[0].weight.grad.abs().sum() > 0
    pending = method._pending.clone()
    method.after_step(0.1)  # now in epoch 1 of 10
    torch.testing.assert_close(method.center, 0.1 * pending)  # 0.9 * 0 + 0.1 * batch centre
    assert float(method.prototypes.frozen) == 0.0 and float(method.teacher_temperature) == pytest.approx(0.055)
    method.zero_grad()
    method(*views()).backward()
    assert method.prototypes.weight.grad.abs().sum() > 0
