"""Bad input to the Phase 1 scripts (hard samples, prompts, generation, scoring, the spectrum figure): one line naming
the flag or the file, row and column, exit 2, nothing written — the path-traversal, decoder, number and device
cases found by the input sweep (none of them loads a model)."""

from __future__ import annotations

import json
import math
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import load_script

from discl import generation, prompts
from discl.cli import run_cli
from discl.data.hard_sample_csv import read_hard_sample_csv, write_hard_sample_csv
from discl.datasets.base import RealImages
from discl.distributed import check_device
from discl.errors import InputError
from discl.generation.config import GenerationConfig, check_number
from discl.hard_samples import Classifier, score_images
from discl.imageio import ImageDecodeError, decode, image_size, load_rgb
from discl.manifest import (MANIFEST_COLUMNS, MAX_NAME_BYTES, name_problem, read_manifest, sample_id, subfolder_name,
                            synthetic_relpath, validate_manifest, write_manifest)

GENE = "data_generation/gene_img.py"
SCORE = "data_generation/comp_clip_scores.py"
HARD = "data_generation/make_hard_samples.py"
PROMPTS = "data_generation/ImageNet_LT/get_text_prompt.py"
PLOT = "data_generation/plot_spectrum.py"
IWILDCAM_HEADER = ",label id,label name,filepath,img_name"
BAD_NAMES = ["../../../../escape_x", "a=b", "a\\b", "tab\there", ".", "..", ".tmp-x", "L" * (MAX_NAME_BYTES + 1)]


def run_error(script: str, argv: list[str], capsys) -> str:
    """Run an entry script in-process expecting exit 2; its one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(load_script(script).main, argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: "), error
    return error


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def bomb_png(path: Path) -> Path:
    """74 bytes whose header claims 20000 x 20000 pixels (PIL's decompression-bomb limit is ~179 M pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def hard_csv(mini_iwildcam, tmp_path) -> Path:
    """Two mini-iWildCam images of one species, in the reference's iWildCam template."""
    data = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data / "metadata.csv")
    names = pd.read_csv(data / "categories.csv").set_index("y")["name"]
    train = metadata[(metadata["split"] == "train") & (metadata["y"] == 2)].head(2)
    frame = pd.DataFrame({"class_id": train["y"], "class_name": train["y"].map(names),
                          "real_path": [str(data / "train" / f) for f in train["filename"]],
                          "image_stem": train["filename"].str[:-4]})
    path = tmp_path / "hard.csv"
    write_hard_sample_csv(frame, path, "iwildcam")
    return path


def gene_args(csv: Path, root: Path, output: Path, *extra: str) -> list[str]:
    return ["--dataset", "iwildcam", "--data-root", str(root), "--data-csv", str(csv), "--output-dir", str(output),
            "--device", "cpu", "--strengths", "0.5", "--seeds", "10", "--steps", "2", "--resolution", "32x20", *extra]


def with_cell(csv: Path, row: int, column: str, value: str, name: str = "bad.csv") -> Path:
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    path = csv.with_name(name)
    table.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------- names that become output paths

@pytest.mark.parametrize("stem", BAD_NAMES)
def test_an_image_name_that_is_no_file_name_is_refused_where_the_csv_is_read(tmp_path, stem):
    path = tmp_path / "hard.csv"
    path.write_text(f"{IWILDCAM_HEADER}\n0,2,dasyprocta punctata,/d/a.jpg,a\n1,2,dasyprocta punctata,/d/b.jpg,"
                    f"\"{stem}\"\n")
    with pytest.raises(InputError) as caught:
        read_hard_sample_csv(path, "iwildcam")
    assert (caught.value.file, caught.value.row, caught.value.column) == (str(path), 2, "img_name")
    assert name_problem(stem) in caught.value.message  # the manifest's rule, shared


@pytest.mark.parametrize("stem", BAD_NAMES)
def test_the_manifest_applies_the_same_name_rule(stem):
    row = {"sample_id": sample_id("f", subfolder_name(0.5, 10, 10), stem), "dataset": "iwildcam", "class_id": 2,
           "class_name": "c", "class_folder": "f", "real_path": "/d/a.jpg", "image_stem": stem, "prompt": "p",
           "strength": 0.5, "image_guidance": 50, "text_guidance": 10.0, "seed": 10, "generator_seed": 1,
           "synthetic_path": synthetic_relpath("f", 0.5, 10, 10, stem), "tries": 1, "clip_image_text": None,
           "clip_image_image": None, "keep": None}
    with pytest.raises(InputError, match=re.escape(name_problem(stem))) as caught:
        validate_manifest(pd.DataFrame([row], columns=MANIFEST_COLUMNS), "m.csv")
    assert (caught.value.row, caught.value.column) == (1, "image_stem")


def test_good_names_pass_the_rule():
    for name in ("n02093428_672", "324b6065-6848-49d5-9b21-01cb1a654c6c", "x.y", "é ü", "L" * MAX_NAME_BYTES):
        assert name_problem(name) is None


@pytest.mark.parametrize("class_name", ["a=b", "..", "bell\x07"])
def test_a_class_folder_that_is_no_folder_name_is_refused(tmp_path, class_name):
    path = tmp_path / "hard.csv"
    pd.DataFrame({"filepath": ["/d/a.jpg", "/d/b.jpg"], "image_name": ["a.jpg", "b.jpg"], "label": [0, 1],
                  "classname": ["ok", class_name]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="class folder") as caught:
        read_hard_sample_csv(path, "folder")  # no root: the class names are taken as written
    assert (caught.value.row, caught.value.column) == (2, "classname")


@pytest.mark.parametrize("stem", ["../../../../escape_x", "a=b", "L" * 300])
def test_gene_img_writes_nothing_for_a_bad_image_name(hard_csv, mini_iwildcam, tmp_path, capsys, stem):
    csv = with_cell(hard_csv, 1, "img_name", stem)
    output = tmp_path / "deep" / "er" / "out"
    error = run_error(GENE, gene_args(csv, mini_iwildcam, output), capsys)
    assert f"{csv}: row 2: column 'img_name': image name" in error
    assert not (tmp_path / "deep").exists() and not list(tmp_path.rglob("escape_x*"))


# ---------------------------------------------------------------------------- class ids against the dataset

@pytest.mark.parametrize("dataset, root, text, message", [
    ("iwildcam", None, f"{IWILDCAM_HEADER}\n0,2,dasyprocta punctata,a.jpg,a\n1,182,dasyprocta punctata,b.jpg,b\n",
     r"row 2: column 'label id': label 182 outside 0\.\.181 \(the iwildcam dataset has 182 classes\)"),
    ("iwildcam", "mini_iwildcam", f"{IWILDCAM_HEADER}\n0,3,dasyprocta punctata,a.jpg,a\n",
     r"row 1: column 'label id': label 3 is '[a-z ]+' in the iwildcam dataset, but the row names "
     r"'dasyprocta punctata'"),
    ("imagenet_lt", None, "filepath,image_name,label,classname\na.JPEG,a.JPEG,4000,tench\n",
     r"row 1: column 'label': label 4000 outside 0\.\.999"),
    ("imagenet_lt", "mini_imagenet_lt", "filepath,image_name,label,classname\na.JPEG,a.JPEG,0,tench\n"
                                        "b.JPEG,b.JPEG,1,hammerhead shark\n",
     r"row 2: column 'label': label 1 is 'goldfish' in the imagenet_lt dataset, but the row names 'hammerhead"),
])
def test_label_ids_are_the_datasets_ids_of_the_named_classes(tmp_path, request, dataset, root, text, message):
    from discl.datasets import get_dataset

    path = tmp_path / "hard.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_hard_sample_csv(path, get_dataset(dataset, request.getfixturevalue(root) if root else None))


def test_label_ids_are_checked_against_the_roots_classes(hard_csv, mini_iwildcam, tmp_path, capsys):
    from discl.datasets import get_dataset

    classes = len(get_dataset("iwildcam", mini_iwildcam).class_names())
    csv = with_cell(hard_csv, 1, "label id", str(classes))
    error = run_error(GENE, gene_args(csv, mini_iwildcam, tmp_path / "out", "--dry-run"), capsys)
    assert f"row 2: column 'label id': label {classes} outside 0..{classes - 1}" in error


# ---------------------------------------------------------------------------- malformed CSVs

@pytest.mark.parametrize("text, row, words", [
    (f"{IWILDCAM_HEADER}\n0,2,dasyprocta punctata,a.jpg,a\n1,2,dasyprocta punctata,b.jpg,b,extra\n", 2,
     "6 fields, the header has 5"),
    (f"{IWILDCAM_HEADER}\n\n0,2,dasyprocta punctata,a.jpg,a\n\n1,2,dasyprocta punctata,b.jpg,b,extra\n", 2,
     "6 fields, the header has 5"),  # blank lines are no data rows
    (f"{IWILDCAM_HEADER}\n0,2,\"dasyprocta\npunctata\",a.jpg,a\n0,2,x,b.jpg,b,extra\n", 2, "6 fields"),
    (f"{IWILDCAM_HEADER}\n0,2,dasyprocta punctata,a.jpg,a\n\n\"1,2,dasyprocta punctata,b.jpg,b\n", 2,
     "a quoted field starts in this row and never ends"),
])
def test_a_malformed_hard_csv_names_its_data_row(tmp_path, text, row, words):
    path = tmp_path / "hard.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=words) as caught:
        read_hard_sample_csv(path, "iwildcam")
    assert (caught.value.file, caught.value.row) == (str(path), row)


def test_non_utf8_hard_csv_and_manifest_name_file_and_line(tmp_path):
    path = tmp_path / "hard.csv"
    path.write_bytes(f"{IWILDCAM_HEADER}\n0,2,dasyprocta punctata,a.jpg,a\n".encode() + b"1,2,dasyprocta punct\xe9ta,"
                                                                                      b"b.jpg,b\n")
    with pytest.raises(InputError, match=r"hard\.csv: line 3: not UTF-8 text"):
        read_hard_sample_csv(path, "iwildcam")
    manifest = tmp_path / "part001-of001.csv"
    manifest.write_bytes(",".join(MANIFEST_COLUMNS).encode() + b"\n\xf6\n")
    with pytest.raises(InputError, match=r"part001-of001\.csv: line 2: not UTF-8 text"):
        read_manifest(manifest)


def test_a_manifest_row_with_a_cell_too_many_names_its_row(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\n1,2\n\n3,4,5\n")
    with pytest.raises(InputError, match="3 fields, the header has 2") as caught:
        read_manifest(path)
    assert caught.value.row == 2


# ---------------------------------------------------------------------------- images that do not decode

def test_every_decoder_failure_is_one_oserror_naming_the_file(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    for path in (bomb, garbage):
        for read in (decode, load_rgb, image_size):
            with pytest.raises(ImageDecodeError) as caught:
                read(path)
            assert isinstance(caught.value, OSError) and caught.value.filename == str(path)
    assert "decompression bomb" in str(pytest.raises(OSError, decode, bomb).value)
    copy = pickle.loads(pickle.dumps(pytest.raises(OSError, decode, bomb).value))  # DataLoader workers pickle it
    assert isinstance(copy, ImageDecodeError) and copy.filename == str(bomb)
    with pytest.raises(FileNotFoundError):  # a file-system error keeps its own type
        decode(tmp_path / "nope.png")


def test_a_bomb_source_image_is_a_csv_row_error_or_a_failure_with_skip_bad(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    source = generation.SourceImage(3, 2, "dasyprocta punctata", "dasyprocta_punctata", str(bomb), "bomb")
    with pytest.raises(InputError, match=r"hard\.csv: row 3: column 'filepath': cannot read image"):
        generation.runner.preflight([source], Path("hard.csv"), (32, 20), skip_bad=False)
    usable, failures = generation.runner.preflight([source], Path("hard.csv"), (32, 20), skip_bad=True)
    assert usable == [] and "decompression bomb" in failures[0]["error"]


def test_a_bomb_training_image_is_named(tmp_path):
    import torch

    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    images = RealImages([str(good), str(bomb_png(tmp_path / "bomb.png"))], [0, 1], ["g", "b"],
                        source=tmp_path / "list.txt", rows=[1, 7])
    classifier = Classifier(lambda pixels: pixels.new_zeros(len(pixels), 2),
                            lambda image: torch.zeros(3, 4, 4), "zeros")
    with pytest.raises(InputError, match=r"list\.txt: row 7: cannot read image .*bomb\.png \(.*decompression bomb"):
        score_images(classifier, images, ["a", "b"], batch_size=2)
    images.rows = None  # no list to name: the image itself is named
    with pytest.raises(InputError, match=r"bomb\.png: cannot read image \("):
        score_images(classifier, images, ["a", "b"], batch_size=2)


def _spectrum_folder(tmp_path: Path, real: Path) -> Path:
    """A generation output with one manifest row and its (valid) synthetic JPEG."""
    output = tmp_path / "syn"
    relpath = synthetic_relpath("dasyprocta_punctata", 0.5, 10, 10, "a")
    row = {"sample_id": sample_id("dasyprocta_punctata", subfolder_name(0.5, 10, 10), "a"), "dataset": "iwildcam",
           "class_id": 2, "class_name": "dasyprocta punctata", "class_folder": "dasyprocta_punctata",
           "real_path": str(real), "image_stem": "a", "prompt": "p", "strength": 0.5, "image_guidance": 50,
           "text_guidance": 10.0, "seed": 10, "generator_seed": 1, "synthetic_path": relpath, "tries": 1,
           "clip_image_text": None, "clip_image_image": None, "keep": None}
    write_manifest(pd.DataFrame([row], columns=MANIFEST_COLUMNS), output / "manifests" / "part001-of001.csv")
    (output / relpath).parent.mkdir(parents=True)
    Image.new("RGB", (32, 20), (200, 10, 10)).save(output / relpath)
    return output


def test_plot_spectrum_names_the_manifest_row_of_an_unreadable_image(tmp_path, capsys):
    real = tmp_path / "real.png"
    Image.new("RGB", (32, 20)).save(real)
    output = _spectrum_folder(tmp_path, real)
    synthetic = next(output.rglob("*.jpg"))
    synthetic.write_bytes(synthetic.read_bytes()[:300])
    error = run_error(PLOT, ["--syn-path", str(output), "--figure", str(tmp_path / "f.png")], capsys)
    assert re.search(r"part001-of001\.csv: row 1: column 'synthetic_path': cannot read image .*a\.jpg \(", error)
    Image.new("RGB", (32, 20)).save(synthetic)
    bomb_png(real)
    error = run_error(PLOT, ["--syn-path", str(output), "--figure", str(tmp_path / "f.png")], capsys)
    assert "part001-of001.csv: row 1: column 'real_path': cannot read image" in error and "bomb" in error
    assert not list(tmp_path.glob("f.*"))


def test_plot_spectrum_names_both_manifests_of_a_sample_listed_twice(tmp_path, capsys):
    real = tmp_path / "real.png"
    Image.new("RGB", (32, 20)).save(real)
    output = _spectrum_folder(tmp_path, real)
    manifests = output / "manifests"
    (manifests / "part002-of002.csv").write_bytes((manifests / "part001-of001.csv").read_bytes())
    error = run_error(PLOT, ["--syn-path", str(output), "--figure", str(tmp_path / "f.png")], capsys)
    assert re.search(r"part002-of002\.csv: row 1: column 'sample_id': .* listed in two manifests \(also "
                     r".*part001-of001\.csv row 1\)", error)


def test_plot_spectrum_does_not_overwrite_an_image_it_draws(tmp_path, capsys):
    real = tmp_path / "real.png"
    Image.new("RGB", (32, 20)).save(real)
    before = real.read_bytes()
    output = _spectrum_folder(tmp_path, real)
    error = run_error(PLOT, ["--syn-path", str(output), "--figure", str(real)], capsys)
    assert "--figure" in error and "overwrite" in error
    assert real.read_bytes() == before and not real.with_suffix(".pdf").exists()


# ---------------------------------------------------------------------------- numbers and devices

@pytest.mark.parametrize("field, value, flag", [
    ("guidance_scale", math.nan, "--guidance-scale"), ("guidance_scale", math.inf, "--guidance-scale"),
    ("seconds_per_image", math.nan, "--seconds-per-image"), ("seconds_per_image", math.inf, "--seconds-per-image"),
    ("manifest_interval", math.nan, "--manifest-interval"), ("retry_threshold", 1.5, "--retry-threshold"),
    ("retry_threshold", math.nan, "--retry-threshold"), ("steps", 5000, "--steps"), ("max_retries", 10 ** 6,
                                                                                      "--max-retries"),
    ("seeds", ("9223372036854775808",), "--seeds"),
])
def test_every_numeric_generation_flag_is_finite_and_in_range(field, value, flag):
    with pytest.raises(InputError, match=re.escape(flag)):
        GenerationConfig(dataset="iwildcam", data_csv=Path("x.csv"), **{field: value})


def test_gene_img_nan_guidance_and_dry_run_nan_seconds(hard_csv, mini_iwildcam, tmp_path, capsys):
    output = tmp_path / "out"
    assert "--guidance-scale: expected a number > 0, got nan" in run_error(
        GENE, gene_args(hard_csv, mini_iwildcam, output, "--guidance-scale", "nan"), capsys)
    assert "--seconds-per-image: expected a number > 0, got inf" in run_error(
        GENE, gene_args(hard_csv, mini_iwildcam, output, "--dry-run", "--seconds-per-image", "inf"), capsys)
    assert not output.exists()


def test_check_number_bounds():
    check_number("--x", 0.5, 0, 1, low_open=True)
    for value in (math.nan, math.inf, -math.inf, 0, 1.5, True):
        with pytest.raises(InputError, match=r"^--x: expected an? (integer|number) in \(0, 1\], got"):
            check_number("--x", value, 0, 1, low_open=True)


@pytest.mark.parametrize("device", ["foo", "cuda:x", "meta", ""])
def test_a_device_torch_does_not_know_is_an_input_error(device):
    with pytest.raises(InputError, match=r"^--device: .* is not a device"):
        check_device(device)


def test_a_gpu_that_is_not_there_is_an_input_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match=r"^--device: cuda:3 asked for, but 0 GPU"):
        check_device("cuda:3")


@pytest.mark.parametrize("flags, words", [
    (["--device", "foo"], "--device: 'foo' is not a device"),
    (["--device", "cuda:99"], "--device: cuda:99 asked for"),
    (["--resize", "60000x60000"], "--resize: at most 4096 px a side"),
    (["--workers", "-1"], "--workers"),
])
def test_comp_clip_scores_checks_flags_before_writing(tmp_path, capsys, flags, words):
    syn = tmp_path / "syn"
    syn.mkdir()
    error = run_error(SCORE, ["--dataset", "iwildcam", "--syn-path", str(syn), *flags], capsys)
    assert words in error
    assert files_under(syn) == []


def test_gene_img_device_foo(hard_csv, mini_iwildcam, tmp_path, capsys):
    output = tmp_path / "out"
    error = run_error(GENE, gene_args(hard_csv, mini_iwildcam, output, "--device", "foo"), capsys)
    assert "--device: 'foo' is not a device" in error and not output.exists()


@pytest.mark.parametrize("flags, flag", [
    (["--seed", "-1"], "--seed"), (["--few-max", "-1"], "--few-max"), (["--summary-rows", "-2"], "--summary-rows"),
    (["--many-min", "5", "--few-max", "20"], "--many-min"), (["--device", "foo"], "--device"),
])
def test_make_hard_samples_checks_its_numbers_and_device(mini_iwildcam, tmp_path, capsys, flags, flag):
    error = run_error(HARD, ["--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--output",
                             str(tmp_path / "out" / "h.csv"), *flags], capsys)
    assert error.startswith(f"error: {flag}")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- retry records

@pytest.mark.parametrize("damage", [{"tries": "many"}, {"tries": None}, {"tries": -3}, {"tries": 1.5},
                                    {"tries": True}, {"generator_seed": 2 ** 64}, {"generator_seed": "7"},
                                    {"prompt": 3}, {"prompt": ""}])
def test_a_damaged_retry_record_counts_as_missing(tmp_path, damage):
    relpath = synthetic_relpath("c", 0.5, 10, 10, "a")
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_bytes(b"jpeg")
    record = generation.retry_record_path(tmp_path, relpath)
    record.parent.mkdir(parents=True)
    intact = {"prompt": "p", "tries": 2, "generator_seed": 7, "clip_image_text": 0.4, "attempts": []}
    record.write_text(json.dumps(intact))
    assert generation.read_retry_record(tmp_path, relpath) == intact
    assert generation.plan.outputs_done(tmp_path, [relpath], True).tolist() == [True]
    record.write_text(json.dumps({**intact, **damage}))
    assert generation.read_retry_record(tmp_path, relpath) is None
    assert generation.plan.outputs_done(tmp_path, [relpath], True).tolist() == [False]  # made again


# ---------------------------------------------------------------------------- the template bank

def test_the_template_bank_size_is_what_it_can_make():
    size = prompts.template_bank_size("goldfish", 33)
    assert 0 < size < 200
    bank = prompts.template_prompts_for_class("goldfish", n=size, min_words=33)
    assert len(set(bank)) == size and all(len(p.split()) >= 33 for p in bank)
    with pytest.raises(ValueError, match=f"at most {size} prompts"):
        prompts.template_prompts_for_class("goldfish", n=size + 1, min_words=33)
    assert prompts.template_bank_size("goldfish", 500) == 0
    with pytest.raises(ValueError, match="at most 0 prompts"):  # it used to loop forever
        prompts.template_prompts_for_class("goldfish", n=1, min_words=500)


@pytest.mark.parametrize("flags, words", [
    (["--classes", "goldfish", "--min-words", "500"], "--min-words: no template-bank prompt"),
    (["--classes", "goldfish", "--num-prompts", "100000"], "--num-prompts: the template bank makes at most 2880"),
    (["--classes", ""], "--classes: empty class name"),
    (["--classes", "goldfish", "goldfish"], "--classes: class 'goldfish' is given twice"),
    (["--classes", "goldfish", "--temperature", "nan"], "--temperature"),
    (["--classes", "goldfish", "--backoff", "inf"], "--backoff"),
    (["--classes", "goldfish", "--timeout", "inf"], "--timeout"),
    (["--classes", "goldfish", "--request-retries", "5000"], "--request-retries"),
])
def test_get_text_prompt_refuses_before_writing(tmp_path, capsys, flags, words):
    output = tmp_path / "out" / "p.json"
    error = run_error(PROMPTS, ["--backend", "template", "--prompt-json", str(output), *flags], capsys)
    assert words in error
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- an output that is an input

def test_make_hard_samples_scores_equal_to_output(mini_iwildcam, tmp_path, capsys):
    same = tmp_path / "h.csv"
    error = run_error(HARD, ["--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--output", str(same),
                             "--scores", str(tmp_path / "." / "h.csv")], capsys)
    assert "--scores" in error and "--output" in error and "overwrite" in error
    assert files_under(tmp_path) == []


def test_make_hard_samples_output_equal_to_the_train_list(mini_imagenet_lt, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_bytes((mini_imagenet_lt / "ImageNet_LT_train.txt").read_bytes())
    before = listing.read_bytes()
    error = run_error(HARD, ["--dataset", "imagenet_lt", "--data-root", str(mini_imagenet_lt), "--train-list",
                             str(listing), "--output", str(listing)], capsys)
    assert "--output" in error and "--train-list" in error
    assert listing.read_bytes() == before


def test_gene_img_data_csv_inside_the_outputs(hard_csv, mini_iwildcam, tmp_path, capsys):
    output = tmp_path / "out"
    manifest = output / "manifests" / "part001-of001.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(hard_csv.read_bytes())
    error = run_error(GENE, gene_args(manifest, mini_iwildcam, output), capsys)
    assert "--output-dir" in error and "--data-csv" in error
    assert files_under(output) == ["manifests", "manifests/part001-of001.csv"]
    assert manifest.read_bytes() == hard_csv.read_bytes()


def test_get_text_prompt_json_equal_to_the_data_csv(tmp_path, capsys):
    csv = tmp_path / "hard.csv"
    csv.write_text("filepath,image_name,label,classname\na.JPEG,a.JPEG,1,goldfish\n")
    before = csv.read_bytes()
    error = run_error(PROMPTS, ["--backend", "template", "--data-csv", str(csv), "--prompt-json", str(csv)], capsys)
    assert "--prompt-json" in error and "--data-csv" in error
    assert csv.read_bytes() == before and np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["hard.csv"])
