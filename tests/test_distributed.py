"""Two gloo processes on the CPU train one step on halves of a batch; the loss and every gradient must
equal one process's on the whole batch (the bug that hit other SSL libraries: gradients off by the
world size). Also the global BatchNorm's statistics and the gathers."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmark.backbones import build_backbone
from benchmark.methods import METHODS as REGISTRY
from benchmark.methods import MethodContext, build_method
from tests.conftest import small_method_args

METHODS = REGISTRY.names()
WORLD = 2
BATCH = 16
RTOL, ATOL = 1e-4, 1e-6  # losses and BatchNorm statistics
GRAD_RTOL, GRAD_ATOL_SCALE = 1e-3, 1e-4  # gradients: float32 sums in another order; a world-size bug is 50%


def _model(method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone, feat_dim = build_backbone("small", 8, False, None)
    # NNCLR's queue of 64 random unit vectors, as solo-learn's queue starts: the NN path is exercised;
    # SimCLR masks false negatives, so the ids of the GPS pairs matter
    heads = small_method_args(method, 32, proj_output_dim=16, queue_size=64, mask_false_negatives=True)
    return build_method(method, backbone, feat_dim, heads, MethodContext(num_train=64, epochs=1)).train()


def _batch():
    generator = torch.Generator().manual_seed(2)
    v1, v2 = torch.randn(2, BATCH, 3, 8, 8, generator=generator)
    ids = (torch.arange(BATCH), torch.randint(0, BATCH, (BATCH,), generator=generator))  # GPS: shared images
    return v1, v2, ids


def _step(model, v1, v2, ids):
    extra = {"ids": ids} if getattr(model, "module", model).uses_pair_ids else {}
    loss = model(v1, v2, **extra)
    loss.backward()
    return loss.detach()


def _worker(rank: int, port: int, out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    from benchmark.distributed import convert_batchnorm, init_from_env, mean_over_ranks

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    init_from_env("cpu")
    results = {}
    v1, v2, ids = _batch()
    part = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    for method in METHODS:
        model = convert_batchnorm(_model(method))
        ddp = DistributedDataParallel(model, broadcast_buffers=False)
        loss = _step(ddp, v1[part], v2[part], (ids[0][part], ids[1][part]))
        results[method] = {
            "loss": mean_over_ranks(loss),
            "grads": {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None},
            "running_mean": [
                m.running_mean.clone()
                for m in model.modules()
                if hasattr(m, "running_mean") and m.running_mean is not None
            ],
        }
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ddp") / "results.pt")
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
    return torch.load(out, weights_only=False)


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_give_the_full_batch_loss_and_gradients(method, two_process_results, one_thread):
    model = _model(method)
    v1, v2, ids = _batch()
    loss = _step(model, v1, v2, ids)
    got = two_process_results[method]
    torch.testing.assert_close(got["loss"], loss, rtol=RTOL, atol=ATOL)
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert got["grads"].keys() == grads.keys() and len(grads) > 5
    for name, grad in grads.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(
            got["grads"][name],
            grad,
            rtol=GRAD_RTOL,
            atol=max(GRAD_ATOL_SCALE * scale, ATOL),
            msg=lambda m, name=name: f"{name}: {m}",
        )
        if scale > 1e-4:  # (biases before a BatchNorm have gradients of rounding noise only)
            assert abs(float(got["grads"][name].norm() / grad.norm()) - 1) < 1e-3, name
    expected_means = [
        m.running_mean for m in model.modules() if hasattr(m, "running_mean") and m.running_mean is not None
    ]
    for got_mean, mean in zip(got["running_mean"], expected_means, strict=True):
        torch.testing.assert_close(got_mean, mean, rtol=RTOL, atol=ATOL)  # BatchNorm saw the global batch


def test_a_sweep_run_trains_over_two_gloo_processes(tmp_path, monkeypatch, capsys):
    """resources.tasks_per_node: 2 on the CPU: two submitit tasks, one process group, one writer."""
    import textwrap

    from benchmark.cli import main
    from benchmark.rundir import RunDir, read_json
    from benchmark.sweep.plan import expand
    from benchmark.sweep.spec import load_sweep

    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = tmp_path / "ddp.yaml"
    path.write_text(
        textwrap.dedent("""
        name: ddp
        grid: {method: [simclr]}
        fixed: {dataset: digits, epochs: 2, batch_size: 128, prior: pixel, k: 5,
                method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
        resources: {cpus: 1, tasks_per_node: 2, timeout_min: 20}
        wandb: {mode: disabled}
    """)
    )
    assert main(["sweep", str(path), "--max-parallel", "1", "--results-dir", str(tmp_path / "r")]) == 0
    [cell] = expand(load_sweep(path)).cells
    run = RunDir(tmp_path / "r" / "ddp" / cell.run_id)
    result = read_json(run.result)
    assert result["world_size"] == 2 and result["prior_nn_agreement"] > 0.5
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2]  # rank 0 alone writes
    assert run.read_status()["state"] == "done" and run.read_status()["attempt"] == 1
