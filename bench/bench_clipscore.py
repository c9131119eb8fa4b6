"""CLIPScore: the reference's loop against ours, on the same CLIP weights and images.

The reference scores one synthetic image at a time and, for each, re-reads and re-encodes its real source
and re-encodes the prompt (three encoder calls at batch 1). Ours encodes every distinct prompt and real image
once and the synthetic images in batches, from a cold cache. Both use the same 480×270 resize and the same
transformers processor, so the scores must agree to 1e-5.

The default workload is the paper's shape: every real image has 10 strengths × 8 seeds = 80 synthetic versions.
The two loops run ``--repeats`` times, interleaved (reference, ours, reference, …) so that a change of machine
load hits both alike; the speedup is the median of the per-repeat ratios, and their spread is printed. A forward
hook on the CLIP model measures how much of our time is model compute; the rest is decoding, resizing and the
processor's preprocessing (docs/performance.md has the profile).

Runs offline on a tiny world built in a temporary folder (tiny CLIP under the real id, mini iWildCam);
``--model``/``--hf-home`` point it at real weights instead. Last line: ``speedup=<x>``.

    python bench/bench_clipscore.py --images 4 --seeds 8 --strengths 10 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SEEDS = (10, 20, 30, 40, 42, 50, 60, 70)
STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SYNTHETIC_SIZE = (480, 264)  # what SDXL img2img returns for a 480×270 input


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="real (hard) images")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per strength (at most 8)")
    parser.add_argument("--strengths", type=int, default=10, help="strengths per image (at most 10)")
    parser.add_argument("--real-size", default="1920x1080",
                        help="size the real photos are stored at (iWildCam camera-trap frames are ~1920x1080)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (medians are reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--model", default="openai/clip-vit-base-patch32")
    parser.add_argument("--hf-home", help="use this HF cache instead of building a tiny one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser


def build_workload(folder: Path, args: argparse.Namespace):
    """Real photos (mini iWildCam, stored large) and seeds × strengths synthetic versions of each, as a manifest."""
    import pandas as pd
    from PIL import Image

    from discl.clipscore import RealImageFinder, collect_from_manifests
    from discl.data.iwildcam import common_name
    from discl.fileio import atomic_save_image
    from discl.guidance import level_from_strength
    from discl.manifest import MANIFEST_COLUMNS, sample_id, subfolder_name, synthetic_relpath, write_manifest
    from discl.prompts import iwildcam_prompt
    from discl.tiny import make_mini_iwildcam

    wilds = make_mini_iwildcam(folder / "wilds") / "iwildcam_v2.0"
    metadata = pd.read_csv(wilds / "metadata.csv")
    names = pd.read_csv(wilds / "categories.csv").set_index("y")["name"]
    train = metadata[(metadata["split"] == "train") & (metadata["y"] > 0)]
    picks = train.iloc[np.linspace(0, len(train) - 1, args.images).astype(int)]
    real_size = tuple(int(v) for v in args.real_size.split("x"))
    real_dir, syn_dir = folder / "real", folder / "syn"
    rows = []
    for record in picks.itertuples():
        photo = Image.open(wilds / "train" / record.filename).convert("RGB")
        atomic_save_image(photo.resize(real_size), real_dir / record.filename, quality=95)
        name, stem = names[record.y], record.filename[:-4]
        folder_name = name.replace(" ", "_")
        for strength in STRENGTHS[:args.strengths]:
            for seed in SEEDS[:args.seeds]:
                relpath = synthetic_relpath(folder_name, strength, 10.0, seed, stem)
                atomic_save_image(_synthetic_version(photo, strength, seed), syn_dir / relpath, quality=95)
                rows.append({"sample_id": sample_id(folder_name, subfolder_name(strength, 10.0, seed), stem),
                             "dataset": "iwildcam", "class_id": record.y, "class_name": name,
                             "class_folder": folder_name, "real_path": record.filename, "image_stem": stem,
                             "prompt": iwildcam_prompt(common_name(name)), "strength": strength,
                             "image_guidance": level_from_strength(strength), "text_guidance": 10.0, "seed": seed,
                             "generator_seed": 0, "synthetic_path": relpath, "tries": 1, "clip_image_text": "",
                             "clip_image_image": "", "keep": ""})
    write_manifest(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), syn_dir / "manifests/part001-of001.csv")
    return syn_dir, collect_from_manifests(syn_dir, RealImageFinder(real_dir))


def _synthetic_version(photo, strength: float, seed: int):
    """A photo-like stand-in for an img2img output: blurred and colour-shifted more as ``strength`` grows."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    base = photo.resize(SYNTHETIC_SIZE).filter(ImageFilter.GaussianBlur(radius=1 + 4 * strength))
    cast = 1 + strength * rng.uniform(-0.4, 0.4, 3)
    return Image.fromarray(np.clip(np.asarray(base, float) * cast, 0, 255).astype(np.uint8))


def reference_loop(table, model, processor, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference's scoring loop: per synthetic image, three batch-1 encoder calls (written afresh here)."""
    import torch
    from PIL import Image

    def features(output):
        return output if torch.is_tensor(output) else output.pooler_output

    def image_embedding(image):
        pixels = processor(images=image, return_tensors="pt")["pixel_values"].to(device)
        return features(model.get_image_features(pixel_values=pixels)).cpu().numpy()

    text_scores, image_scores = [], []
    with torch.no_grad():
        for row in table.itertuples():
            synthetic = Image.open(row.synthetic_file).convert("RGB").resize((480, 270))
            real = Image.open(row.real_file).convert("RGB").resize((480, 270))
            synthetic_embedding = image_embedding(synthetic)
            real_embedding = image_embedding(real)
            tokens = processor.tokenizer(row.prompt, return_tensors="pt").to(device)
            text_embedding = features(model.get_text_features(**tokens)).cpu().numpy()
            text_scores.append(_cosine(synthetic_embedding, text_embedding))
            image_scores.append(_cosine(synthetic_embedding, real_embedding))
    return np.array(text_scores), np.array(image_scores)


class ForwardTimer:
    """Wall time spent inside a module's forwards (the image and text towers are called through ``get_*_features``,
    so the hook sits on the towers)."""

    def __init__(self, model):
        self.seconds = 0.0
        self._start = 0.0
        for tower in (model.vision_model, model.text_model, model.visual_projection, model.text_projection):
            tower.register_forward_pre_hook(self._enter)
            tower.register_forward_hook(self._leave)

    def _enter(self, *_):
        self._start = time.perf_counter()

    def _leave(self, *_):
        self.seconds += time.perf_counter() - self._start


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics.pairwise import cosine_similarity  # what the reference calls

    return float(cosine_similarity(a, b)[0][0])


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-clipscore-"))
    # HF libraries read these at import time: set them before anything imports transformers.
    os.environ["HF_HOME"] = args.hf_home or str(folder / "hf_home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from discl.clipscore import ClipEmbedder, ClipScorer, parse_resize
        from discl.tiny import install_tiny_models

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if not args.hf_home:
            install_tiny_models(folder / "hf_home")
        syn_dir, table = build_workload(folder, args)
        import torch

        print(f"workload: {args.images} real images x {args.seeds} seeds x {args.strengths} strengths = "
              f"{len(table)} synthetic images; model {args.model} on {args.device}, "
              f"{torch.get_num_threads()} torch threads")

        embedder = ClipEmbedder(args.model, args.device, args.batch_size)
        reference_loop(table.head(2), embedder.model, embedder.processor, args.device)  # warm-up
        model_time = ForwardTimer(embedder.model)
        # Interleave the two so a change in machine load hits both alike; report medians of wall and CPU time.
        reference_wall, reference_cpu, ours_wall, ours_cpu, ours_model = [], [], [], [], []
        for repeat in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            reference_text, reference_image = reference_loop(table, embedder.model, embedder.processor,
                                                             args.device)
            reference_wall.append(time.perf_counter() - wall)
            reference_cpu.append(time.process_time() - cpu)
            model_time.seconds = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            scorer = ClipScorer(embedder, syn_dir / f"clip_cache_{repeat}", parse_resize("480x270"), workers=4)
            ours, stats = scorer.score(table)  # a fresh cache each time: cold, every image encoded
            ours_wall.append(time.perf_counter() - wall)
            ours_cpu.append(time.process_time() - cpu)
            ours_model.append(model_time.seconds)
            print(f"  repeat {repeat + 1}: reference {reference_wall[-1]:.2f} s, ours {ours_wall[-1]:.2f} s, "
                  f"ratio {reference_wall[-1] / ours_wall[-1]:.1f}", flush=True)
        ratios = np.array(reference_wall) / np.array(ours_wall)
        reference_s, ours_s = float(np.median(reference_wall)), float(np.median(ours_wall))
        cpu_ratio = float(np.median(np.array(reference_cpu) / np.array(ours_cpu)))

        text_diff = np.abs(ours["clip_image_text"].to_numpy() - reference_text).max()
        image_diff = np.abs(ours["clip_image_image"].to_numpy() - reference_image).max()
        print(f"reference loop: {reference_s:.2f} s wall, {np.median(reference_cpu):.2f} s CPU "
              f"({3 * len(table)} encoder calls at batch 1; median of {args.repeats})")
        print(f"ours (cold cache): {ours_s:.2f} s wall, {np.median(ours_cpu):.2f} s CPU, "
              f"{100 * np.median(np.array(ours_model) / np.array(ours_wall)):.0f}% of it in CLIP forwards "
              f"(encoded {stats.texts_encoded} prompts, {stats.real_encoded} real, {stats.synthetic_encoded} "
              f"synthetic images in batches of {args.batch_size})")
        print(f"max |difference|: image-text {text_diff:.2e}, image-image {image_diff:.2e}")
        if max(text_diff, image_diff) > 1e-5:
            raise SystemExit(f"scores differ by more than 1e-5 ({max(text_diff, image_diff):.2e})")
        print(f"CPU-time ratio {cpu_ratio:.1f} (all threads counted; our decoding runs in a thread pool)")
        print(f"per-repeat wall-time ratios: {' '.join(f'{r:.1f}' for r in ratios)} (min {ratios.min():.1f}, "
              f"median {np.median(ratios):.1f}, max {ratios.max():.1f})")
        print(f"speedup={float(np.median(ratios)):.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
