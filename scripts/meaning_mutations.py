"""Deliberate changes of the paper's definitions: each must make the test suite fail ("CAUGHT").

    .venv/bin/python scripts/meaning_mutations.py            # every mutation (~10 min on 2 cores)
    .venv/bin/python scripts/meaning_mutations.py "argmin"   # some of them, by name

Each mutation replaces one exact string in one file, runs the tests that should notice, and restores the file
(also when interrupted). Run it on a clean work tree.
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (name, file, exact text, its replacement, the tests that must fail)
MUTATIONS = [
    ('flyp lr', 'src/discl/flyp.py',
     'option(1e-5, "AdamW learning rate"',
     'option(2e-5, "AdamW learning rate"',
     'tests/test_paper_meaning.py'),
    ('flyp wd', 'src/discl/flyp.py',
     'option(0.2, "AdamW weight decay"',
     'option(0.1, "AdamW weight decay"',
     'tests/test_paper_meaning.py'),
    ('flyp warmup', 'src/discl/flyp.py',
     'option(500, "linear warm-up',
     'option(50, "linear warm-up',
     'tests/test_paper_meaning.py'),
    ('curriculum epoch', 'src/discl/training/config.py',
     'curriculum_epoch: int = option(15,',
     'curriculum_epoch: int = option(16,',
     'tests/test_paper_meaning.py'),
    ('real sample size', 'src/discl/training/config.py',
     'real_sample_size: int = option(30000,',
     'real_sample_size: int = option(20000,',
     'tests/test_paper_meaning.py'),
    ('LT schedule', 'src/discl/lt.py',
     'level_starts=[0, 14, 29, 44]',
     'level_starts=[0, 15, 29, 44]',
     'tests/test_paper_meaning.py'),
    ('LT tail fraction', 'src/discl/training/config.py',
     '        0.136, "tail-topup',
     '        0.2, "tail-topup',
     'tests/test_paper_meaning.py'),
    ('iwildcam threshold', 'src/discl/datasets/iwildcam.py',
     'clip_threshold = 0.25',
     'clip_threshold = 0.3',
     'tests/test_paper_meaning.py'),
    ('imagenet threshold', 'src/discl/datasets/imagenet_lt.py',
     'clip_threshold = 0.30',
     'clip_threshold = 0.25',
     'tests/test_paper_meaning.py'),
    ('seeds', 'src/discl/generation/config.py',
     'DEFAULT_SEEDS = (10, 20, 30, 40, 42, 50, 60, 70)',
     'DEFAULT_SEEDS = (10, 20, 30, 40, 41, 50, 60, 70)',
     'tests/test_paper_meaning.py'),
    ('text guidance', 'src/discl/generation/config.py',
     'guidance_scale: float = option(10.0,',
     'guidance_scale: float = option(7.5,',
     'tests/test_paper_meaning.py'),
    ('retry extra tries', 'src/discl/generation/config.py',
     'max_retries: int = option(5,',
     'max_retries: int = option(4,',
     'tests/test_paper_meaning.py'),
    ('min guidance', 'src/discl/datasets/iwildcam.py',
     'table_min_guidance = 50',
     'table_min_guidance = 40',
     'tests/test_paper_meaning.py'),
    ('val size', 'src/discl/datasets/iwildcam.py',
     'curriculum_val_size = 2000',
     'curriculum_val_size = 1000',
     'tests/test_paper_meaning.py'),
    ('select on test', 'src/discl/training/loop.py',
     '        split, metric = self.selection\n',
     '        split, metric = ("test" if "test" in metrics else self.selection[0]), self.selection[1]\n',
     'tests/test_training_loop.py tests/test_flyp.py tests/test_lt.py'),
    ('wilds f1/recall swapped', 'src/discl/metrics.py',
     '"recall": float(results["recall-macro_all"]),\n            "f1": float(results["F1-macro_all"])',
     '"recall": float(results["F1-macro_all"]),\n            "f1": float(results["recall-macro_all"])',
     'tests/test_registry.py tests/test_paper_meaning.py'),
    ('keep strictly above threshold', 'src/discl/clipscore.py',
     'table["clip_image_text"] >= check_threshold(threshold)',
     'table["clip_image_text"] > check_threshold(threshold)',
     'tests/test_paper_meaning.py tests/test_clipscore.py'),
    ('outlier factor', 'src/discl/curriculum.py',
     'spread = 1.5 * (q3 - q1)',
     'spread = 2.0 * (q3 - q1)',
     'tests/test_paper_meaning.py tests/test_curriculum.py'),
    ('argmin', 'src/discl/curriculum.py',
     'best = max(score for score, _ in finite)',
     'best = min(score for score, _ in finite)',
     'tests/test_paper_meaning.py tests/test_curriculum.py'),
    ('balanced softmax sign', 'src/discl/lt.py',
     'F.cross_entropy(logits + log_prior.to(',
     'F.cross_entropy(logits - log_prior.to(',
     'tests/test_lt_units.py tests/test_lt.py'),
    ('hard real rows kept', 'src/discl/training/stage_data.py',
     'return table[synthetic | (real & (table["img_id"] < 0))]',
     'return table[synthetic | real]',
     'tests/test_training_loop.py tests/test_flyp.py'),
    ('iwildcam captions', 'src/discl/data/iwildcam.py',
     'IWILDCAM_TEMPLATES = ("a photo of {}.", "{} in the wild.")',
     'IWILDCAM_TEMPLATES = ("a photo of a {}.", "{} in the wild.")',
     'tests/test_training_data.py tests/test_registry.py tests/test_paper_meaning.py'),
    ('folder macro-F1 over all classes', 'src/discl/datasets/folder.py',
     '    for label in np.unique(labels):',
     '    for label in np.unique(np.concatenate([labels, predictions])):',
     'tests/test_folder_dataset.py'),
    ('many/few swapped', 'src/discl/data/imagenet_lt.py',
     'groups.append("many" if is_many else "few" if count < few_max else "medium")',
     'groups.append("few" if is_many else "many" if count < few_max else "medium")',
     'tests/test_registry.py tests/test_lt_units.py'),
    ('text-only guidance', 'src/discl/training/stage_data.py',
     'TEXT_ONLY_LEVEL = 0',
     'TEXT_ONLY_LEVEL = 10',
     'tests/test_curriculum.py'),
    ('population std', 'src/discl/experiments/aggregate.py',
     '/ (n - 1)) if n > 1 else None',
     '/ n) if n > 1 else None',
     'tests/test_aggregate.py'),
    ('normal instead of t interval', 'src/discl/experiments/aggregate.py',
     'half = t_quantile((1 + confidence) / 2, stat.n - 1) * stat.std',
     'half = 1.959964 * stat.std',
     'tests/test_aggregate.py'),
    ('downsample ratio', 'src/discl/training/config.py',
     'downsample_ratio: float = option(0.3,',
     'downsample_ratio: float = option(0.5,',
     'tests/test_paper_meaning.py'),
]
only = sys.argv[1:]
missed = 0
for name, path, old, new, tests in MUTATIONS:
    if only and name not in only:
        continue
    p = ROOT / path
    text = p.read_text()
    if old not in text:
        print(f"STALE  {name}: the text to change is no longer in {path}")
        missed += 1
        continue
    p.write_text(text.replace(old, new, 1))
    try:
        r = subprocess.run(f"bash scripts/test.sh -x -q -p no:cacheprovider {tests}", shell=True, cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        print(("CAUGHT " if r.returncode else "MISSED ") + name, flush=True)
        missed += r.returncode == 0
    finally:
        p.write_text(text)
sys.exit(1 if missed else 0)
