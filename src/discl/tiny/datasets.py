"""Mini iWildCam (WILDS v2.0), mini ImageNet-LT and a mini ImageFolder dataset in their real on-disk layouts.

Pixels come from real photos that installed packages ship (scikit-image, scikit-learn). Each class gets a
distinct visual signature (its own photo and hue) so tiny models can learn something; each image is a random
crop / flip / brightness jitter of it, drawn from a NumPy generator seeded by ``seed`` and the image's position,
so the same call always writes the same bytes. A builder that finds a complete root of the same seed returns
it untouched; one that finds an interrupted build writes only what is missing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import uuid
from datetime import datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from discl.fileio import atomic_save_image, atomic_write_csv, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- iWildCam ----
IWILDCAM_DIRNAME = "iwildcam_v2.0"
IWILDCAM_SIZE = (64, 36)  # camera-trap frames are 16:9
# (real WILDS category_id, scientific name, photo of its signature); y = position, `empty` is y=0
MINI_IWILDCAM_CLASSES = (
    (0, "empty", None),
    (2, "tayassu pecari", "chelsea"),
    (3, "dasyprocta punctata", "coffee"),
    (6, "puma concolor", "astronaut"),
    (122, "acinonyx jubatus", "china"),
    (90, "loxodonta africana", "rocket"),
    (24, "panthera onca", "flower"),
    (111, "equus quagga", "immunohistochemistry"),
)
# images per class, in y order: long-tailed train, small balanced-ish evaluation splits
MINI_IWILDCAM_COUNTS = {
    "train": (24, 16, 10, 7, 5, 3, 2, 2),
    "id_val": (2, 2, 2, 1, 1, 1, 1, 1),
    "id_test": (2, 2, 2, 1, 1, 1, 1, 1),
    "val": (2, 2, 1, 1, 1, 1, 1, 1),
    "test": (2, 2, 2, 1, 1, 1, 1, 1),
}
# camera locations: in-distribution splits share the first four, OOD val / test get their own (WILDS' design)
MINI_IWILDCAM_LOCATIONS = {"train": (0, 1, 2, 3), "id_val": (0, 1, 2, 3), "id_test": (0, 1, 2, 3),
                           "val": (4, 5), "test": (6, 7)}
# background texture and colour cast of each location: OOD locations look different (the domain shift)
_LOCATION_LOOKS = (
    ("grass", (0.55, 0.8, 0.45)), ("grass", (0.6, 0.75, 0.5)), ("gravel", (0.65, 0.7, 0.5)),
    ("grass", (0.5, 0.7, 0.55)), ("brick", (0.8, 0.6, 0.5)), ("moon", (0.7, 0.7, 0.75)),
    ("gravel", (0.5, 0.5, 0.65)), ("camera", (0.75, 0.65, 0.55)),
)
_REAL_LOCATION_IDS = (23, 41, 57, 88, 120, 187, 245, 301)  # "location" column: sparse ids as in the release
METADATA_COLUMNS = ["split", "location_remapped", "location", "sequence_remapped", "sequence", "y",
                    "category_id", "datetime", "filename", "image_id"]

# ------------------------------------------------------------- ImageNet-LT ----
IMAGENET_LT_SIZE = (48, 48)
# training images per class: many (>= 100, one with exactly 100 — the many/medium cut edge case), medium, few
MINI_IMAGENET_LT_TRAIN_COUNTS = (120, 100, 50, 20, 19, 8, 4, 2)
MINI_IMAGENET_LT_VAL_PER_CLASS = 3  # ImageNet_LT_val.txt: drawn from ImageNet *train* (20/class in the real one)
MINI_IMAGENET_LT_TEST_PER_CLASS = 5  # ImageNet_LT_test.txt: ImageNet *val* (50/class in the real one)
_IMAGENET_LT_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "china", "flower", "immunohistochemistry",
                       "hubble_deep_field", "coins", "colorwheel")
IMAGENET_LT_LISTS = ("ImageNet_LT_train.txt", "ImageNet_LT_val.txt", "ImageNet_LT_test.txt")
# ---------------------------------------------------------------- folder (a user's own ImageFolder data) ----
MINI_FOLDER_SIZE = (48, 32)  # width, height: a 3:2 photo, sides divisible by 16 for the tiny VAE + U-Net
# (class folder, photo, hue): underscores in folder names become spaces in prompts ("tabby cat")
MINI_FOLDER_CLASSES = (("coffee_mug", "coffee", 0.0), ("tabby_cat", "chelsea", 0.0), ("astronaut", "astronaut", 0.0),
                       ("rocket", "rocket", 0.0), ("sunflower", "flower", 0.5))
MINI_FOLDER_TRAIN_COUNTS = (24, 16, 10, 6, 3)  # long-tailed: one medium class (>= 20), four few (< 20), no many
MINI_FOLDER_EVAL_PER_CLASS = 3  # images per class in val/ and in test/

BUILD_STAMP = "discl_mini.json"  # {"seed": ..., "complete": ...}: lets a rerun skip or finish a build


# Photo name -> (package, file inside it). Opened straight from the installed package folder: importing
# scikit-learn / scikit-image just to read a few pictures would cost seconds.
_PHOTO_FILES = {
    "china": ("sklearn", "datasets/images/china.jpg"), "flower": ("sklearn", "datasets/images/flower.jpg"),
    "astronaut": ("skimage", "data/astronaut.png"), "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"), "rocket": ("skimage", "data/rocket.jpg"),
    "immunohistochemistry": ("skimage", "data/ihc.png"), "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "coins": ("skimage", "data/coins.png"), "colorwheel": ("skimage", "data/color.png"),
    "grass": ("skimage", "data/grass.png"), "gravel": ("skimage", "data/gravel.png"),
    "brick": ("skimage", "data/brick.png"), "moon": ("skimage", "data/moon.png"),
    "camera": ("skimage", "data/camera.png"),
}


@lru_cache(maxsize=None)
def _photo(name: str) -> Image.Image:
    """A shipped photo as RGB, downscaled to 192 px wide so crops are cheap."""
    package, relative = _PHOTO_FILES[name]
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the mini datasets need the photos shipped with {package}; install it")
    with Image.open(Path(spec.submodule_search_locations[0]) / relative) as image:
        image = image.convert("RGB")
    width = 192
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)


def _shift_hue(image: Image.Image, hue: float) -> Image.Image:
    """Rotate the hue by ``hue`` turns (0..1)."""
    if hue == 0.0:
        return image
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda value: (value + int(round(hue * 255))) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _random_view(photo: Image.Image, size: tuple[int, int], rng: np.random.Generator,
                 min_scale: float = 0.5) -> Image.Image:
    """A random crop of ``photo`` with the aspect of ``size``, resized, maybe flipped, brightness-jittered."""
    aspect = size[0] / size[1]
    scale = rng.uniform(min_scale, 0.95)
    crop_w = min(photo.width, int(photo.width * scale))
    crop_h = min(photo.height, int(crop_w / aspect))
    crop_w = int(crop_h * aspect)
    left = int(rng.integers(0, photo.width - crop_w + 1))
    top = int(rng.integers(0, photo.height - crop_h + 1))
    view = photo.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.BILINEAR)
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    gain = rng.uniform(0.85, 1.15)
    pixels = np.clip(np.asarray(view, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _tinted(image: Image.Image, cast: tuple[float, float, float]) -> Image.Image:
    """Multiply each channel by ``cast`` (a location's colour cast) after a grey-to-RGB conversion."""
    # casts are < 1 per channel; the 1.3 gain keeps the frame about as bright as the source texture
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) * np.asarray(cast, dtype=np.float32) * 1.3
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _camera_trap_frame(species_photo: str | None, location: int, rng: np.random.Generator) -> Image.Image:
    """A location background with, unless empty, the species' signature patch pasted at a random place."""
    texture, cast = _LOCATION_LOOKS[location]
    frame = _tinted(_random_view(_photo(texture), IWILDCAM_SIZE, rng), cast)
    if species_photo is not None:
        patch_size = (int(rng.integers(26, 36)), int(rng.integers(18, 26)))
        patch = _random_view(_photo(species_photo), patch_size, rng, min_scale=0.6)
        left = int(rng.integers(0, IWILDCAM_SIZE[0] - patch_size[0] + 1))
        top = int(rng.integers(0, IWILDCAM_SIZE[1] - patch_size[1] + 1))
        frame.paste(patch, (left, top))
    return frame


def _read_stamp(folder: Path) -> dict:
    try:
        return json.loads((folder / BUILD_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_images(folder: Path, seed: int, images: Sequence[tuple[str, Callable[[], Image.Image]]]) -> bool:
    """Write the images ``(relative path, make)`` under ``folder``; return False if it was already complete.

    A stamp records the seed before the first image is written, so an interrupted build of the same seed only
    writes what is missing; another seed rewrites every image.
    """
    stamp = _read_stamp(folder)
    same_seed = stamp.get("seed") == seed
    missing = [(path, make) for path, make in images if not (same_seed and (folder / path).is_file())]
    if same_seed and stamp.get("complete") and not missing:
        return False
    atomic_write_json(folder / BUILD_STAMP, {"seed": seed, "complete": False})
    for path, make in tqdm(missing, desc=f"mini dataset {folder.name}", leave=False, disable=len(missing) < 200):
        atomic_save_image(make(), folder / path, quality=90)
    return True


def _finish(folder: Path, seed: int) -> None:
    atomic_write_json(folder / BUILD_STAMP, {"seed": seed, "complete": True})


def mini_iwildcam_metadata(seed: int = 0) -> pd.DataFrame:
    """The ``metadata.csv`` rows of the mini iWildCam (pure: no files touched)."""
    rng = np.random.default_rng([seed, 7])
    uuid_rng = np.random.default_rng([seed, 11])
    rows = []
    start = datetime(2013, 6, 1, 6, 0, 0)
    for split, counts in MINI_IWILDCAM_COUNTS.items():
        locations = MINI_IWILDCAM_LOCATIONS[split]
        for y, count in enumerate(counts):
            category_id = MINI_IWILDCAM_CLASSES[y][0]
            for index in range(count):
                # real camera traps fire bursts: consecutive images of one class at one place share a sequence
                location = locations[(y + index // 3) % len(locations)]
                sequence_key = (split, y, index // 3)
                if index % 3 == 0:
                    burst_start = start + timedelta(days=int(rng.integers(0, 700)),
                                                    seconds=int(rng.integers(0, 86400)))
                stamp = burst_start + timedelta(seconds=index % 3)
                image_id = str(uuid.UUID(bytes=uuid_rng.bytes(16), version=4))
                rows.append({"split": split, "location_remapped": location,
                             "location": _REAL_LOCATION_IDS[location], "sequence_key": sequence_key,
                             "y": y, "category_id": category_id,
                             "datetime": stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                             "filename": f"{image_id}.jpg", "image_id": image_id})
    frame = pd.DataFrame(rows)
    keys = list(dict.fromkeys(frame["sequence_key"]))
    frame["sequence_remapped"] = frame["sequence_key"].map({key: i for i, key in enumerate(keys)})
    sequence_ids = {key: str(uuid.UUID(bytes=uuid_rng.bytes(16), version=4)) for key in keys}
    frame["sequence"] = frame["sequence_key"].map(sequence_ids)
    return frame[METADATA_COLUMNS]


def mini_iwildcam_categories() -> pd.DataFrame:
    """``categories.csv`` as in the release: ``y, category_id, name``; categories absent from the data get y 99999."""
    rows = [{"y": y, "category_id": cid, "name": name} for y, (cid, name, _) in enumerate(MINI_IWILDCAM_CLASSES)]
    # the release lists categories that have no images with y = 99999; keep one so readers handle it
    rows.append({"y": 99999, "category_id": 243, "name": "didelphis sp"})
    return pd.DataFrame(rows, columns=["y", "category_id", "name"])


def make_mini_iwildcam(root: str | Path, seed: int = 0) -> Path:
    """Write a mini WILDS iWildCam v2.0 under ``root/iwildcam_v2.0``; return ``root`` (the WILDS root dir)."""
    root = Path(root)
    data_dir = root / IWILDCAM_DIRNAME
    metadata = mini_iwildcam_metadata(seed)
    images = [(f"train/{row.filename}",
               partial(_camera_trap_frame, MINI_IWILDCAM_CLASSES[row.y][2], row.location_remapped,
                       np.random.default_rng([seed, 1, index])))
              for index, row in enumerate(metadata.itertuples(index=False))]
    if not _write_images(data_dir, seed, images):
        log.info("mini iWildCam already complete at %s", data_dir)
        return root
    atomic_write_csv(data_dir / "metadata.csv", metadata)
    atomic_write_csv(data_dir / "categories.csv", mini_iwildcam_categories())
    atomic_write_text(data_dir / "RELEASE_v2.0.txt",
                      "Mini iWildCam v2.0 in the WILDS layout, built by discl.tiny (test fixture).\n")
    _finish(data_dir, seed)
    log.info("mini iWildCam: %d images at %s", len(metadata), data_dir)
    return root


def _imagenet_lt_signature(label: int) -> tuple[str, float]:
    """Class ``label``'s photo and hue: photos cycle, the hue separates classes sharing a photo."""
    photo = _IMAGENET_LT_PHOTOS[label % len(_IMAGENET_LT_PHOTOS)]
    hue = ((label // len(_IMAGENET_LT_PHOTOS)) * 0.37 + label * 0.11) % 1.0
    return photo, hue


def _imagenet_lt_image(label: int, rng: np.random.Generator) -> Image.Image:
    photo, hue = _imagenet_lt_signature(label)
    return _shift_hue(_random_view(_photo(photo), IMAGENET_LT_SIZE, rng), hue)


def mini_imagenet_lt_lists(wnids: list[str], train_counts: tuple[int, ...] = MINI_IMAGENET_LT_TRAIN_COUNTS
                           ) -> dict[str, list[tuple[str, int]]]:
    """The (relative path, label) entries of the three list files (pure)."""
    lists: dict[str, list[tuple[str, int]]] = {name: [] for name in IMAGENET_LT_LISTS}
    val_number = 1
    for label, (wnid, count) in enumerate(zip(wnids, train_counts)):
        # the real val list samples from ImageNet's train folder, disjoint from the LT training images
        for n in range(count + MINI_IMAGENET_LT_VAL_PER_CLASS):
            name = "ImageNet_LT_train.txt" if n < count else "ImageNet_LT_val.txt"
            lists[name].append((f"train/{wnid}/{wnid}_{1000 + 7 * n}.JPEG", label))
        for _ in range(MINI_IMAGENET_LT_TEST_PER_CLASS):
            lists["ImageNet_LT_test.txt"].append((f"val/{wnid}/ILSVRC2012_val_{val_number:08d}.JPEG", label))
            val_number += 1
    return lists


def make_mini_imagenet_lt(root: str | Path, seed: int = 0,
                          train_counts: Sequence[int] = MINI_IMAGENET_LT_TRAIN_COUNTS) -> Path:
    """Write a mini ImageNet-LT root (images + ``ImageNet_LT_{train,val,test}.txt``); return ``root``.

    Labels ``0..len(train_counts)-1`` are the first ImageNet classes, with ``train_counts`` training images each.
    """
    from discl.data.imagenet_lt import imagenet_wnids

    root = Path(root)
    num_classes = len(train_counts)
    lists = mini_imagenet_lt_lists(imagenet_wnids()[:num_classes], tuple(train_counts))
    entries = [entry for name in IMAGENET_LT_LISTS for entry in lists[name]]
    images = [(path, partial(_imagenet_lt_image, label, np.random.default_rng([seed, 2, label, index])))
              for index, (path, label) in enumerate(entries)]
    if not _write_images(root, seed, images):
        log.info("mini ImageNet-LT already complete at %s", root)
        return root
    for name in IMAGENET_LT_LISTS:
        atomic_write_text(root / name, "".join(f"{path} {label}\n" for path, label in lists[name]))
    _finish(root, seed)
    log.info("mini ImageNet-LT: %d classes, %d images at %s", num_classes, len(entries), root)
    return root



def mini_folder_entries(train_counts: Sequence[int] = MINI_FOLDER_TRAIN_COUNTS,
                        eval_per_class: int = MINI_FOLDER_EVAL_PER_CLASS) -> list[tuple[str, str, int]]:
    """The ``(split, relative path, label)`` images of the mini ImageFolder dataset (pure).

    File names are camera-style ``IMG_0001.jpg`` numbered across the whole dataset, so stems are unique.
    """
    entries = []
    number = 1
    for split in ("train", "val", "test"):
        for label, (folder, _, _) in enumerate(MINI_FOLDER_CLASSES[:len(train_counts)]):
            count = train_counts[label] if split == "train" else eval_per_class
            for _ in range(count):
                entries.append((split, f"{split}/{folder}/IMG_{number:04d}.jpg", label))
                number += 1
    return entries


def _folder_image(label: int, rng: np.random.Generator) -> Image.Image:
    _, photo, hue = MINI_FOLDER_CLASSES[label]
    return _shift_hue(_random_view(_photo(photo), MINI_FOLDER_SIZE, rng), hue)


def make_mini_folder(root: str | Path, seed: int = 0,
                     train_counts: Sequence[int] = MINI_FOLDER_TRAIN_COUNTS) -> Path:
    """Write a small long-tailed ImageFolder dataset (``train/ val/ test/<class>/IMG_*.jpg``); return ``root``."""
    root = Path(root)
    if len(train_counts) > len(MINI_FOLDER_CLASSES):
        raise ValueError(f"at most {len(MINI_FOLDER_CLASSES)} classes, got {len(train_counts)} counts")
    entries = mini_folder_entries(tuple(train_counts))
    images = [(path, partial(_folder_image, label, np.random.default_rng([seed, 3, label, index])))
              for index, (_, path, label) in enumerate(entries)]
    if not _write_images(root, seed, images):
        log.info("mini folder dataset already complete at %s", root)
        return root
    _finish(root, seed)
    log.info("mini folder dataset: %d classes, %d images at %s", len(train_counts), len(entries), root)
    return root


def write_mini_folder_csv(root: str | Path, csv_path: str | Path, integer_labels: bool = False,
                          with_split: bool = True, splits: Sequence[str] = ("train", "val", "test")) -> Path:
    """The CSV layout of an ImageFolder root: ``filepath,label[,split]``, paths relative to the CSV's folder.

    Labels are class folder names, or with ``integer_labels`` their index among the sorted folder names of
    ``train/`` (then the dataset needs ``--class-names``); only the images of ``splits`` are listed (without a
    ``split`` column every listed image is a training image).
    """
    root, csv_path = Path(root), Path(csv_path)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    rows = []
    for split in splits:
        for label, name in enumerate(classes):
            for path in sorted((root / split / name).glob("*.jpg")):
                relative = Path(os.path.relpath(path, csv_path.parent)).as_posix()
                row = {"filepath": relative, "label": label if integer_labels else name}
                if with_split:
                    row["split"] = split
                rows.append(row)
    atomic_write_csv(csv_path, pd.DataFrame(rows))
    return csv_path
