"""JPEG draft decoding (discl.imageio): exact without draft, bounded and at the right size with it, and used by
the training loader, the scorer and the generator."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from discl.fileio import atomic_save_image
from discl.imageio import decode, load_rgb


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """1920×1080 JPEGs tiled from native-resolution crops of the shipped photos, a PNG, a greyscale JPEG and one
    whose size is no multiple of 8."""
    folder = tmp_path_factory.mktemp("frames")
    photo = load_sample_images().images[0]  # 427×640
    tiles = np.concatenate([np.concatenate([photo[:360, :640]] * 3, axis=1)] * 3, axis=0)  # 1080×1920
    paths = {}
    for name, image in (("frame.jpg", Image.fromarray(tiles)), ("frame.png", Image.fromarray(tiles[:270, :480])),
                        ("grey.jpg", Image.fromarray(tiles).convert("L")),
                        ("odd.jpg", Image.fromarray(tiles[:1001, :1799]))):
        atomic_save_image(image, folder / name, quality=90)
        paths[name] = folder / name
    return paths


def _reference(path, size):
    return Image.open(path).convert("RGB").resize(size)


@pytest.mark.parametrize("name", ["frame.jpg", "frame.png", "grey.jpg", "odd.jpg"])
def test_without_draft_it_is_the_references_decode_and_resize(frames, name):
    for size in ((480, 270), (100, 77)):
        ours = load_rgb(frames[name], size)
        assert ours.mode == "RGB" and np.array_equal(np.asarray(ours), np.asarray(_reference(frames[name], size)))
    assert np.array_equal(np.asarray(load_rgb(frames[name])), np.asarray(Image.open(frames[name]).convert("RGB")))


@pytest.mark.parametrize("name, size, bound", [("frame.jpg", (480, 270), 2.5), ("odd.jpg", (480, 270), 2.5),
                                               ("grey.jpg", (240, 135), 2.5), ("frame.jpg", (300, 300), 2.5)])
def test_draft_decodes_at_the_size_asked_and_stays_close(frames, name, size, bound):
    ours = load_rgb(frames[name], size, draft=True)
    assert ours.size == size and ours.mode == "RGB"
    difference = np.abs(np.asarray(ours, np.int16) - np.asarray(_reference(frames[name], size), np.int16))
    # libjpeg's scaled inverse DCT against PIL's antialiased bicubic: a grey level or two on average, more only
    # at the sharpest edges (bench/bench_decode.py measures it on photos, docs/performance.md reports it)
    assert 0 < difference.mean() < bound and np.percentile(difference, 99) < 30


def test_draft_never_goes_below_the_size_asked(frames):
    assert decode(frames["frame.jpg"], (224, 224)).size == (480, 270)  # 1/4: 270 ≥ 224, 1/8 would give 135
    assert decode(frames["frame.jpg"], (100, 100)).size == (240, 135)  # 1/8
    assert decode(frames["frame.jpg"], (1000, 600)).size == (1920, 1080)  # no reduction keeps both sides
    assert decode(frames["frame.jpg"], None).size == (1920, 1080)
    assert decode(frames["frame.png"], (16, 16)).size == (480, 270)  # not a JPEG: decoded in full
    odd = decode(frames["odd.jpg"], (224, 224))
    assert odd.size == (450, 251) and odd.mode == "RGB"  # ⌈1799/4⌉ × ⌈1001/4⌉
    assert decode(frames["grey.jpg"], (224, 224)).mode == "RGB"


def test_the_training_loader_and_the_cropping_trainer_use_it(frames):
    import torch

    from discl.lt import CEOptions, CETask
    from discl.training.data import TableImages

    loader = TableImages([str(frames["frame.jpg"])], torch.zeros(1), lambda image: image, draft_size=224)
    assert loader.load(0).size == (480, 270)
    # the CE trainer's random crops may take 8% of the image: its draft keeps ≥ 224 px a side in such a crop
    assert CETask(CEOptions()).draft_size(None) == 792
    assert TableImages([str(frames["frame.jpg"])], torch.zeros(1), lambda image: image,
                       draft_size=792).load(0).size == (1920, 1080)


def test_the_scorer_and_the_generator_read_through_it(frames):
    from discl.clipscore import load_image
    from discl.generation.runner import load_source

    for read in (lambda path, draft: load_image(path, (480, 270), draft),
                 lambda path, draft: load_source(path, (480, 270), draft)):
        exact = read(frames["frame.jpg"], False)
        assert np.array_equal(np.asarray(exact), np.asarray(_reference(frames["frame.jpg"], (480, 270))))
        assert not np.array_equal(np.asarray(read(frames["frame.jpg"], True)), np.asarray(exact))
