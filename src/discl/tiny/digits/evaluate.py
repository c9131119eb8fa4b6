"""What the digits world's models do: img2img across strengths, judged by the trained CLIP and in pixels.

``spectrum_table`` regenerates held-out digits with the prompt of *another* class (the hardest case of the
interpolation): at low strength the output should stay the source digit, at high strength it should be a digit
of the prompt's class. ``own_class_share`` is the test's check: generated images score higher against their own
prompt's class than against any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from discl.tiny.digits.data import DIGIT_NAMES, digit_images, split_indices, to_pil

if TYPE_CHECKING:
    from PIL import Image

PROMPT_TEMPLATE = "a photo of a {}"  # the folder dataset's generation prompt
SPECTRUM_STRENGTHS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def img2img(pipe, sources: Sequence[Image.Image], labels: Sequence[int], strength: float, steps: int = 20,
            guidance_scale: float = 7.5, seed: int = 0) -> list[Image.Image]:
    """The pipeline on ``sources`` with the prompt of class ``labels[i]``; one seeded generator per image."""
    import torch

    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(sources))]
    with torch.inference_mode():
        return pipe(prompt=[PROMPT_TEMPLATE.format(DIGIT_NAMES[label]) for label in labels], image=list(sources),
                    strength=strength, num_inference_steps=steps, guidance_scale=guidance_scale,
                    generator=generators).images


def class_scores(model, processor, images: Sequence[Image.Image]) -> np.ndarray:
    """Cosine similarity of each image with each class's prompt: ``(images, 10)``."""
    import torch

    texts = [PROMPT_TEMPLATE.format(name) for name in DIGIT_NAMES]
    with torch.inference_mode():
        inputs = processor(text=texts, images=list(images), return_tensors="pt", padding=True)
        output = model(**inputs)
        image = output.image_embeds / output.image_embeds.norm(dim=-1, keepdim=True)
        text = output.text_embeds / output.text_embeds.norm(dim=-1, keepdim=True)
    return (image @ text.T).numpy()


def own_class_share(scores: np.ndarray, labels: Sequence[int]) -> float:
    """Share of images whose own class's prompt scores higher than every other class's."""
    return float((scores.argmax(axis=1) == np.asarray(labels)).mean())


def held_out_sources(per_class: int, split: str = "test") -> tuple[list[Image.Image], np.ndarray]:
    """The first ``per_class`` digits of each class of a held-out split, as RGB images, and their labels."""
    images, labels = digit_images()
    chosen = [int(i) for label in range(len(DIGIT_NAMES))
              for i in [j for j in split_indices()[split] if labels[j] == label][:per_class]]
    return [to_pil(images[i]) for i in chosen], labels[chosen]


def spectrum_table(pipe, model, processor, per_class: int = 3, strengths: Sequence[float] = SPECTRUM_STRENGTHS,
                   steps: int = 20, guidance_scale: float = 7.5, offset: int = 5) -> list[dict]:
    """Per strength: share classified as the source / the prompt's class, and pixel RMSE to the source (0-1).

    Each held-out source of class ``c`` gets the prompt of class ``(c + offset) % 10``.
    """
    sources, labels = held_out_sources(per_class)
    prompts = (labels + offset) % len(DIGIT_NAMES)
    source_pixels = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in sources])
    real = class_scores(model, processor, sources)
    rows = [{"strength": 0.0, "source_class": own_class_share(real, labels),
             "prompt_class": own_class_share(real, prompts), "pixel_rmse": 0.0}]
    for strength in strengths:
        images = img2img(pipe, sources, prompts, strength, steps, guidance_scale)
        scores = class_scores(model, processor, images)
        pixels = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images])
        rows.append({"strength": strength, "source_class": own_class_share(scores, labels),
                     "prompt_class": own_class_share(scores, prompts),
                     "pixel_rmse": float(np.sqrt(((pixels - source_pixels) ** 2).mean()))})
    return rows
