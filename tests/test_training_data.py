"""Curriculum training data: encodings and image ids by hand, the validation sample, both builders end to end
on the mini datasets with hand-made scores, the table readers, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from helpers import load_script

from discl.cli import run_cli
from discl.data.training_tables import (read_imagenet_lt_list, read_training_table, validate_training_table,
                                        write_imagenet_lt_list, write_training_table)
from discl.errors import InputError
from discl.guidance import level_from_strength
from discl.manifest import (MANIFEST_COLUMNS, sample_id, subfolder_name, synthetic_relpath,
                            write_manifest)
from discl.training_data import (assign_image_ids, build_curriculum, real_rows, sample_validation, synthetic_rows,
                                 titled_rows)



def scored_rows(dataset: str, images: list[tuple[str, int, str]], strengths, seeds, text_score=None) -> pd.DataFrame:
    """A scored manifest by hand: ``images`` are (real path, label, class name); keep = image–text ≥ 0.25."""
    rows = []
    for real_path, label, class_name in images:
        folder, stem = class_name.replace(" ", "_"), Path(real_path).stem
        for strength in strengths:
            for seed in seeds:
                score = 0.3 if text_score is None else text_score(stem, strength, seed)
                rows.append({
                    "sample_id": sample_id(folder, subfolder_name(strength, 10.0, seed), stem), "dataset": dataset,
                    "class_id": label, "class_name": class_name, "class_folder": folder, "real_path": real_path,
                    "image_stem": stem, "prompt": f"a photo of {class_name}", "strength": strength,
                    "image_guidance": level_from_strength(strength), "text_guidance": 10.0, "seed": seed,
                    "generator_seed": 1, "synthetic_path": synthetic_relpath(folder, strength, 10.0, seed, stem),
                    "tries": 1, "clip_image_text": score, "clip_image_image": 0.9, "keep": score >= 0.25})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


# --------------------------------------------------------------------------------------------- pure steps
def test_image_ids_by_hand():
    frame = pd.DataFrame({"key": ["a", "b", "b", "c", "d", "d", "d"],
                          "guidance": [100, 100, 70, 100, 100, 50, 70]})
    assert assign_image_ids(frame).tolist() == [-1, 0, 0, -2, 1, 1, 1]


def test_synthetic_encodings_threshold_and_min_guidance():
    real = real_rows(["x/a.jpg", "x/b.jpg"], ["/r/x/a.jpg", "/r/x/b.jpg"], [3, 4])
    assert real[["strength", "guidance", "seed"]].drop_duplicates().values.tolist() == [[0, 100, 100]]
    scores = scored_rows("iwildcam", [("x/a.jpg", 3, "puma concolor")], (0.3, 0.6, 0.5), (10,),
                         text_score=lambda stem, s, seed: {0.3: 0.3, 0.6: 0.4, 0.5: 0.2}[s])
    rows = synthetic_rows(scores, real, "/syn", min_guidance=50)
    # 0.5 is dropped by CLIPScore (0.2 < 0.25), 0.6 by the minimum guidance (40 < 50)
    assert rows[["key", "label", "strength", "guidance", "seed"]].values.tolist() == [["x/a.jpg", 3, 30, 70, 10]]
    assert rows["filepath"].tolist() == ["/syn/puma_concolor/Strength30_guidance100_seed10/a.jpg"]
    # a threshold given to the builder re-filters on the image–text similarity instead of `keep`
    assert sorted(synthetic_rows(scores, real, "/syn", threshold=0.15)["guidance"]) == [40, 50, 70]
    assert synthetic_rows(scores, real, "/syn", levels=[50])["guidance"].tolist() == []


def test_validation_sample_has_every_level_and_is_reproducible():
    keys = ["a", "b", "c", "d"]
    real = real_rows(keys, keys, [0, 1, 2, 3])
    synthetic = pd.DataFrame([(k, k, k, i, 100 - g, g, seed) for i, k in enumerate(keys)
                              for g in ((50, 70) if k != "c" else (70,)) for seed in (10, 20)],
                             columns=["key", "path", "filepath", "label", "strength", "guidance", "seed"])
    tables = build_curriculum(real, synthetic.iloc[:-4], val_size=1, random_state=0)  # d has no synthetic rows
    # (a, b, c are hard: at most half of them, 1, may be held out)
    assert tables.levels == [50, 70, 100]
    validation = tables.validation
    assert validation["key"].nunique() == 1 and validation["key"].iloc[0] in ("a", "b")
    assert sorted(validation["guidance"]) == [50, 70, 100]  # one row per level, the real one included
    assert set(tables.train["key"]) == set(keys) - set(validation["key"])
    assert tables.train.set_index("key")["img_id"].groupby(level=0).first().to_dict() == \
        {k: v for k, v in {"a": 0, "b": 1, "c": 2, "d": -1}.items() if k not in set(validation["key"])}
    again = build_curriculum(real, synthetic.iloc[:-4], val_size=1, random_state=0)
    pd.testing.assert_frame_equal(again.validation, validation)
    # more images asked for than have every level: all candidates (a and b), never c
    everything = sample_validation(pd.concat([real, synthetic.iloc[:-4]]).assign(img_id=0), size=10)
    assert sorted(everything["key"].unique()) == ["a", "b"]


def test_titles_two_templates_in_reference_order():
    frame = pd.DataFrame({"key": ["a", "b"], "filepath": ["/a.jpg", "/b.jpg"], "label": [1, 0], "strength": [0, 30],
                          "guidance": [100, 70], "seed": [100, 10], "img_id": [-1, 0]})
    titled = titled_rows(frame, ["empty", "cheetah"], ("a photo of {}.", "{} in the wild."))
    assert titled["title"].tolist() == ["a photo of cheetah.", "a photo of empty.", "cheetah in the wild.",
                                        "empty in the wild."]
    assert titled["filepath"].tolist() == ["/a.jpg", "/b.jpg"] * 2


# ------------------------------------------------------------------------------------------ table readers
def test_table_round_trip_and_validation(tmp_path):
    good = pd.DataFrame({"title": ["a photo of puma."], "filepath": ["rel/a.jpg"], "label": [3], "strength": [30],
                         "guidance": [70], "seed": [10], "img_id": [0]})
    write_training_table(good, tmp_path / "t.csv")
    back = read_training_table(tmp_path / "t.csv")
    assert back["filepath"].tolist() == [str(tmp_path.resolve() / "rel/a.jpg")]
    assert back[["label", "strength", "guidance", "seed", "img_id"]].values.tolist() == [[3, 30, 70, 10, 0]]
    for column, value, message in (("guidance", 60, "!= 100 - strength"), ("label", "x", "expected an integer"),
                                   ("strength", 130, "outside [0, 100]"), ("title", "", "value is missing")):
        with pytest.raises(InputError, match=f"row 1: column '{column}'.*{message[:12]}".replace("[", r"\[")):
            validate_training_table(good.assign(**{column: [value]}), "t.csv")
    with pytest.raises(InputError, match="missing column"):
        validate_training_table(good.drop(columns=["img_id"]))
    (tmp_path / "list.txt").write_text("train/a.JPEG 1 100\nsyn/b.jpg 1\n")
    with pytest.raises(InputError, match="list.txt: row 2: expected"):
        read_imagenet_lt_list(tmp_path / "list.txt", "/r", "/s")
    with pytest.raises(InputError, match="row 1: column 'path': path '/abs.jpg' of a real image must be relative"):
        write_imagenet_lt_list(pd.DataFrame({"path": ["/abs.jpg"], "label": [1], "guidance": [100]}), tmp_path / "l")
    write_imagenet_lt_list(pd.DataFrame({"path": ["train/a.JPEG", "/s/b.JPEG"], "label": [1, 1], "guidance": [100, 10],
                                         "train_cnt": [7, 7]}), tmp_path / "l")
    assert (tmp_path / "l").read_text() == "train/a.JPEG 1 100 7\n/s/b.JPEG 1 10 7\n"
    assert read_imagenet_lt_list(tmp_path / "l", "/r", "/x")["filepath"].tolist() == ["/r/train/a.JPEG", "/s/b.JPEG"]
    with pytest.raises(InputError, match="data_roots.json: not found"):
        read_imagenet_lt_list(tmp_path / "list.txt")


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def iwildcam_hard(mini_iwildcam) -> list[tuple[str, int, str]]:
    data = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data / "metadata.csv")
    names = pd.read_csv(data / "categories.csv").set_index("y")["name"]
    train = metadata[(metadata["split"] == "train") & (metadata["y"] > 0)].iloc[[0, 1, 2, 20, 30]]
    return [(f"iwildcam_v2.0/train/{f}", int(y), names[y]) for f, y in zip(train["filename"], train["y"])]


def test_iwildcam_builder_end_to_end(mini_iwildcam, iwildcam_hard, repo_root, tmp_path, capsys):
    syn = tmp_path / "gen"
    # image 4 misses strength 0.3 at seed 20 only; image 5's 0.3 versions all fail CLIPScore
    scores = scored_rows("iwildcam", iwildcam_hard, (0.1, 0.3, 0.5, 0.7), (10, 20),
                         text_score=lambda stem, s, seed: 0.1 if stem == Path(iwildcam_hard[4][0]).stem and s == 0.3
                         else 0.3)
    scores = scores[~((scores["image_stem"] == Path(iwildcam_hard[3][0]).stem) & (scores["strength"] == 0.3)
                      & (scores["seed"] == 20))]
    write_manifest(scores, syn / "clip_scores.csv")
    script = load_script("curriculum/iWildCam/build_data.py")
    assert script.main(["--syn_path", str(syn), "--data-root", str(mini_iwildcam), "--save_folder",
                        str(tmp_path / "data"), "--val-size", "2", "--random-state", "3"]) == 0
    printed = capsys.readouterr().out
    assert "levels [50, 70, 90, 100]" in printed
    train = read_training_table(tmp_path / "data/train.csv")
    validation = read_training_table(tmp_path / "data/validate.csv")
    n_train = (pd.read_csv(mini_iwildcam / "iwildcam_v2.0/metadata.csv")["split"] == "train").sum()

    stems = {Path(p).stem: i for i, (p, _, _) in enumerate(iwildcam_hard)}
    val_stems = {Path(p).stem for p in validation["filepath"]}
    assert len(val_stems) == 2 and not val_stems & {Path(p).stem for p in train["filepath"]}
    # only images 1-3 have every kept level (image 4 still has 70 at seed 10; image 5 lacks 70)
    assert {stems[s] for s in val_stems} <= {0, 1, 2, 3}
    assert validation["title"].str.startswith("a photo of ").all()
    assert sorted(validation["guidance"]) == [50, 50, 70, 70, 90, 90, 100, 100]
    # two caption templates per row, template 1 first
    half = len(train) // 2
    assert train["title"][:half].str.startswith("a photo of ").all()
    assert train["title"][half:].str.endswith(" in the wild.").all()
    assert (train["filepath"][:half].to_numpy() == train["filepath"][half:].to_numpy()).all()
    rows = train[:half]
    real = rows[rows["guidance"] == 100]
    assert len(real) == n_train - 2 and (real["strength"] == 0).all() and (real["seed"] == 100).all()
    synthetic = rows[rows["guidance"] < 100]
    assert set(synthetic["guidance"]) == {50, 70, 90} and (synthetic["strength"] == 100 - synthetic["guidance"]).all()
    assert set(synthetic["seed"]) == {10, 20}
    assert synthetic["filepath"].str.startswith(str(syn.resolve())).all()
    # hard images (with kept synthetic rows) have ids >= 0, every other real image a distinct negative id
    hard_ids = rows[rows["img_id"] >= 0].groupby("img_id")["filepath"].apply(lambda p: {Path(x).stem for x in p})
    assert all(len(s) == 1 for s in hard_ids) and {next(iter(s)) for s in hard_ids} == set(stems) - val_stems
    assert sorted(real.loc[real["img_id"] < 0, "img_id"]) == list(range(-(n_train - 5), 0))
    assert "a photo of cheetah." in set(train["title"]) or "a photo of puma." in set(train["title"])


def test_text_only_table_holds_out_the_discl_tables_images(mini_iwildcam, iwildcam_hard, tmp_path, caplog):
    """--holdout-from: the text-only table (guidance 0) holds out the DisCL table's validation images, so both
    tables have the same real rows; what differs is the synthetic rows."""
    syn = tmp_path / "gen"
    # image 1 has no kept guidance-0 version: it is held out all the same, with its real row only
    scores = scored_rows("iwildcam", iwildcam_hard, (0.3, 0.5, 1.0), (10, 20),
                         text_score=lambda stem, s, seed: 0.1 if stem == Path(iwildcam_hard[1][0]).stem and s == 1.0
                         else 0.3)
    write_manifest(scores, syn / "clip_scores.csv")
    script = load_script("curriculum/iWildCam/build_data.py")
    common = ["--syn_path", str(syn), "--data-root", str(mini_iwildcam)]
    assert script.main([*common, "--save_folder", str(tmp_path / "discl"), "--val-size", "2"]) == 0
    text_only = ["--min-guidance", "0", "--guidance-levels", "0", "--random-state", "7"]
    assert script.main([*common, "--save_folder", str(tmp_path / "own"), *text_only]) == 0
    with caplog.at_level("WARNING"):
        assert script.main([*common, "--save_folder", str(tmp_path / "text"), *text_only,
                            "--holdout-from", str(tmp_path / "discl")]) == 0
    assert "lack 1 of their (image, level) rows" in caplog.text
    record = json.loads((tmp_path / "text/tables.json").read_text())
    assert record["complete"] and record["holdout_from"] == str((tmp_path / "discl").resolve())
    assert "holdout_from" not in json.loads((tmp_path / "own/tables.json").read_text())

    def real_paths(folder: str, table: str) -> list[str]:
        rows = read_training_table(tmp_path / folder / table)
        return sorted(rows.loc[rows["guidance"] == 100, "filepath"])

    held_out = real_paths("discl", "validate.csv")
    assert len(held_out) == 2 and real_paths("text", "validate.csv") == held_out
    assert real_paths("text", "train.csv") == real_paths("discl", "train.csv")
    assert real_paths("own", "train.csv") != real_paths("discl", "train.csv")  # what the option is for
    text = read_training_table(tmp_path / "text/train.csv")
    assert set(text["guidance"]) == {0, 100} and not set(text["filepath"]) & set(held_out)
    validation = read_training_table(tmp_path / "text/validate.csv")
    assert any(p.endswith(iwildcam_hard[1][0]) for p in held_out)  # the sample (seed 42) holds image 1 out
    assert sorted(validation["guidance"]) == [0, 100, 100]


def test_holdout_from_refuses_a_folder_it_cannot_match(mini_iwildcam, iwildcam_hard, tmp_path, capsys):
    syn = tmp_path / "gen"
    write_manifest(scored_rows("iwildcam", iwildcam_hard, (0.5, 1.0), (10,)), syn / "clip_scores.csv")
    script = load_script("curriculum/iWildCam/build_data.py")
    common = ["--syn_path", str(syn), "--data-root", str(mini_iwildcam), "--min-guidance", "0"]
    assert script.main([*common, "--save_folder", str(tmp_path / "discl"), "--val-size", "1"]) == 0

    def error(folder: Path) -> str:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(script.main, [*common, "--save_folder", str(tmp_path / "out"), "--holdout-from", str(folder)])
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip()

    missing = error(tmp_path / "nowhere")
    assert "validate.csv: column '--holdout-from': not found (an output folder of build_data.py" in missing
    table = read_training_table(tmp_path / "discl/validate.csv")
    moved = tmp_path / "moved"
    moved.mkdir()
    real = table["guidance"] == 100
    write_training_table(table.assign(filepath=table["filepath"].where(~real, "/elsewhere/x.jpg")),
                         moved / "validate.csv")
    row = int(real.to_numpy().nonzero()[0][0]) + 1
    assert f"validate.csv: row {row}: column 'filepath': real image '/elsewhere/x.jpg' is not a training image" \
        in error(moved)
    write_training_table(table[~real], moved / "validate.csv")
    assert "holds no real rows" in error(moved)
    record = (tmp_path / "discl/tables.json")
    record.write_text(record.read_text().replace('"iwildcam"', '"imagenet_lt"'))
    assert "tables.json: column '--holdout-from': was built for dataset 'imagenet_lt'" in error(tmp_path / "discl")
    record.write_text('{"complete": false}')
    assert "did not finish" in error(tmp_path / "discl")
    assert "column '--holdout-from': is the output folder" in error(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("syn_name", ["gen", "my gen"])
def test_imagenet_lt_builder_end_to_end(mini_imagenet_lt, repo_root, tmp_path, syn_name, caplog):
    from discl.data.imagenet_lt import read_list

    train_list = [line.split() for line in (mini_imagenet_lt / "ImageNet_LT_train.txt").read_text().splitlines()]
    few = [(path, int(label), f"class {label}") for path, label in train_list if int(label) >= 6][:3]
    syn = tmp_path / syn_name
    write_manifest(scored_rows("imagenet_lt", few, (0.9, 0.7, 0.5, 0.2), (10,)), syn / "clip_scores.csv")
    script = load_script("curriculum/ImageNet_LT/build_data.py")
    script.main(["--syn_path", str(syn), "--data-root", str(mini_imagenet_lt), "--save_folder",
                 str(tmp_path / "data"), "--val-size", "1"])
    train = read_imagenet_lt_list(tmp_path / "data/train.txt")
    validation = read_imagenet_lt_list(tmp_path / "data/validate.txt")
    assert sorted(set(train["guidance"])) == [10, 30, 50, 100]  # strength 0.2 (guidance 80) is not a candidate
    assert sorted(validation["guidance"]) == [10, 30, 50, 100]
    assert len(train[train["guidance"] == 100]) == len(train_list) - 1
    real = train[train["guidance"] == 100]
    assert (real["filepath"] == [str(mini_imagenet_lt.resolve() / p) for p in real["path"]]).all()
    synthetic = train[train["guidance"] < 100]
    assert synthetic["path"].str.contains("/Strength").all()
    assert synthetic["filepath"].str.startswith(str(syn.resolve())).all()
    # the trainer's own list reader reads the same file
    entries = read_list(tmp_path / "data/train.txt")
    assert [(e.path, e.label, e.guidance) for e in entries] == list(train[["path", "label", "guidance"]].itertuples(
        index=False, name=None))
    # what the reference's loader (LT_Dataset_MIX) does with a line: split it, join the path to its one root (the
    # ImageNet root), read guidance and the class's training count (its tail rule: count < 20)
    counts = pd.Series([int(label) for _, label in train_list]).value_counts()
    absolute = " " not in syn_name
    for line in (tmp_path / "data/train.txt").read_text().splitlines():
        path, label, guidance, train_cnt = line.split()
        assert int(train_cnt) == counts[int(label)]
        if int(guidance) == 100:
            assert os.path.isfile(os.path.join(mini_imagenet_lt, path))
        else:  # absolute: the one root reaches them (unless a space in the root would split the line)
            assert os.path.isabs(path) == absolute and path.startswith(str(syn.resolve())) == absolute
    assert ("contains whitespace" in caplog.text) == (not absolute)
    # the loader's curriculum list is {train_file}_curri.txt
    assert (tmp_path / "data/train_curri.txt").read_bytes() == (tmp_path / "data/validate.txt").read_bytes()


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_inputs(mini_iwildcam, iwildcam_hard, repo_root, tmp_path, capsys):
    script = load_script("curriculum/iWildCam/build_data.py")
    syn = tmp_path / "gen"
    syn.mkdir()

    def error(*extra) -> str:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(script.main, ["--syn_path", str(syn), "--data-root", str(mini_iwildcam), "--save_folder",
                                  str(tmp_path / "data"), *extra])
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip()

    assert "clip_scores.csv: manifest file not found" in error()
    scores = scored_rows("iwildcam", iwildcam_hard[:2], (0.3,), (10,))
    write_manifest(scores.assign(clip_image_text=["", 0.3], keep=["", True]), syn / "clip_scores.csv")
    assert "row 1: column 'clip_image_text': value is missing (run comp_clip_scores.py first)" in error()
    renamed = scores.copy()
    renamed.loc[0, ["image_stem", "sample_id", "synthetic_path"]] = [
        "nope", renamed["sample_id"][0].rsplit("=", 1)[0] + "=nope",
        renamed["synthetic_path"][0].rsplit("/", 1)[0] + "/nope.jpg"]
    write_manifest(renamed, syn / "clip_scores.csv")
    assert "row 1: column 'image_stem': real image 'nope' is not in the training list" in error()
    write_manifest(scores.assign(class_id=[5, scores["class_id"][1]]), syn / "clip_scores.csv")
    assert "row 1: column 'class_id': class_id 5 but the training list labels" in error()
    write_manifest(scores.assign(dataset=["iwildcam", "imagenet_lt"]), syn / "clip_scores.csv")
    assert "row 2: column 'dataset': dataset 'imagenet_lt' given to the iwildcam builder" in error()
    write_manifest(scores, syn / "clip_scores.csv")
    assert "column '--threshold'" in error("--threshold", "2")
    assert "column '--val-size'" in error("--val-size", "-1")
    assert "iwildcam_v2.0/metadata.csv: missing" in error("--data-root", str(tmp_path))
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------------------------- any dataset, one builder
def test_dataset_defaults_feed_the_parser():
    from discl.training_data import get_args_parser

    required = ["--data-root", "r", "--syn-path", "s", "--save-folder", "o"]
    lt = get_args_parser(None, ["--dataset", "imagenet_lt"]).parse_args(["--dataset", "imagenet_lt"] + required)
    assert (lt.min_guidance, lt.guidance_levels, lt.val_size) == (0, [10, 30, 50], 100)
    wild = get_args_parser("iwildcam", []).parse_args(required)
    assert (wild.min_guidance, wild.guidance_levels, wild.val_size) == (50, None, 2000)
    assert get_args_parser("iwildcam", []).parse_args(required + ["--guidance-levels"]).guidance_levels == []


def test_canonical_tables_for_imagenet_lt_and_the_txt_reader(mini_imagenet_lt, tmp_path):
    from discl.data.training_tables import TABLE_COLUMNS, read_training_table

    train_list = [line.split() for line in (mini_imagenet_lt / "ImageNet_LT_train.txt").read_text().splitlines()]
    few = [(path, int(label), f"class {label}") for path, label in train_list if int(label) >= 6][:3]
    syn = tmp_path / "gen"
    write_manifest(scored_rows("imagenet_lt", few, (0.9, 0.7, 0.5), (10,)), syn / "clip_scores.csv")
    script = load_script("curriculum/build_data.py")
    assert script.main(["--dataset", "imagenet_lt", "--syn-path", str(syn), "--data-root", str(mini_imagenet_lt),
                        "--save-folder", str(tmp_path / "data"), "--val-size", "1"]) == 0
    canonical = read_training_table(tmp_path / "data/train.csv")
    assert list(canonical.columns) == TABLE_COLUMNS
    assert set(canonical["title"]) >= {"a photo of a tench.", "a photo of a rooster."}  # one caption template
    reference = read_training_table(tmp_path / "data/train.txt")  # data_roots.json beside it
    assert list(reference.columns) == TABLE_COLUMNS and (reference["title"] == "").all()
    assert reference["filepath"].tolist() == canonical["filepath"].tolist()
    assert reference["guidance"].tolist() == canonical["guidance"].tolist()
    real = reference["guidance"] == 100
    assert reference.loc[real, "img_id"].tolist() == list(range(-1, -int(real.sum()) - 1, -1))
    assert reference.loc[~real, "img_id"].tolist() == list(range(int((~real).sum())))
    assert (reference.loc[real, "seed"] == 100).all() and (reference["strength"] == 100 - reference["guidance"]).all()
    validation = read_training_table(tmp_path / "data/validate.csv")
    assert sorted(validation["guidance"]) == [10, 30, 50, 100]


def test_validation_hold_out_is_capped_and_an_emptied_level_is_an_error(caplog):
    keys = ["a", "b", "c", "d"]
    real = real_rows(keys, keys, [0, 1, 2, 3])
    synthetic = pd.DataFrame([(k, k, k, i, 100 - g, g, 10) for i, k in enumerate(keys[:3]) for g in (50, 70)],
                             columns=["key", "path", "filepath", "label", "strength", "guidance", "seed"])
    with caplog.at_level("WARNING"):
        tables = build_curriculum(real, synthetic, val_size=2000)
    assert tables.validation["key"].nunique() == 1  # 3 hard images: at most half, 1, is held out
    assert "at most 50% of the 3 hard images (1)" in caplog.text
    assert {50, 70} <= set(tables.train["guidance"])
    # level 90 exists for image a only, so a is the only image with every level: holding it out would leave
    # level 90 without training rows
    only_a = pd.concat([synthetic, pd.DataFrame([("a", "a", "a", 0, 10, 90, 10)], columns=synthetic.columns)])
    with pytest.raises(InputError, match=r"column '--val-size': guidance level\(s\) \[90\] have no training rows"):
        build_curriculum(real, only_a, val_size=1, max_val_fraction=1.0)
    assert build_curriculum(real, only_a, val_size=0).validation.empty
    with pytest.raises(InputError, match=r"column '--holdout-from': guidance level\(s\) \[90\] have no training rows "
                                         r".*only the held-out images have them"):
        build_curriculum(real, only_a, val_size=0, holdout=["a"])
    held_out = build_curriculum(real, synthetic, val_size=0, holdout=["d", "b"])  # d has no synthetic rows
    assert sorted(zip(held_out.validation["key"], held_out.validation["guidance"])) == [
        ("b", 50), ("b", 70), ("b", 100), ("d", 100)]
    assert not {"b", "d"} & set(held_out.train["key"])


def test_a_users_dataset_gets_the_canonical_tables_and_its_own_captions(mini_imagenet_lt, tmp_path):
    from discl.data.training_tables import read_training_table
    from discl.datasets import Dataset, RealImages
    from discl.training_data import BuildConfig, run_build

    lines = [line.split() for line in (mini_imagenet_lt / "ImageNet_LT_train.txt").read_text().splitlines()]
    picked = [(path, int(label)) for path, label in lines if int(label) in (5, 6)]

    class Rays(Dataset):  # two classes of the mini ImageNet-LT as a user's own dataset
        name = "rays_for_test"
        table_min_guidance = 30
        curriculum_val_size = 1

        def class_names(self):
            return ["electric ray", "stingray"]

        def text_names(self):
            return ["torpedo", "stingray"]

        def caption_templates(self):
            return ("{} underwater.", lambda name: f"a {name}, photographed.")

        def training_images(self, list_file=None):
            return RealImages([str(mini_imagenet_lt / p) for p, _ in picked], [label - 5 for _, label in picked],
                              [p for p, _ in picked])

    hard = [(path, label - 5, ["electric ray", "stingray"][label - 5]) for path, label in picked[:1] + picked[-2:]]
    syn = tmp_path / "gen"
    write_manifest(scored_rows("rays_for_test", hard, (0.9, 0.5, 0.3), (10,)), syn / "clip_scores.csv")
    tables, paths = run_build(BuildConfig(syn_path=str(syn), save_folder=str(tmp_path / "data")), Rays(root=tmp_path))
    assert sorted(paths) == ["levels", "train", "validation"]  # no reference format for this dataset
    assert tables.levels == [50, 70, 100]  # guidance 10 < the dataset's minimum 30
    train = read_training_table(paths["train"])
    assert len(train) == 2 * len(tables.train)
    assert {"torpedo underwater.", "a stingray, photographed."} <= set(train["title"])
    assert read_training_table(paths["validation"])["title"].str.endswith(" underwater.").all()


def test_phase_one_on_a_users_image_folder(tmp_path):
    """make_hard_samples.py and curriculum/build_data.py with --dataset folder: no per-dataset code anywhere."""
    from discl.data.hard_sample_csv import read_hard_sample_csv
    from discl.data.training_tables import read_training_table
    from discl.datasets import get_dataset
    from discl.tiny import TINY_OPEN_CLIP
    from discl.tiny.datasets import make_mini_folder

    root = make_mini_folder(tmp_path / "photos")
    hard_csv = tmp_path / "hard.csv"
    assert load_script("data_generation/make_hard_samples.py").main([
        "--dataset", "folder", "--data-root", str(root), "--output", str(hard_csv), "--criterion", "either",
        "--max-prob", "0.9", "--tail-classes", "--per-class-cap", "2", "--model", TINY_OPEN_CLIP, "--pretrained", "",
        "--workers", "0", "--device", "cpu"]) == 0
    dataset = get_dataset("folder", root)
    hard = read_hard_sample_csv(hard_csv, dataset)
    assert len(hard) >= 4 and hard.groupby("class_id").size().max() <= 2
    assert set(hard["class_folder"]) <= set(dataset.class_names())  # folders keep the user's folder names
    images = [(path, int(label), name) for path, label, name in zip(hard["real_path"], hard["class_id"],
                                                                     hard["class_name"])]
    syn = tmp_path / "gen"
    write_manifest(scored_rows("folder", images, (0.5, 0.9), (10,)), syn / "clip_scores.csv")
    assert load_script("curriculum/build_data.py").main([
        "--dataset", "folder", "--data-root", str(root), "--syn-path", str(syn), "--save-folder",
        str(tmp_path / "data")]) == 0
    train = read_training_table(tmp_path / "data/train.csv")
    validation = read_training_table(tmp_path / "data/validate.csv")
    assert set(train["guidance"]) == {10, 50, 100} and sorted(validation["guidance"].unique()) == [10, 50, 100]
    # the dataset's default hold-out (100) is capped at half of the hard images
    assert validation["filepath"].map(lambda p: Path(p).stem).nunique() == len(hard) // 2
    assert "a photo of a tabby cat." in set(train["title"]) | set(validation["title"])
    assert not (tmp_path / "data/train.txt").exists()  # no reference format for the folder kind
