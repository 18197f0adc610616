"""A data set given by path is identified by its content: it enters the run_id and keys the decoded
cache. Two folders of one name and date with different images are two data sets; images replaced in
place (size and date kept) are new data; one content at two paths is one data set."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
from PIL import Image

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.data.identity import _fingerprint


def bmp(colour: int) -> bytes:
    """An uncompressed image: its size depends on its shape only."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(buffer, format="BMP")
    return buffer.getvalue()


def tree(root, shade: int):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(6):
                (root / split / cls / f"{i}.bmp").write_bytes(bmp(shade + 20 * i + (cls == "b") * 7))
    return root


def same_dates(*roots) -> None:
    for root in roots:
        for path in [root, *root.rglob("*")]:
            os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


def config(path) -> RunConfig:
    return RunConfig.from_dict({"dataset": "imagefolder", "data_path": str(path)})


def test_two_folders_of_one_name_and_date_are_two_data_sets(tmp_path):
    first, second = tree(tmp_path / "x" / "data", 0), tree(tmp_path / "y" / "data", 100)
    same_dates(first, second)
    assert config(first).run_id != config(second).run_id
    one = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=first)
    two = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=second)
    assert not np.array_equal(one.test.images, two.test.images)
    assert len(list((tmp_path / "cache" / "cache").iterdir())) == 2


def test_images_replaced_in_place_are_new_data(tmp_path):
    root = tree(tmp_path / "data", 0)
    same_dates(root)
    before = config(root).run_id
    old = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=root)
    image = root / "test" / "a" / "0.bmp"
    size = image.stat().st_size
    image.write_bytes(bmp(250))
    assert image.stat().st_size == size  # the same size and (below) date: only the content tells
    same_dates(root)
    _fingerprint.cache_clear()  # a new command: nothing remembered from this process
    assert config(root).run_id != before
    new = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=root)
    assert not np.array_equal(old.test.images, new.test.images) and new.test.images[0].min() == 250


def test_one_content_at_two_paths_is_one_data_set(tmp_path):
    root = tree(tmp_path / "data", 0)
    shutil.copytree(root, tmp_path / "elsewhere" / "copy")
    archive = shutil.make_archive(str(tmp_path / "data"), "gztar", root_dir=tmp_path, base_dir="data")
    assert config(root).run_id == config(tmp_path / "elsewhere" / "copy").run_id
    assert config(archive).run_id != config(root).run_id  # an archive is its bytes
    assert RunConfig.from_dict({"dataset": "digits"}).run_id == RunConfig.from_dict({"dataset": "digits"}).run_id


def test_train_folders_that_link_to_different_images_are_two_data_sets(tmp_path):
    """The loader follows links, so the fingerprint does: two trees whose train/ link to different
    images (their test/ equal) are two runs and two decode caches, not one run done twice."""
    images_a, images_b = tree(tmp_path / "images_a", 0), tree(tmp_path / "images_b", 100)
    roots = []
    for name, images in (("a", images_a), ("b", images_b)):
        root = tmp_path / name
        shutil.copytree(images_a / "test", root / "test")
        (root / "train").symlink_to(images / "train")
        roots.append(root)
    assert config(roots[0]).run_id != config(roots[1]).run_id
    one = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=roots[0])
    two = load_dataset("imagefolder", data_dir=tmp_path / "cache", data_path=roots[1])
    assert not np.array_equal(one.pretrain.images, two.pretrain.images)
    assert len(list((tmp_path / "cache" / "cache").iterdir())) == 2


def test_a_linked_folder_counts_as_its_images_and_a_loop_ends(tmp_path):
    real = tree(tmp_path / "real", 0)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "test").symlink_to(real / "test")
    (linked / "train").symlink_to(real / "train")
    (real / "train" / "a" / "loop").symlink_to(real)  # a link back up the tree is walked once
    assert config(linked).run_id == config(tmp_path / "real").run_id
