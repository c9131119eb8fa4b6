"""The spectrum generator: shard/rank/block plans (hand-computed), batched == one-by-one, byte-identical reruns
across shards, ranks, processes and a kill -9, the ImageNet-LT quality retry, bad inputs, the spectrum figure and
the benchmark — on the tiny SDXL refiner and the mini datasets."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import load_script, one_hard_imagenet_lt_image

from discl import generation
from discl.cli import run_cli
from discl.data.hard_sample_csv import write_hard_sample_csv
from discl.datasets import get_dataset
from discl.errors import InputError
from discl.fileio import atomic_save_image
from discl.manifest import read_manifest
from discl.seeding import sample_seed

IWILDCAM_SCRIPT = "data_generation/iWildCam/gene_img.py"
IMAGENET_LT_SCRIPT = "data_generation/ImageNet_LT/gene_img.py"
SMALL = ["--strengths", "0.5", "1.0", "--seeds", "10", "20", "--steps", "2", "--batch-size", "4", "--dtype", "fp32"]



def output_bytes(output: Path) -> dict[str, bytes]:
    """Every synthetic JPEG under ``output`` (``.jpg``; ImageNet-LT's ``.JPEG``), relative path → bytes."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.suffix in (".jpg", ".JPEG") and p.parent.name.startswith("Strength")}


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def iwildcam_csv(mini_iwildcam, tmp_path_factory) -> Path:
    """Hard-sample CSV: two images of each of two mini-iWildCam species (paths relative to the data dir)."""
    data = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data / "metadata.csv")
    names = pd.read_csv(data / "categories.csv").set_index("y")["name"]
    train = metadata[(metadata["split"] == "train") & metadata["y"].isin([1, 2])].groupby("y").head(2)
    frame = pd.DataFrame({"class_id": train["y"], "class_name": train["y"].map(names),
                          "real_path": "train/" + train["filename"], "image_stem": train["filename"].str[:-4]})
    path = tmp_path_factory.mktemp("hard") / "iwildcam_hard.csv"
    write_hard_sample_csv(frame, path, "iwildcam")
    return path


@pytest.fixture(scope="session")
def iwildcam_script(repo_root):
    return load_script(IWILDCAM_SCRIPT)


@pytest.fixture(scope="session")
def imagenet_lt_script(repo_root):
    return load_script(IMAGENET_LT_SCRIPT)


def iwildcam_args(csv: Path, root: Path, output: Path, *extra: str) -> list[str]:
    return ["--data_csv", str(csv), "--image-root", str(root / "iwildcam_v2.0"), "--output_path", str(output),
            "--resolution", "32x20", *SMALL, *extra]


@pytest.fixture(scope="session")
def full_run(hf_home, iwildcam_csv, mini_iwildcam, iwildcam_script, tmp_path_factory) -> Path:
    """One uninterrupted single-shard run: the reference every other run must reproduce byte for byte."""
    output = tmp_path_factory.mktemp("gen") / "full"
    assert iwildcam_script.main(iwildcam_args(iwildcam_csv, mini_iwildcam, output)) == 0
    return output


# ------------------------------------------------------------------------------------------------ pure plans

def test_split_parts_hand_computed():
    assert generation.split_parts(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert generation.split_parts(2, 4) == [range(0, 1), range(1, 2), range(2, 2), range(2, 2)]
    assert generation.shard_classes(["d", "a", "c", "b", "e"], 1, 2) == ["a", "b", "c"]
    assert generation.shard_classes(["d", "a", "c", "b", "e"], 2, 2) == ["d", "e"]


@pytest.mark.parametrize("count", range(0, 12))
@pytest.mark.parametrize("total_parts", [1, 2, 3, 5])
def test_shards_are_disjoint_contiguous_and_cover(count, total_parts):
    names = [f"class{i:02d}" for i in range(count)]
    parts = [generation.shard_classes(names, k, total_parts) for k in range(1, total_parts + 1)]
    assert sum(parts, []) == sorted(names)  # covering, disjoint, contiguous, in name order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_blocks_groups_ranks_and_seeds():
    def src(row, folder, size=(64, 36)):
        return generation.SourceImage(row, 0, folder, folder, f"/x/{row}.jpg", f"img{row}", size)

    a1, a2, a3, b1 = src(1, "a"), src(2, "a"), src(3, "a", (48, 48)), src(4, "b")
    assert generation.images_per_block(8, 8) == 1
    assert generation.images_per_block(12, 8) == 2
    assert generation.images_per_block(4, 8) == 1
    # blocks never mix classes or input sizes; order follows the input
    assert generation.make_blocks([a1, a2, a3, b1], 2) == [(a1, a2), (a3,), (b1,)]
    groups = generation.make_groups([(a1, a2)], [0.5, 1.0], [10, 20])
    assert [(g.strength, len(g.items)) for g in groups] == [(0.5, 4), (1.0, 4)]
    assert [(i.source.csv_row, i.seed) for i in groups[0].items] == [(1, 10), (1, 20), (2, 10), (2, 20)]
    assert generation.rank_share(list("abcde"), 1, 2) == ["b", "d"]
    assert generation.batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    item = generation.WorkItem(a1, 0.5, 10)
    assert item.relpath(10.0) == "a/Strength50_guidance100_seed10/img1.jpg"
    assert generation.generator_seed(item, "p") == sample_seed("a/img1", "p", 0.5, 10)
    assert generation.generator_seed(item, "p", attempt=1) == sample_seed("a/img1#retry1", "p", 0.5, 10)


def test_plan_counts_what_is_on_disk_and_keeps_only_unfinished_groups(tmp_path):
    """make_plan: a group with every output on disk is not redone; the done set covers the groups left to do;
    with the quality retry an image without its record is not done."""
    sources = [generation.SourceImage(row, 0, folder, folder, f"/x/{row}.jpg", f"img{row}", (24, 24))
               for row, folder in ((1, "a"), (2, "a"), (3, "b"))]
    plan = generation.make_plan(sources, (0.5, 1.0), (10, 20), 4, 10.0, tmp_path, False)
    assert (plan.planned, plan.done_count, plan.missing, len(plan.todo), plan.done) == (12, 0, 12, 4, set())
    rel = [item.relpath(10.0) for group in plan.groups for item in group.items]
    finished, partial = rel[:4], rel[4:5]  # group 1 (a, 0.5) complete; group 2 (a, 1.0) one of four
    for path in finished + partial:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    (tmp_path / rel[6]).mkdir(parents=True)  # a folder where an image belongs is not an image
    plan = generation.make_plan(sources, (0.5, 1.0), (10, 20), 4, 10.0, tmp_path, False)
    assert plan.todo == plan.groups[1:] and plan.done == set(partial)
    assert (plan.done_count, plan.missing) == (5, 7)
    # two ranks share the images of the part: each counts its own
    shares = [generation.make_plan(sources, (0.5, 1.0), (10, 20), 4, 10.0, tmp_path, False, rank, 2)
              for rank in (0, 1)]
    assert [s.done_count for s in shares] == [5, 0] and sum(s.missing for s in shares) == 7
    # with the quality retry, only images with a readable record are done
    for path, text in ((rel[0], json.dumps({"prompt": "p", "tries": 1, "generator_seed": 1})), (rel[1], "{not json")):
        record = generation.retry_record_path(tmp_path, path)
        record.parent.mkdir(parents=True)
        record.write_text(text)
    plan = generation.make_plan(sources, (0.5, 1.0), (10, 20), 4, 10.0, tmp_path, True)
    assert plan.todo == plan.groups and plan.done == {rel[0]} and plan.done_count == 1
    for with_record in (False, True):  # the bulk scan says what the per-image definition says
        assert generation.plan.outputs_done(tmp_path, rel, with_record).tolist() == [
            generation.plan.is_done(tmp_path, path, with_record) for path in rel]


def test_flag_parsing():
    assert generation.parse_strengths(["0.3,0.1", "1"]) == (0.1, 0.3, 1.0)
    assert generation.parse_seeds(["42", "10,20"]) == (10, 20, 42)
    assert generation.parse_resolution("480x270") == (480, 270)
    assert generation.parse_resolution("native") is None
    for bad in (["0"], ["1.5"], ["-0.1"], ["x"], ["0.1", "0.1001"]):
        with pytest.raises(InputError, match="--strengths"):
            generation.parse_strengths(bad)
    with pytest.raises(InputError, match="--seeds"):
        generation.parse_seeds(["10", "10"])
    assert [generation.denoising_steps(50, s) for s in (0.1, 0.5, 1.0)] == [5, 25, 50]
    assert generation.denoising_steps(3, 0.3) == 0  # int(0.9): the pipeline would get no timestep at all


def test_read_sources_skips_empty_and_exact_duplicates(tmp_path):
    names = ["empty", "puma concolor", "puma concolor", "dasyprocta punctata"]
    frame = pd.DataFrame({"class_id": [0, 4, 4, 2], "class_name": names, "image_stem": ["e", "p", "p", "a"],
                          "real_path": ["/d/e.jpg", "/d/p.jpg", "/d/p.jpg", "/d/a.jpg"]})
    write_hard_sample_csv(frame, tmp_path / "hard.csv", "iwildcam")
    # "empty" is the iwildcam dataset's never-regenerated class: no dataset-name branch in the generator
    assert get_dataset("iwildcam").never_regenerated == {"empty"}
    sources = generation.read_sources(tmp_path / "hard.csv", get_dataset("iwildcam"))
    assert [(s.csv_row, s.class_folder, s.image_stem) for s in sources] == [(2, "puma_concolor", "p"),
                                                                            (4, "dasyprocta_punctata", "a")]


# ------------------------------------------------------------------------------------------------ the engine

def test_batched_generation_equals_one_by_one(hf_home):
    """The reference's call (PIL image + prompt string, batch 1) and ours (batched, cached embeddings and VAE
    latents) make the same images: byte-identical JPEGs in fp64, within one grey level in fp32."""
    import torch
    from sklearn.datasets import load_sample_images

    backend = generation.load_backend("sdxl-refiner", dtype="fp32", device="cpu")

    photos = [Image.fromarray(a).resize((24, 24)) for a in load_sample_images().images]
    sources = [generation.SourceImage(i + 1, 3, "puma concolor", "puma_concolor", "", f"img{i}", (24, 24))
               for i in range(2)]
    pixels = {s.image_id: photo for s, photo in zip(sources, photos)}
    prompts = generation.PromptSource(get_dataset("iwildcam"))
    group = generation.Group(tuple(sources), 0.5, (10, 20))
    for dtype in (torch.float32, torch.float64):
        backend.to(dtype)
        reference = {}
        for item in group.items:
            prompt = prompts.prompt(item)
            generator = torch.Generator().manual_seed(generation.generator_seed(item, prompt))
            reference[item] = backend.pipe(prompt=prompt, image=pixels[item.source.image_id], strength=0.5,
                                           guidance_scale=10, num_inference_steps=2,
                                           generator=generator).images[0]
        engine = generation.SpectrumGenerator(backend, guidance_scale=10, steps=2, batch_size=4, prompts=prompts)
        ours = {}
        engine.run_group(group, pixels, lambda outcome: ours.__setitem__(outcome.item, outcome.image))
        assert set(ours) == set(reference)
        for item in group.items:
            a, b = np.asarray(reference[item], np.int16), np.asarray(ours[item], np.int16)
            if dtype == torch.float64:
                assert jpeg(reference[item]) == jpeg(ours[item])
            else:
                assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01
    assert len(engine._prompt_embeds) == 1  # one prompt, encoded once


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ whole runs

def test_full_run_layout_and_manifest(full_run):
    files = output_bytes(full_run)
    assert len(files) == 2 * 2 * 2 * 2  # classes × images × strengths × seeds
    assert all(re.fullmatch(r"[a-z_]+/Strength(50|100)_guidance100_seed(10|20)/[0-9a-f-]+\.jpg", p) for p in files)
    manifest = read_manifest(full_run / "manifests" / "part001-of001.csv")
    assert sorted(manifest["synthetic_path"]) == sorted(files)
    assert set(manifest["image_guidance"]) == {50, 0}
    assert set(manifest["tries"]) == {1}
    assert all(re.fullmatch(r"a photo of .+ in the wild", p) for p in manifest["prompt"])
    assert not (full_run / "failures").exists()


def test_rerun_generates_nothing(full_run, iwildcam_csv, mini_iwildcam, iwildcam_script, capsys):
    before = {p: p.stat().st_mtime_ns for p in full_run.rglob("*.jpg")}
    assert iwildcam_script.main(iwildcam_args(iwildcam_csv, mini_iwildcam, full_run)) == 0
    assert "0 images written, 16 already there" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in full_run.rglob("*.jpg")} == before


def test_shards_and_ranks_reproduce_the_full_run(full_run, iwildcam_csv, mini_iwildcam, iwildcam_script,
                                                 tmp_path, monkeypatch):
    sharded = tmp_path / "sharded"
    for part in ("1", "2"):
        assert iwildcam_script.main(iwildcam_args(iwildcam_csv, mini_iwildcam, sharded, "--part", part,
                                                  "--total_parts", "2")) == 0
    assert output_bytes(sharded) == output_bytes(full_run)
    parts = [read_manifest(sharded / "manifests" / f"part00{k}-of002.csv") for k in (1, 2)]
    assert set(parts[0]["class_folder"]).isdisjoint(parts[1]["class_folder"])
    merged = pd.concat(parts).sort_values("sample_id").reset_index(drop=True)
    full = read_manifest(full_run / "manifests" / "part001-of001.csv").sort_values("sample_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, full)

    ranked = tmp_path / "ranked"  # two torchrun-style processes (no rendezvous: each writes what it sees)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        assert iwildcam_script.main(iwildcam_args(iwildcam_csv, mini_iwildcam, ranked)) == 0
        if rank == "0":
            assert 0 < len(output_bytes(ranked)) < 16
    assert output_bytes(ranked) == output_bytes(full_run)


def test_kill_and_resume_is_byte_identical_across_processes(full_run, iwildcam_csv, mini_iwildcam, iwildcam_script,
                                                            repo_root, script_env, tmp_path, capsys):
    """kill -9 a subprocess (PYTHONHASHSEED=1) as soon as its first image exists; resume here (another hash seed)."""
    output = tmp_path / "killed"
    args = iwildcam_args(iwildcam_csv, mini_iwildcam, output, "--manifest-interval", "0")
    # Same thread count as this process (script_env keeps it): CPU kernels split their sums by thread.
    process = subprocess.Popen([sys.executable, str(repo_root / IWILDCAM_SCRIPT), *args],
                               env=dict(script_env, PYTHONHASHSEED="1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(output.rglob("*.jpg")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reference = output_bytes(full_run)
    survivors = output_bytes(output)
    assert 0 < len(survivors) < len(reference), "the run was not interrupted part-way"
    assert all(reference[p] == data for p, data in survivors.items())  # nothing truncated, same bytes
    manifest = read_manifest(output / "manifests" / "part001-of001.csv")  # refreshed after every group
    assert set(manifest["synthetic_path"]) <= set(survivors)  # never lists a missing image
    missing = len(reference) - len(survivors)
    capsys.readouterr()
    assert iwildcam_script.main(args + ["--dry-run"]) == 0  # resume-aware: counts only what is left
    assert f"{len(reference)} synthetic images planned (2 strengths x 2 seeds per hard image), {len(survivors)} " \
           f"already there, {missing} to make" in capsys.readouterr().out
    assert output_bytes(output) == survivors
    assert iwildcam_script.main(args) == 0
    assert f"{missing} images written, {len(survivors)} already there" in capsys.readouterr().out
    assert output_bytes(output) == reference
    assert not [p for p in output.rglob("*") if p.name.startswith(".tmp-")]  # the killed write's temp file is gone
    assert len(read_manifest(output / "manifests" / "part001-of001.csv")) == len(reference)


def test_torchrun_processes_split_a_part(full_run, iwildcam_csv, mini_iwildcam, repo_root, script_env, tmp_path):
    """Two torchrun processes take blocks 0::2 and 1::2, meet at a gloo barrier; rank 0 writes the manifest."""
    import torch

    output = tmp_path / "torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(repo_root / IWILDCAM_SCRIPT), *iwildcam_args(iwildcam_csv, mini_iwildcam, output)]
    # torchrun would force one thread per process; keep this process's count so the bytes can be compared.
    env = dict(script_env, OMP_NUM_THREADS=str(torch.get_num_threads()))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    written = [int(n) for n in re.findall(r"^(\d+) images written", done.stdout, flags=re.M)]
    assert len(written) == 2 and sum(written) == 16 and min(written) > 0
    assert output_bytes(output) == output_bytes(full_run)
    assert len(read_manifest(output / "manifests" / "part001-of001.csv")) == 16


# ------------------------------------------------------------------------------------------------ ImageNet-LT

@pytest.fixture(scope="session")
def imagenet_lt_inputs(mini_imagenet_lt, tmp_path_factory) -> tuple[Path, Path]:
    """Hard-sample CSV (one tail-class image) and a prompt JSON for it."""
    return one_hard_imagenet_lt_image(mini_imagenet_lt, tmp_path_factory.mktemp("inlt"),
                                      [f"a {{}} in scene number {k}, photographed in daylight" for k in range(3)])


def imagenet_lt_args(inputs, root: Path, output: Path, *extra: str) -> list[str]:
    csv, prompts = inputs
    return ["--data_csv", str(csv), "--prompt_json", str(prompts), "--image-root", str(root),
            "--output_path", str(output), "--strengths", "0.5", "--seeds", "10", "20", "--steps", "2",
            "--batch-size", "4", "--dtype", "fp32", *extra]


def test_imagenet_lt_quality_retry(hf_home, imagenet_lt_inputs, mini_imagenet_lt, imagenet_lt_script, tmp_path,
                                   capsys):
    output = tmp_path / "inlt"
    # The tiny CLIP is random: similarities sit near 0 (<= 0.3), so every image uses all its extra tries.
    args = imagenet_lt_args(imagenet_lt_inputs, mini_imagenet_lt, output, "--max-retries", "2")
    assert imagenet_lt_script.main(args) == 0
    manifest = read_manifest(output / "manifests" / "part001-of001.csv")
    assert len(manifest) == 2 and set(manifest["tries"]) == {3}
    for row in manifest.itertuples():
        record = json.loads(generation.retry_record_path(output, row.synthetic_path).read_text())
        scores = [a["score"] for a in record["attempts"]]
        best = record["attempts"][int(np.argmax(scores))]
        assert (row.prompt, row.generator_seed) == (best["prompt"], best["generator_seed"])
        assert row.prompt.startswith("a 8k real photo: ") and max(scores) <= 0.3
        assert len({a["generator_seed"] for a in record["attempts"]}) == 3
        assert Image.open(output / row.synthetic_path).size == (48, 48)  # native size kept
    capsys.readouterr()
    assert imagenet_lt_script.main(args) == 0
    assert "0 images written, 2 already there" in capsys.readouterr().out
    # a damaged retry record (a seed out of int64's range, a count of the wrong type) counts as a missing one: the
    # image is made again, the same, and its record rewritten (docs/generation.md)
    part = output / "manifests" / "part001-of001.csv"
    before, image = part.read_bytes(), (output / manifest["synthetic_path"][1]).read_bytes()
    record_path = generation.retry_record_path(output, manifest["synthetic_path"][1])
    intact = record_path.read_text()
    for damage in ({"generator_seed": 2 ** 64}, {"tries": "many"}):
        record_path.write_text(json.dumps({**json.loads(intact), **damage}))
        assert generation.read_retry_record(output, manifest["synthetic_path"][1]) is None
        assert imagenet_lt_script.main(args) == 0
        assert "1 images written, 1 already there" in capsys.readouterr().out
        assert json.loads(record_path.read_text()) == json.loads(intact)
        assert part.read_bytes() == before and (output / manifest["synthetic_path"][1]).read_bytes() == image
    plain = tmp_path / "no-retry"
    assert imagenet_lt_script.main(imagenet_lt_args(imagenet_lt_inputs, mini_imagenet_lt, plain,
                                                    "--max-retries", "0", "--resize", "32x32")) == 0
    manifest = read_manifest(plain / "manifests" / "part001-of001.csv")
    assert set(manifest["tries"]) == {1} and not (plain / "manifests" / "retries").exists()
    assert Image.open(plain / manifest["synthetic_path"][0]).size == (32, 32)


# ------------------------------------------------------------------------------------------------ bad inputs

def _bad_iwildcam_csv(tmp_path: Path, mini_iwildcam: Path, iwildcam_csv: Path, case: str) -> tuple[Path, list[str]]:
    table = pd.read_csv(iwildcam_csv)
    path = tmp_path / "bad.csv"
    extra: list[str] = []
    if case == "missing column":
        table = table.drop(columns=["filepath"])
    elif case == "unknown class":
        table.loc[1, "label name"] = "Cheetah"
    elif case == "missing image":
        table.loc[2, "filepath"] = "train/no-such-image.jpg"
    elif case == "corrupt image":
        (tmp_path / "corrupt.jpg").write_bytes(b"this is not a JPEG")
        table.loc[2, "filepath"] = str(tmp_path / "corrupt.jpg")
    elif case == "strength outside (0, 1]":
        extra = ["--strengths", "0.5", "1.5"]
    elif case == "colliding image names":
        table.loc[1, "img_name"] = table.loc[0, "img_name"]
    elif case == "no denoising step":
        extra = ["--strengths", "0.2", "1.0"]
    if case == "empty CSV":
        path.write_text("")
    else:
        table.to_csv(path, index=False)
    return path, extra


@pytest.mark.parametrize("case, expected", [
    ("missing column", r"bad\.csv: column 'filepath': missing column"),
    ("unknown class", r"bad\.csv: row 2: column 'label name': unknown iWildCam species 'Cheetah'"),
    ("missing image", r"bad\.csv: row 3: column 'filepath': image not found: .*no-such-image\.jpg"),
    ("corrupt image", r"bad\.csv: row 3: column 'filepath': cannot read image"),
    ("empty CSV", r"bad\.csv: empty CSV"),
    ("strength outside (0, 1]", r"--strengths: strength 1\.5 is outside \(0, 1\]"),
    ("colliding image names", r"bad\.csv: row 2: column 'filepath': image name .* names a different file in row 1"),
    ("no denoising step", r"--steps: 2 steps at strength 0\.2 run no denoising step .* use --steps 5 or more"),
])
def test_bad_iwildcam_input_is_one_line_exit_2_nothing_written(case, expected, tmp_path, mini_iwildcam,
                                                               iwildcam_csv, iwildcam_script, capsys):
    csv, extra = _bad_iwildcam_csv(tmp_path, mini_iwildcam, iwildcam_csv, case)
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(iwildcam_script.main, iwildcam_args(csv, mini_iwildcam, output) + extra)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and re.search(expected, error), error
    assert not output.exists()


@pytest.mark.parametrize("case, expected", [
    ("malformed JSON", r"prompts\.json: not valid JSON \(line 1"),
    ("class without prompts", r"prompts\.json: no prompts for class '.+' \(used in .*hard\.csv row 1\)"),
])
def test_bad_prompt_json(case, expected, tmp_path, imagenet_lt_inputs, mini_imagenet_lt, imagenet_lt_script, capsys):
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"goldfish": ["a goldfish", ' if case == "malformed JSON" else '{"goldfish": ["a fish"]}')
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(imagenet_lt_script.main, imagenet_lt_args((imagenet_lt_inputs[0], prompts), mini_imagenet_lt, output))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and re.search(expected, error), error
    assert not output.exists()


def test_unreadable_image_is_recorded_and_the_shard_goes_on(hf_home, mini_iwildcam, iwildcam_csv, iwildcam_script,
                                                            tmp_path, capsys):
    table = pd.read_csv(iwildcam_csv).iloc[:2].copy()
    good = mini_iwildcam / "iwildcam_v2.0" / table["filepath"].iloc[1]
    truncated = tmp_path / "truncated.jpg"
    data = good.read_bytes()
    truncated.write_bytes(data[:len(data) * 2 // 3])  # the header parses, the pixels do not
    table.loc[0, "filepath"] = str(truncated)
    csv = tmp_path / "hard.csv"
    table.to_csv(csv, index=False)
    args = iwildcam_args(csv, mini_iwildcam, tmp_path / "out", "--strengths", "1.0", "--seeds", "10")
    assert iwildcam_script.main(args) == 1
    failures = pd.read_csv(tmp_path / "out" / "failures" / "part001-of001.csv")
    assert failures["real_path"].tolist() == [str(truncated)] and failures["csv_row"].tolist() == [1]
    assert len(output_bytes(tmp_path / "out")) == 1  # the readable image was still generated
    assert "1 unreadable source image(s)" in capsys.readouterr().out
    assert iwildcam_script.main(args + ["--skip-bad"]) == 0


def test_imagenet_lt_native_sizes_are_batched_by_size_and_kept(hf_home, mini_imagenet_lt, imagenet_lt_script,
                                                                tmp_path):
    """Images of different native sizes: each keeps its size, and a mixed run equals one run per image."""
    import json

    from discl.data.imagenet_lt import class_names, read_split

    entry = read_split(mini_imagenet_lt, "train")[-1]
    name = class_names()[entry.label]
    root = tmp_path / "real"
    sizes = {"wide": (40, 24), "square": (48, 48), "tall": (24, 32)}
    with Image.open(mini_imagenet_lt / entry.path) as photo:
        for stem, size in sizes.items():
            atomic_save_image(photo.convert("RGB").resize(size), root / f"{stem}.JPEG")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({name: ["a scene with the animal standing in tall grass at dawn"]}))

    def generate(stems, output):
        frame = pd.DataFrame({"class_id": [entry.label] * len(stems), "class_name": [name] * len(stems),
                              "real_path": [str(root / f"{s}.JPEG") for s in stems], "image_stem": list(stems)})
        write_hard_sample_csv(frame, tmp_path / f"{output}.csv", "imagenet_lt")
        assert imagenet_lt_script.main(["--data_csv", str(tmp_path / f"{output}.csv"), "--prompt_json", str(prompts),
                                        "--output_path", str(tmp_path / output), "--strengths", "0.5", "--seeds",
                                        "10", "--steps", "2", "--batch-size", "4", "--dtype", "fp64",
                                        "--max-retries", "0"]) == 0
        return output_bytes(tmp_path / output)

    mixed = generate(list(sizes), "mixed")
    # the reference's names: a synthetic image is named as its real ImageNet image (.JPEG), which its scorer
    # and table builder rely on (the real image is found from that name; only *JPEG* files are listed)
    assert sorted(Path(p).name for p in mixed if "/Strength" in p) == sorted(f"{stem}.JPEG" for stem in sizes)
    for stem, size in sizes.items():
        path = next(p for p in mixed if p.endswith(f"/{stem}.JPEG"))
        assert Image.open(io.BytesIO(mixed[path])).size == size
        alone = generate([stem], f"alone_{stem}")
        assert alone[path] == mixed[path]


# ------------------------------------------------------------------------------------------------ figure, bench

def test_spectrum_figure(full_run, repo_root, tmp_path):
    from discl.plots.spectrum import plot_spectrum, read_output_manifests, spectrum_rows

    manifest = read_output_manifests(full_run)
    seed, strengths, rows = spectrum_rows(manifest, full_run, rows=3)
    assert (seed, strengths, len(rows)) == (10, [0.5, 1.0], 2)  # one row per class: the CSV has two
    assert all(path.is_file() for row in rows for _, path in row.synthetic)
    png = plot_spectrum(manifest, full_run, seed=20, rows=2)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    script = load_script("data_generation/plot_spectrum.py")
    assert script.main(["--output_path", str(full_run), "--figure", str(tmp_path / "s.png")]) == 0
    # 32 × 20 tiles enlarged 4× (to ≥ 120 px), 3 columns (guidance 0, 50, real) × 2 classes, 4-pixel gaps,
    # a 110-pixel label column, 52 pixels of titles, 6 of margin (docs/experiments.md)
    assert Image.open(tmp_path / "s.png").size == (110 + 3 * 128 + 2 * 4 + 6, 52 + 2 * 80 + 4 + 6)
    assert (tmp_path / "s.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(InputError, match="seed 99"):
        spectrum_rows(manifest, full_run, seed=99)


def test_spectrum_figure_from_the_reference_layout(full_run, mini_iwildcam, tmp_path):
    """A folder without manifests (the reference's layout, its .JPEG suffix included) still gives the figure."""
    from discl.plots.spectrum import read_output_manifests, spectrum_rows

    layout = tmp_path / "layout"
    shutil.copytree(full_run, layout, ignore=shutil.ignore_patterns("manifests", "*.png"))
    for image in layout.rglob("*.jpg"):
        image.rename(image.with_suffix(".JPEG"))
    with pytest.raises(InputError, match="give --real_path and --dataset"):
        read_output_manifests(layout)
    recovered = read_output_manifests(layout, mini_iwildcam / "iwildcam_v2.0" / "train", "iwildcam")
    expected = read_output_manifests(full_run)
    key = ["sample_id", "class_id", "strength", "seed"]
    assert recovered.sort_values("sample_id")[key].values.tolist() == expected.sort_values("sample_id")[key].values.tolist()
    assert spectrum_rows(recovered, layout, rows=3)[:2] == spectrum_rows(expected, full_run, rows=3)[:2]


def test_bench_prints_speedup_and_overhead(hf_home, repo_root, capsys):
    import torch

    threads = torch.get_num_threads()
    bench = load_script("bench/bench_generation.py")
    try:
        assert bench.main(["--hf-home", str(hf_home), "--images", "1", "--seeds", "10", "20", "--strengths", "1.0",
                           "--steps", "2", "--batch-size", "2", "--size", "32x32"]) == 0
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup=\d+\.\d\d overhead=-?\d+\.\d%", lines[-1])
    assert any("outputs: 2/2 images" in line for line in lines)
