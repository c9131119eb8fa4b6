"""Decoding 1920×1080 JPEGs for 480×270 (generation, scoring) and 224 (training): full decode vs draft mode.

The JPEGs are camera-trap-sized frames made from the photos scikit-learn ships, tiled at their native
resolution (3×3 crops of 640×360, so every frame has full-resolution detail, nothing is upsampled), saved at
``--quality`` (85 by default; the decode of a better-compressed file gains more, of a less compressed one less:
docs/performance.md has the sweep). Each is decoded three ways, interleaved image by image so machine load hits them alike:

* the reference: ``Image.open(path).convert("RGB").resize(size)`` (full decode, PIL's bicubic resize);
* ours, ``discl.imageio.load_rgb(path, size, draft=True)`` (decode at 1/2, 1/4 or 1/8, then resize);
* for the training size: full decode vs ``discl.imageio.decode(path, (224, 224))`` followed by the same
  ``Resize(224)`` of the shorter side.

Prints per target the median wall and CPU (thread) time per image of both paths, the speedups, and how far the
pixels move: max, 99.9th percentile and mean |difference| in grey levels and the PSNR. Last line:
``speedup=<x> max_diff=<d>``: the smaller CPU-time speedup of the two targets (decoding is single-threaded CPU
work, and its CPU time does not grow when other processes share the cores, unlike its wall time) and the
largest difference of any pixel of any image, in grey levels.

    python bench/bench_decode.py --images 12 --repeats 5 [--quality 95]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

FRAME = (1920, 1080)
TILE = (640, 360)


def get_args_parser() -> argparse.ArgumentParser:
    """Workload flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12, help="distinct 1920x1080 JPEGs")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the images (medians reported)")
    parser.add_argument("--quality", type=int, default=85,
                        help="JPEG quality of the test frames (85: ~440 KB per frame, a camera-trap file's size)")
    return parser


def make_frames(folder: Path, count: int, quality: int) -> list[Path]:
    """``count`` 1920×1080 JPEGs tiled from native-resolution crops of scikit-learn's sample photos."""
    from sklearn.datasets import load_sample_images

    from discl.fileio import atomic_save_image

    photos = load_sample_images().images  # two 427×640 photos
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        frame = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
        for row in range(FRAME[1] // TILE[1]):
            for col in range(FRAME[0] // TILE[0]):
                photo = photos[int(rng.integers(len(photos)))]
                top = int(rng.integers(photo.shape[0] - TILE[1] + 1))
                tile = photo[top:top + TILE[1], :TILE[0]]
                if rng.random() < 0.5:
                    tile = tile[:, ::-1]
                frame[row * TILE[1]:(row + 1) * TILE[1], col * TILE[0]:(col + 1) * TILE[0]] = tile
        path = folder / f"frame{index:03d}.jpg"
        atomic_save_image(Image.fromarray(frame), path, durable=False, quality=quality)
        paths.append(path)
    return paths


def reference_resize(path: Path, size: tuple[int, int]) -> Image.Image:
    """The reference's decode + resize."""
    return Image.open(path).convert("RGB").resize(size)


def shorter_side(image: Image.Image, side: int) -> Image.Image:
    """torchvision's ``Resize(side)`` (bicubic, antialiased) of a PIL image, as open_clip's transforms do."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    return F.resize(image, side, interpolation=InterpolationMode.BICUBIC)


def compare(paths: Sequence[Path], full: Callable[[Path], Image.Image], ours: Callable[[Path], Image.Image],
            repeats: int) -> dict:
    """Median seconds per image of both paths (interleaved per image) and the pixel differences."""
    times = {"full": [], "ours": [], "full_cpu": [], "ours_cpu": []}
    full(paths[0]), ours(paths[0])  # warm-up (imports, first allocations)
    for _ in range(repeats):
        for path in paths:
            for name, fn in (("full", full), ("ours", ours)):
                start, start_cpu = time.perf_counter(), time.thread_time()
                fn(path)
                times[name].append(time.perf_counter() - start)
                times[f"{name}_cpu"].append(time.thread_time() - start_cpu)
    diffs = [np.abs(np.asarray(full(p), np.int16) - np.asarray(ours(p), np.int16)) for p in paths]
    errors = np.concatenate([d.ravel() for d in diffs]).astype(np.float64)
    mse = float(np.mean(errors ** 2))
    return {**{name: float(np.median(values)) for name, values in times.items()},
            "max": int(errors.max()), "mean": float(errors.mean()), "p999": float(np.percentile(errors, 99.9)),
            "psnr": float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)}


def main(argv: Sequence[str] | None = None) -> int:
    """Time both paths for both targets, print the table and the last line."""
    from discl.imageio import decode, load_rgb

    args = get_args_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="discl-bench-decode-") as tmp:
        paths = make_frames(Path(tmp), args.images, args.quality)
        kilobytes = float(np.mean([p.stat().st_size for p in paths])) / 1024
        results = {
            "480x270 (generation, scoring)": compare(
                paths, lambda p: reference_resize(p, (480, 270)), lambda p: load_rgb(p, (480, 270), draft=True),
                args.repeats),
            "224 (training: Resize(224))": compare(
                paths, lambda p: shorter_side(Image.open(p).convert("RGB"), 224),
                lambda p: shorter_side(decode(p, (224, 224)), 224), args.repeats),
        }
    print(f"{args.images} JPEGs {FRAME[0]}x{FRAME[1]} (quality {args.quality}, {kilobytes:.0f} KB each), median of "
          f"{args.repeats} interleaved passes")
    for target, r in results.items():
        print(f"{target}: full decode + resize {1000 * r['full']:.1f} ms ({1000 * r['full_cpu']:.1f} ms CPU), "
              f"draft {1000 * r['ours']:.1f} ms ({1000 * r['ours_cpu']:.1f} ms CPU); "
              f"speedup {r['full'] / r['ours']:.2f} wall, {r['full_cpu'] / r['ours_cpu']:.2f} CPU")
        print(f"    |difference| max {r['max']}, 99.9th percentile {r['p999']:.0f}, mean {r['mean']:.2f} grey levels, "
              f"PSNR {r['psnr']:.1f} dB")
    # decoding is single-threaded CPU work: its CPU time does not grow when other processes share the cores
    speedup = min(r["full_cpu"] / r["ours_cpu"] for r in results.values())
    print(f"speedup={speedup:.2f} max_diff={max(r['max'] for r in results.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
