"""Every registered method end to end on a tiny backbone (CPU, well under a second each), and method_args
checking. Each method's own tests (its loss against a slow implementation of its formula) are in
tests/methods/test_<name>.py."""

from __future__ import annotations

import pytest
import torch

from benchmark.backbones import SmallCNN
from benchmark.errors import ConfigError
from benchmark.methods import METHODS, MethodContext, build_method, resolve_method_params
from benchmark.methods.momentum import MomentumTarget

from .reference import build, views

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_paper_methods_are_registered_and_name_themselves():
    assert {"barlow", "byol", "nnclr", "simclr", "vicreg"} <= set(METHODS)
    from benchmark.results import method_names

    names = method_names()
    assert list(names)[:5] == ["simclr", "byol", "nnclr", "vicreg", "barlow"]  # the paper's column order
    assert names["barlow"] == "Barlow Twins" and set(names) == set(METHODS)
    orders = [METHODS.get(name).table_order for name in names]
    assert len(set(orders)) == len(orders), "two methods share a table_order"


@pytest.mark.parametrize("name", METHODS.names())
def test_method_end_to_end_loss_and_gradients(name):
    method = build(name)
    method.train()
    for value in (32, 16):
        assert any(getattr(method.params, f, None) == value for f in ("proj_hidden_dim", "proj_output_dim"))
    v1, v2 = views()
    loss = method(v1, v2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, param in method.backbone.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in method.backbone.parameters())
    assert all(p.grad is not None for p in method.projector.parameters() if p.requires_grad)
    for target in (m for m in method.modules() if isinstance(m, MomentumTarget)):
        assert all(p.grad is None and not p.requires_grad for p in target.parameters())
    method.after_step(0.5)  # must run after a step for every method
    assert torch.isfinite(method(v1, v2))


def test_heads_follow_solo_learn():
    """SimCLR's projector has no BatchNorm; NNCLR's projector ends in an affine BatchNorm; every
    Linear has a bias (solo/methods/<method>.py)."""
    simclr = build("simclr")
    assert [type(m).__name__ for m in simclr.projector] == ["Linear", "ReLU", "Linear"]
    nnclr = build("nnclr")
    assert [type(m).__name__ for m in nnclr.projector] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert nnclr.projector[-1].affine
    for name in ("simclr", "byol", "nnclr", "vicreg", "barlow"):  # (SimSiam's and MoCo v3's drop some)
        assert all(m.bias is not None for m in build(name).modules() if isinstance(m, torch.nn.Linear)), name


@pytest.mark.parametrize("name", METHODS.names())
def test_batchnorm_statistics_per_view_or_joint(name):
    """bn_per_view (solo-learn's way, the default): the backbone runs once per view, so a view's
    features do not depend on the other view; joint: one pass over both, so they do."""
    v1, v2 = views(seed=5)
    other = views(seed=6)[1]
    for per_view in (True, False):
        method = build(name, bn_per_view=per_view)
        method.train()
        h1, _ = method.embed_pair(v1, v2)
        h1_other, _ = method.embed_pair(v1, other)
        assert torch.allclose(h1, h1_other) == per_view, (name, per_view)
    assert METHODS.get(name).Params().bn_per_view


def test_resolve_method_params_defaults_and_coercion():
    params = resolve_method_params("simclr", {})
    assert params == METHODS.get("simclr").Params()
    params = resolve_method_params("simclr", {"temperature": 1, "proj_output_dim": 64})
    assert params.temperature == 1.0 and isinstance(params.temperature, float)
    assert params.proj_output_dim == 64


def test_resolve_method_params_rejects_unknown_keys():
    with pytest.raises(ConfigError) as err:
        resolve_method_params("byol", {"tau_bsae": 0.9})
    message = str(err.value)
    assert "'tau_bsae'" in message and "byol" in message
    assert "did you mean 'tau_base'" in message
    for valid in ("pred_hidden_dim", "proj_hidden_dim", "proj_output_dim", "tau_base", "tau_final"):
        assert valid in message
    with pytest.raises(ConfigError, match="temperature"):  # valid for simclr, not for vicreg
        resolve_method_params("vicreg", {"temperature": 0.5})


@pytest.mark.parametrize(
    "method, overrides, fragment",
    [
        ("simclr", {"temperature": "hot"}, "method_args.temperature must be float, got 'hot'"),
        ("simclr", {"temperature": True}, "method_args.temperature must be float, got True"),
        ("simclr", {"proj_hidden_dim": 32.0}, "method_args.proj_hidden_dim must be int, got 32.0"),
        ("nnclr", {"queue_size": False}, "method_args.queue_size must be int, got False"),
        ("barlow", {"lambd": None}, "method_args.lambd must be float, got None"),
        ("vicreg", {"sim_weight": -1.0}, "method_args.sim_weight must be >= 0, got -1.0"),
    ],
)
def test_resolve_method_params_rejects_wrong_types_and_ranges(method, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        resolve_method_params(method, overrides)
    assert fragment in str(err.value)


def test_build_method_rejects_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'simclrr'.*simclr"):
        build_method("simclrr", SmallCNN(), 256, {}, MethodContext(num_train=10, epochs=1))
