"""Curriculum schedules on hand-computed cases: boundaries, ties, empty levels, the adaptive round, state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from discl import curriculum as C

IWILDCAM_LEVELS = [50, 60, 70, 80, 90, 100]


def epochs_levels(schedule, epochs, steps_per_epoch=1):
    return [schedule.level_at(e * steps_per_epoch, steps_per_epoch) for e in range(epochs)]


def test_none_is_real_everywhere():
    schedule = C.make_schedule("none", IWILDCAM_LEVELS, 15)
    assert epochs_levels(schedule, 20) == [100] * 20
    assert schedule.next_stage(3) == C.Stage("level", 100, None)


def test_fixed_equal_shares_round_boundaries_up():
    # 6 levels over 15 epochs: starts at ceil(i·15/6) = 0, 3, 5, 8, 10, 13; real from 15.
    schedule = C.make_schedule("fixed", IWILDCAM_LEVELS, 15)
    expected = [50] * 3 + [60] * 2 + [70] * 3 + [80] * 2 + [90] * 3 + [100] * 2 + [100] * 5
    assert epochs_levels(schedule, 20) == expected
    assert schedule.next_stage(10).until_step == 13
    assert schedule.next_stage(15).until_step is None


def test_fixed_in_steps_ends_exactly_at_curriculum_epoch():
    # 10 steps per epoch: E = 150 steps, level i from step 25·i.
    schedule = C.make_schedule("fixed", IWILDCAM_LEVELS, 15)
    assert schedule.level_at(24, 10) == 50
    assert schedule.level_at(25, 10) == 60
    assert schedule.next_stage(25, 10) == C.Stage("level", 60, 50)
    assert schedule.next_stage(149, 10) == C.Stage("level", 100, 150)
    assert schedule.next_stage(150, 10) == C.Stage("level", 100, None)


def test_fixed_explicit_starts_imagenet_lt_schedule():
    # The ImageNet-LT working schedule: 10 → 30 → 50 → real at epochs 0, 14, 29, 44 (curriculum_epoch 60).
    schedule = C.make_schedule("fixed", [10, 30, 50, 100], 60, starts=[0, 14, 29, 44])
    levels = epochs_levels(schedule, 65)
    assert levels[:14] == [10] * 14
    assert levels[14:29] == [30] * 15
    assert levels[29:44] == [50] * 15
    assert levels[44:] == [100] * 21


def test_fixed_bad_starts_rejected():
    with pytest.raises(ValueError, match="begin at 0"):
        C.make_schedule("fixed", [10, 30], 10, starts=[1, 5])
    with pytest.raises(ValueError, match="2 start epochs for 3 levels"):
        C.make_schedule("fixed", [10, 30, 50], 10, starts=[0, 5])


def test_more_levels_than_curriculum_steps_skips_empty_shares():
    # E = 2 steps for 3 levels: bounds ceil(i·2/3) = 0, 1, 2, 2 → level 30 gets no step.
    schedule = C.make_schedule("fixed", [10, 20, 30], 1)
    assert [schedule.level_at(s, 2) for s in range(3)] == [10, 20, 100]
    assert schedule.next_stage(1, 2).until_step == 2


def test_two_stage_lowest_until_curriculum_epoch():
    schedule = C.make_schedule("two_stage", IWILDCAM_LEVELS, 15)
    assert epochs_levels(schedule, 17) == [50] * 15 + [100] * 2


def test_reverse_descends():
    schedule = C.make_schedule("reverse", IWILDCAM_LEVELS, 15)
    expected = [100] * 3 + [90] * 2 + [80] * 3 + [70] * 2 + [60] * 3 + [50] * 2 + [100] * 2
    assert epochs_levels(schedule, 17) == expected


def test_random_order_is_a_seeded_permutation():
    a = C.make_schedule("random", IWILDCAM_LEVELS, 12, seed=3)
    b = C.make_schedule("random", IWILDCAM_LEVELS, 12, seed=3)
    assert a.order == b.order
    assert sorted(a.order) == IWILDCAM_LEVELS
    # Each level held 12 / 6 = 2 epochs in the drawn order.
    assert epochs_levels(a, 12) == [g for g in a.order for _ in range(2)]
    orders = {tuple(C.make_schedule("random", IWILDCAM_LEVELS, 12, seed=s).order) for s in range(5)}
    assert len(orders) > 1


def test_remove_outliers_uses_linear_quartiles():
    # Q1 = 1, Q3 = 3, IQR = 2 → keep [-2, 6]: 100 is dropped.
    assert C.remove_outliers(np.array([0.0, 1, 2, 3, 100])).tolist() == [0, 1, 2, 3]
    assert C.remove_outliers(np.array([])).size == 0


def test_progress_scores_hand_computed_with_tie_and_empty_level():
    # level 50: Δ = .25 ×4 and 1.0 → IQR 0 drops 1.0 → mean .25
    # level 100: Δ = 0, .5 → Q1 .125, Q3 .375, bounds [-.25, .75] keep both → mean .25 (a tie)
    # level 70: no rows → NaN
    p0 = [0.0] * 7
    p1 = [0.25, 0.25, 0.25, 0.25, 1.0, 0.0, 0.5]
    rows = [50] * 5 + [100] * 2
    scores = C.progress_scores(p0, p1, rows, levels=[50, 70, 100])
    assert scores[50] == 0.25 and scores[100] == 0.25
    assert math.isnan(scores[70])
    assert C.argmax_level(scores) == 50  # tie → the lowest (most synthetic) level
    assert C.argmax_level({50: 0.1, 100: 0.2}) == 100
    assert C.argmax_level({50: math.nan}) is None


def test_progress_scores_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equally long"):
        C.progress_scores([0.1, 0.2], [0.3], [50, 50])


def test_adaptive_round_and_stop_exactly_at_curriculum_epoch():
    schedule = C.make_schedule("adaptive", [50, 70, 100], 2)
    spe = 10  # curriculum ends at step 20
    rows = [50, 50, 70, 70, 100, 100]
    assert schedule.next_stage(0, spe).kind == "probe"
    schedule.observe_probe([0.1, 0.1, 0.2, 0.2, 0.5, 0.5], rows)
    assert schedule.next_stage(0, spe) == C.Stage("real_sample", 100, 20)
    assert schedule.next_stage(6, spe).kind == "probe"
    # Δ: level 50 → .3, level 70 → .05, level 100 → 0
    schedule.observe_probe([0.4, 0.4, 0.25, 0.25, 0.5, 0.5], rows)
    assert schedule.next_stage(6, spe) == C.Stage("level", 50, 20)
    assert schedule.last_scores == pytest.approx({50: 0.3, 70: 0.05, 100: 0.0})
    assert schedule.round == 1
    # Round 2 starts with a probe; the curriculum ends at step 20 whatever the phase.
    assert schedule.next_stage(12, spe).kind == "probe"
    assert schedule.next_stage(19, spe).kind == "probe"
    assert schedule.next_stage(20, spe) == C.Stage("level", 100, None)
    assert schedule.level_at(20, spe) == 100
    with pytest.raises(RuntimeError, match="no fixed level"):
        schedule.level_at(19, spe)


def test_adaptive_without_validation_rows_trains_real():
    schedule = C.make_schedule("adaptive", [50, 100], 1)
    schedule.next_stage(0, 5)
    schedule.observe_probe([], [])
    schedule.next_stage(0, 5)
    schedule.next_stage(2, 5)
    schedule.observe_probe([], [])
    assert schedule.next_stage(2, 5) == C.Stage("level", 100, 5)


def test_adaptive_state_round_trip_mid_round():
    rows = [50, 100]
    a = C.make_schedule("adaptive", [50, 100], 3)
    a.next_stage(0, 4)
    a.observe_probe([0.5, 0.5], rows)
    state = a.state_dict()
    assert state["p0"] == [0.5, 0.5] and state["phase"] == 1
    b = C.make_schedule("adaptive", [50, 100], 3)
    b.load_state_dict(state)
    for s in (a, b):
        assert s.next_stage(1, 4).kind == "real_sample"
        s.next_stage(3, 4)
        s.observe_probe([0.5, 0.75], rows)
    assert a.next_stage(3, 4) == b.next_stage(3, 4) == C.Stage("level", 100, 12)
    assert a.state_dict() == b.state_dict()


def test_adaptive_random_choice_skips_probes_and_is_seeded():
    def choices(seed):
        schedule = C.make_schedule("adaptive", IWILDCAM_LEVELS, 5, choose="random", seed=seed)
        picked = []
        for step in range(0, 40, 2):
            stage = schedule.next_stage(step, 10)
            assert stage.kind != "probe"
            if stage.kind == "level" and stage.until_step is not None:
                picked.append(stage.level)
        return picked

    first = choices(1)
    assert len(first) == 10 and set(first) <= set(IWILDCAM_LEVELS)
    assert first == choices(1)
    # the rounds of one run, and the runs of different seeds, really draw different levels
    assert len(set(first)) > 1
    assert len({tuple(choices(seed)) for seed in range(4)}) > 1


def test_load_state_of_other_schedule_refused():
    state = C.make_schedule("fixed", IWILDCAM_LEVELS, 15).state_dict()
    with pytest.raises(ValueError, match="name"):
        C.make_schedule("reverse", IWILDCAM_LEVELS, 15).load_state_dict(state)


def test_bad_configuration():
    with pytest.raises(ValueError, match="unknown curriculum"):
        C.make_schedule("spiral", [50], 3)
    with pytest.raises(ValueError, match="choose"):
        C.make_schedule("adaptive", [50], 3, choose="best")
    with pytest.raises(ValueError, match="at least one"):
        C.make_schedule("fixed", [], 3)
    with pytest.raises(RuntimeError, match="does not probe"):
        C.make_schedule("fixed", [50], 3).observe_probe([0.1], [50])


# --- baselines in the same frame: mixed, single (schedules), text-only (stage data) ----------------------------

def test_mixed_trains_every_level_at_once_then_real():
    schedule = C.make_schedule("mixed", IWILDCAM_LEVELS, 15)
    assert epochs_levels(schedule, 17) == [C.ALL_LEVELS] * 15 + [100] * 2
    # one stage over all levels until exactly the curriculum end (in steps), then real until the data ends
    assert schedule.next_stage(0, 10) == C.Stage("level", C.ALL_LEVELS, 150)
    assert schedule.next_stage(150, 10) == C.Stage("level", 100, None)
    assert schedule.state_dict() == {"name": "mixed", "levels": IWILDCAM_LEVELS, "curriculum_epoch": 15}


def test_single_holds_its_one_synthetic_level_then_real():
    schedule = C.make_schedule("single", [70, 100], 4)
    assert epochs_levels(schedule, 6) == [70] * 4 + [100] * 2
    assert schedule.next_stage(3, 2) == C.Stage("level", 70, 8)
    assert C.make_schedule("single", [30], 2).level_at(1) == 30
    with pytest.raises(ValueError, match="exactly one synthetic guidance level, got \\[50, 70\\]"):
        C.make_schedule("single", [50, 70, 100], 4)
    with pytest.raises(ValueError, match="got \\[\\]"):
        C.make_schedule("single", [100], 4)


def _rows(rows: list[tuple]):
    """``(path, label, guidance, img_id)`` tuples as a canonical table."""
    import pandas as pd

    return pd.DataFrame([{"title": f"c{label}", "filepath": path, "label": label, "strength": 100 - guidance,
                          "guidance": guidance, "seed": 100 if guidance == 100 else 10, "img_id": img_id}
                         for path, label, guidance, img_id in rows])


# hard image a (img_id 0) with versions at 0, 50, 70; non-hard image b; hard image c (img_id 1) at 0 and 50
BASELINE_TABLE = [("a", 0, 100, 0), ("b", 0, 100, -1), ("a0", 0, 0, 0), ("a50", 0, 50, 0), ("a70", 0, 70, 0),
                  ("c", 1, 100, 1), ("c0", 1, 0, 1), ("c50", 1, 50, 1)]


def test_mixed_stage_data_is_the_union_of_the_levels_rows():
    from discl.training import stage_data as S

    table = _rows(BASELINE_TABLE)
    rng = np.random.default_rng(0)
    # synthetic 50 and 70 of the hard images + the real rows of the non-hard one
    assert S.replace_hard(table, [50, 70]).index.tolist() == [1, 3, 4, 7]
    # 100 among the levels: the hard images' own real rows join their synthetic versions
    assert S.replace_hard(table, [50, 100]).index.tolist() == [0, 1, 3, 5, 7]
    assert S.replace_hard(table, [100]).index.tolist() == S.replace_hard(table, 100).index.tolist() == [0, 1, 5]
    data = S.StageData("replace-hard", table, levels=(50, 70))
    assert data.rows(C.ALL_LEVELS, rng).index.tolist() == [1, 3, 4, 7]
    # no scheduled levels given: every level of the table
    assert S.StageData("replace-hard", table).rows(C.ALL_LEVELS, rng).index.tolist() == list(range(8))
    assert data.epoch_rows == 3  # the real rows, as for every other schedule


def test_mixed_tail_topup_draws_the_top_up_from_every_level():
    from discl.training import stage_data as S

    # classes 0 and 1: 4 real rows each; class 2 (tail): 1 real row, synthetic rows at 10 (two) and 30 (one)
    rows = [(f"r{c}{i}", c, 100, -(4 * c + i + 1)) for c in (0, 1) for i in range(4)]
    rows += [("t", 2, 100, 0), ("t10a", 2, 10, 0), ("t10b", 2, 10, 0), ("t30", 2, 30, 0)]
    table = _rows(rows)
    drawn = S.tail_topup(table, [10, 30], {2}, np.random.default_rng(0), 1.0, 0.5)
    # 8 non-tail rows, the tail topped up to 8: the real one + 7 drawn with replacement from the 3 synthetic rows
    top_up = drawn[drawn["guidance"] != 100]
    assert len(drawn) == 16 and len(top_up) == 7 and set(top_up["filepath"]) == {"t10a", "t10b", "t30"}
    with pytest.raises(ValueError, match="guidance 50 70"):
        S.tail_topup(table, [50, 70], {2}, np.random.default_rng(0), 1.0, 0.5)


def test_text_only_adds_guidance_zero_images_to_every_real_row():
    from discl.errors import InputError
    from discl.training import stage_data as S

    table = _rows(BASELINE_TABLE)
    data = S.StageData("text-only", table)
    expected = [0, 1, 2, 5, 6]  # every real row + the guidance-0 versions of the hard images a and c
    for level in (100, 50, C.ALL_LEVELS):  # the recipe ignores the level (it runs with --curriculum none)
        assert data.rows(level, np.random.default_rng(0)).index.tolist() == expected
    assert data.epoch_rows == 3  # the baseline's number of steps: the same compute as FLYP without synthetic data
    data.check_levels([100], "train.csv")
    without = S.StageData("text-only", table[table["guidance"] != 0])
    with pytest.raises(InputError, match="guidance 0 .*--min-guidance 0") as err:
        without.check_levels([100], "train.csv")
    assert str(err.value).startswith("train.csv: column 'guidance'")


def test_text_only_runs_without_a_curriculum():
    from pathlib import Path

    from discl.errors import InputError
    from discl.training.config import LoopConfig

    LoopConfig(output_dir=Path("x"), stage_data="text-only", curriculum="none").check()
    with pytest.raises(InputError, match="--curriculum none, not fixed"):
        LoopConfig(output_dir=Path("x"), stage_data="text-only", curriculum="fixed").check()


@pytest.fixture(scope="module")
def baseline_table(mini_iwildcam, tmp_path_factory):
    """An iWildCam train.csv: every second non-empty image is hard, with guidance-0 and guidance-50 versions."""
    import pandas as pd
    from PIL import Image, ImageFilter

    from discl.data.training_tables import write_training_table
    from discl.datasets import get_dataset

    out = tmp_path_factory.mktemp("baseline_table")
    dataset = get_dataset("iwildcam", mini_iwildcam)
    images, names = dataset.training_images(), dataset.text_names()
    rows = []
    for index, (path, label) in enumerate(zip(images.paths, images.labels)):
        hard = label != 0 and index % 2 == 0
        versions = {100: path}
        for level in (0, 50) if hard else ():
            versions[level] = str(out / f"{index}_{level}.jpg")
            with Image.open(path) as image:
                image.filter(ImageFilter.GaussianBlur(1 + level // 25)).save(versions[level])
        rows += [{"title": f"a photo of {names[label]}.", "filepath": version, "label": label,
                  "strength": 100 - level, "guidance": level, "seed": 100 if level == 100 else 10,
                  "img_id": index if hard else -(index + 1)} for level, version in versions.items()]
    write_training_table(pd.DataFrame(rows), out / "train.csv")
    return out / "train.csv"


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("flags, epoch_levels", [
    (["--curriculum", "mixed", "--guidance-levels", "0", "50", "100"], [[0, 50, 100], [100]]),
    (["--curriculum", "single", "--guidance-levels", "50"], [[50, 100], [100]]),
    (["--curriculum", "none", "--stage-data", "text-only"], [[0, 100], [0, 100]]),
])
def test_baselines_through_the_trainer(mini_iwildcam, baseline_table, tmp_path, flags, epoch_levels):
    import pandas as pd

    from helpers import load_script

    out = tmp_path / "run"
    load_script("curriculum/train.py").main([
        "--trainer", "ce", "--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--train-table",
        str(baseline_table), "--output-dir", str(out), "--width", "8", "--crop-size", "32", "--resize-size", "36",
        "--workers", "0", "--eval-batch-size", "64", "--device", "cpu", "--no-plots", "--batch-size", "16",
        "--epochs", "2", "--curriculum-epoch", "1", "--stage-data", "replace-hard", *flags])
    stats = pd.read_csv(out / "stats.tsv", sep="\t")
    seen = [sorted(int(item.split(":")[0]) for item in cell.split()) for cell in stats["guidance_rows"]]
    assert seen == epoch_levels
