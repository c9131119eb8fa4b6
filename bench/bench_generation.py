"""Benchmark: the reference's generation loop against ours, on the tiny SDXL-refiner pipeline (CPU, offline).

The reference makes one pipeline call per (image, seed, strength) at batch 1, re-encoding the prompt and the
real image every call; ours (``discl.generation.runner.SpectrumGenerator``) encodes each once and runs each (block,
strength) group as batched calls with one generator per sample. Same seeds, so the outputs are compared.
Forward hooks on the UNet, VAE and text encoder time the model; ``overhead`` = our wall time outside them.

    python bench/bench_generation.py                # 16 px, 4 images x 8 seeds x 3 strengths, 10 steps, batch 32
    python bench/bench_generation.py --size 64x64   # where a 2-core CPU is compute-bound

Last line: ``speedup=<x> overhead=<y>%``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def get_args_parser() -> argparse.ArgumentParser:
    """Work size and threads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="source images")
    # Small on purpose: on a CPU the tiny UNet is compute-bound from ~32 px on, where batching cannot help
    # (docs/generation.md has the sweep); at 16 px per-call overhead dominates, as for batch-1 calls on a GPU.
    parser.add_argument("--size", default="16x16", help="input size WIDTHxHEIGHT")
    parser.add_argument("--seeds", nargs="+", type=int, default=[10, 20, 30, 40, 42, 50, 60, 70])
    parser.add_argument("--strengths", nargs="+", type=float, default=[0.5, 0.8, 1.0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=("fp32", "fp64"), default="fp32",
                        help="fp64 makes batched kernels round alike, so outputs must be byte-identical")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 avoids OpenMP oversubscription on a shared machine)")
    parser.add_argument("--hf-home", default=None, help="HF_HOME holding the tiny models (default: a temp folder)")
    return parser


class ForwardTimer:
    """Wall time spent inside the forwards of some modules (outermost calls only)."""

    def __init__(self, modules):
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0
        for module in modules:
            module.register_forward_pre_hook(self._enter)
            module.register_forward_hook(self._leave)

    def _enter(self, *_):
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1

    def _leave(self, *_):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start


def source_images(count: int, size: tuple[int, int]):
    """``count`` different crops of the photos scikit-learn ships."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top, left = 37 * index % (photo.shape[0] - 200), 53 * index % (photo.shape[1] - 300)
        crops.append(Image.fromarray(photo[top:top + 200, left:left + 300]).resize(size))
    return crops


def main(argv=None) -> int:
    """Run both loops on the same work, check the outputs agree, print the rates."""
    args = get_args_parser().parse_args(argv)
    hf_home = Path(args.hf_home or tempfile.mkdtemp(prefix="discl-bench-hf-"))
    # Before any Hugging Face import: their cache constants are read at import time.
    os.environ.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import numpy as np
    import torch

    from discl import generation
    from discl.datasets import get_dataset
    from discl.models import REFINER_ID
    from discl.tiny.models import install_model

    torch.set_num_threads(args.threads)
    install_model(hf_home, REFINER_ID)
    backend = generation.load_backend("sdxl-refiner", REFINER_ID, args.dtype, "cpu")
    pipe = backend.pipe
    # vae.encode / vae.decode are methods, not forward(): the backend lists the submodules they run.
    timer = ForwardTimer(backend.modules())
    width, height = (int(v) for v in args.size.split("x"))
    pixels = {f"bench/img{i}": image for i, image in enumerate(source_images(args.images, (width, height)))}
    sources = [generation.SourceImage(i + 1, 0, "acinonyx jubatus", "bench", "", f"img{i}", (width, height))
               for i in range(args.images)]
    prompts = generation.PromptSource(get_dataset("iwildcam"))
    prompt = prompts.prompt(generation.WorkItem(sources[0], 1.0, 0))  # "a photo of cheetah in the wild"
    items = [generation.WorkItem(s, strength, seed) for s in sources for seed in args.seeds
             for strength in args.strengths]
    n = len(items)

    # Warm-up, so one-time allocations count for neither side.
    pipe(prompt=prompt, image=pixels["bench/img0"], strength=1.0, guidance_scale=10, num_inference_steps=2)

    engine = generation.SpectrumGenerator(backend, guidance_scale=10, steps=args.steps, batch_size=args.batch_size,
                                          prompts=prompts)
    blocks = generation.make_blocks(sources, generation.images_per_block(args.batch_size, len(args.seeds)))
    reference, ours = {}, {}
    wall = {"reference": 0.0, "ours": 0.0}
    cpu = dict(wall)
    model = dict(wall)

    def timed(side: str, work) -> None:
        timer.seconds = 0.0
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        work()
        wall[side] += time.perf_counter() - wall_start
        cpu[side] += time.process_time() - cpu_start
        model[side] += timer.seconds

    def reference_loop(strength: float) -> None:
        for item in (i for i in items if i.strength == strength):  # batch 1, prompt re-encoded every call
            generator = torch.Generator().manual_seed(generation.generator_seed(item, prompt))
            reference[item] = pipe(prompt=prompt, image=pixels[item.source.image_id], strength=strength,
                                   guidance_scale=10, num_inference_steps=args.steps, generator=generator).images[0]

    def our_loop(strength: float) -> None:
        for group in generation.make_groups(blocks, [strength], args.seeds):
            engine.run_group(group, pixels, lambda outcome: ours.__setitem__(outcome.item, outcome.image))

    # The two loops alternate strength by strength, so a busy shared machine slows both alike.
    for strength in args.strengths:
        timed("reference", lambda: reference_loop(strength))
        timed("ours", lambda: our_loop(strength))

    diffs = np.stack([np.abs(np.asarray(reference[i], np.int16) - np.asarray(ours[i], np.int16)) for i in items])
    speedup = wall["reference"] / wall["ours"]
    overhead = 100 * (wall["ours"] - model["ours"]) / wall["ours"]
    print(f"work: {args.images} images x {len(args.seeds)} seeds x {len(args.strengths)} strengths = {n} images, "
          f"{width}x{height}, {args.steps} steps, batch {args.batch_size}, {args.threads} thread(s), {args.dtype}")
    for side, name in (("reference", "reference loop"), ("ours", "ours (batched)")):
        print(f"{name}: {n / wall[side]:6.2f} images/s ({wall[side]:.1f} s wall, {cpu[side]:.1f} s CPU, "
              f"{100 * model[side] / wall[side]:.0f}% of wall time in model forwards)")
    print(f"CPU-time ratio {cpu['reference'] / cpu['ours']:.2f} (insensitive to other load on the machine)")
    print(f"outputs: {len(ours)}/{n} images; max |difference| {diffs.max()} grey level(s), "
          f"{100 * (diffs > 0).mean():.3f}% of values differ (float rounding of batched kernels)")
    if len(ours) != n or diffs.max() > (0 if args.dtype == "fp64" else 2):
        raise SystemExit("outputs differ: the batched generator does not reproduce the reference loop")
    print(f"speedup={speedup:.2f} overhead={overhead:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
