"""CLIPScore filtering (docs/filtering-and-training-data.md): batched, cached CLIP similarities of synthetic images, filtering, reference pickles.

For every synthetic image we need two cosines: against the text embedding of its prompt and against the image
embedding of its real source. The reference re-encoded the prompt and the real image for each of the 80
synthetic versions of a hard image, at batch 1; here every distinct prompt and every real image is encoded
once, images in batches, and all embeddings are cached on disk so a rerun or a newly finished shard only
encodes what is new.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import logging
import os
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from discl import runrecord
from discl.bulk import gc_paused
from discl.config import add_arguments, option, to_plain
from discl.csvwrite import write_csv
from discl.datasets.base import IMAGE_SUFFIXES, ClassInfo, Dataset
from discl.errors import InputError
from discl.fileio import atomic_write, atomic_write_bytes, atomic_write_csv, is_temp_file
from discl.filescan import existing, resolved_paths
from discl.manifest import CACHE_KIND as MANIFEST_CACHE_KIND
from discl.manifest import (COSINE_SLACK, MANIFEST_COLUMNS, read_manifest, read_manifests, sample_id, synthetic_files,
                            validate_manifest)
from discl.models import HF_CLIP_ID
from discl.progress import progress
from discl.refpickle import score_pickle_bytes
from discl.tablecache import write_table

log = logging.getLogger(__name__)

SCORES_FILE = "clip_scores.csv"
CLIP_SCORE_PICKLE = "clip_score.pkl"
FILTERED_PICKLE = "filtered_results.pkl"
EMBEDDING_PICKLE = "clip_emb.pkl"
REPORT_FILES = ("filter_report_by_class.csv", "filter_report_by_guidance.csv")
HISTOGRAM_FILE = "clip_scores_hist.png"
CACHE_DIR = "clip_cache"
SCORE_CHUNK = 65536  # rows whose embeddings are gathered at once when the cosines are computed
SCORE_COLUMNS_REQUIRED = ("clip_image_text", "clip_image_image", "keep")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[N, D]`` arrays (``[D]`` rows broadcast)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)).astype(np.float32)


def _features(output) -> "torch.Tensor":  # noqa: F821
    # transformers 5 returns an output object (projected embedding in .pooler_output); 4.x returned a tensor.
    return output if hasattr(output, "ndim") else output.pooler_output


def _normalised(features) -> np.ndarray:
    array = features.detach().float().cpu().numpy()
    return (array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def chw_pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """RGB uint8 pixels as a contiguous ``[3, H, W]`` array (arrays are assumed to be in this form already).

    The processor accepts these unchanged; handing it PIL images instead makes it permute and copy each one
    with torch, which is several times slower on a busy CPU and gives the same values.
    """
    if isinstance(image, np.ndarray):
        return image
    return np.ascontiguousarray(np.asarray(image.convert("RGB")).transpose(2, 0, 1))


class ClipEmbedder:
    """A transformers CLIP model that turns PIL images and strings into L2-normalised float32 embeddings."""

    def __init__(self, model_id: str = HF_CLIP_ID, device: str = "cpu", batch_size: int = 64):
        from discl.models import load_hf_clip

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        self.model, self.processor = load_hf_clip(model_id, device)
        # Counted so tests (and the log) can check that cached items are never re-encoded.
        self.images_encoded = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        """Embedding dimension (the projection size)."""
        return int(self.model.config.projection_dim)

    def signature(self) -> str:
        """A short hash of the model id and its projection weights: caches from other weights never match."""
        digest = hashlib.sha256(self.model_id.encode())
        for name in ("visual_projection", "text_projection"):
            weight = getattr(self.model, name).weight.detach().float().cpu().numpy()
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()[:12]

    def embed_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """``[N, D]`` normalised image embeddings of PIL images (or ``chw_pixels`` arrays), in batches."""
        import torch

        chunks = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            batch = [torch.from_numpy(chw_pixels(image)) for image in images[start:start + self.batch_size]]
            # disable_grouping=False: images of one size are resized as one stacked tensor (transformers resizes
            # them one by one on a CPU by default; the values are the same)
            pixels = self.processor(images=batch, return_tensors="pt", disable_grouping=False)["pixel_values"]
            pixels = pixels.to(self.device)
            with torch.inference_mode():
                chunks.append(_normalised(_features(self.model.get_image_features(pixel_values=pixels))))
        self.images_encoded += len(images)
        return np.concatenate(chunks)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` normalised text embeddings; prompts longer than CLIP's 77 tokens are truncated."""
        import torch

        chunks = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            tokens = self.processor.tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                              truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                chunks.append(_normalised(_features(self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]))))
        self.texts_encoded += len(texts)
        return np.concatenate(chunks)


# ---------------------------------------------------------------------------------------------------------
# The on-disk embedding cache


class EmbeddingCache:
    """Embeddings keyed by a string plus a fingerprint, stored on disk as append-only segments.

    Each ``save`` writes only the rows added since the previous one, as ``<name>-<k>.npy`` and then its index
    ``<name>-<k>.csv`` (``key, fingerprint``); for a key present in several segments the last row wins (a
    regenerated image). A run killed between the two files leaves an array without an index, which loading
    ignores: the cache stays consistent, and a full run writes every embedding once.
    """

    def __init__(self, folder: str | os.PathLike, name: str, dim: int):
        self.folder = Path(folder)
        self.name = name
        self.dim = dim
        self.rows: dict[str, int] = {}  # key -> row in the concatenation of self._blocks
        self.row_fingerprints: list[str] = []  # the fingerprint of each row (one dict of keys is enough)
        self._blocks: list[np.ndarray] = []
        self._total = 0
        self._unsaved_keys: list[tuple[str, str]] = []
        self._unsaved_blocks: list[np.ndarray] = []
        self._next_segment = 0
        self._load()

    def _load(self) -> None:
        for index_path in sorted(self.folder.glob(f"{self.name}-[0-9][0-9][0-9][0-9][0-9].csv")):
            self._next_segment = max(self._next_segment, int(index_path.stem.rsplit("-", 1)[1]) + 1)
            try:
                index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
                array = np.load(index_path.with_suffix(".npy"), allow_pickle=False)
            except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
                log.warning("ignoring unreadable cache segment %s (%s)", index_path, err)
                continue
            if list(index.columns) != ["key", "fingerprint"] or array.shape != (len(index), self.dim):
                log.warning("ignoring inconsistent cache segment %s", index_path)
                continue
            self._append(index["key"].tolist(), index["fingerprint"].tolist(), array.astype(np.float32))

    def _append(self, keys: Sequence[str], fingerprints: Sequence[str], embeddings: np.ndarray) -> None:
        self.rows.update(zip(keys, range(self._total, self._total + len(embeddings))))  # a repeated key: last wins
        self.row_fingerprints.extend(fingerprints)
        self._blocks.append(embeddings)
        self._total += len(embeddings)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def keys(self) -> list[str]:
        """Cached keys, in the order they were (last) added."""
        return sorted(self.rows, key=self.rows.__getitem__)

    def has(self, key: str, fingerprint: str = "") -> bool:
        """True when ``key`` is cached with this fingerprint."""
        row = self.rows.get(key)
        return row is not None and self.row_fingerprints[row] == fingerprint

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """``[len(keys), D]`` cached embeddings (every key must be present)."""
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        array = self._blocks[0] if self._blocks else np.zeros((0, self.dim), np.float32)
        return array[list(map(self.rows.__getitem__, keys))]

    def put(self, keys: Sequence[str], fingerprints: Sequence[str], embeddings: np.ndarray) -> None:
        """Add entries; a key already present is replaced."""
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
        self._append(keys, fingerprints, embeddings)
        self._unsaved_keys.extend(zip(keys, fingerprints))
        self._unsaved_blocks.append(embeddings)

    def save(self) -> None:
        """Write the rows added since the last save as a new segment: the array first, then its index."""
        if not self._unsaved_keys:
            return
        stem = self.folder / f"{self.name}-{self._next_segment:05d}"
        with atomic_write(stem.with_suffix(".npy"), "wb") as handle:
            np.save(handle, np.concatenate(self._unsaved_blocks), allow_pickle=False)
        write_csv(stem.with_suffix(".csv"), pd.DataFrame(self._unsaved_keys, columns=["key", "fingerprint"]))
        self._next_segment += 1
        self._unsaved_keys, self._unsaved_blocks = [], []


def file_fingerprint(path: str | os.PathLike) -> str:
    """``size-mtime_ns`` of a file: a regenerated image gets a new fingerprint and is re-encoded."""
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


# ---------------------------------------------------------------------------------------------------------
# Finding the synthetic images and their real sources

_SUBFOLDER = re.compile(r"^Strength(\d+)_guidance(\d+)_seed(\d+)$")
# generation and scoring bookkeeping, not class folders
_NOT_CLASS_FOLDERS = {"manifests", "failures", CACHE_DIR, runrecord.RECORDS_DIR}
LAYOUT = "<class>/Strength{100s}_guidance{10g}_seed{seed}/<stem>.jpg (or .JPEG, .png)"


class RealImageFinder:
    """Resolves the real source of a synthetic image under ``--image-root`` (by path, then by file stem)."""

    def __init__(self, real_root: str | os.PathLike):
        self.real_root = Path(real_root)
        self._by_stem: dict[str, Path] | None = None

    def _stem_index(self) -> dict[str, Path]:
        if self._by_stem is None:
            if not self.real_root.is_dir():
                raise InputError(self.real_root, "--image-root (--real_path) is not a folder")
            self._by_stem = {}
            for folder, _, files in os.walk(self.real_root):
                for name in files:
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        self._by_stem.setdefault(Path(name).stem, Path(folder) / name)
        return self._by_stem

    def find(self, real_path: str = "", stem: str = "") -> Path | None:
        """The real image file: ``real_path`` as given, under the root, its file name under the root, or by stem."""
        if real_path:
            for candidate in (Path(real_path), self.real_root / real_path, self.real_root / Path(real_path).name):
                if candidate.is_file():
                    return candidate
        return self._stem_index().get(stem or Path(real_path).stem)


@gc_paused
def collect_from_manifests(syn_root: str | os.PathLike, finder: RealImageFinder) -> pd.DataFrame:
    """All rows of ``<syn_root>/manifests/*.csv`` with the synthetic and real image files resolved."""
    syn_root = Path(syn_root)
    manifests = [p for p in sorted((syn_root / "manifests").glob("*.csv")) if not is_temp_file(p)]
    if not manifests:
        raise InputError(syn_root / "manifests", "no manifest CSV found")
    table = read_manifests(manifests, sources=True)  # a sample listed twice: both manifests and the row named
    synthetic_paths = table["synthetic_path"].tolist()
    errors = []  # (row index, message, column): the first row with a problem is reported, as a row-by-row read
    missing = np.flatnonzero(~existing(synthetic_paths, syn_root))
    if missing.size:
        errors.append((int(missing[0]), f"synthetic image {syn_root / synthetic_paths[missing[0]]} not found",
                       "synthetic_path"))
    # ~80 synthetic versions per real image: each real image is looked up once, with its first row's stem
    codes, real_paths = pd.factorize(table["real_path"])  # in order of first appearance
    first_rows = np.unique(codes, return_index=True)[1]
    stems = table["image_stem"].to_numpy(dtype=object)
    resolved = {}
    for real_path, row in zip(real_paths, first_rows):
        found = finder.find(real_path, stems[row])
        if found is None:
            errors.append((int(row), f"real image {real_path!r} not found under {finder.real_root}", "real_path"))
        else:
            resolved[real_path] = str(found)
    if errors:
        row, message, column = min(errors, key=lambda error: (error[0], error[2] != "synthetic_path"))
        raise InputError(table["source"].iloc[row], message, int(table["source_row"].iloc[row]), column)
    table["synthetic_file"] = synthetic_files(syn_root, table["synthetic_path"])
    table["real_file"] = table["real_path"].map(resolved)
    return table


def class_folders(syn_root: str | os.PathLike) -> list[Path]:
    """The class folders of a generation output, sorted: its folders that are not bookkeeping (manifests, run
    records, the embedding cache, failure lists) or a temp folder."""
    return sorted(p for p in Path(syn_root).iterdir()
                  if p.is_dir() and p.name not in _NOT_CLASS_FOLDERS and not is_temp_file(p))


def collect_from_layout(syn_root: str | os.PathLike, finder: RealImageFinder, dataset: Dataset | str,
                        describe_class: Callable[[str, str | os.PathLike | None], ClassInfo] | None = None
                        ) -> pd.DataFrame:
    """Walk the reference layout ``<class>/Strength…_guidance…_seed…/<stem>.jpg`` when there is no manifest.

    Each class folder is described by ``dataset.describe_class`` (label, name, scoring text); a registered name
    may stand for the dataset.
    """
    from discl.data.hard_sample_csv import as_dataset

    dataset = as_dataset(dataset)
    describe_class = describe_class or dataset.describe_class
    syn_root = Path(syn_root)
    if not syn_root.is_dir():
        raise InputError(syn_root, "--syn_path is not a folder")
    records = []
    for class_dir in class_folders(syn_root):
        info = describe_class(class_dir.name, finder.real_root)
        for sub_dir in sorted(class_dir.iterdir()):
            match = _SUBFOLDER.match(sub_dir.name)
            if not sub_dir.is_dir() or match is None:
                raise InputError(sub_dir, f"not in the layout {LAYOUT}")
            strength_pct, text_guidance_x10, seed = (int(g) for g in match.groups())
            for image in sorted(sub_dir.iterdir()):
                if image.is_dir():
                    raise InputError(image, f"unexpected folder: the layout is {LAYOUT}")
                if image.suffix.lower() not in IMAGE_SUFFIXES or is_temp_file(image):
                    continue  # the reference keeps clip_emb.pkl and concat previews next to the images
                real = finder.find(stem=image.stem)
                if real is None:
                    raise InputError(image, f"no real image with stem {image.stem!r} under {finder.real_root}")
                records.append({
                    "sample_id": sample_id(class_dir.name, sub_dir.name, image.stem), "dataset": dataset.name,
                    "class_id": info.class_id, "class_name": info.class_name, "class_folder": class_dir.name,
                    "real_path": str(real), "image_stem": image.stem, "prompt": info.text,
                    "strength": strength_pct / 100, "image_guidance": 100 - strength_pct,
                    "text_guidance": text_guidance_x10 / 10, "seed": seed,
                    "generator_seed": 0,  # unknown in the reference layout
                    "synthetic_path": image.relative_to(syn_root).as_posix(), "tries": 1,
                    "clip_image_text": "", "clip_image_image": "", "keep": "",
                    "synthetic_file": str(image), "real_file": str(real),
                    "source": str(image), "source_row": None})
    if not records:
        raise InputError(syn_root, "no synthetic images found (expected manifests/*.csv or "
                                   "<class>/Strength…_guidance…_seed…/<stem>.jpg)")
    table = pd.DataFrame(records)
    helpers = table[["synthetic_file", "real_file", "source", "source_row"]]
    return pd.concat([validate_manifest(table, syn_root), helpers], axis=1)


# ---------------------------------------------------------------------------------------------------------
# Scoring


def parse_resize(text: str | None) -> tuple[int, int] | None:
    """``"480x270"`` → ``(480, 270)``; ``"none"`` / empty → None (native size); gene_img.py's size parser and
    limits (``discl.generation.config.parse_resolution``), any side of at least 1 px."""
    from discl.generation.config import parse_resolution

    return parse_resolution(text, "--resize", min_side=1)


def check_threshold(threshold: float) -> float:
    """A cosine-similarity threshold must lie in [-1, 1]."""
    if not -1.0 <= float(threshold) <= 1.0:
        raise InputError(None, f"threshold {threshold} outside [-1, 1] (it applies to a cosine similarity)",
                         column="--threshold")
    return float(threshold)


def load_image(path: str | os.PathLike, resize: tuple[int, int] | None, draft: bool = False) -> Image.Image:
    """Open an image as RGB, resized to ``resize`` when given (``draft``: a JPEG decoded at reduced scale first,
    ``discl.imageio``); an unreadable file is an ``InputError``."""
    from discl.imageio import load_rgb

    try:
        return load_rgb(path, resize, draft=draft)
    except OSError as err:  # discl.imageio: every decoder failure is an OSError
        raise InputError(path, f"cannot read image ({err})") from None


@dataclass
class ScoringStats:
    """How much work a scoring run did (the rest came from the cache)."""

    texts_encoded: int = 0
    real_encoded: int = 0
    synthetic_encoded: int = 0
    rows: int = 0


class ClipScorer:
    """Image–text and image–image cosines for a table of synthetic images, with every embedding cached once."""

    def __init__(self, embedder: ClipEmbedder, cache_root: str | os.PathLike, resize: tuple[int, int] | None,
                 workers: int = 4, save_every: int = 20000, draft: bool = False):
        self.embedder = embedder
        self.resize = resize
        self.workers = workers
        self.save_every = save_every
        self.draft = draft
        folder = Path(cache_root) / embedder.signature()
        # draft-decoded images embed (slightly) differently: they have caches of their own
        images = folder / ((f"{resize[0]}x{resize[1]}" if resize else "native") + ("-draft" if draft else ""))
        self.texts = EmbeddingCache(folder, "texts", embedder.dim)
        self.real = EmbeddingCache(images, "real", embedder.dim)
        self.synthetic = EmbeddingCache(images, "synthetic", embedder.dim)

    def _encode_texts(self, texts: Iterable[str]) -> int:
        missing = sorted({t for t in texts if not self.texts.has(t)})
        if missing:
            self.texts.put(missing, [""] * len(missing), self.embedder.embed_texts(missing))
            self.texts.save()
        return len(missing)

    @staticmethod
    @gc_paused
    def _stale(cache: EmbeddingCache, keys: Sequence[str], files: Sequence[str]) -> list[tuple[str, tuple[str, str]]]:
        """``(key, (file, fingerprint))`` of each key the cache lacks or holds for another version of its file; a
        real image is listed by each of its ~80 synthetic versions: each key once (in order of first listing), with
        its first listing's file."""
        codes, unique = pd.factorize(np.asarray(keys, dtype=object))  # in order of first appearance
        if len(unique) == len(keys):  # the synthetic images: every key listed once
            unique, first_files = keys, files
        else:
            unique = unique.tolist()
            first_files = np.asarray(files, dtype=object)[np.unique(codes, return_index=True)[1]].tolist()
        rows, cached = cache.rows, cache.row_fingerprints
        return [(key, (file, fingerprint)) for key, file, fingerprint in
                zip(unique, first_files, map(file_fingerprint, first_files))
                if (row := rows.get(key)) is None or cached[row] != fingerprint]  # cache.has, without its call

    def _encode_images(self, cache: EmbeddingCache, keys: Sequence[str], files: Sequence[str], desc: str) -> int:
        items = self._stale(cache, keys, files)
        if not items:
            return 0
        chunk = self.embedder.batch_size
        batches = [items[start:start + chunk] for start in range(0, len(items), chunk)]
        since_save = 0
        # Decoding and resizing release the GIL: threads read batch i+1 while the encoder works on batch i.
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            def read(batch):
                return [pool.submit(lambda path: chw_pixels(load_image(path, self.resize, self.draft)), file)
                        for _, (file, _) in batch]

            pending = read(batches[0])
            try:
                for index, batch in enumerate(progress(batches, desc=desc, unit="batch", enabled=len(batches) > 1)):
                    images = [future.result() for future in pending]
                    if index + 1 < len(batches):
                        pending = read(batches[index + 1])
                    cache.put([k for k, _ in batch], [fp for _, (_, fp) in batch],
                              self.embedder.embed_images(images))
                    since_save += len(batch)
                    if since_save >= self.save_every:
                        cache.save()
                        since_save = 0
            finally:
                # keep what was encoded, also when a corrupt image stops the run
                cache.save()
        return len(items)

    def score(self, table: pd.DataFrame, text_column: str = "prompt") -> tuple[pd.DataFrame, ScoringStats]:
        """Fill ``clip_image_text`` / ``clip_image_image`` for every row (encoding only what is not cached)."""
        table = table.copy()
        real_files = table["real_file"].unique().tolist()  # ~80 rows per real image
        resolved = dict(zip(real_files, resolved_paths(real_files)))
        real_keys = table["real_file"].map(resolved).tolist()
        stats = ScoringStats(rows=len(table))
        stats.texts_encoded = self._encode_texts(table[text_column].tolist())
        stats.real_encoded = self._encode_images(self.real, real_keys, table["real_file"].tolist(), "real images")
        stats.synthetic_encoded = self._encode_images(self.synthetic, table["synthetic_path"].tolist(),
                                                      table["synthetic_file"].tolist(), "synthetic images")
        synthetic_keys, texts = table["synthetic_path"].tolist(), table[text_column].tolist()
        image_text, image_image = np.empty(len(table), np.float32), np.empty(len(table), np.float32)
        # Embeddings are unit vectors, so the cosine is a dot product; rows in chunks keep the gathered
        # embeddings small (617k × 512 floats would be 1.3 GB per array)
        for start in range(0, len(table), SCORE_CHUNK):
            rows = slice(start, start + SCORE_CHUNK)
            synthetic = self.synthetic.get(synthetic_keys[rows])
            image_text[rows] = np.sum(synthetic * self.texts.get(texts[rows]), axis=1)
            image_image[rows] = np.sum(synthetic * self.real.get(real_keys[rows]), axis=1)
        table["clip_image_text"], table["clip_image_image"] = image_text, image_image
        log.info("scored %d synthetic images; encoded %d texts, %d real and %d synthetic images (rest cached)",
                 stats.rows, stats.texts_encoded, stats.real_encoded, stats.synthetic_encoded)
        return table, stats


# ---------------------------------------------------------------------------------------------------------
# Filtering and outputs


def apply_threshold(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``keep`` = image–text similarity ≥ threshold (the image–image similarity is recorded, not used)."""
    table = table.copy()
    table["keep"] = (table["clip_image_text"] >= check_threshold(threshold)).astype(object)
    return table


def reference_score_dict(table: pd.DataFrame) -> dict:
    """``clip_score.pkl``: ``{"{class}={subfolder}={stem}": [image–text, image–image]}`` (written by
    ``discl.refpickle.score_pickle_bytes``; this is its specification).

    Each similarity is a float32 array of shape (1,): the reference's CSV builder reads ``value[0][0]`` (which
    fails on the plain scalars its own scorer wrote).
    """
    return {key: [np.array([text], np.float32), np.array([image], np.float32)]
            for key, text, image in zip(table["sample_id"].tolist(), table["clip_image_text"].tolist(),
                                        table["clip_image_image"].tolist())}


def reference_filtered_list(table: pd.DataFrame) -> list:
    """``filtered_results.pkl``: kept entries as ``[[class folder, subfolder, stem], image–text, image–image]``."""
    kept = table[table["keep"].astype(bool)]
    return [[key.split("="), float(text), float(image)]
            for key, text, image in zip(kept["sample_id"].tolist(), kept["clip_image_text"].tolist(),
                                        kept["clip_image_image"].tolist())]


def _write_pickle(path: Path, obj, shared: bool = True) -> None:
    """``obj`` pickled, atomically. ``shared=False``: a tree of lists, strings and numbers that refers to no object
    twice, pickled without the memo (the pickler's fast mode: 617k filtered entries in 0.2 s instead of 1.3 s;
    ``pickle.load`` gives an equal tree)."""
    with atomic_write(path, "wb") as handle:
        pickler = pickle.Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.fast = not shared
        pickler.dump(obj)


def write_reference_embeddings(table: pd.DataFrame, scorer: ClipScorer, syn_root: str | os.PathLike) -> int:
    """Per subfolder ``clip_emb.pkl`` (stem → ``[1, D]`` image embedding), as the reference wrote; returns count."""
    syn_root = Path(syn_root)
    folders = table.assign(folder=[Path(p).parent.as_posix() for p in table["synthetic_path"]]).groupby("folder")
    for folder, rows in folders:
        embeddings = scorer.synthetic.get(rows["synthetic_path"].tolist())
        _write_pickle(syn_root / folder / EMBEDDING_PICKLE,
                      {stem: emb[None, :] for stem, emb in zip(rows["image_stem"], embeddings)})
    return folders.ngroups


def filter_reports(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kept / dropped counts per class and per guidance level (with mean similarities per level)."""
    counted = table.assign(kept=table["keep"].astype(bool).astype(int), total=1)
    by_class = counted.groupby(["class_folder", "class_id"], as_index=False)[["total", "kept"]].sum()
    by_guidance = counted.groupby("image_guidance", as_index=False).agg(
        total=("total", "sum"), kept=("kept", "sum"), mean_image_text=("clip_image_text", "mean"),
        mean_image_image=("clip_image_image", "mean"))
    for report in (by_class, by_guidance):
        report.insert(report.columns.get_loc("kept") + 1, "dropped", report["total"] - report["kept"])
    return by_class, by_guidance


def scored_manifest(table: pd.DataFrame) -> pd.DataFrame:
    """The manifest columns of a scored table, as ``validate_manifest`` types them.

    The rows were validated when they were collected (``collect_from_manifests`` / ``collect_from_layout``) and the
    scorer filled the similarities and ``keep``: only these are checked again, not the whole table. The float32
    similarities are written as the doubles they are (what the reference's pickles hold, exactly).
    """
    frame = table[MANIFEST_COLUMNS].reset_index(drop=True)
    for column in ("clip_image_text", "clip_image_image"):
        values = frame[column].to_numpy(dtype=np.float64)
        outside = np.flatnonzero(~(np.abs(values) <= 1.0 + COSINE_SLACK))  # NaN too: every row was scored
        if outside.size:
            raise ValueError(f"{column} of {frame['sample_id'].iloc[outside[0]]!r} is {values[outside[0]]}: "
                             "not a cosine similarity")
        frame[column] = values
    frame["keep"] = pd.Series([bool(k) for k in frame["keep"].tolist()], dtype=object)
    return frame


@gc_paused
def write_outputs(table: pd.DataFrame, syn_root: str | os.PathLike, threshold: float) -> dict[str, Path]:
    """Write ``clip_scores.csv``, the reference pickles, the two filter reports and the histogram figure."""
    from discl.plots.scores import plot_score_histograms

    syn_root = Path(syn_root)
    table = apply_threshold(table, threshold)
    paths = {name: syn_root / name for name in (SCORES_FILE, CLIP_SCORE_PICKLE, FILTERED_PICKLE, HISTOGRAM_FILE)}
    write_table(paths[SCORES_FILE], scored_manifest(table), MANIFEST_CACHE_KIND)  # read_scores takes the copy
    atomic_write_bytes(paths[CLIP_SCORE_PICKLE], score_pickle_bytes(  # pickle.load gives reference_score_dict
        table["sample_id"].tolist(), table["clip_image_text"].to_numpy(), table["clip_image_image"].to_numpy()))
    _write_pickle(paths[FILTERED_PICKLE], reference_filtered_list(table), shared=False)
    by_class, by_guidance = filter_reports(table)
    for name, report in zip(REPORT_FILES, (by_class, by_guidance)):
        paths[name] = syn_root / name
        atomic_write_csv(paths[name], report)
    atomic_write_bytes(paths[HISTOGRAM_FILE], plot_score_histograms(table, threshold))
    return paths


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``clip_scores.csv`` (a scored manifest): every row must have both similarities and ``keep``."""
    frame = read_manifest(path)
    for column in SCORE_COLUMNS_REQUIRED:
        blank = frame[column].isna()
        if blank.any():
            raise InputError(path, "value is missing (run comp_clip_scores.py first)",
                             int(np.flatnonzero(blank)[0]) + 1, column)
    return frame


# ---------------------------------------------------------------------------------------------------------
# The step: any registered dataset, its defaults from the dataset class

TEXT_SOURCES = ("prompt", "class")


@dataclass
class ScoringConfig:
    """The flags of comp_clip_scores.py; ``threshold`` and ``resize`` default to the dataset's."""

    syn_path: str = option("", "generation output folder (manifests/*.csv, or the reference's "
                               "class/subfolder layout)", aliases=("--syn_path",), required=True)
    image_root: str | None = option(None, "folder the real source images are looked up in when a manifest's "
                                          "real_path is relative or has moved (by path, file name, then stem); "
                                          "none: --data-root when given, else the working directory",
                                    aliases=("--real-path", "--real_path"))
    threshold: float | None = option(None, "keep an image when its image–text similarity is >= this (the "
                                           "dataset's clip_threshold)", paper="iWildCam 0.25, ImageNet-LT 0.30")
    resize: str | None = option(None, "WIDTHxHEIGHT applied to every image before embedding, or 'none' for the "
                                      "native size (the dataset's clip_resize)", paper="iWildCam 480x270")
    clip_model: str = option(HF_CLIP_ID, "transformers CLIP id or folder", paper="CLIP ViT-B/32")
    batch_size: int = option(64, "images / texts per encoder call")
    device: str | None = option(None, "cuda, cpu, ...; none = cuda when available")
    workers: int = option(4, "image-decoding worker threads")
    text: str = option("prompt", "score against each image's generation prompt (paper) or the dataset's class "
                                 "text (the reference's ImageNet-LT scorer: 'a photo of {class}')",
                       choices=TEXT_SOURCES)
    clip_emb_pkl: bool = option(False, "also write the reference's per-subfolder clip_emb.pkl (pickles)")
    jpeg_draft: bool = option(False, "decode JPEGs at 1/2, 1/4 or 1/8 scale (still >= --resize) before the resize: "
                                     "~3.5x less decoding of 1920x1080 real photos, whose image-image similarity "
                                     "moves slightly; synthetic images under twice --resize (the generator's) and "
                                     "so the image-text filter are unchanged (docs/performance.md)")


def resize_text(size: tuple[int, int] | None) -> str:
    """``(480, 270)`` → ``"480x270"``; None → ``"none"``."""
    return "none" if size is None else f"{size[0]}x{size[1]}"


def peek_dataset(argv: Sequence[str] | None, default: str | None) -> type[Dataset] | None:
    """The dataset class named by ``--dataset`` in ``argv`` (or ``default``), to show its defaults in the parser."""
    from discl.datasets import dataset_class

    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--dataset", default=default)
    known, _ = peek.parse_known_args(list(argv or ()))
    return None if known.dataset is None else dataset_class(known.dataset)


def get_args_parser(default_dataset: str | None = None, argv: Sequence[str] | None = None,
                    description: str | None = None) -> argparse.ArgumentParser:
    """The scoring flags, with the defaults of the dataset named in ``argv`` (or ``default_dataset``)."""
    from discl.datasets import dataset_parser

    cls = peek_dataset(argv, default_dataset)
    defaults = {} if cls is None else {"threshold": cls.clip_threshold, "resize": resize_text(cls.clip_resize)}
    parser = argparse.ArgumentParser(description=(description or __doc__).split("\n\n")[0],
                                     parents=[dataset_parser(required_root=False, default=default_dataset)])
    add_arguments(parser.add_argument_group("scoring"), ScoringConfig, defaults=defaults)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def parse_args(argv: Sequence[str] | None, default_dataset: str | None = None,
               description: str | None = None) -> tuple[ScoringConfig, Dataset, argparse.Namespace]:
    """``argv`` → (typed scoring config, dataset, namespace)."""
    from discl.config import from_args
    from discl.datasets import from_args as dataset_from_args

    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser(default_dataset, argv, description).parse_args(argv)
    dataset = dataset_from_args(args)
    config = from_args(ScoringConfig, args)
    if config.threshold is None:
        config.threshold = dataset.clip_threshold
    if config.resize is None:
        config.resize = resize_text(dataset.clip_resize)
    return config, dataset, args


def check_dataset_column(table: pd.DataFrame, dataset: Dataset) -> None:
    """Every synthetic image must come from the dataset being scored (its name in the manifest)."""
    other = np.flatnonzero(table["dataset"].to_numpy() != dataset.name)
    if other.size:
        first = table.iloc[int(other[0])]
        raise InputError(first.get("source"), f"dataset {first['dataset']!r}, but --dataset is {dataset.name!r}",
                         first.get("source_row"), "dataset")


def run_scoring(config: ScoringConfig, dataset: Dataset) -> tuple[pd.DataFrame, ScoringStats, dict[str, Path]]:
    """Score every synthetic image under ``config.syn_path``, filter, and write every output (see module doc)."""
    from discl.distributed import check_device
    from discl.generation.config import check_number

    threshold = check_threshold(dataset.clip_threshold if config.threshold is None else config.threshold)
    resize = parse_resize(resize_text(dataset.clip_resize) if config.resize is None else config.resize)
    syn_root = Path(config.syn_path)
    if not syn_root.is_dir():
        raise InputError(syn_root, "--syn_path is not a folder")
    check_number("--batch-size", config.batch_size, 1)
    check_number("--workers", config.workers, 0)
    device = check_device(config.device)
    image_root = config.image_root or (str(dataset.root) if dataset.root is not None else ".")
    if config.image_root and not Path(config.image_root).is_dir():
        raise InputError(config.image_root, "--image-root (--real_path) is not a folder")
    finder = RealImageFinder(image_root)
    if any(p for p in (syn_root / "manifests").glob("*.csv") if not is_temp_file(p)):
        table = collect_from_manifests(syn_root, finder)
        if table.empty:
            raise InputError(syn_root / "manifests", "the manifests list no synthetic image (header only): nothing "
                                                     "to score; has gene_img.py written any image?")
        check_dataset_column(table, dataset)
    else:
        log.info("no manifests in %s: walking the reference folder layout", syn_root)
        table = collect_from_layout(syn_root, finder, dataset)
    if config.text == "class":
        texts = {name: dataset.class_text(name) for name in table["class_name"].unique()}
        table["text"] = table["class_name"].map(texts)
    else:
        table["text"] = table["prompt"]
    try:
        embedder = ClipEmbedder(config.clip_model, device, config.batch_size)
    except (OSError, ValueError) as err:  # transformers / huggingface_hub: not found, not cached, not a model id
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError("--clip-model", f"cannot load {config.clip_model!r}: {first}") from None
    runrecord.start(syn_root, {**to_plain(config), "dataset": dataset.name})  # inputs checked: the record starts
    scorer = ClipScorer(embedder, syn_root / CACHE_DIR, resize, workers=config.workers, draft=config.jpeg_draft)
    table, stats = scorer.score(table, text_column="text")
    paths = write_outputs(table, syn_root, threshold)
    if config.clip_emb_pkl:
        write_reference_embeddings(table, scorer, syn_root)
    return apply_threshold(table, threshold), stats, paths


def main(argv: Sequence[str] | None = None, default_dataset: str | None = None,
         description: str | None = None) -> int:
    """Score and filter one generation output folder, write the outputs, print the per-guidance report."""
    from discl.cli import setup_logging
    from discl.runrecord import RunRecord

    config, dataset, args = parse_args(argv, default_dataset, description)
    setup_logging(args.verbose)
    with RunRecord("comp_clip_scores", argv):
        table, stats, paths = run_scoring(config, dataset)
    _, by_guidance = filter_reports(table)
    print(by_guidance.to_string(index=False, float_format="%.3f"))
    print(f"kept {int(table['keep'].sum())} of {len(table)} synthetic images (threshold {config.threshold}); "
          f"encoded {stats.texts_encoded} prompts, {stats.real_encoded} real, {stats.synthetic_encoded} synthetic "
          f"images; scores in {paths[SCORES_FILE]}")
    return 0
