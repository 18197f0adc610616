"""The momentum target shared by BYOL, MoCo v3 and DINO (benchmark/methods/momentum.py): solo-learn's cosine tau."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods import METHODS
from benchmark.methods.momentum import MomentumTarget, ema_momentum

from .reference import build

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ema_momentum_schedule():
    assert ema_momentum(0.99, 1.0, 0) == pytest.approx(0.99, abs=1e-12)
    assert ema_momentum(0.99, 1.0, 1) == pytest.approx(1.0, abs=1e-12)
    assert ema_momentum(0.99, 1.0, 0.5) == pytest.approx(0.995, abs=1e-12)
    for progress in (0.1, 0.3, 0.7, 0.9):  # BYOL: 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2
        expected = 1 - (1 - 0.9) * (math.cos(math.pi * progress) + 1) / 2
        assert ema_momentum(0.9, 1.0, progress) == pytest.approx(expected, abs=1e-12)
    values = [ema_momentum(0.9, 1.0, k / 20) for k in range(21)]
    assert all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    "name", [m for m in METHODS.names() if any(isinstance(x, MomentumTarget) for x in build(m).modules())]
)
def test_momentum_targets_start_as_copies_and_follow_the_shared_schedule(name):
    """BYOL, MoCo v3, DINO: one helper (benchmark/methods/momentum.py) with solo-learn's cosine tau."""
    method = build(name, tau_base=0.5)
    [target] = [m for m in method.modules() if isinstance(m, MomentumTarget)]
    online = [p for m in target._online for p in m.parameters()]
    assert len(online) == len(list(target.parameters()))
    for o, t in zip(online, target.parameters()):
        assert torch.equal(o, t) and o.data_ptr() != t.data_ptr()
    before = [t.detach().clone() for t in target.parameters()]
    with torch.no_grad():
        for o in online:
            o.add_(1.0)
    method.after_step(0.5)  # tau = 1 - (1 - 0.5) * (cos(pi / 2) + 1) / 2 = 0.75
    for o, t, b in zip(online, target.parameters(), before):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * o, rtol=1e-6, atol=1e-6)


def test_the_loop_moves_targets_with_the_tau_of_the_steps_done_before_each_step(tmp_path, monkeypatch):
    """solo-learn (BaseMomentumMethod.on_train_batch_end) updates after step k with the tau of k - 1
    steps: the first update uses tau_base. The loop hands after_step the progress before the step."""
    from benchmark.config import RunConfig
    from benchmark.data import load_dataset
    from benchmark.methods.byol import BYOL
    from benchmark.train import train_run

    calls: list[tuple[float, float | None]] = []
    original = BYOL.after_step

    def recording(self, progress, started=None):
        calls.append((progress, started))
        original(self, progress, started)

    monkeypatch.setattr(BYOL, "after_step", recording)
    data = load_dataset("digits", data_dir=tmp_path)
    config = RunConfig.from_dict(
        {"dataset": "digits", "method": "byol", "backbone": "small", "epochs": 1, "batch_size": 256, "progress": False}
    )
    train_run(config, tmp_path / "run", data=data)
    steps = len(data.pretrain) // 256
    assert calls == [((k + 1) / steps, k / steps) for k in range(steps)]
    method = build("byol", tau_base=0.5)
    method.after_step(0.5, started=0.0)  # the first update: tau = tau_base, the target halfway to online
    [target] = [m for m in method.modules() if isinstance(m, MomentumTarget)]
    assert target.tau_base == 0.5
