"""Hard-sample CSVs: the reference's template columns, read by name, round-trip, and one clear error per defect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from discl.data.hard_sample_csv import FRAME_COLUMNS, class_folder, read_hard_sample_csv, write_hard_sample_csv
from discl.datasets import get_dataset
from discl.errors import InputError

IWILDCAM_HEADER = ",label id,label name,filepath,img_name"
IMAGENET_LT_HEADER = "filepath,image_name,label,classname"
IWILDCAM = get_dataset("iwildcam")
IMAGENET_LT = get_dataset("imagenet_lt")


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["class_id", "class_name", "real_path", "image_stem"])


def _write(tmp_path: Path, text: str, name: str = "hard.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_iwildcam_round_trip_writes_the_reference_template(tmp_path):
    frame = _frame([(58, "acinonyx jubatus", "/data/iwildcam_v2.0/train/8b5d.jpg", "8b5d"),
                    (1, "tayassu pecari", "/data/iwildcam_v2.0/train/93aa.jpg", "93aa")])
    path = tmp_path / "hard_iwildcam.csv"
    write_hard_sample_csv(frame, path, IWILDCAM)
    lines = path.read_text().splitlines()
    assert lines == [IWILDCAM_HEADER, "0,58,acinonyx jubatus,/data/iwildcam_v2.0/train/8b5d.jpg,8b5d",
                     "1,1,tayassu pecari,/data/iwildcam_v2.0/train/93aa.jpg,93aa"]
    back = read_hard_sample_csv(path, IWILDCAM)
    assert list(back.columns) == FRAME_COLUMNS
    assert back["class_folder"].tolist() == ["acinonyx_jubatus", "tayassu_pecari"]
    pd.testing.assert_frame_equal(back.drop(columns="class_folder"), frame)


def test_imagenet_lt_round_trip_keeps_the_extension_in_image_name(tmp_path):
    frame = _frame([(180, "American Staffordshire Terrier", "train/n02093428/n02093428_672.JPEG",
                     "n02093428_672")])
    path = tmp_path / "hard_lt.csv"
    write_hard_sample_csv(frame, path, IMAGENET_LT)
    assert path.read_text().splitlines() == [
        IMAGENET_LT_HEADER,
        "train/n02093428/n02093428_672.JPEG,n02093428_672.JPEG,180,American Staffordshire Terrier"]
    back = read_hard_sample_csv(path, IMAGENET_LT)
    assert back.to_dict("records") == [{
        "class_id": 180, "class_name": "American Staffordshire Terrier",
        "class_folder": "American_Staffordshire_Terrier", "real_path": "train/n02093428/n02093428_672.JPEG",
        "image_stem": "n02093428_672"}]


def test_columns_are_read_by_name_and_relative_paths_resolve_against_root(tmp_path):
    path = _write(tmp_path, "img_name,filepath,label name,label id,notes\n"
                            "b1,train/b1.jpg,puma concolor,4,x\n"
                            "c2,/abs/c2.jpg,Puma_Concolor,4,y\n")
    frame = read_hard_sample_csv(path, IWILDCAM, root=tmp_path / "wilds")
    assert frame["real_path"].tolist() == [str(tmp_path / "wilds" / "train/b1.jpg"), "/abs/c2.jpg"]
    assert frame["image_stem"].tolist() == ["b1", "c2"]
    assert frame["class_id"].tolist() == [4, 4]
    assert frame["class_name"].tolist() == ["puma concolor"] * 2  # the species table's spelling
    assert frame["class_folder"].tolist() == ["puma_concolor"] * 2


def test_a_spreadsheet_bom_and_padded_header_are_tolerated(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefffilepath, image_name, label, classname\nval/a.JPEG,a.JPEG,0,tench\n".encode("utf-8"))
    frame = read_hard_sample_csv(path, IMAGENET_LT)
    assert frame[["class_id", "class_name", "real_path", "image_stem"]].values.tolist() == [
        [0, "tench", "val/a.JPEG", "a"]]


def test_a_csv_built_from_the_mini_iwildcam_points_at_its_images(tmp_path, mini_iwildcam):
    from discl.data.iwildcam import species_names

    metadata = pd.read_csv(mini_iwildcam / "iwildcam_v2.0" / "metadata.csv")
    hard = metadata[(metadata["split"] == "train") & (metadata["y"] > 0)].head(5)
    names = species_names(mini_iwildcam)
    frame = _frame([(y, names[y], f"iwildcam_v2.0/train/{f}", Path(f).stem)
                    for y, f in zip(hard["y"], hard["filename"])])
    write_hard_sample_csv(frame, tmp_path / "hard.csv", IWILDCAM)
    back = read_hard_sample_csv(tmp_path / "hard.csv", IWILDCAM, root=mini_iwildcam)
    assert all(Path(p).is_file() for p in back["real_path"])
    assert back["class_folder"].tolist() == [names[y].replace(" ", "_") for y in hard["y"]]


def test_class_folder_names():
    assert class_folder("acinonyx jubatus") == "acinonyx_jubatus"
    assert class_folder(" baluster / handrail ") == "baluster_handrail"


def test_classes_sharing_a_name_get_distinct_folders(tmp_path):
    path = _write(tmp_path, IMAGENET_LT_HEADER + "\n"
                            "val/a.JPEG,a.JPEG,657,missile\nval/b.JPEG,b.JPEG,744,missile\nval/c.JPEG,c.JPEG,0,tench\n")
    frame = read_hard_sample_csv(path, IMAGENET_LT)
    assert frame["class_folder"].tolist() == ["missile_657", "missile_744", "tench"]


@pytest.mark.parametrize("dataset, text, message", [
    ("iwildcam", "", "empty CSV: expected a header"),
    ("iwildcam", IWILDCAM_HEADER + "\n", "empty CSV: a header but no rows"),
    ("iwildcam", ",label id,label name,img_name\n0,1,tayassu pecari,a\n", "column 'filepath': missing column"),
    ("imagenet_lt", "filepath,image_name,classname\na.JPEG,a.JPEG,tench\n", "column 'label': missing column"),
    ("iwildcam", IWILDCAM_HEADER + "\n0,1,tayassu pecari,a.jpg,a\n1,one,tayassu pecari,b.jpg,b\n",
     "row 2: column 'label id': label must be an integer, got 'one'"),
    ("imagenet_lt", IMAGENET_LT_HEADER + "\na.JPEG,a.JPEG,-1,tench\n", "row 1: column 'label': label must be >= 0"),
    ("imagenet_lt", IMAGENET_LT_HEADER + "\na.JPEG,a.JPEG,0,tench\n,b.JPEG,0,tench\n",
     "row 2: column 'filepath': empty image path"),
    ("iwildcam", IWILDCAM_HEADER + "\n0,1,tayassu pecari,a.jpg,\n", "row 1: column 'img_name': empty image name"),
    ("imagenet_lt", IMAGENET_LT_HEADER + "\na.JPEG,a.JPEG,0,\n", "row 1: column 'classname': empty class name"),
    ("imagenet_lt", IMAGENET_LT_HEADER + "\na.JPEG,a.JPEG,0,tench\nb.JPEG,b.JPEG,0,goldfish\n",
     "row 2: column 'classname': label 0 is named 'goldfish' here but 'tench'"),
    # the reference's own template row: a common name where the scientific name belongs
    ("iwildcam", IWILDCAM_HEADER + "\n0,58,Cheetah,data_generation/iWildCam/sample_imgs/8b5d.jpg,8b5d\n",
     "row 1: column 'label name': unknown iWildCam species 'Cheetah' .*'acinonyx jubatus'"),
])
def test_bad_csvs_raise_one_clear_input_error(tmp_path, dataset, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        read_hard_sample_csv(path, get_dataset(dataset))
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_dataset(tmp_path):
    with pytest.raises(InputError, match="hard-sample CSV not found"):
        read_hard_sample_csv(tmp_path / "absent.csv", IWILDCAM)
    with pytest.raises(InputError, match="unknown dataset 'imagenet'"):
        read_hard_sample_csv(_write(tmp_path, IMAGENET_LT_HEADER + "\n"), "imagenet")
    # a registered name still works in place of the Dataset object
    frame = read_hard_sample_csv(_write(tmp_path, IMAGENET_LT_HEADER + "\nval/a.JPEG,a.JPEG,0,tench\n"), "imagenet_lt")
    assert frame["class_folder"].tolist() == ["tench"]


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="lacks columns"):
        write_hard_sample_csv(pd.DataFrame({"class_id": [0]}), tmp_path / "out.csv", IWILDCAM)
    assert list(tmp_path.iterdir()) == []


def test_layout_names_and_folders_come_from_the_dataset(tmp_path):
    from discl.datasets import Dataset
    from discl.datasets.base import CsvLayout

    class Shapes(Dataset):  # not registered: any Dataset object will do
        name = "shapes"
        csv_layout = CsvLayout("y", "shape", "path", "file", ("path", "file", "y", "shape"), image_has_suffix=True)

        def canonical_class_name(self, name, file=None, row=None, column=None):
            if name.lower() not in ("circle", "square"):
                raise InputError(file, f"unknown shape {name!r}", row=row, column=column)
            return name.lower()

        def class_folder(self, class_name):
            return f"shape-{class_name}"

    frame = _frame([(1, "Circle", "img/c1.png", "c1")])
    write_hard_sample_csv(frame, tmp_path / "h.csv", Shapes())
    assert (tmp_path / "h.csv").read_text().splitlines() == ["path,file,y,shape", "img/c1.png,c1.png,1,Circle"]
    back = read_hard_sample_csv(tmp_path / "h.csv", Shapes())
    assert back[["class_name", "class_folder"]].values.tolist() == [["circle", "shape-circle"]]
    (tmp_path / "bad.csv").write_text("path,file,y,shape\nimg/t.png,t.png,2,Triangle\n")
    with pytest.raises(InputError, match="bad.csv: row 1: column 'shape': unknown shape 'Triangle'"):
        read_hard_sample_csv(tmp_path / "bad.csv", Shapes())


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".JPEG", ".png"])
def test_every_image_suffix_of_the_datasets_is_stripped_from_the_stem(suffix):
    """A user's IMG.webp must become stem 'IMG' (not 'IMG.webp', which generation would save as IMG.webp.jpg)."""
    from discl.data.hard_sample_csv import image_stem
    from discl.datasets.base import IMAGE_SUFFIXES

    assert suffix.lower() in IMAGE_SUFFIXES
    assert image_stem(f"IMG_0052{suffix}") == "IMG_0052"


def test_the_scorer_finds_real_images_of_every_suffix(tmp_path):
    from PIL import Image

    from discl.clipscore import RealImageFinder

    for name in ("a.bmp", "b.webp"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    finder = RealImageFinder(tmp_path)
    assert finder.find(stem="a") == tmp_path / "a.bmp" and finder.find(stem="b") == tmp_path / "b.webp"
