"""CLIPScore filtering: score math, scores against transformers run directly, the embedding cache, the
reference pickles, the reference-layout fallback, and every bad input."""

from __future__ import annotations

import functools
import pickle
import pickletools
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import load_script

from discl import clipscore
from discl.clipscore import (EmbeddingCache, check_threshold, cosine, parse_resize, reference_filtered_list,
                             reference_score_dict)
from discl.cli import run_cli
from discl.errors import InputError
from discl.fileio import atomic_save_image
from discl.guidance import level_from_strength
from discl.manifest import (MANIFEST_COLUMNS, read_manifest, sample_id, subfolder_name,
                            synthetic_relpath, write_manifest)

STRENGTHS = (0.3, 0.8)
SEEDS = (10, 20)



def train_images(wilds_root: Path) -> pd.DataFrame:
    """Mini iWildCam training images of non-empty classes, with their class names."""
    data = wilds_root / "iwildcam_v2.0"
    metadata = pd.read_csv(data / "metadata.csv")
    names = pd.read_csv(data / "categories.csv").set_index("y")["name"]
    train = metadata[(metadata["split"] == "train") & (metadata["y"] > 0)].copy()
    train["class_name"] = train["y"].map(names)
    return train.reset_index(drop=True)


def make_generation(wilds_root: Path, out: Path, images: pd.DataFrame, strengths=STRENGTHS, seeds=SEEDS,
                    part: str = "part001-of001") -> pd.DataFrame:
    """A generation output in the contract's layout: blends of each real image with noise + a manifest shard."""
    from discl.data.iwildcam import common_name
    from discl.prompts import iwildcam_prompt

    rows = []
    for image in images.itertuples():
        folder, stem = image.class_name.replace(" ", "_"), image.filename[:-4]
        real = np.asarray(Image.open(wilds_root / "iwildcam_v2.0/train" / image.filename).convert("RGB"), float)
        for strength in strengths:
            for seed in seeds:
                rng = np.random.default_rng(seed)
                pixels = (1 - strength) * real + strength * rng.uniform(0, 255, real.shape)
                relpath = synthetic_relpath(folder, strength, 10.0, seed, stem)
                atomic_save_image(Image.fromarray(pixels.astype(np.uint8)), out / relpath)
                rows.append({
                    "sample_id": sample_id(folder, subfolder_name(strength, 10.0, seed), stem), "dataset": "iwildcam",
                    "class_id": image.y, "class_name": image.class_name, "class_folder": folder,
                    "real_path": f"iwildcam_v2.0/train/{image.filename}", "image_stem": stem,
                    "prompt": iwildcam_prompt(common_name(image.class_name)), "strength": strength,
                    "image_guidance": level_from_strength(strength), "text_guidance": 10.0, "seed": seed,
                    "generator_seed": 7, "synthetic_path": relpath, "tries": 1,
                    "clip_image_text": "", "clip_image_image": "", "keep": ""})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_manifest(manifest, out / "manifests" / f"{part}.csv")
    return manifest


@pytest.fixture(scope="module")
def scorer_script(repo_root, hf_home):
    """The iWildCam scoring script, with the tiny CLIP installed under the real id."""
    return load_script("data_generation/iWildCam/comp_clip_scores.py")


@pytest.fixture(scope="module")
def generated(mini_iwildcam, tmp_path_factory) -> Path:
    """Three hard images × 2 strengths × 2 seeds, never scored (copy it before scoring)."""
    out = tmp_path_factory.mktemp("gen") / "iwildcam"
    make_generation(mini_iwildcam, out, train_images(mini_iwildcam).iloc[[0, 1, 30]])
    return out


@pytest.fixture(scope="module")
def scored(generated, mini_iwildcam, scorer_script, hf_home, tmp_path_factory) -> Path:
    """``generated`` scored once by the script with threshold 0.0."""
    out = tmp_path_factory.mktemp("scored") / "iwildcam"
    shutil.copytree(generated, out)
    scorer_script.main(["--syn_path", str(out), "--real_path", str(mini_iwildcam / "iwildcam_v2.0/train"),
                        "--threshold", "0.0", "--device", "cpu", "--batch-size", "5", "--clip-emb-pkl"])
    return out


def real_dir(wilds_root: Path) -> str:
    return str(wilds_root / "iwildcam_v2.0/train")


# ------------------------------------------------------------------------------------------- pure functions
def test_cosine_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [4.0, 3.0]])
    np.testing.assert_allclose(cosine(a, b), [0.0, 1.0, 24 / 25], atol=1e-7)
    np.testing.assert_allclose(cosine([1.0, 0.0], [[-1.0, 0.0]]), [-1.0])


def test_parse_resize_and_threshold():
    assert parse_resize("480x270") == (480, 270)
    assert parse_resize("none") is None and parse_resize(None) is None
    for bad in ("480", "0x10", "axb"):
        with pytest.raises(InputError, match="--resize"):
            parse_resize(bad)
    assert check_threshold(-1.0) == -1.0 and check_threshold(1) == 1.0
    for bad in (1.01, -1.5):
        with pytest.raises(InputError, match=r"outside \[-1, 1\]"):
            check_threshold(bad)


def test_embedding_cache_segments_and_a_kill_between_array_and_index(tmp_path):
    cache = EmbeddingCache(tmp_path, "x", 2)
    cache.put(["a", "b"], ["1", "1"], np.array([[1, 0], [0, 1]], np.float32))
    cache.save()
    cache.put(["a", "c"], ["2", "1"], np.array([[2, 2], [3, 3]], np.float32))  # a: regenerated image
    cache.save()
    cache.save()  # nothing new: no empty segment
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-00000.csv", "x-00000.npy", "x-00001.csv", "x-00001.npy"]
    # a run killed after writing a segment's array but before its index: that segment is ignored
    np.save(tmp_path / "x-00002.npy", np.array([[5, 5]], np.float32))
    reloaded = EmbeddingCache(tmp_path, "x", 2)
    assert reloaded.keys == ["b", "a", "c"] and reloaded.has("a", "2") and not reloaded.has("a", "1")
    np.testing.assert_array_equal(reloaded.get(["b", "a", "c"]), [[0, 1], [2, 2], [3, 3]])
    # the next save replaces the orphan array
    reloaded.put(["d"], ["1"], np.array([[4, 4]], np.float32))
    reloaded.save()
    assert (tmp_path / "x-00002.csv").is_file() and not (tmp_path / "x-00003.npy").exists()
    np.testing.assert_array_equal(EmbeddingCache(tmp_path, "x", 2).get(["d", "a"]), [[4, 4], [2, 2]])


def test_reference_pickle_shapes_by_hand():
    table = pd.DataFrame({"sample_id": ["cat=Strength30_guidance100_seed10=x", "dog=Strength80_guidance100_seed20=y"],
                          "clip_image_text": [0.31, 0.2], "clip_image_image": [0.9, 0.5], "keep": [True, False]})
    scores = reference_score_dict(table)
    assert scores["cat=Strength30_guidance100_seed10=x"][0].shape == (1,)
    assert scores["cat=Strength30_guidance100_seed10=x"][0][0] == np.float32(0.31)
    assert reference_filtered_list(table) == [[["cat", "Strength30_guidance100_seed10", "x"],
                                               pytest.approx(0.31), pytest.approx(0.9)]]


def test_filtered_pickle_without_memo_loads_as_the_list(tmp_path):
    """filtered_results.pkl is pickled in fast mode (no memo): loading gives the same list as a plain pickle."""
    table = pd.DataFrame({"sample_id": ["cat=S1=x", "ça=S2=a=b", "dog=S1=y", "cat=S1=x2"],
                          "clip_image_text": np.array([0.31, -0.2, 0.5, 1.0], np.float32),
                          "clip_image_image": np.array([0.9, 0.5, -0.0, 0.25], np.float32),
                          "keep": [True, True, False, True]})
    tree = reference_filtered_list(table)
    clipscore._write_pickle(tmp_path / "f.pkl", tree, shared=False)
    loaded = pickle.loads((tmp_path / "f.pkl").read_bytes())
    assert loaded == pickle.loads(pickle.dumps(tree)) == tree
    assert [parts for parts, _, _ in loaded] == [["cat", "S1", "x"], ["ça", "S2", "a", "b"], ["cat", "S1", "x2"]]
    assert loaded[1][1] == float(np.float32(-0.2))
    assert not any(op.name.endswith(("PUT", "MEMOIZE")) for op, _, _ in pickletools.genops(
        (tmp_path / "f.pkl").read_bytes()))


def test_score_pickle_written_directly_loads_as_the_dict(monkeypatch):
    """clip_score.pkl is written as opcodes: pickle.load must give reference_score_dict exactly."""
    import pickle
    import random

    import discl.refpickle
    from discl.refpickle import score_pickle_bytes

    monkeypatch.setattr(discl.refpickle, "BLOCK", 7)  # several blocks
    rng = random.Random(0)
    for count in (0, 1, 6, 7, 8, 40):
        keys = [f"c{rng.choice(['', 'é', '猫', 'x' * 300, chr(0xdc80)])}=Strength{i}_guidance100_seed1={i}"
                for i in range(count)]
        text = np.array([rng.uniform(-1, 1) for _ in keys], np.float32)
        image = np.array([rng.choice([0.0, -0.0, 1.0, 1e-40, rng.random()]) for _ in keys], np.float32)
        loaded = pickle.loads(score_pickle_bytes(keys, text, image))
        expected = reference_score_dict(pd.DataFrame({"sample_id": keys, "clip_image_text": text,
                                                      "clip_image_image": image}))
        assert list(loaded) == list(expected)
        for key in keys:
            assert [type(a) for a in loaded[key]] == [np.ndarray, np.ndarray]
            assert [(a.dtype, a.shape, a.tobytes()) for a in loaded[key]] == \
                   [(a.dtype, a.shape, a.tobytes()) for a in expected[key]]


# ------------------------------------------------------------------------------------------------- scoring
def test_scores_match_transformers_one_image_at_a_time(scored, mini_iwildcam):
    """Independent computation: CLIPModel by its real id, batch 1, the same 480×270 resize."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained("openai/clip-vit-base-patch32").eval()
    processor = CLIPProcessor.from_pretrained("openai/clip-vit-base-patch32")

    def unit(output):
        vector = (output if torch.is_tensor(output) else output.pooler_output)[0].double().numpy()
        return vector / np.linalg.norm(vector)

    @functools.lru_cache(maxsize=None)
    def image_vector(path):
        image = Image.open(path).convert("RGB").resize((480, 270))
        with torch.no_grad():
            return unit(model.get_image_features(**processor(images=image, return_tensors="pt")))

    @functools.lru_cache(maxsize=None)
    def text_vector(text):
        with torch.no_grad():
            return unit(model.get_text_features(**processor.tokenizer(text, return_tensors="pt")))

    table = pd.read_csv(scored / "clip_scores.csv")
    assert len(table) == 12
    for row in table.itertuples():
        synthetic = image_vector(scored / row.synthetic_path)
        real = image_vector(Path(real_dir(mini_iwildcam)) / f"{row.image_stem}.jpg")
        assert row.clip_image_text == pytest.approx(float(synthetic @ text_vector(row.prompt)), abs=1e-5)
        assert row.clip_image_image == pytest.approx(float(synthetic @ real), abs=1e-5)
    # the scored table is the manifest with the score columns filled
    assert read_manifest(scored / "clip_scores.csv")["keep"].tolist() == (table["clip_image_text"] >= 0).tolist()


def test_reference_pickles_read_like_the_reference_builder(scored):
    table = pd.read_csv(scored / "clip_scores.csv").set_index("sample_id")
    scores = pickle.loads((scored / "clip_score.pkl").read_bytes())
    assert set(scores) == set(table.index)
    for key, value in scores.items():
        assert isinstance(value, list) and len(value) == 2
        # the reference's CSV builder reads value[0][0] as the image–text similarity
        # the CSV holds each float32 similarity exactly, as its double
        assert float(value[0][0]) == table.loc[key, "clip_image_text"]
        assert float(value[1][0]) == table.loc[key, "clip_image_image"]
        class_folder, subfolder, stem = key.split("=")
        assert (scored / class_folder / subfolder / f"{stem}.jpg").is_file()
    # its filter (score >= threshold, grouped subfolder -> class -> stems) works on our values
    nested: dict = {}
    for key, value in scores.items():
        if value[0][0] >= 0.1:
            class_folder, subfolder, stem = key.split("=")
            nested.setdefault(subfolder, {}).setdefault(class_folder, []).append(stem)
    assert sum(len(s) for c in nested.values() for s in c.values()) == int((table["clip_image_text"] >= 0.1).sum())
    filtered = pickle.loads((scored / "filtered_results.pkl").read_bytes())
    kept = table[table["keep"]]
    assert len(filtered) == len(kept)
    for (parts, text, image) in filtered:
        key = "=".join(parts)
        assert len(parts) == 3 and text == pytest.approx(kept.loc[key, "clip_image_text"])
        assert image == pytest.approx(kept.loc[key, "clip_image_image"])
    embeddings = pickle.loads(next(scored.glob("*/Strength30_guidance100_seed10/clip_emb.pkl")).read_bytes())
    assert all(e.shape == (1, 32) and abs(np.linalg.norm(e) - 1) < 1e-5 for e in embeddings.values())


def test_scored_manifest_copy_is_the_parsed_csv(scored):
    """The scorer leaves a validated copy of clip_scores.csv (discl.tablecache) equal to parsing and validating it."""
    from discl.manifest import CACHE_KIND, validate_manifest
    from discl.tablecache import read_cache

    path = scored / "clip_scores.csv"
    copy = read_cache(path, CACHE_KIND)
    assert copy is not None and copy["keep"].map(type).eq(bool).all()
    parsed = validate_manifest(pd.read_csv(path, dtype=str, keep_default_na=False), path)
    pd.testing.assert_frame_equal(copy, parsed, check_exact=True)
    pd.testing.assert_frame_equal(clipscore.read_scores(path), parsed, check_exact=True)


def test_reports_and_histogram(scored):
    by_guidance = pd.read_csv(scored / "filter_report_by_guidance.csv")
    table = pd.read_csv(scored / "clip_scores.csv")
    assert by_guidance["image_guidance"].tolist() == [20, 70]
    assert by_guidance["total"].tolist() == [6, 6]
    assert (by_guidance["kept"] + by_guidance["dropped"] == by_guidance["total"]).all()
    by_class = pd.read_csv(scored / "filter_report_by_class.csv")
    assert by_class["total"].sum() == len(table) and by_class["kept"].sum() == int(table["keep"].sum())
    assert (scored / "clip_scores_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cache_encodes_only_new_images(scored, mini_iwildcam, scorer_script, tmp_path, capsys):
    """A rerun encodes nothing; a new shard encodes only its images; a regenerated image is re-encoded."""
    from discl.clipscore import run_scoring

    out = tmp_path / "gen"
    shutil.copytree(scored, out)
    argv = ["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam), "--device", "cpu"]
    config, dataset, _ = clipscore.parse_args(argv, "iwildcam")
    assert (config.threshold, config.resize) == (0.25, "480x270")  # the dataset's defaults
    first, stats, _ = run_scoring(config, dataset)
    assert (stats.texts_encoded, stats.real_encoded, stats.synthetic_encoded) == (0, 0, 0)
    # a newly finished shard: one more hard image (new class, new prompt), plus one old image at a new seed
    images = train_images(mini_iwildcam)
    make_generation(mini_iwildcam, out, images.iloc[[44]], part="part002-of003")
    make_generation(mini_iwildcam, out, images.iloc[[0]], seeds=(30,), part="part003-of003")
    # and one old synthetic image regenerated in place
    regenerated = out / first["synthetic_path"].iloc[0]
    Image.open(regenerated).rotate(90).save(regenerated)
    table, stats, _ = run_scoring(config, dataset)
    assert len(table) == 12 + 4 + 2
    assert stats.texts_encoded == 1  # the new class's prompt
    assert stats.real_encoded == 1  # the new hard image
    assert stats.synthetic_encoded == 4 + 2 + 1
    assert table.set_index("sample_id").loc[first["sample_id"].iloc[1], "clip_image_text"] == \
        pytest.approx(first["clip_image_text"].iloc[1], abs=1e-7)


def test_reference_layout_fallback_gives_the_same_scores(scored, generated, mini_iwildcam, scorer_script, tmp_path):
    out = tmp_path / "layout"
    shutil.copytree(generated, out, ignore=shutil.ignore_patterns("manifests"))
    scorer_script.main(["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam), "--threshold", "0.0",
                        "--device", "cpu"])
    ours = pd.read_csv(out / "clip_scores.csv").set_index("sample_id").sort_index()
    expected = pd.read_csv(scored / "clip_scores.csv").set_index("sample_id").sort_index()
    assert ours.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(ours["clip_image_text"], expected["clip_image_text"], atol=1e-6)
    np.testing.assert_allclose(ours["clip_image_image"], expected["clip_image_image"], atol=1e-6)
    assert (ours["class_id"] == expected["class_id"]).all() and (ours["prompt"] == expected["prompt"]).all()


def test_imagenet_lt_native_size_and_class_text(mini_imagenet_lt, repo_root, hf_home, tmp_path):
    """ImageNet-LT defaults: no resize, threshold 0.30; --text class scores against 'a photo of {class}'."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from discl.data.imagenet_lt import class_names

    lines = [line.split() for line in (mini_imagenet_lt / "ImageNet_LT_train.txt").read_text().splitlines()]
    sources = [(path, int(label)) for path, label in lines if int(label) == 6][:2]
    out, name = tmp_path / "gen", class_names()[6]
    rows = []
    for path, label in sources:
        stem, folder = Path(path).stem, name.replace(" ", "_")
        relpath = synthetic_relpath(folder, 0.5, 10.0, 10, stem)
        atomic_save_image(Image.open(mini_imagenet_lt / path).convert("RGB").rotate(180), out / relpath)
        rows.append({"sample_id": sample_id(folder, subfolder_name(0.5, 10.0, 10), stem), "dataset": "imagenet_lt",
                     "class_id": label, "class_name": name, "class_folder": folder, "real_path": path,
                     "image_stem": stem, "prompt": "a 8k real photo: a long scene description", "strength": 0.5,
                     "image_guidance": 50, "text_guidance": 10.0, "seed": 10, "generator_seed": 3,
                     "synthetic_path": relpath, "tries": 2, "clip_image_text": "", "clip_image_image": "", "keep": ""})
    write_manifest(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), out / "manifests/part001-of001.csv")
    script = load_script("data_generation/ImageNet_LT/comp_clip_scores.py")
    assert clipscore.get_args_parser("imagenet_lt").parse_args(["--syn_path", "x", "--real_path", "y"]).threshold == 0.30
    script.main(["--syn_path", str(out), "--real_path", str(mini_imagenet_lt), "--text", "class", "--device", "cpu"])

    model = CLIPModel.from_pretrained("openai/clip-vit-base-patch32").eval()
    processor = CLIPProcessor.from_pretrained("openai/clip-vit-base-patch32")
    with torch.no_grad():
        text = model.get_text_features(**processor.tokenizer(f"a photo of {name}", return_tensors="pt"))
        text = (text if torch.is_tensor(text) else text.pooler_output)[0].numpy()
        table = pd.read_csv(out / "clip_scores.csv")
        for row in table.itertuples():
            image = Image.open(out / row.synthetic_path).convert("RGB")  # native size: no resize
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            embedding = model.get_image_features(pixel_values=pixels)
            embedding = (embedding if torch.is_tensor(embedding) else embedding.pooler_output)[0].numpy()
            assert row.clip_image_text == pytest.approx(float(cosine(embedding, text)[0]), abs=1e-5)
            assert row.tries == 2 and row.keep == (row.clip_image_text >= 0.30)


# ------------------------------------------------------------------------------------------------ bad input
def run_expecting_error(script, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(script.main, argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_threshold_outside_range(generated, mini_iwildcam, scorer_script, capsys):
    message = run_expecting_error(scorer_script, ["--syn_path", str(generated), "--real_path",
                                                  real_dir(mini_iwildcam), "--threshold", "1.5"], capsys)
    assert "column '--threshold'" in message and "outside [-1, 1]" in message


def test_missing_real_image_names_manifest_row_and_column(generated, mini_iwildcam, scorer_script, tmp_path, capsys):
    real = tmp_path / "real"
    shutil.copytree(real_dir(mini_iwildcam), real)
    manifest = read_manifest(next((generated / "manifests").glob("*.csv")))
    (real / f"{manifest['image_stem'].iloc[5]}.jpg").unlink()
    out = tmp_path / "gen"
    shutil.copytree(generated, out)
    message = run_expecting_error(scorer_script, ["--syn_path", str(out), "--real_path", str(real)], capsys)
    first_row = int(np.flatnonzero(manifest["image_stem"] == manifest["image_stem"].iloc[5])[0]) + 1
    assert f"part001-of001.csv: row {first_row}: column 'real_path': real image" in message
    assert not (out / "clip_scores.csv").exists() and not (out / "clip_score.pkl").exists()


def test_folder_not_in_layout(generated, mini_iwildcam, scorer_script, tmp_path, capsys):
    out = tmp_path / "layout"
    shutil.copytree(generated, out, ignore=shutil.ignore_patterns("manifests"))
    (out / "tayassu_pecari" / "samples_v2").mkdir()
    message = run_expecting_error(scorer_script, ["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam)],
                                  capsys)
    assert "samples_v2: not in the layout" in message


def test_unknown_class_folder(generated, mini_iwildcam, scorer_script, tmp_path, capsys):
    out = tmp_path / "layout"
    shutil.copytree(generated, out, ignore=shutil.ignore_patterns("manifests"))
    (out / "Cheetah").mkdir()
    message = run_expecting_error(scorer_script, ["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam)],
                                  capsys)
    assert "Cheetah" in message and "acinonyx jubatus" in message


def test_corrupt_synthetic_image(generated, mini_iwildcam, scorer_script, tmp_path, capsys):
    out = tmp_path / "gen"
    shutil.copytree(generated, out)
    broken = sorted(out.glob("*/Strength80_guidance100_seed20/*.jpg"))[0]
    broken.write_bytes(b"not a jpeg")
    message = run_expecting_error(scorer_script, ["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam)],
                                  capsys)
    assert f"error: {broken}: cannot read image" in message
    assert not (out / "clip_scores.csv").exists()
    # what was encoded before the bad image is kept for the rerun
    assert len(list((out / "clip_cache").glob("*/texts-00000.csv"))) == 1
    assert len(list((out / "clip_cache").glob("*/480x270/real-00000.csv"))) == 1


def test_missing_synthetic_image_and_empty_folder(generated, mini_iwildcam, scorer_script, tmp_path, capsys):
    out = tmp_path / "gen"
    shutil.copytree(generated, out)
    manifest = read_manifest(next((out / "manifests").glob("*.csv")))
    (out / manifest["synthetic_path"].iloc[3]).unlink()
    message = run_expecting_error(scorer_script, ["--syn_path", str(out), "--real_path", real_dir(mini_iwildcam)],
                                  capsys)
    assert "row 4: column 'synthetic_path': synthetic image" in message
    (tmp_path / "empty").mkdir()
    message = run_expecting_error(scorer_script, ["--syn_path", str(tmp_path / "empty"), "--real_path",
                                                  real_dir(mini_iwildcam)], capsys)
    assert "no synthetic images found" in message


def test_bench_prints_equal_scores_and_speedup(hf_home, capsys):
    """The benchmark's own check: reference-style and batched scores agree to 1e-5, last line is the ratio."""
    bench = load_script("bench/bench_clipscore.py")
    assert bench.main(["--hf-home", str(hf_home), "--images", "1", "--seeds", "2", "--strengths", "2",
                       "--real-size", "96x54", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup=\d+\.\d", lines[-1])
    difference = next(line for line in lines if line.startswith("max |difference|"))
    assert all(float(value) <= 1e-5 for value in re.findall(r"(\d\.\d+e[-+]\d+)", difference))


def test_generic_script_takes_the_dataset_and_its_defaults(generated, mini_iwildcam, hf_home, tmp_path, capsys):
    script = load_script("data_generation/comp_clip_scores.py")
    with pytest.raises(SystemExit):
        script.main(["--syn-path", str(generated), "--real-path", real_dir(mini_iwildcam)])
    assert "--dataset" in capsys.readouterr().err  # required without a per-dataset script
    parser = clipscore.get_args_parser(None, ["--dataset", "imagenet_lt"])
    assert parser.parse_args(["--dataset", "imagenet_lt", "--syn-path", "x", "--real-path", "y"]).resize == "none"
    out = tmp_path / "gen"
    shutil.copytree(generated, out)
    assert script.main(["--dataset", "iwildcam", "--syn-path", str(out), "--real-path", real_dir(mini_iwildcam),
                        "--device", "cpu"]) == 0
    assert "(threshold 0.25)" in capsys.readouterr().out
    assert len(list((out / "clip_cache").glob("*/480x270/real-00000.csv"))) == 1  # the dataset's resize


def test_manifest_of_another_dataset_is_refused(generated, mini_iwildcam, tmp_path, capsys):
    script = load_script("data_generation/ImageNet_LT/comp_clip_scores.py")
    message = run_expecting_error(script, ["--syn_path", str(generated), "--real_path", real_dir(mini_iwildcam)],
                                  capsys)
    assert "part001-of001.csv: row 1: column 'dataset': dataset 'iwildcam', but --dataset is 'imagenet_lt'" in message
