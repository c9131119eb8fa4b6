"""Benchmark: the reference's generation loop against ours, on the tiny SDXL-refiner pipeline (CPU, offline).

The reference makes one pipeline call per (image, seed, strength) at batch 1 and re-encodes the prompt every
call; ours (``discl.generation.SpectrumGenerator``) encodes each prompt once and runs each (block, strength)
group as batched calls with one generator per sample. Both make the same images with the same per-sample seeds;
the outputs are compared. Model time is measured with forward hooks on the UNet, VAE and text encoder;
``overhead`` is the share of our wall time spent outside them.

    python bench/bench_generation.py                     # 64 px, 4 images x 8 seeds x 3 strengths, 10 steps

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
    parser.add_argument("--size", default="64x64", help="input size WIDTHxHEIGHT")
    parser.add_argument("--seeds", nargs="+", type=int, default=[10, 20, 30, 40, 42, 50, 60, 70])
    parser.add_argument("--strengths", nargs="+", type=float, default=[0.5, 0.8, 1.0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
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
    from discl.models import REFINER_ID, load_img2img_pipeline
    from discl.tiny.models import install_model

    torch.set_num_threads(args.threads)
    install_model(hf_home, REFINER_ID)
    pipe = load_img2img_pipeline(REFINER_ID, "fp32", "cpu")
    # vae.encode / vae.decode are methods, not forward(): hook the submodules they run.
    vae = pipe.vae
    timer = ForwardTimer([pipe.unet, pipe.text_encoder_2, vae.encoder, vae.quant_conv, vae.decoder, vae.post_quant_conv])
    width, height = (int(v) for v in args.size.split("x"))
    pixels = {f"bench/img{i}": image for i, image in enumerate(source_images(args.images, (width, height)))}
    sources = [generation.SourceImage(i + 1, 0, "cheetah", "bench", "", f"img{i}", (width, height))
               for i in range(args.images)]
    prompts = generation.PromptSource("iwildcam")
    prompt = "a photo of cheetah in the wild"
    prompts.prompt = lambda item, attempt=0: prompt  # the bench's sources are not real iWildCam species
    items = [generation.WorkItem(s, strength, seed) for s in sources for seed in args.seeds
             for strength in args.strengths]
    n = len(items)

    # Warm-up, so one-time allocations count for neither side.
    pipe(prompt=prompt, image=pixels["bench/img0"], strength=1.0, guidance_scale=10, num_inference_steps=2)

    timer.seconds, start = 0.0, time.perf_counter()
    reference = {}
    for item in items:  # the reference: batch 1, the prompt re-encoded by every call
        generator = torch.Generator().manual_seed(generation.generator_seed(item, prompt))
        reference[item] = pipe(prompt=prompt, image=pixels[item.source.image_id], strength=item.strength,
                               guidance_scale=10, num_inference_steps=args.steps, generator=generator).images[0]
    reference_seconds, reference_model = time.perf_counter() - start, timer.seconds

    engine = generation.SpectrumGenerator(pipe, guidance_scale=10, steps=args.steps, batch_size=args.batch_size,
                                          prompts=prompts)
    blocks = generation.make_blocks(sources, generation.images_per_block(args.batch_size, len(args.seeds)))
    ours = {}
    timer.seconds, start = 0.0, time.perf_counter()
    for group in generation.make_groups(blocks, args.strengths, args.seeds):
        engine.run_group(group, pixels, lambda outcome: ours.__setitem__(outcome.item, outcome.image))
    our_seconds, our_model = time.perf_counter() - start, timer.seconds

    diffs = np.stack([np.abs(np.asarray(reference[i], np.int16) - np.asarray(ours[i], np.int16)) for i in items])
    speedup = reference_seconds / our_seconds
    overhead = 100 * (our_seconds - our_model) / our_seconds
    print(f"work: {args.images} images x {len(args.seeds)} seeds x {len(args.strengths)} strengths = {n} images, "
          f"{width}x{height}, {args.steps} steps, batch {args.batch_size}, {args.threads} thread(s)")
    print(f"reference loop: {n / reference_seconds:6.2f} images/s ({reference_seconds:.1f} s, "
          f"{100 * reference_model / reference_seconds:.0f}% in model forwards)")
    print(f"ours (batched): {n / our_seconds:6.2f} images/s ({our_seconds:.1f} s, "
          f"{100 * our_model / our_seconds:.0f}% in model forwards)")
    print(f"outputs: {len(ours)}/{n} images; max |difference| {diffs.max()} grey level(s), "
          f"{100 * (diffs > 0).mean():.3f}% of values differ (float rounding of batched kernels)")
    if len(ours) != n or diffs.max() > 2:
        raise SystemExit("outputs differ: the batched generator does not reproduce the reference loop")
    print(f"speedup={speedup:.2f} overhead={overhead:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
