import json
import subprocess
import sys

import pytest

from benchmark.cli import main
from benchmark.methods import METHODS


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--dataset", "mnist"], ["unknown dataset 'mnist'", "valid: cifar10, cifar100, digits"]),
        (["--method", "moco"], ["unknown method 'moco'", ", ".join(METHODS.names())]),
        (["--aug", "heavy"], ["unknown augmentation 'heavy'", "crop, none, strong, weak"]),
        (["--backbone", "resnet-18"], ["unknown backbone 'resnet-18'", "resnet18"]),
        (["--epochs", "-5"], ["epochs must be >= 0, got -5"]),
        (["--set", "epochs=many"], ["epochs must be int, got 'many'"]),
        (["--set", "temperature=0.1"], ["unknown config key 'temperature'"]),
        (["--device", "tpu"], ["unknown device 'tpu'"]),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(argv, fragments, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--data-dir", str(tmp_path / "data"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gpsbench: error: ") and "\n" not in err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing was started or loaded


def test_argparse_type_errors_also_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "train", "--epochs", "ten"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "invalid int value: 'ten'" in proc.stderr


def test_missing_data_is_one_line_exit_2(tmp_path, capsys):
    code = main(["train", "--dataset", "imagefolder", "--out", str(tmp_path / "run"), "--epochs", "1"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gpsbench: error:")]
    assert code == 2 and len(errors) == 1 and "data_path" in errors[0]
    assert not (tmp_path / "run").exists()  # found before anything is written


def test_train_command_writes_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--method",
            "simclr",
            "--aug",
            "weak",
            "--epochs",
            "1",
            "--batch-size",
            "128",
            "--set",
            "method_args.proj_hidden_dim=128",
            "--set",
            "progress=false",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    run_dir = tmp_path / "results" / "runs" / result["run_id"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    assert (run_dir / "result.json").is_file() and (run_dir / "checkpoint.pt").is_file()


def test_config_file_flags_and_set_layer_in_order(tmp_path, capsys):
    from benchmark.cli import build_parser, config_from_args

    path = tmp_path / "run.yaml"
    path.write_text("method: byol\nepochs: 9\nseed: 5\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--epochs", "3", "--set", "seed=7"])
    config = config_from_args(args)
    assert (config.method, config.epochs, config.seed) == ("byol", 3, 7)


@pytest.mark.compile
def test_perf_quick_measures_side_by_side(tmp_path, capsys):
    out = tmp_path / "perf.json"
    code = main(
        [
            "perf",
            "--quick",
            "--device",
            "cpu",
            "--dataset",
            "synthetic",
            "--image-size",
            "32",
            "--backbone",
            "small",
            "--batch-size",
            "64",
            "--workers",
            "1",
            "--out",
            str(out),
            "--set",
            "method_args.proj_hidden_dim=128",
            "--set",
            "compile=true",
            "--data-dir",
            str(tmp_path / "data"),
            "--knn-images",
            "3000",
            "--approx-images",
            "5000",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    figures = report["figures_images_per_s"]
    assert set(figures) == {"ceiling", "pipeline", "data_pipeline", "sampler", "dataloader", "dataloader_train"}
    assert 0 < report["ratios"]["sampler_share"] < 1 and report["setup"]["prior"] == "pixel"
    assert all(v > 0 for v in figures.values())
    assert report["ratios"]["data_pipeline_vs_dataloader"] == pytest.approx(
        figures["data_pipeline"] / figures["dataloader"]
    )
    knn = report["knn"]
    assert knn["exact_3000x512_seconds"] > 0 and knn["exact_method"] == "exact-faiss"
    assert knn["ivf_method"] == "ivf" and knn["ivf_5000x512_seconds"] > 0 and 0.9 <= knn["ivf_5000x512_recall"] <= 1
    registry = report["registry"]
    assert registry["cells"] == 10_000 and all(
        registry[k] > 0 for k in ("plan_seconds", "states_seconds", "table_seconds")
    )
    assert {"torch", "faiss", "pandas"} <= set(report["versions"])
    shares = report["pipeline_profile_shares"]["host"]  # and "device" on a GPU
    assert sum(shares.values()) == pytest.approx(1.0) and shares["model.backward"] > 0 and shares["gps.augment"] > 0
    assert "aten::" in (tmp_path / "perf-profile.txt").read_text()  # the operator table beside the report
    assert report["pipeline_host_syncs"] == {}  # the host never waits for the device inside a step
    # torch.compile: every measure (model step, pipeline, DataLoader-fed) ran one graph, no recompile
    assert (report["setup"]["compiled_graphs"], report["setup"]["graph_breaks"]) == (1, 0)
    printed = capsys.readouterr().out
    assert "pipeline_vs_ceiling" in printed and "registry 10,000 cells/runs" in printed
    assert "host syncs per pipeline step: none" in printed


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--knn-images", "5"], "--knn-images 5"),
        (["--approx-images", "3"], "--approx-images 3"),
        (["--workers", "-1"], "--workers -1"),
    ],
)
def test_perf_rejects_bad_sizes_before_measuring(flags, named, capsys):
    assert main(["perf", "--dataset", "digits", "--out", "/nonexistent/perf.json", *flags]) == 2
    assert named in capsys.readouterr().err


def test_prior_command_builds_then_reuses_its_caches(tmp_path, capsys):
    argv = ["prior", "--dataset", "digits", "--prior", "pixel", "--k", "5", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    first = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert main(argv) == 0
    second = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert (first["embedding_cached"], first["table_cached"]) == ("False", "False")
    assert (second["embedding_cached"], second["table_cached"]) == ("True", "True")
    assert first["prior_nn_agreement"] == second["prior_nn_agreement"] and float(first["prior_nn_agreement"]) > 0.9
    assert main(["prior", "--dataset", "digits", "--data-dir", str(tmp_path)]) == 2
    assert "plain SSL" in capsys.readouterr().err


def test_batch_larger_than_the_data_and_diverging_runs_are_one_line(tmp_path, capsys):
    code = main(["train", "--dataset", "digits", "--batch-size", "5000", "--epochs", "1", "--out", str(tmp_path / "a")])
    assert code == 2 and "batch_size 5000 exceeds the 1437 training images" in capsys.readouterr().err
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--lr",
            "1e30",
            "--set",
            "optimizer=sgd",
            "--set",
            "method_args.proj_hidden_dim=64",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gpsbench:")]
    assert code == 1 and lines == [lines[0]] and "diverged" in lines[0]


def test_a_finished_run_is_kept_and_restart_trains_it_again(tmp_path, capsys):
    argv = [
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--out",
        str(tmp_path / "run"),
        "--set",
        "method_args.proj_hidden_dim=64",
        "--set",
        "progress=false",
    ]
    assert main(argv) == 0
    result = tmp_path / "run" / "result.json"
    first = (result.read_bytes(), result.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(argv) == 0  # the same command again: the finished run is printed, not trained again
    assert "already done" in capsys.readouterr().err and (result.read_bytes(), result.stat().st_mtime_ns) == first
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert main(argv + ["--restart"]) == 0  # the way out of a damaged checkpoint the error offers
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "done" and status["attempt"] == 2 and result.stat().st_mtime_ns != first[1]
