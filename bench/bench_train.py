"""Is data loading hidden behind compute? The loader's throughput against the rate at which FLYP steps consume.

Loading = the training loop's own path for one batch: JPEG files of a realistic size (default 480×270, the size
the generation stage writes) → ``discl.training.data.TableImages`` (draft decode + open_clip train transform,
per-item seeds) → a stacked batch, as one DataLoader worker makes it. Its cost is measured as CPU time in this
process (one thread), which other processes on the machine hardly change. The step = the FLYP task's step (CLIP
loss, AdamW) on pre-loaded tensors: CPU time on a CPU (one torch thread), synchronised wall time on a GPU.

``--workers`` W worker processes deliver a batch every ``load / W``; a step that takes ``step`` waits
``max(0, load / W − step)`` for its data. The last line is that wait as a share of the step:
``data_overhead=<y>%``. (``--wall`` also runs the real DataLoader against the same step and prints the measured
wall-time overhead — on a CPU the workers and the step share the cores, so that figure moves with other load on
the machine; the model above is what a GPU node, whose step runs on the GPU, sees.)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from discl.cli import setup_logging
from discl.fileio import atomic_save_image
from discl.flyp import input_size
from discl.models import create_open_clip, default_device
from discl.tiny import TINY_OPEN_CLIP
from discl.tiny.models import register_tiny_open_clip
from discl.training.data import GlobalBatchSampler, Lookup, TableImages, make_loader


def get_args_parser() -> argparse.ArgumentParser:
    """Benchmark flags: image size and count, batch, steps, workers, model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=TINY_OPEN_CLIP)
    parser.add_argument("--pretrained", default="")
    parser.add_argument("--size", default="480x270", help="WxH of the JPEG files")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps and loaded batches (after warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for compute")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-jpeg-draft", action="store_true", help="full-size JPEG decodes (the reference's way)")
    parser.add_argument("--wall", action="store_true", help="also time the real DataLoader against the step")
    return parser


def write_images(folder: Path, count: int, size: tuple[int, int]) -> pd.DataFrame:
    """Photo-like JPEGs (smooth gradients + noise, so they compress like photos) and their table rows."""
    rng = np.random.default_rng(0)
    width, height = size
    ramp = np.linspace(0, 1, width)[None, :, None] * np.linspace(0.3, 1, height)[:, None, None]
    rows = []
    for index in range(count):
        base = ramp * rng.uniform(80, 255, size=3) + rng.normal(0, 12, size=(height, width, 3))
        path = folder / f"{index:05d}.jpg"
        atomic_save_image(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)), path, quality=90)
        rows.append({"filepath": str(path), "title": f"a photo of class {index % 8}.", "label": index % 8})
    return pd.DataFrame(rows)


def make_step(model, optimizer, device: str):
    """One FLYP optimisation step (CLIP loss on image/caption features), as the trainer does it."""
    from open_clip import ClipLoss

    loss_fn = ClipLoss()

    def step(images: torch.Tensor, tokens: torch.Tensor) -> None:
        image_features, text_features, scale = model(images.to(device, non_blocking=True),
                                                     tokens.to(device, non_blocking=True))
        loss = loss_fn(image_features, text_features, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def median_time(run, warmup: int, repeats: int, clock=time.perf_counter) -> float:
    """Median duration of ``run()`` by ``clock`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return float(np.median(times))


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging()
    logging.getLogger("root").setLevel(logging.WARNING)  # open_clip logs model creation on the root logger
    torch.set_num_threads(args.threads)
    device = args.device or default_device()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="discl-bench-train-") as tmp:
        if args.model == TINY_OPEN_CLIP:  # its config lives with the tiny models: write it here, not in HF_HOME
            register_tiny_open_clip(Path(tmp) / "configs")
        model, train_transform, _, tokenizer = create_open_clip(args.model, args.pretrained, device=device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.2)
        step = make_step(model, optimizer, device)
        total = args.warmup_steps + args.steps
        rows = write_images(Path(tmp), total * args.batch_size, size)  # every batch reads fresh files
        draft = None if args.no_jpeg_draft else input_size(model)
        captions, caption_index = np.unique(rows["title"].to_numpy(), return_inverse=True)
        dataset = TableImages(rows["filepath"].tolist(), Lookup(tokenizer(list(captions)), caption_index),
                              train_transform, seed=0, draft_size=draft)

        batch = [dataset[i] for i in range(args.batch_size)]
        images, tokens = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        on_gpu = device.startswith("cuda")
        # a CPU step is CPU work (one thread): its CPU time; a GPU step is timed by the (synchronised) wall clock
        step_clock = time.perf_counter if on_gpu else time.process_time
        preloaded = median_time(lambda: step(images, tokens), args.warmup_steps, args.steps, step_clock)

        batches = iter(GlobalBatchSampler(len(dataset), args.batch_size, seed=0))

        def load_batch():
            items = [dataset[i] for i in next(batches)]
            torch.stack([item[0] for item in items]), torch.stack([item[1] for item in items])

        loading = median_time(load_batch, args.warmup_steps, args.steps, time.process_time)
        wall = None
        if args.wall:
            def loader_iterator():
                sampler = GlobalBatchSampler(len(dataset), args.batch_size, seed=0)
                return iter(make_loader(dataset, sampler, workers=args.workers, pin_memory=on_gpu))

            # the warm-up includes the workers' start-up, as the first batches of every stage do
            loaded_batches = loader_iterator()
            wall_step = median_time(lambda: step(images, tokens), args.warmup_steps, args.steps)
            wall_loaded = median_time(lambda: step(*next(loaded_batches)[:2]), args.warmup_steps, args.steps)
            wall = 100.0 * (wall_loaded - wall_step) / wall_step
    per_batch = loading / max(1, args.workers)  # W workers, each on its own core
    overhead = 100.0 * max(0.0, per_batch - preloaded) / preloaded
    print(f"device={device} model={args.model} images={size[0]}x{size[1]} batch={args.batch_size} "
          f"workers={args.workers} threads={args.threads} jpeg_draft={draft} (median of {args.steps})")
    print(f"step on pre-loaded tensors: {1000 * preloaded:.1f} ms {'wall (GPU)' if on_gpu else 'CPU'} per batch")
    print(f"loading one batch:          {1000 * loading:.1f} ms CPU ({1000 * loading / args.batch_size:.2f} ms "
          f"per image); {args.workers} worker(s) deliver one every {1000 * per_batch:.1f} ms")
    print(f"loader capacity: {preloaded / per_batch:.1f}x what the step consumes")
    if wall is not None:
        print(f"measured wall-time overhead with the DataLoader on this machine: {wall:.1f}%")
    print(f"data_overhead={overhead:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
