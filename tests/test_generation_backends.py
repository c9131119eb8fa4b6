"""Generation on the registry and behind a backend seam: the plan imports without torch, the backend registry, the
real diffusers Stable Diffusion img2img pipeline (a tiny SD 1.5 built from diffusers' fast-test configs) through
our runner, and every dataset difference read from the dataset object (a dataset defined in this file)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from PIL import Image

from helpers import load_script

from discl import generation
from discl.cli import run_cli
from discl.config import paper_defaults
from discl.data.hard_sample_csv import write_hard_sample_csv
from discl.datasets import Dataset, get_dataset, register
from discl.errors import InputError
from discl.generation.backend import SD15_ID
from discl.guidance import level_from_strength, strength_percent
from discl.manifest import read_manifest
from discl.models import REFINER_ID

GENERIC_SCRIPT = "data_generation/gene_img.py"
TINY = ["--steps", "2", "--batch-size", "4", "--dtype", "fp32"]


def output_bytes(output: Path) -> dict[str, bytes]:
    """Every synthetic JPEG under ``output``, relative path → bytes."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*.jpg"))}


@register
class ZooDataset(Dataset):
    """A dataset that sets every generation hook away from the base defaults, to see each one read."""

    name: ClassVar[str] = "gen_test_zoo"
    never_regenerated: ClassVar[frozenset[str]] = frozenset({"ghost"})
    generation_resolution: ClassVar[tuple[int, int] | None] = (24, 16)
    quality_retry: ClassVar[bool] = True

    def class_names(self) -> list[str]:
        return ["ghost", "red panda", "snow leopard"]

    def generation_prompt(self, class_name: str) -> str:
        return f"a zoo keeper's photo of a {class_name}"

    def class_text(self, class_name: str) -> str:
        return f"zoo animal: {class_name}"


@register
class PromptListDataset(ZooDataset):
    """A dataset whose prompts come from an LLM prompt JSON."""

    name: ClassVar[str] = "gen_test_prompt_list"
    uses_prompt_json: ClassVar[bool] = True


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def sd15(hf_home) -> str:
    """A tiny Stable Diffusion 1.5 img2img pipeline installed under the real Hub id."""
    from discl.tiny.models import install_model

    install_model(hf_home, SD15_ID)
    return SD15_ID


@pytest.fixture(scope="session")
def mini_folder(tmp_path_factory) -> Path:
    from discl.tiny.datasets import make_mini_folder

    return make_mini_folder(tmp_path_factory.mktemp("folder"))


@pytest.fixture(scope="session")
def folder_csv(mini_folder, tmp_path_factory) -> Path:
    """Hard-sample CSV of the folder dataset: one training image of each of two classes, relative paths."""
    dataset = get_dataset("folder", mini_folder)
    rows = []
    for label in (2, 4):  # rocket, tabby_cat
        name = dataset.class_names()[label]
        path = sorted((mini_folder / "train" / name).glob("*.jpg"))[0]
        rows.append({"class_id": label, "class_name": name, "real_path": str(path.relative_to(mini_folder)),
                     "image_stem": path.stem})
    csv = tmp_path_factory.mktemp("hard") / "folder_hard.csv"
    write_hard_sample_csv(pd.DataFrame(rows), csv, dataset)
    return csv


@pytest.fixture(scope="session")
def zoo_csv(mini_folder, tmp_path_factory) -> Path:
    """Hard-sample CSV of the zoo dataset: a 'ghost' row (never regenerated) and one image per animal."""
    images = sorted((mini_folder / "train" / "tabby_cat").glob("*.jpg"))
    frame = pd.DataFrame({"class_id": [0, 1, 2], "class_name": ["ghost", "red panda", "snow leopard"],
                          "real_path": [str(p) for p in images[:3]], "image_stem": [p.stem for p in images[:3]]})
    csv = tmp_path_factory.mktemp("zoo") / "zoo_hard.csv"
    write_hard_sample_csv(frame, csv, get_dataset("gen_test_zoo"))
    return csv


@pytest.fixture(scope="session")
def generic_script(repo_root):
    return load_script(GENERIC_SCRIPT)


def folder_args(csv: Path, root: Path, output: Path, *extra: str) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(root), "--data-csv", str(csv), "--output-path", str(output),
            "--backend", "sd", "--strengths", "0.5", "1.0", *TINY, "--seeds", "10", "20", *extra]


@pytest.fixture(scope="session")
def sd_run(sd15, folder_csv, mini_folder, generic_script, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("sd") / "run"
    assert generic_script.main(folder_args(folder_csv, mini_folder, output)) == 0
    return output


# ------------------------------------------------------------------------------------------------ no torch in the plan

def test_plan_and_package_import_without_torch_or_diffusers():
    """The plan is pure; importing the package (and the entry script's parser) loads no model library."""
    code = ("import sys, discl.generation.plan, discl.generation, discl.generation.config;"
            "discl.generation.runner.get_args_parser('iwildcam');"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers'));"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ the backend registry

def test_backend_registry_and_paper_default():
    assert set(generation.BACKENDS) == {"sdxl-refiner", "sdxl", "sd"}
    # The paper's model: the SDXL refiner, loaded as its fp16 variant, text guidance 10, 50 steps.
    assert generation.DEFAULT_BACKEND == "sdxl-refiner"
    assert generation.backend_class("sdxl-refiner").default_model == REFINER_ID
    config = generation.GenerationConfig("iwildcam", Path("hard.csv"), Path("out"))
    assert (config.backend, config.model_id, config.variant, config.dtype) == ("sdxl-refiner", REFINER_ID, "fp16",
                                                                                 "fp16")
    assert (config.guidance_scale, config.steps, config.retry_threshold, config.max_retries) == (10.0, 50, 0.3, 5)
    assert config.strengths == tuple(k / 10 for k in range(1, 11))
    assert config.seeds == (10, 20, 30, 40, 42, 50, 60, 70)
    assert paper_defaults(generation.GenerationConfig) == {
        "backend": "sdxl-refiner", "variant": "fp16", "dtype": "fp16",
        "strengths": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "seeds": (10, 20, 30, 40, 42, 50, 60, 70),
        "guidance_scale": 10.0, "steps": 50, "clip_model": "openai/clip-vit-base-patch32", "retry_threshold": 0.3,
        "max_retries": 5}
    assert generation.GenerationConfig("iwildcam", Path("h.csv"), Path("o"), backend="sd").model_id == SD15_ID
    assert generation.backend_class("sd").embed_names == ("prompt_embeds", "negative_prompt_embeds")
    with pytest.raises(InputError, match="--backend: unknown backend 'dalle'"):
        generation.backend_class("dalle")
    with pytest.raises(InputError, match="--backend"):
        generation.GenerationConfig("iwildcam", Path("h.csv"), Path("o"), backend="dalle")


def test_parser_keeps_the_reference_spellings():
    parser = generation.get_args_parser("iwildcam")
    args = parser.parse_args(["--data_csv", "h.csv", "--output_path", "o", "--total_parts", "3", "--part", "2",
                              "--prompt_json", "p.json", "--resize", "64x36", "--strengths", "0.3,0.1", "1",
                              "--seeds", "20", "10", "--skip-bad", "--data-root", "/r"])
    config = generation.config_from_args(args)
    assert (config.dataset, config.data_csv, config.output_dir) == ("iwildcam", Path("h.csv"), Path("o"))
    assert (config.part, config.total_parts, config.prompt_json) == (2, 3, Path("p.json"))
    assert (config.resolution, config.strengths, config.seeds, config.skip_bad) == ("64x36", (0.1, 0.3, 1.0),
                                                                                    (10, 20), True)
    assert config.image_root == Path("/r")  # relative CSV paths resolve against --data-root by default
    args = parser.parse_args(["--data-csv", "h.csv", "--image-root", "/img", "--data-root", "/r"])
    assert generation.config_from_args(args).image_root == Path("/img")
    assert generation.get_args_parser(None).parse_args(["--dataset", "folder", "--data-csv", "h"]).dataset == "folder"
    with pytest.raises(SystemExit):  # the generic script needs --dataset
        generation.get_args_parser(None).parse_args(["--data-csv", "h.csv"])


# ------------------------------------------------------------------------------------------------ SD 1.5 img2img

def test_sd_backend_batched_equals_the_pipeline_call(sd15):
    """The stock pipeline's own call (prompt string, PIL image, batch 1) and our batched call on precomputed
    embeddings and latents make byte-identical JPEGs in fp64."""
    import io

    import torch

    backend = generation.load_backend("sd", dtype="fp64", device="cpu")
    assert type(backend.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a).resize((24, 24)) for a in load_sample_images().images]
    sources = [generation.SourceImage(i + 1, 0, "rocket", "rocket", "", f"img{i}", (24, 24)) for i in range(2)]
    pixels = {s.image_id: photo for s, photo in zip(sources, photos)}
    prompts = generation.PromptSource(get_dataset("folder"))
    group = generation.Group(tuple(sources), 0.5, (10, 20))
    reference = {}
    for item in group.items:
        prompt = prompts.prompt(item)
        assert prompt == "a photo of a rocket"
        generator = torch.Generator().manual_seed(generation.generator_seed(item, prompt))
        reference[item] = backend.pipe(prompt=prompt, image=pixels[item.source.image_id], strength=0.5,
                                       guidance_scale=10, num_inference_steps=2, generator=generator).images[0]
    engine = generation.SpectrumGenerator(backend, guidance_scale=10, steps=2, batch_size=4, prompts=prompts)
    ours = {}
    engine.run_group(group, pixels, lambda outcome: ours.__setitem__(outcome.item, outcome.image))

    def jpeg(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=75)
        return buffer.getvalue()

    assert set(ours) == set(reference)
    assert all(jpeg(ours[item]) == jpeg(reference[item]) for item in group.items)
    assert len({jpeg(image) for image in ours.values()}) == 4  # seeds and images really differ
    assert len(engine._prompt_embeds) == 1


def test_sd_backend_through_the_runner_on_the_folder_dataset(sd_run, folder_csv, mini_folder, generic_script,
                                                             tmp_path, capsys):
    files = output_bytes(sd_run)
    assert len(files) == 2 * 2 * 2  # images × strengths × seeds
    layout = r"(rocket|tabby_cat)/Strength(50|100)_guidance100_seed(10|20)/[^/]+\.jpg"
    assert all(re.fullmatch(layout, p) for p in files)
    manifest = read_manifest(sd_run / "manifests" / "part001-of001.csv")
    assert sorted(manifest["synthetic_path"]) == sorted(files)
    assert set(manifest["dataset"]) == {"folder"}
    assert set(manifest["prompt"]) == {"a photo of a rocket", "a photo of a tabby cat"}  # readable names
    for row in manifest.itertuples():
        assert row.image_guidance == level_from_strength(row.strength)
        assert f"Strength{strength_percent(row.strength)}_" in row.synthetic_path
        assert row.tries == 1  # the folder dataset has no quality retry
        real = Image.open(mini_folder / "train" / row.class_name / f"{row.image_stem}.jpg")
        assert Image.open(sd_run / row.synthetic_path).size == real.size  # native size (pipeline: multiple of 8)
    # a rerun makes nothing; a fresh run makes the same bytes
    capsys.readouterr()
    assert generic_script.main(folder_args(folder_csv, mini_folder, sd_run)) == 0
    assert "0 images written, 8 already there" in capsys.readouterr().out
    again = tmp_path / "again"
    assert generic_script.main(folder_args(folder_csv, mini_folder, again)) == 0
    assert output_bytes(again) == files
    pd.testing.assert_frame_equal(read_manifest(again / "manifests" / "part001-of001.csv"), manifest)


def test_sd_backend_killed_group_is_remade_identically(sd_run, folder_csv, mini_folder, generic_script, tmp_path,
                                                       capsys):
    """A kill leaves every group half done (seed 10 missing, seed 20 there) and a temp file: the resume recomputes
    each group whole, writes only the missing images, and they are the uninterrupted run's bytes."""
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(sd_run, partial)
    removed = sorted(partial.rglob("*seed10/*.jpg"))
    assert len(removed) == 4
    for path in removed:
        path.unlink()
    (removed[0].parent / ".tmp-x.jpg.abc123").write_bytes(b"half a JPEG")
    capsys.readouterr()
    assert generic_script.main(folder_args(folder_csv, mini_folder, partial)) == 0
    assert "4 images written, 4 already there" in capsys.readouterr().out
    assert output_bytes(partial) == output_bytes(sd_run)
    assert not list(partial.rglob(".tmp-*"))


# ------------------------------------------------------------------------------------------------ dataset hooks

def test_every_generation_difference_comes_from_the_dataset(sd15, zoo_csv, generic_script, tmp_path):
    """never_regenerated, generation_resolution, quality_retry, generation_prompt and class_text of a dataset
    defined outside the package are what the run uses."""
    import json

    output = tmp_path / "zoo"
    base = ["--dataset", "gen_test_zoo", "--data-csv", str(zoo_csv), "--backend", "sd", "--strengths", "1.0",
            "--seeds", "10", *TINY]
    assert generic_script.main([*base, "--output-path", str(output), "--max-retries", "1",
                                "--retry-text", "class"]) == 0
    manifest = read_manifest(output / "manifests" / "part001-of001.csv")
    assert sorted(manifest["class_name"]) == ["red panda", "snow leopard"]  # 'ghost' is never regenerated
    assert set(manifest["prompt"]) == {"a zoo keeper's photo of a red panda", "a zoo keeper's photo of a snow leopard"}
    # The tiny CLIP is random: similarities sit near 0 (<= 0.3), so every image uses its one extra try.
    assert set(manifest["tries"]) == {2}
    for row in manifest.itertuples():
        assert Image.open(output / row.synthetic_path).size == (24, 16)  # the dataset's input size
        record = json.loads(generation.retry_record_path(output, row.synthetic_path).read_text())
        assert len(record["attempts"]) == 2
    plain = tmp_path / "plain"
    assert generic_script.main([*base, "--output-path", str(plain), "--no-quality-retry", "--resolution",
                                "native"]) == 0
    manifest = read_manifest(plain / "manifests" / "part001-of001.csv")
    assert set(manifest["tries"]) == {1} and not (plain / "manifests" / "retries").exists()
    for row in manifest.itertuples():
        assert Image.open(plain / row.synthetic_path).size == Image.open(row.real_path).size


def test_prompt_json_datasets_need_one(zoo_csv, generic_script, tmp_path, capsys):
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(generic_script.main, ["--dataset", "gen_test_prompt_list", "--data-csv", str(zoo_csv),
                                      "--output-path", str(output)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert re.fullmatch(r"error: --prompt-json: the gen_test_prompt_list dataset draws its prompts from an LLM "
                        r"prompt JSON .*", error), error
    assert not output.exists()


def test_prompt_source_reads_the_dataset():
    zoo = get_dataset("gen_test_zoo")
    item = generation.WorkItem(generation.SourceImage(1, 1, "red panda", "red_panda", "/x.jpg", "x"), 0.5, 10)
    source = generation.PromptSource(zoo, retry_text="class")
    assert source.prompt(item) == "a zoo keeper's photo of a red panda"
    assert source.score_text(item, "anything") == "zoo animal: red panda"
    listed = generation.PromptSource(zoo, {"red panda": ["a red panda asleep on a branch in the rain"]})
    assert listed.prompt(item) == "a 8k real photo: a red panda asleep on a branch in the rain"
    assert generation.PromptSource(zoo).score_text(item, "the prompt") == "the prompt"
