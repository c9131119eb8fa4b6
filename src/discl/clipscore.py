"""CLIPScore filtering (spec §3): batched, cached CLIP similarities of synthetic images, filtering, reference pickles.

For every synthetic image we need two cosines: against the text embedding of its prompt and against the image
embedding of its real source. The reference re-encoded the prompt and the real image for each of the 80
synthetic versions of a hard image, at batch 1; here every distinct prompt and every real image is encoded
once, images in batches, and all embeddings are cached on disk so a rerun or a newly finished shard only
encodes what is new.
"""

from __future__ import annotations

import argparse
import hashlib
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
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from discl.errors import InputError
from discl.fileio import atomic_write, atomic_write_bytes, atomic_write_csv, is_temp_file
from discl.manifest import MANIFEST_COLUMNS, read_manifest, sample_id, validate_manifest
from discl.models import HF_CLIP_ID

log = logging.getLogger(__name__)

IWILDCAM_THRESHOLD = 0.25
IMAGENET_LT_THRESHOLD = 0.30
REFERENCE_RESIZE = (480, 270)  # spec §3: the reference resizes to 480×270 before embedding (iWildCam)
SCORES_FILE = "clip_scores.csv"
CLIP_SCORE_PICKLE = "clip_score.pkl"
FILTERED_PICKLE = "filtered_results.pkl"
EMBEDDING_PICKLE = "clip_emb.pkl"
REPORT_FILES = ("filter_report_by_class.csv", "filter_report_by_guidance.csv")
HISTOGRAM_FILE = "clip_scores_hist.png"
CACHE_DIR = "clip_cache"
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
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
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
        self.fingerprints: dict[str, str] = {}
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
        for offset, (key, fingerprint) in enumerate(zip(keys, fingerprints)):
            self.rows[key] = self._total + offset
            self.fingerprints[key] = fingerprint
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
        return self.fingerprints.get(key) == fingerprint

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """``[len(keys), D]`` cached embeddings (every key must be present)."""
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        array = self._blocks[0] if self._blocks else np.zeros((0, self.dim), np.float32)
        return array[[self.rows[key] for key in keys]]

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
        atomic_write_csv(stem.with_suffix(".csv"), pd.DataFrame(self._unsaved_keys, columns=["key", "fingerprint"]))
        self._next_segment += 1
        self._unsaved_keys, self._unsaved_blocks = [], []


def file_fingerprint(path: str | os.PathLike) -> str:
    """``size-mtime_ns`` of a file: a regenerated image gets a new fingerprint and is re-encoded."""
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


# ---------------------------------------------------------------------------------------------------------
# Finding the synthetic images and their real sources

_SUBFOLDER = re.compile(r"^Strength(\d+)_guidance(\d+)_seed(\d+)$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_NOT_CLASS_FOLDERS = {"manifests", "failures", CACHE_DIR}  # generation and scoring bookkeeping
LAYOUT = "<class>/Strength{100s}_guidance{10g}_seed{seed}/<stem>.jpg"


@dataclass
class ClassInfo:
    """What the reference layout cannot tell: a class folder's label id, class name and prompt."""

    class_id: int
    class_name: str
    prompt: str


class RealImageFinder:
    """Resolves the real source of a synthetic image under ``--real_path`` (by path, then by file stem)."""

    def __init__(self, real_root: str | os.PathLike):
        self.real_root = Path(real_root)
        self._by_stem: dict[str, Path] | None = None

    def _stem_index(self) -> dict[str, Path]:
        if self._by_stem is None:
            if not self.real_root.is_dir():
                raise InputError(self.real_root, "--real_path is not a folder")
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


def collect_from_manifests(syn_root: str | os.PathLike, finder: RealImageFinder) -> pd.DataFrame:
    """All rows of ``<syn_root>/manifests/*.csv`` with the synthetic and real image files resolved."""
    syn_root = Path(syn_root)
    frames = []
    for manifest in sorted((syn_root / "manifests").glob("*.csv")):
        if is_temp_file(manifest):
            continue
        frame = read_manifest(manifest)
        frame["source"] = str(manifest)
        frame["source_row"] = np.arange(1, len(frame) + 1)
        frames.append(frame)
    if not frames:
        raise InputError(syn_root / "manifests", "no manifest CSV found")
    table = pd.concat(frames, ignore_index=True)
    duplicated = table["sample_id"].duplicated()
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise InputError(first["source"], f"sample_id {first['sample_id']!r} is listed in two manifests",
                         int(first["source_row"]), "sample_id")
    synthetic_files, real_files = [], []
    resolved: dict[str, Path | None] = {}
    for record in tqdm(table.itertuples(index=False), total=len(table), desc="finding images", unit="img",
                       disable=len(table) < 10000):
        synthetic = syn_root / record.synthetic_path
        if not synthetic.is_file():
            raise InputError(record.source, f"synthetic image {synthetic} not found", record.source_row,
                             "synthetic_path")
        if record.real_path not in resolved:
            resolved[record.real_path] = finder.find(record.real_path, record.image_stem)
        if resolved[record.real_path] is None:
            raise InputError(record.source, f"real image {record.real_path!r} not found under {finder.real_root}",
                             record.source_row, "real_path")
        synthetic_files.append(str(synthetic))
        real_files.append(str(resolved[record.real_path]))
    table["synthetic_file"] = synthetic_files
    table["real_file"] = real_files
    return table


def collect_from_layout(syn_root: str | os.PathLike, finder: RealImageFinder, dataset: str,
                        describe_class: Callable[[str, str | os.PathLike | None], ClassInfo]) -> pd.DataFrame:
    """Walk the reference layout ``<class>/Strength…_guidance…_seed…/<stem>.jpg`` when there is no manifest."""
    syn_root = Path(syn_root)
    if not syn_root.is_dir():
        raise InputError(syn_root, "--syn_path is not a folder")
    records = []
    for class_dir in sorted(p for p in syn_root.iterdir() if p.is_dir() and p.name not in _NOT_CLASS_FOLDERS):
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
                    "sample_id": sample_id(class_dir.name, sub_dir.name, image.stem), "dataset": dataset,
                    "class_id": info.class_id, "class_name": info.class_name, "class_folder": class_dir.name,
                    "real_path": str(real), "image_stem": image.stem, "prompt": info.prompt,
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
    """``"480x270"`` → ``(480, 270)``; ``"none"`` / empty → None (native size)."""
    if text is None or str(text).strip().lower() in ("", "none", "native"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if match is None or 0 in (int(match.group(1)), int(match.group(2))):
        raise InputError(None, f"expected WIDTHxHEIGHT (e.g. 480x270) or 'none', got {text!r}", column="--resize")
    return int(match.group(1)), int(match.group(2))


def check_threshold(threshold: float) -> float:
    """A cosine-similarity threshold must lie in [-1, 1]."""
    if not -1.0 <= float(threshold) <= 1.0:
        raise InputError(None, f"threshold {threshold} outside [-1, 1] (it applies to a cosine similarity)",
                         column="--threshold")
    return float(threshold)


def load_image(path: str | os.PathLike, resize: tuple[int, int] | None) -> Image.Image:
    """Open an image as RGB (resized to ``resize`` when given); an unreadable file is an ``InputError``."""
    try:
        with Image.open(path) as handle:
            image = handle.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise InputError(path, f"cannot read image ({err})") from None
    return image.resize(resize) if resize else image


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
                 workers: int = 4, save_every: int = 20000):
        self.embedder = embedder
        self.resize = resize
        self.workers = workers
        self.save_every = save_every
        folder = Path(cache_root) / embedder.signature()
        images = folder / (f"{resize[0]}x{resize[1]}" if resize else "native")
        self.texts = EmbeddingCache(folder, "texts", embedder.dim)
        self.real = EmbeddingCache(images, "real", embedder.dim)
        self.synthetic = EmbeddingCache(images, "synthetic", embedder.dim)

    def _encode_texts(self, texts: Iterable[str]) -> int:
        missing = sorted({t for t in texts if not self.texts.has(t)})
        if missing:
            self.texts.put(missing, [""] * len(missing), self.embedder.embed_texts(missing))
            self.texts.save()
        return len(missing)

    def _encode_images(self, cache: EmbeddingCache, keys: Sequence[str], files: Sequence[str], desc: str) -> int:
        todo: dict[str, tuple[str, str]] = {}
        for key, file in zip(keys, files):
            if key not in todo:
                fingerprint = file_fingerprint(file)
                if not cache.has(key, fingerprint):
                    todo[key] = (file, fingerprint)
        if not todo:
            return 0
        items = list(todo.items())
        chunk = self.embedder.batch_size
        batches = [items[start:start + chunk] for start in range(0, len(items), chunk)]
        since_save = 0
        # Decoding and resizing release the GIL: threads read batch i+1 while the encoder works on batch i.
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            def read(batch):
                return [pool.submit(lambda path: chw_pixels(load_image(path, self.resize)), file)
                        for _, (file, _) in batch]

            pending = read(batches[0])
            try:
                for index, batch in enumerate(tqdm(batches, desc=desc, unit="batch", disable=len(batches) <= 1)):
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
        resolved = {f: str(Path(f).resolve()) for f in table["real_file"].unique()}  # ~80 rows per real image
        real_keys = table["real_file"].map(resolved).tolist()
        stats = ScoringStats(rows=len(table))
        stats.texts_encoded = self._encode_texts(table[text_column])
        stats.real_encoded = self._encode_images(self.real, real_keys, table["real_file"].tolist(), "real images")
        stats.synthetic_encoded = self._encode_images(self.synthetic, table["synthetic_path"].tolist(),
                                                      table["synthetic_file"].tolist(), "synthetic images")
        synthetic = self.synthetic.get(table["synthetic_path"].tolist())
        # Embeddings are unit vectors, so the cosine is a dot product.
        table["clip_image_text"] = np.sum(synthetic * self.texts.get(table[text_column].tolist()), axis=1)
        table["clip_image_image"] = np.sum(synthetic * self.real.get(real_keys), axis=1)
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
    """``clip_score.pkl``: ``{"{class}={subfolder}={stem}": [image–text, image–image]}``.

    Each similarity is a float32 array of shape (1,): the reference's CSV builder reads ``value[0][0]``
    (which fails on the plain scalars its own scorer wrote), and ``float(value[0])`` works as well.
    """
    return {key: [np.array([text], np.float32), np.array([image], np.float32)]
            for key, text, image in zip(table["sample_id"], table["clip_image_text"], table["clip_image_image"])}


def reference_filtered_list(table: pd.DataFrame) -> list:
    """``filtered_results.pkl``: kept entries as ``[[class folder, subfolder, stem], image–text, image–image]``."""
    kept = table[table["keep"].astype(bool)]
    return [[key.split("="), float(text), float(image)]
            for key, text, image in zip(kept["sample_id"], kept["clip_image_text"], kept["clip_image_image"])]


def _write_pickle(path: Path, obj) -> None:
    with atomic_write(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)


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


def write_outputs(table: pd.DataFrame, syn_root: str | os.PathLike, threshold: float) -> dict[str, Path]:
    """Write ``clip_scores.csv``, the reference pickles, the two filter reports and the histogram figure."""
    from discl.plots.scores import plot_score_histograms

    syn_root = Path(syn_root)
    table = apply_threshold(table, threshold)
    paths = {name: syn_root / name for name in (SCORES_FILE, CLIP_SCORE_PICKLE, FILTERED_PICKLE, HISTOGRAM_FILE)}
    atomic_write_csv(paths[SCORES_FILE], validate_manifest(table[MANIFEST_COLUMNS], paths[SCORES_FILE]))
    _write_pickle(paths[CLIP_SCORE_PICKLE], reference_score_dict(table))
    _write_pickle(paths[FILTERED_PICKLE], reference_filtered_list(table))
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
# The two datasets: what differs is passed as data, the code path is one


def iwildcam_class_info(class_folder: str, real_root: str | os.PathLike | None = None) -> ClassInfo:
    """Label, scientific name and generation prompt of an iWildCam class folder (``acinonyx_jubatus``).

    Labels come from the release's ``categories.csv`` next to ``real_root`` (``iwildcam_v2.0/train``) when
    there is one, else from the packaged 182-class list.
    """
    from discl.data.iwildcam import common_name, species_names
    from discl.prompts import iwildcam_prompt

    scientific = class_folder.replace("_", " ")
    release = None if real_root is None else Path(real_root).parent
    names = species_names(release if release and (release / "categories.csv").is_file() else None)
    if scientific not in names:
        common_name(scientific, file=class_folder)  # an unknown species raises with a "did you mean" hint
        raise InputError(class_folder, f"species {scientific!r} is not among the dataset's classes")
    return ClassInfo(names.index(scientific), scientific, iwildcam_prompt(common_name(scientific)))


def imagenet_lt_class_info(class_folder: str, real_root: str | os.PathLike | None = None) -> ClassInfo:
    """Label, class name and scoring text of an ImageNet-LT class folder (a WordNet id or the class name).

    The LLM prompt of an image is not recoverable from the layout; like the reference's scorer, the text is
    then ``a photo of {class name}``.
    """
    from discl.data.hard_sample_csv import class_folder as folder_of
    from discl.data.imagenet_lt import class_names, imagenet_wnids

    names = class_names()
    wnids = imagenet_wnids()
    if class_folder in wnids:
        label = wnids.index(class_folder)
    else:
        # Folders as discl.data.hard_sample_csv names them: the class name with spaces and '/' as '_', and
        # '_<label>' appended for names that two labels share ('missile', 'sunglasses').
        candidates: dict[str, int] = {}
        for index, name in enumerate(names):
            candidates.setdefault(folder_of(name).lower(), index)
            candidates[f"{folder_of(name)}_{index}".lower()] = index
        if class_folder.lower() not in candidates:
            raise InputError(class_folder, "not an ImageNet class folder (expected a WordNet id or a class name)")
        label = candidates[class_folder.lower()]
    return ClassInfo(label, names[label], f"a photo of {names[label]}")


@dataclass(frozen=True)
class DatasetScoring:
    """Per-dataset defaults of the scoring step (spec §3)."""

    name: str
    threshold: float
    resize: str
    describe_class: Callable[[str, str | os.PathLike | None], ClassInfo]


SCORING = {
    "iwildcam": DatasetScoring("iwildcam", IWILDCAM_THRESHOLD, "{}x{}".format(*REFERENCE_RESIZE), iwildcam_class_info),
    # The reference scores ImageNet-LT images at their native size.
    "imagenet_lt": DatasetScoring("imagenet_lt", IMAGENET_LT_THRESHOLD, "none", imagenet_lt_class_info),
}
TEXT_SOURCES = ("prompt", "class")


def add_scoring_args(parser, dataset: str) -> None:
    """The flags of ``comp_clip_scores.py`` (the reference's names first), with the dataset's defaults."""
    spec = SCORING[dataset]
    parser.add_argument("--syn_path", required=True,
                        help="generation output folder (manifests/*.csv, or the reference's class/subfolder layout)")
    parser.add_argument("--real_path", required=True, help="folder holding the real source images")
    parser.add_argument("--threshold", type=float, default=spec.threshold,
                        help="keep an image when its image–text similarity is >= this (default %(default)s)")
    parser.add_argument("--model", default=HF_CLIP_ID, help="transformers CLIP id or folder (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images / texts per encoder call")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--resize", default=spec.resize,
                        help="WIDTHxHEIGHT applied to every image before embedding, or 'none' (default %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="threads decoding images")
    parser.add_argument("--text", choices=TEXT_SOURCES, default="prompt",
                        help="score against each image's generation prompt (paper) or 'a photo of {class}' "
                             "(the reference's ImageNet-LT scorer)")
    parser.add_argument("--clip-emb-pkl", action="store_true",
                        help="also write the reference's per-subfolder clip_emb.pkl (pickles; off by default)")


def class_text(class_name: str, dataset: str) -> str:
    """The ``--text class`` scoring text: the iWildCam generation prompt, or ``a photo of {class}``."""
    if dataset == "iwildcam":
        from discl.data.iwildcam import common_name
        from discl.prompts import iwildcam_prompt

        return iwildcam_prompt(common_name(class_name))
    return f"a photo of {class_name}"


def run_scoring(args, dataset: str) -> tuple[pd.DataFrame, ScoringStats, dict[str, Path]]:
    """Score every synthetic image under ``args.syn_path``, filter, and write every output (see module doc)."""
    from discl.models import default_device

    threshold = check_threshold(args.threshold)
    resize = parse_resize(args.resize)
    syn_root = Path(args.syn_path)
    if not syn_root.is_dir():
        raise InputError(syn_root, "--syn_path is not a folder")
    finder = RealImageFinder(args.real_path)
    if any(p for p in (syn_root / "manifests").glob("*.csv") if not is_temp_file(p)):
        table = collect_from_manifests(syn_root, finder)
    else:
        log.info("no manifests in %s: walking the reference folder layout", syn_root)
        table = collect_from_layout(syn_root, finder, dataset, SCORING[dataset].describe_class)
    if args.text == "class":
        texts = {name: class_text(name, dataset) for name in table["class_name"].unique()}
        table["text"] = table["class_name"].map(texts)
    else:
        table["text"] = table["prompt"]
    embedder = ClipEmbedder(args.model, args.device or default_device(), args.batch_size)
    scorer = ClipScorer(embedder, syn_root / CACHE_DIR, resize, workers=args.workers)
    table, stats = scorer.score(table, text_column="text")
    paths = write_outputs(table, syn_root, threshold)
    if args.clip_emb_pkl:
        write_reference_embeddings(table, scorer, syn_root)
    return apply_threshold(table, threshold), stats, paths


def get_args_parser(dataset: str, description: str | None = None) -> argparse.ArgumentParser:
    """The scoring flags with the dataset's defaults (``comp_clip_scores.py`` of either dataset)."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    add_scoring_args(parser, dataset)
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None, dataset: str, description: str | None = None) -> int:
    """Score and filter one generation output folder, write the outputs, print the per-guidance report."""
    from discl.cli import setup_logging

    args = get_args_parser(dataset, description).parse_args(argv)
    setup_logging(args.verbose)
    table, stats, paths = run_scoring(args, dataset)
    _, by_guidance = filter_reports(table)
    print(by_guidance.to_string(index=False, float_format="%.3f"))
    print(f"kept {int(table['keep'].sum())} of {len(table)} synthetic images (threshold {args.threshold}); "
          f"encoded {stats.texts_encoded} prompts, {stats.real_encoded} real, {stats.synthetic_encoded} synthetic "
          f"images; scores in {paths['clip_scores.csv']}")
    return 0
