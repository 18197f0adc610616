"""Host syncs: the detector finds each kind, and no training step of the suite has one.

A sync inside a step makes the host wait for the GPU (issue 7's typical causes: `.item()` every step,
host-to-device copies, data-sized results). The detector recognises them by what they are, so these
CPU tests guard the GPU path.
"""

import pytest
import torch

from benchmark.assembly import PairStep, build_parts
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.evaluate import knn_accuracy
from benchmark.methods import METHODS
from benchmark.syncs import HOST_READS, record_host_syncs, summarize
from tests.conftest import small_method_args

BATCH = 32


@pytest.mark.parametrize(
    "call, reason",
    [
        (lambda x: x.sum().item(), ".item()"),
        (lambda x: float(x[0]), ".item(), float()"),
        (lambda x: bool(x[0] > 0), "bool()"),
        (lambda x: x.tolist(), ".tolist()"),
        (lambda x: x.cpu(), ".cpu()"),
        (lambda x: x.numpy(), ".numpy()"),
        (lambda x: torch.tensor([1.0, 2.0], device=x.device), "torch.tensor"),
        (lambda x: x[x > 0.5], "boolean mask"),
        (lambda x: x.nonzero(), "nonzero"),
        (lambda x: x.masked_select(x > 0.5), "masked_select"),
    ],
)
def test_each_kind_of_host_sync_is_found(call, reason):
    x = torch.rand(8)
    with record_host_syncs() as found:
        call(x)
    assert found and all(reason in entry for entry in found), found


def test_clean_tensor_code_has_no_syncs_and_the_methods_come_back():
    x = torch.rand(8)
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    with record_host_syncs() as found:
        torch.where(x > 0.5, x * 2, 0.0).sum().add_(torch.arange(3.0).mean())
    assert found == []
    with pytest.raises(RuntimeError), record_host_syncs():
        raise RuntimeError("a failing step")
    assert {name: getattr(torch.Tensor, name) for name in HOST_READS} == originals


def test_on_an_accelerator_only_its_own_tensors_count():
    """Reading a CPU scalar (an optimiser's step count, say) makes no GPU wait; reading a device
    value does. The meta device stands in for the accelerator."""
    host, device = torch.rand(4), torch.rand(4, device="meta")
    with record_host_syncs(torch.device("meta")) as found:
        host.sum().item(), host.tolist(), host[host > 0.5], torch.tensor([1.0])
        for read in (lambda: device.sum().item(), device.tolist):
            with pytest.raises((RuntimeError, NotImplementedError)):  # a meta tensor has no values to read
                read()
    assert len(found) == 2 and ".item()" in found[0] and ".tolist()" in found[1]


def test_a_sync_is_located_in_the_suite_code_that_made_it():
    bank, labels = torch.randn(20, 4), torch.arange(20) % 2
    with record_host_syncs() as found:
        knn_accuracy(bank, labels, bank[:5], labels[:5], 3, 0.1, 2)  # returns a float: one read-back
    assert any("benchmark/evaluate.py:" in where for where in summarize(found))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


def pair_step(digits, **values) -> tuple[PairStep, torch.Tensor]:
    heads = small_method_args(values.get("method", "simclr"), 128, proj_output_dim=32, queue_size=1024)
    config = RunConfig.from_dict(
        {"dataset": "digits", "batch_size": BATCH, "epochs": 1, "progress": False, "method_args": heads, **values}
    )
    parts = build_parts(config, digits, torch.device("cpu"))
    anchors = torch.randint(0, len(parts.images), (BATCH,), generator=parts.generator)
    return PairStep(parts), anchors


RUNS = [
    *({"method": m, "aug": "strong"} for m in METHODS.names()),
    *({"method": "simclr", "aug": a} for a in ("none", "weak", "crop")),
    {"method": "simclr", "aug": "strong", "aug_args": {"blur_p": 0.5, "solarize_p": 0.3, "size": 12}},
    {"method": "simclr", "prior": "pixel", "k": 4},
    {"method": "simclr", "prior": "pixel", "k": 4, "sampling": "radius", "include_self": True},
    {"method": "simclr", "prior": "pixel", "k": 4, "sampling": "farthest-in-ball"},
    {"method": "simclr", "prior": "oracle"},
    {"method": "vicreg", "optimizer": "adamw"},
    {"method": "barlow", "optimizer": "sgd"},
]


@pytest.mark.parametrize("values", RUNS, ids=lambda v: "-".join(str(x) for x in v.values() if not isinstance(x, dict)))
def test_training_steps_never_wait_for_the_device(values, digits, one_thread):
    step, anchors = pair_step(digits, **values)
    step(anchors, 0.1, 0.1)  # first step: lazy state (NNCLR's queue, BYOL's EMA lists) is made here
    with record_host_syncs() as found:
        step(anchors, 0.1, 0.2)
    assert summarize(found) == {}


@pytest.mark.compile
@pytest.mark.parametrize("method", METHODS.names())
def test_compiled_step_is_one_graph_and_matches_eager(method, digits):
    """torch.compile: no graph break, no recompile across steps, and the loss of the eager step."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled, anchors = pair_step(digits, method=method, aug="weak", compile=True)
    eager, _ = pair_step(digits, method=method, aug="weak")
    for i in range(3):
        with torch.no_grad():
            v1, v2, positives = compiled.views(anchors)
            eager.views(anchors)  # the same draws: both steps then train on the same views
        # inductor's float32 reductions differ in the last bits (NNCLR's nearest neighbour can then flip
        # for a row): equal to 5e-4, where a wrong graph is off by whole units
        assert compiled.loss(v1, v2, anchors, positives).item() == pytest.approx(
            eager.loss(v1, v2, anchors, positives).item(), rel=5e-4, abs=1e-5
        )
        compiled(anchors, 0.1, i / 3)
        eager(anchors, 0.1, i / 3)
    with record_host_syncs() as found:
        compiled(anchors, 0.1, 1.0)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    assert summarize(found) == {}
