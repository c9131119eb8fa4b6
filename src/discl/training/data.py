"""Images for the loop: per-item augmentation seeds, the global batch order of DDP, sharded prediction.

Determinism is the point of this module. An item's augmentation is seeded by ``(stage seed, position)``
instead of the worker RNG, so the batches do not depend on the number of workers or processes and are the same
after a resume; the global batch ``b`` of a stage is rows ``[b·G, (b+1)·G)`` of one seeded permutation and each
rank takes its slice, so N processes train on exactly the batches of one process; prediction is sharded
over the ranks and gathered back in row order. Tables: the canonical training table of a file, or of the
dataset's real training images when there is none.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler

from discl import distributed as D
from discl.bulk import gc_paused
from discl.data.training_tables import TABLE_COLUMNS
from discl.datasets.base import render
from discl.errors import InputError
from discl.guidance import REAL, REAL_SEED, REAL_STRENGTH
from discl.imageio import at_least_side, decode
from discl.seeding import stable_seed
from discl.tablecache import file_digest

ROW = "table_row"  # the loop's extra column: a row's 1-based data row in its table file (named by errors)


class UnreadableImage(InputError):
    """An image that cannot be decoded, named by its table row when it has one.

    A DataLoader worker's exception comes back rebuilt from one argument, the worker's traceback text; the one-line
    message is its last line, so the error still reads as one line in the main process.
    """

    def __init__(self, file, message: str | None = None, row: int | None = None, column: str | None = None):
        if message is None:  # rebuilt by torch from "Caught UnreadableImage in DataLoader worker …" + traceback
            lines = [line for line in str(file).splitlines() if line.strip()]
            last = lines[-1] if lines else ""
            marker = f"{type(self).__name__}: "
            file, message = None, last[last.index(marker) + len(marker):] if marker in last else last
        super().__init__(file, message, row, column)


class ImageSource:
    """Where the items of a ``TableImages`` come from: the table file and each item's data row (for errors)."""

    def __init__(self, table: str | os.PathLike | None, rows: Sequence[int] | None = None):
        self.table = table
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def error(self, index: int, path: str, err: Exception) -> UnreadableImage:
        """The error of item ``index`` whose image ``path`` did not decode."""
        reason = f"{type(err).__name__}: {err}"
        if self.table is None or self.rows is None:  # a dataset's own image: named by its path
            return UnreadableImage(path, f"cannot read image ({reason})")
        return UnreadableImage(self.table, f"cannot read image {path} ({reason})", int(self.rows[index]), "filepath")

    def take(self, indices: Sequence[int]) -> "ImageSource":
        """The source of a subset of the items."""
        return ImageSource(self.table, None if self.rows is None else self.rows[np.asarray(indices, dtype=np.int64)])


class Lookup:
    """Per-row targets stored once per distinct value: row ``i`` is ``values[index[i]]`` (e.g. caption tokens)."""

    def __init__(self, values: torch.Tensor, index: np.ndarray):
        self.values = values
        self.index = np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, row: int) -> torch.Tensor:
        return self.values[self.index[row]]


class TableImages(torch.utils.data.Dataset):
    """``(pixels, target, position)`` per image; with ``seed``, item ``i``'s augmentation is seeded by ``(seed, i)``.

    With ``draft_size``, JPEGs are decoded at the largest power-of-two reduction that is still at least
    ``draft_size`` on both sides (PIL's draft mode): the transform resizes to the model's input anyway, and
    full-size decodes would make the loader, not the GPU, the bottleneck.
    """

    def __init__(self, paths: Sequence[str], targets: torch.Tensor | Lookup, transform: Callable,
                 seed: int | None = None, draft_size: int | None = None, source: ImageSource | None = None):
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths for {len(targets)} targets")
        self.paths = list(paths)
        self.targets = targets
        self.transform = transform
        self.seed = seed
        self.draft_size = draft_size
        self.source = source or ImageSource(None)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        """The RGB image of item ``index`` (draft-decoded when asked: ``discl.imageio``); one that does not decode
        is an ``UnreadableImage`` naming its table row (checking 900k images up front would take too long)."""
        try:
            return decode(self.paths[index], at_least_side(self.draft_size))
        except OSError as err:  # discl.imageio.ImageDecodeError, or the file-system's error
            raise self.source.error(index, self.paths[index], err) from None

    def __getitem__(self, index: int):
        image = self.load(index)
        if self.seed is None:
            return self.transform(image), self.targets[index], index
        # torchvision's random transforms draw from torch's global generator: seeding it per item makes the
        # augmentation independent of the process, worker and batch the item lands in
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed("discl-item", self.seed, index))
            return self.transform(image), self.targets[index], index


PERMUTATION_BUCKET = 1 << 15  # rows per bucket of ``shuffled_rows``: 256 KB of int64, inside a core's L2 cache


def shuffled_rows(n: int, rng: np.random.Generator, bucket: int = PERMUTATION_BUCKET) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` whose cost grows linearly with ``n``.

    A plain Fisher–Yates shuffle jumps across the whole array, and once it outgrows the CPU cache each swap is a
    cache miss (at ~617k rows it costs ~15× what 100k does, not 6×). Instead each row draws one of
    ``ceil(n / bucket)`` buckets, a counting sort gathers the buckets, and each bucket is shuffled on its own
    inside the cache (Rao–Sandelius: random buckets + a uniform order within each give a uniform permutation).
    """
    buckets = -(-n // bucket)
    if buckets <= 1:
        return rng.permutation(n)
    keys = rng.integers(0, buckets, n, dtype=np.uint16 if buckets < 2 ** 16 else np.int64)
    order = np.argsort(keys, kind="stable")  # a radix sort for 16-bit keys: linear
    start = 0
    for end in np.cumsum(np.bincount(keys, minlength=buckets)).tolist():
        rng.shuffle(order[start:end])
        start = end
    return order


class GlobalBatchSampler(Sampler):
    """Batches of a seeded permutation; batch ``b`` is rows ``[b·G, (b+1)·G)`` and each rank takes its slice.

    ``G`` is the global batch. A pass has ``max(1, n // G)`` batches (the last partial batch is dropped, a set
    smaller than one batch is cycled to fill it); ``start`` skips batches already trained before a resume,
    without loading them.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        if n < 1:
            raise ValueError("a stage needs at least one row")
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        self.num_batches = max(1, n // global_batch)

    def _order(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        need = self.num_batches * self.global_batch
        parts, total = [], 0
        while total < need:  # one permutation, or several back to back for a set smaller than one batch
            parts.append(shuffled_rows(self.n, rng))
            total += self.n
        return (parts[0] if len(parts) == 1 else np.concatenate(parts))[:need]

    def __iter__(self):
        order = self._order()
        share = self.global_batch // self.world_size
        for batch in range(self.start, self.num_batches):
            first = batch * self.global_batch + self.rank * share
            yield order[first:first + share].tolist()

    def __len__(self) -> int:
        return self.num_batches - self.start


def make_loader(dataset, batch_sampler: Sampler | None = None, batch_size: int | None = None, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with a batch sampler (training) or a fixed batch size in order (evaluation)."""
    # Workers decode and augment ahead of the GPU; pinned memory lets the host→device copy overlap compute.
    extra = {"prefetch_factor": 4} if workers > 0 else {}
    if batch_sampler is not None:
        extra["batch_sampler"] = batch_sampler
    else:
        extra["batch_size"] = batch_size
    return DataLoader(dataset, num_workers=workers, pin_memory=pin_memory, **extra)


@torch.no_grad()
def predict(logits_fn: Callable[[torch.Tensor], torch.Tensor], paths: Sequence[str], labels: Sequence[int],
            transform: Callable, info: D.DistInfo, batch_size: int, workers: int = 0,
            draft_size: int | None = None, source: ImageSource | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and softmax probability of the true class of every image, all ranks' shares gathered.

    Rank ``r`` predicts rows ``r, r + W, …``; ``logits_fn`` must run the bare model (ranks hold different
    numbers of batches, and a DDP forward would wait for the others).
    """
    mine = D.shard_indices(list(range(len(paths))), info.rank, info.world_size)
    targets = torch.as_tensor(np.asarray(labels, dtype=np.int64)[mine] if len(mine) else [], dtype=torch.int64)
    source = (source or ImageSource(None)).take(mine)
    dataset = TableImages([paths[i] for i in mine], targets, transform, draft_size=draft_size, source=source)
    loader = make_loader(dataset, batch_size=batch_size, workers=workers,
                         pin_memory=info.device.startswith("cuda"))
    predictions, true_probs = [], []
    for images, targets, _ in loader:
        images = images.to(info.device, non_blocking=True)
        targets = targets.to(info.device, non_blocking=True)
        probs = logits_fn(images).float().softmax(dim=-1)
        predictions.append(probs.argmax(dim=-1).cpu())
        true_probs.append(probs.gather(1, targets.view(-1, 1)).squeeze(1).double().cpu())
    local = (mine, torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64),
             torch.cat(true_probs).numpy() if true_probs else np.zeros(0, np.float64))
    pred_all, prob_all = np.zeros(len(paths), np.int64), np.zeros(len(paths), np.float64)
    for indices, pred, prob in D.all_gather_objects(local):
        pred_all[indices] = pred
        prob_all[indices] = prob
    return pred_all, prob_all


# ------------------------------------------------------------------------------------------------ tables ----
def real_table(dataset) -> pd.DataFrame:
    """The dataset's real training images as a canonical table: one row per caption template, img_id < 0."""
    images = dataset.training_images()
    names = dataset.text_names()
    templates = list(dataset.caption_templates())
    rows = {column: [] for column in TABLE_COLUMNS}
    for number, (path, label) in enumerate(zip(images.paths, images.labels), start=1):
        for template in templates:
            rows["title"].append(render(template, names[label]))
            rows["filepath"].append(str(path))
            rows["label"].append(int(label))
            rows["img_id"].append(-number)
    count = len(rows["title"])
    rows.update(strength=[REAL_STRENGTH] * count, guidance=[REAL] * count, seed=[REAL_SEED] * count)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@gc_paused
def read_table(path: str | os.PathLike, real_root: str | os.PathLike | None = None,
               synthetic_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """A training or curriculum-validation table with the canonical columns (``read_training_table``; a ``.txt``
    list has its real rows under ``real_root``, its synthetic rows under ``synthetic_root``)."""
    from discl.data.training_tables import read_training_table

    return read_training_table(path, real_root=real_root, synthetic_root=synthetic_root)


def check_labels(table: pd.DataFrame, num_classes: int, path) -> None:
    """Labels must index the dataset's classes (``InputError`` on the first bad row)."""
    labels = table["label"].to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise InputError(path, f"label {int(labels[bad[0]])} outside the class range 0..{num_classes - 1}",
                         row=int(bad[0]) + 1, column="label")


def check_files(table: pd.DataFrame, path) -> None:
    """Every image of a table exists (``InputError`` on the first missing one): fail before training, not in it."""
    from discl.filescan import existing

    filepaths = table["filepath"].to_numpy(dtype=object)
    codes, unique = pd.factorize(filepaths)  # hashed: a table of the real volume has ~900k rows
    first_rows = np.empty(len(unique), dtype=np.int64)
    first_rows[codes[::-1]] = np.arange(len(codes))[::-1]  # the last write per file is its first row
    missing = first_rows[~existing([str(path) for path in unique])]
    if missing.size:
        row = int(missing.min())
        raise InputError(path, f"image {filepaths[row]} not found", row=row + 1, column="filepath")


DUPLICATE_KEY = ["title", "filepath", "label", "guidance", "seed"]  # one training pair (img_id: a list's numbering)


def check_duplicates(table: pd.DataFrame, path) -> None:
    """A row listed twice would weigh twice for FLYP and once for CE: an ``InputError`` naming the repeated row and
    its first occurrence (both trainers refuse it alike)."""
    repeated = table.duplicated(subset=DUPLICATE_KEY, keep="first").to_numpy()
    if repeated.any():
        row = int(np.argmax(repeated))
        same = (table[DUPLICATE_KEY] == table[DUPLICATE_KEY].iloc[row]).all(axis=1).to_numpy()
        raise InputError(path, f"repeats row {int(np.argmax(same)) + 1} (same {', '.join(DUPLICATE_KEY)}): a row "
                               "listed twice would weigh twice; remove it", row=row + 1)


def numbered(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its 1-based data rows in the column ``ROW`` (they follow the rows through the loop)."""
    return table.assign(**{ROW: np.arange(1, len(table) + 1, dtype=np.int64)})


def fingerprint(path: str | os.PathLike | None) -> str | None:
    """SHA-256 of a table file's bytes (a resume refuses a table whose contents changed); ``None`` for no file."""
    return None if path is None else file_digest(path)
