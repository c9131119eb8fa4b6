"""Zero-shot heads: hand-computed numbers on a lookup-table encoder, then the real tiny open_clip model."""

from __future__ import annotations

import math

import pytest
import torch

from discl.zeroshot import build_zeroshot_head, render_template, zeroshot_logits


class LookupClip(torch.nn.Module):
    """A CLIP-shaped module whose text embedding is a fixed vector per text, so the head can be computed by hand."""

    def __init__(self, text_vectors: dict[str, list[float]]):
        super().__init__()
        self.texts = list(text_vectors)
        self.table = torch.nn.Parameter(torch.tensor(list(text_vectors.values())), requires_grad=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
        self.calls = 0

    def tokenize(self, texts):
        return torch.tensor([self.texts.index(t) for t in texts])

    def encode_text(self, tokens):
        self.calls += 1
        return self.table[tokens]

    def encode_image(self, images):
        return images.flatten(1)


def test_head_and_logits_match_hand_computation():
    model = LookupClip({
        "a photo of cat.": [3.0, 4.0],   # normalised (0.6, 0.8)
        "cat in the wild.": [5.0, 0.0],  # normalised (1, 0)
        "a photo of dog.": [0.0, -2.0],  # normalised (0, -1)
        "dog in the wild.": [0.0, -7.0],  # normalised (0, -1)
    })
    templates = ["a photo of {}.", lambda c: f"{c} in the wild."]
    head = build_zeroshot_head(model, model.tokenize, ["cat", "dog"], templates, batch_size=3)
    # cat: mean (0.8, 0.4), norm sqrt(0.8) -> (2/sqrt5, 1/sqrt5); dog: (0, -1)
    expected = torch.tensor([[2 / math.sqrt(5), 1 / math.sqrt(5)], [0.0, -1.0]])
    torch.testing.assert_close(head, expected)
    assert model.calls == 2  # 4 texts in batches of 3
    images = torch.tensor([[0.0, 2.0], [-1.0, -1.0]])  # normalised: (0, 1), (-1, -1)/sqrt2
    logits = zeroshot_logits(model, images, head)
    expected_logits = 10 * torch.tensor([[1 / math.sqrt(5), -1.0],
                                         [-3 / math.sqrt(10), 1 / math.sqrt(2)]])
    torch.testing.assert_close(logits, expected_logits)


def test_render_template_accepts_format_strings_and_callables():
    assert render_template("a photo of {}.", "cheetah") == "a photo of cheetah."
    assert render_template(lambda c: f"{c} in the wild.", "cheetah") == "cheetah in the wild."


def test_empty_inputs_rejected():
    model = LookupClip({"x": [1.0, 0.0]})
    with pytest.raises(ValueError):
        build_zeroshot_head(model, model.tokenize, [], ["{}"])


@pytest.fixture(scope="module")
def tiny_clip():
    from discl.models import create_open_clip
    from discl.tiny import TINY_OPEN_CLIP

    model, _, preprocess_val, tokenizer = create_open_clip(TINY_OPEN_CLIP, "")
    return model.eval(), preprocess_val, tokenizer


def test_head_on_tiny_open_clip_equals_one_text_at_a_time(tiny_clip):
    model, _, tokenizer = tiny_clip
    classes, templates = ["cheetah", "puma", "white-lipped peccary"], ["a photo of {}.", "{} in the wild."]
    head = build_zeroshot_head(model, tokenizer, classes, templates, batch_size=4)
    with torch.no_grad():
        rows = []
        for name in classes:
            vectors = [model.encode_text(tokenizer([t.format(name)]))[0] for t in templates]
            mean = torch.stack([v / v.norm() for v in vectors]).mean(0)
            rows.append(mean / mean.norm())
    torch.testing.assert_close(head, torch.stack(rows), atol=1e-5, rtol=1e-5)
    assert head.shape == (3, model.text_projection.shape[1])
    assert model.training is False

    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = zeroshot_logits(model, images, head)
        features = model.encode_image(images)
        by_hand = model.logit_scale.exp() * (features / features.norm(dim=1, keepdim=True)) @ head.T
    torch.testing.assert_close(logits, by_hand, atol=1e-5, rtol=1e-5)


def test_head_equals_open_clips_builder(tiny_clip):
    from open_clip import build_zero_shot_classifier

    model, _, tokenizer = tiny_clip
    classes, templates = ["cheetah", "puma", "ocelot"], ["a photo of {}.", "{} in the wild."]
    theirs = build_zero_shot_classifier(model, tokenizer, classes, templates, num_classes_per_batch=2, device="cpu")
    torch.testing.assert_close(build_zeroshot_head(model, tokenizer, classes, templates), theirs.T.float(),
                               atol=1e-6, rtol=1e-6)
