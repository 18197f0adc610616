import pickle
import tarfile

import numpy as np
import pytest

from benchmark.data import DATASETS, DataMissingError, load_dataset
from benchmark.data.base import DataSource, Split, carve_validation, class_balanced_subset
from benchmark.data.imagefolder import read_imagefolder


def test_registry_names_every_dataset_of_the_suite():
    assert set(DATASETS.names()) >= {
        "digits",
        "cifar10",
        "cifar100",
        "stl10",
        "fgvc_aircraft",
        "pathmnist",
        "tissuemnist",
        "imagefolder",
        "synthetic",
    }


def test_digits_splits(tmp_path):
    data = load_dataset("digits", data_dir=tmp_path)
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (8, 8, 3)
    assert (len(data.train), len(data.val), len(data.test)) == (1293, 144, 360)
    assert data.num_classes == 10 and data.image_size == 8
    assert data.train.images.max() == 255
    again = load_dataset("digits", data_dir=tmp_path)
    np.testing.assert_array_equal(again.val.images, data.val.images)  # fixed-seed validation split
    assert np.bincount(data.val.labels).min() >= 14  # stratified


def test_validation_is_carved_from_train_and_capped():
    labels = np.repeat(np.arange(4), 250)
    split = Split(np.random.default_rng(0).integers(0, 256, (1000, 2, 2, 3), dtype=np.uint8), labels)
    train, val = carve_validation(split, 0.1, 5000)
    assert (len(train), len(val)) == (900, 100)
    assert np.bincount(val.labels).tolist() == [25, 25, 25, 25]
    train_rows = {row.tobytes() for row in train.images}
    assert not any(row.tobytes() in train_rows for row in val.images)
    assert len(carve_validation(split, 0.5, 30)[1]) == 30


def test_class_balanced_subset():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    picked = class_balanced_subset(labels, 31, seed=0)
    assert len(set(picked)) == 31
    assert np.bincount(labels[picked]).tolist() == [13, 13, 5]  # the small class is exhausted, then round-robin


def test_subset_then_validation(tmp_path):
    data = load_dataset("digits", data_dir=tmp_path, subset=500)
    assert len(data.train) + len(data.val) == 500 and len(data.val) == 50
    counts = np.bincount(np.concatenate([data.train.labels, data.val.labels]))
    assert counts.max() - counts.min() <= 1


def test_resize_on_load(tmp_path):
    data = load_dataset("digits", data_dir=tmp_path, image_size=16)
    assert data.train.images.shape[1:] == (16, 16, 3) and data.test.images.shape[1:] == (16, 16, 3)


@pytest.mark.real_data
def test_imagefolder_archive_is_decoded_once_and_cached(small_cifar_archive, tmp_path):
    data = load_dataset("imagefolder", data_dir=tmp_path, data_path=small_cifar_archive)
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert len(data.train) + len(data.val) == 200 and len(data.test) == 50
    assert data.train.images.shape[1:] == (32, 32, 3)
    caches = list((tmp_path / "cache").glob("*/meta.json"))
    assert len(caches) == 1
    again = load_dataset("imagefolder", data_dir=tmp_path, data_path=small_cifar_archive)
    np.testing.assert_array_equal(again.test.images, data.test.images)


@pytest.mark.real_data
def test_imagefolder_directory_equals_archive(small_cifar_archive, tmp_path):
    with tarfile.open(small_cifar_archive) as archive:
        archive.extractall(tmp_path / "tree", filter="data")
    from_dir = read_imagefolder(tmp_path / "tree")
    from_tar = read_imagefolder(small_cifar_archive)
    np.testing.assert_array_equal(from_dir.train.images, from_tar.train.images)
    np.testing.assert_array_equal(from_dir.test.labels, from_tar.test.labels)


@pytest.mark.real_data
def test_cifar10_reads_an_imagefolder_archive_in_the_data_dir(small_cifar_archive, tmp_path):
    (tmp_path / "cifar10-jpeg.tar.gz").symlink_to(small_cifar_archive)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert len(data.test) == 50 and data.classes[-1] == "truck"


@pytest.mark.real_data
def test_known_data_sets_use_the_references_constants_and_others_their_own(small_cifar_archive, tmp_path):
    """CIFAR-10 is normalised with solo-learn's fixed constants (solo/data/pretrain_dataloader.py), the
    same archive loaded as a custom image folder with the mean and std of its own training images."""
    from benchmark.data.base import channel_stats
    from benchmark.data.normalization import REFERENCE_NORMALIZATION

    cifar = load_dataset("cifar10", data_path=small_cifar_archive, data_dir=tmp_path)
    assert (cifar.mean, cifar.std) == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    custom = load_dataset("imagefolder", data_path=small_cifar_archive, data_dir=tmp_path)
    assert (custom.mean, custom.std) == channel_stats(custom.pretrain.images) != (cifar.mean, cifar.std)
    digits = load_dataset("digits", data_dir=tmp_path)
    assert (digits.mean, digits.std) == channel_stats(digits.pretrain.images)
    assert REFERENCE_NORMALIZATION["cifar100"].mean == (0.5071, 0.4865, 0.4409)
    assert REFERENCE_NORMALIZATION["stl10"].std == (0.247, 0.243, 0.261)
    assert REFERENCE_NORMALIZATION["fgvc_aircraft"].mean == (0.485, 0.456, 0.406)  # gps-ssl: ImageNet's


@pytest.mark.real_data
def test_cifar10_reads_torchvision_batches(small_cifar_archive, tmp_path):
    """Write real images in torchvision's pickled batch format and read them back."""
    raw = read_imagefolder(small_cifar_archive)
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    chunks = np.array_split(np.arange(len(raw.train)), 5)
    for i, index in enumerate(chunks, start=1):
        rows = raw.train.images[index].transpose(0, 3, 1, 2).reshape(len(index), -1)
        with open(batches / f"data_batch_{i}", "wb") as handle:
            pickle.dump({"data": rows, "labels": raw.train.labels[index].tolist()}, handle)
    with open(batches / "test_batch", "wb") as handle:
        pickle.dump(
            {
                "data": raw.test.images.transpose(0, 3, 1, 2).reshape(len(raw.test), -1),
                "labels": raw.test.labels.tolist(),
            },
            handle,
        )
    with open(batches / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": raw.classes}, handle)
    loader = DATASETS.get("cifar10")
    got = loader(DataSource(data_dir=tmp_path, download=False))
    np.testing.assert_array_equal(got.train.images, raw.train.images)
    np.testing.assert_array_equal(got.test.labels, raw.test.labels)
    assert got.classes == raw.classes


def test_medmnist_npz_with_official_validation(tmp_path):
    digits = load_dataset("digits", data_dir=tmp_path)
    grey = {s: getattr(digits, s).images[..., 0] for s in ("train", "val", "test")}
    np.savez(
        tmp_path / "pathmnist.npz",
        **{f"{s}_images": grey[s] for s in grey},
        **{f"{s}_labels": getattr(digits, s).labels[:, None] for s in grey},
    )
    data = load_dataset("pathmnist", data_dir=tmp_path)
    assert len(data.val) == len(digits.val) and data.train.images.shape[-1] == 3
    np.testing.assert_array_equal(data.test.labels, digits.test.labels)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("cifar10", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python.tar.gz"),
        ("stl10", "stl10_binary"),
        ("fgvc_aircraft", "fgvc-aircraft-2013b"),
        ("tissuemnist", "tissuemnist.npz"),
        ("imagefolder", "data_path"),
    ],
)
def test_missing_data_says_which_files_to_put_where(name, needle, tmp_path):
    with pytest.raises(DataMissingError) as err:
        DATASETS.get(name)(DataSource(data_dir=tmp_path, download=False))
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.real_data
def test_full_cifar10_archive(cifar_path, cifar_data_dir):
    data = load_dataset("cifar10", data_dir=cifar_data_dir, data_path=cifar_path, subset=5000)
    assert (len(data.train), len(data.val), len(data.test)) == (4500, 500, 10000)
    assert np.bincount(data.train.labels).tolist() == [450] * 10
    assert data.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert 0.45 < data.mean[0] < 0.52


def test_a_single_class_data_set_is_warned_about(tmp_path, capsys):
    from tests.datasets.test_identity import bmp

    for split in ("train", "test"):
        (tmp_path / "one" / split / "only").mkdir(parents=True)
        for i in range(20):
            (tmp_path / "one" / split / "only" / f"{i}.bmp").write_bytes(bmp(10 * i))
    load_dataset("imagefolder", data_dir=tmp_path, data_path=tmp_path / "one")
    assert "holds a single class" in capsys.readouterr().err
