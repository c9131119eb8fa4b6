"""FLYP fine-tuning of CLIP on iWildCam with a guidance curriculum (spec §5).

FLYP ("fine-tune like you pretrain") trains with CLIP's own contrastive loss between images and their class
captions and classifies with a zero-shot head built from class-name templates. An epoch is a fixed number of
steps (real training rows / batch size); the curriculum hands out *stages* (``discl.curriculum``) whose data
loaders are rebuilt when exhausted, so stages cut across epochs. Every stage is identified by its index: the
stage's rows, the shuffling and the augmentation of every item derive from ``(seed, stage index)``, which
makes a resumed run (``--resume``) reproduce the uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from tqdm import tqdm

from discl import checkpoint as ckpt
from discl import curriculum as C
from discl import distributed as D
from discl.data.training_tables import REAL_GUIDANCE, read_iwildcam_table
from discl.errors import InputError
from discl.fileio import atomic_write_json
from discl.lr import cosine_lr, set_lr
from discl.metrics import IWILDCAM_EVAL_SPLITS, SELECTION_SPLIT, is_better, metric_columns, wilds_split_metrics
from discl.seeding import seed_everything, stable_seed
from discl.stats import append_stats, read_stats, truncate_stats

log = logging.getLogger(__name__)


@dataclass
class FlypConfig:
    """Every setting of a FLYP run (paper defaults); stored in checkpoints as a plain dict."""

    train_table: str
    wilds_root: str
    output_dir: str
    val_table: str | None = None  # curriculum-validation table (needed by the adaptive argmax schedule)
    model: str = "ViT-B-16"
    pretrained: str = "openai"
    epochs: int = 20
    batch_size: int = 256  # global batch, split evenly over the ranks
    lr: float = 1e-5
    wd: float = 0.2
    warmup: int = 500
    min_lr: float = 0.0
    curriculum: str = "none"
    curriculum_epoch: int = 15
    adaptive_choice: str = "argmax"
    real_sample_size: int = 30000
    guidance_levels: list[int] | None = None  # default: every level in the training table
    seed: int = 0
    workers: int = 4
    eval_batch_size: int = 256
    eval_splits: list[str] = field(default_factory=lambda: list(IWILDCAM_EVAL_SPLITS))
    device: str | None = None
    resume: bool = False
    stop_after_epoch: int | None = None  # end the run after this epoch (its checkpoint written), e.g. to test resume
    tensorboard: bool = False  # also log per-epoch scalars to TensorBoard, when installed
    wandb_project: str | None = None  # also log to Weights & Biases, when installed
    jpeg_draft: bool = True  # decode JPEGs at reduced size (≥ the model input); False = full decodes


# Settings a resumed run must share with the checkpoint, or it would not continue the same run.
RESUME_KEYS = ("train_table", "val_table", "model", "pretrained", "epochs", "batch_size", "lr", "wd", "warmup",
               "min_lr", "curriculum", "curriculum_epoch", "adaptive_choice", "real_sample_size", "guidance_levels",
               "seed", "jpeg_draft", "eval_splits", "wilds_root")


# ------------------------------------------------------------------------------------------------ data ----

def stage_rows(table: pd.DataFrame, level: int) -> pd.DataFrame:
    """A stage's rows: synthetic rows of ``level`` for hard images (img_id ≥ 0) + real rows of the others.

    Level 100 is all real rows. (The reference merged the non-hard real rows only inside a ``datalimit``
    branch, so its stages trained on synthetic images alone.)
    """
    real = table["guidance"] == REAL_GUIDANCE
    if level == REAL_GUIDANCE:
        return table[real]
    synthetic = (table["guidance"] == level) & (table["img_id"] >= 0)
    return table[synthetic | (real & (table["img_id"] < 0))]


def real_sample_rows(table: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded random sample of ``size`` real rows (all of them when there are fewer)."""
    real = table[table["guidance"] == REAL_GUIDANCE]
    if size >= len(real):
        return real
    rng = np.random.default_rng(seed)
    return real.iloc[np.sort(rng.choice(len(real), size=size, replace=False))]


def check_levels(table: pd.DataFrame, levels: Sequence[int], path: str) -> None:
    """Every scheduled level needs rows: synthetic rows of hard images below 100, real rows at 100 (always)."""
    for level in sorted(set(levels) | {REAL_GUIDANCE}):
        if level == REAL_GUIDANCE:
            has_rows = (table["guidance"] == REAL_GUIDANCE).any()
            what = "real rows (guidance 100)"
        else:
            has_rows = ((table["guidance"] == level) & (table["img_id"] >= 0)).any()
            what = f"synthetic rows of hard images (guidance {level}, img_id ≥ 0)"
        if not has_rows:
            raise InputError(path, f"guidance level {level} is scheduled but the table has no {what}",
                             column="guidance")


def check_validation_levels(val_rows: pd.DataFrame, levels: Sequence[int], path: str) -> None:
    """Adaptive argmax: a level without curriculum-validation rows scores NaN and can never win (a warning);
    with no rows for any scheduled level there is nothing to choose by (an error)."""
    present = {int(g) for g in val_rows["guidance"]}
    missing = [int(g) for g in levels if int(g) not in present]
    if len(missing) == len(levels):
        raise InputError(path, f"no curriculum-validation rows for any scheduled guidance level {list(levels)} "
                               f"(the table has levels {sorted(present)})", column="guidance")
    if missing:
        log.warning("%s: no curriculum-validation rows for guidance level(s) %s: they score NaN and are never "
                    "chosen by --curriculum adaptive", path, missing)


def check_labels(table: pd.DataFrame, num_classes: int, path: str) -> None:
    """Labels must index the WILDS class list (the zero-shot head)."""
    bad = np.flatnonzero(table["label"].to_numpy() >= num_classes)
    if bad.size:
        raise InputError(path, f"label {int(table['label'].iloc[bad[0]])} ≥ number of classes {num_classes}",
                         row=int(bad[0]) + 1, column="label")


class CaptionedImages(Dataset):
    """``(image, caption tokens, row position)`` of table rows; item ``i``'s augmentation is seeded by ``(seed, i)``.

    Seeding each item (instead of relying on the worker RNG) makes the batches independent of the number of
    workers and identical after a resume. With ``draft_size``, JPEGs are decoded at the largest power-of-two
    reduction that is still at least ``draft_size`` on both sides (PIL's draft mode): the transform resizes
    to the model's input anyway, and full-size decodes would make the loader, not the GPU, the bottleneck.
    """

    def __init__(self, rows: pd.DataFrame, transform, tokenizer, seed: int = 0, draft_size: int | None = None):
        self.paths = rows["filepath"].tolist()
        self.labels = rows["label"].to_numpy(dtype=np.int64)
        titles = rows["title"].tolist() if "title" in rows.columns else [""] * len(rows)
        unique = sorted(set(titles))
        position = {title: i for i, title in enumerate(unique)}
        # Tokenise each distinct caption once (there are two per class).
        self.tokens = tokenizer(unique) if unique else None
        self.caption_index = np.asarray([position[t] for t in titles], dtype=np.int64)
        self.transform = transform
        self.seed = int(seed)
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as handle:
            if self.draft_size:
                handle.draft("RGB", (self.draft_size, self.draft_size))
            image = handle.convert("RGB")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed("flyp-item", self.seed, index))
            pixels = self.transform(image)
        return pixels, self.tokens[self.caption_index[index]], index


class GlobalBatchSampler(Sampler):
    """Batches of a seeded permutation; batch ``b`` is rows ``[b·G, (b+1)·G)`` and each rank takes its slice.

    ``G`` is the global batch. A pass has ``max(1, n // G)`` batches (a set smaller than one batch is cycled to
    fill it); ``start`` skips batches already trained before a resume, without loading them.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        if n < 1:
            raise ValueError("a stage needs at least one row")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        self.num_batches = max(1, n // global_batch)

    def _order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        need = self.num_batches * self.global_batch
        parts, total = [], 0
        while total < need:
            parts.append(torch.randperm(self.n, generator=generator))
            total += self.n
        return torch.cat(parts)[:need]

    def __iter__(self):
        order = self._order()
        share = self.global_batch // self.world_size
        for batch in range(self.start, self.num_batches):
            first = batch * self.global_batch + self.rank * share
            yield order[first:first + share].tolist()

    def __len__(self) -> int:
        return self.num_batches - self.start


def input_size(model) -> int:
    """The larger side of an open_clip model's input images."""
    size = ckpt.unwrap(model).visual.image_size
    return int(max(size) if isinstance(size, (tuple, list)) else size)


def make_loader(dataset, batch_sampler=None, batch_size: int | None = None, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with a batch sampler (training) or a fixed batch size (evaluation)."""
    # Workers decode and augment ahead of the GPU; pinned memory lets the host→device copy overlap compute.
    extra = {"prefetch_factor": 4} if workers > 0 else {}
    if batch_sampler is not None:
        extra["batch_sampler"] = batch_sampler
    else:
        extra["batch_size"] = batch_size
    return DataLoader(dataset, num_workers=workers, pin_memory=pin_memory, **extra)


# ------------------------------------------------------------------------------------------- evaluation ----

@torch.no_grad()
def zeroshot_outputs(model, head: torch.Tensor, loader, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and softmax probability of the true class for every row the loader yields."""
    from discl.zeroshot import zeroshot_logits

    predictions, true_probs = [], []
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = zeroshot_logits(model, images, head)
        probs = logits.softmax(dim=-1)
        predictions.append(logits.argmax(dim=-1).cpu())
        true_probs.append(probs.gather(1, labels.view(-1, 1)).squeeze(1).cpu())
    if not predictions:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return torch.cat(predictions).numpy(), torch.cat(true_probs).double().numpy()


class _Labelled(Dataset):
    """A WILDS subset as ``(image, label)`` (drops the metadata the zero-shot evaluation does not use)."""

    def __init__(self, subset):
        self.subset = subset

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int):
        image, label, _ = self.subset[index]
        return image, int(label)


class _ImagesLabels(Dataset):
    """``(image, label)`` of curriculum-validation rows (the ``CaptionedImages`` minus the caption)."""

    def __init__(self, rows: pd.DataFrame, transform, tokenizer, draft_size: int | None = None):
        self.inner = CaptionedImages(rows, transform, tokenizer, draft_size=draft_size)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int):
        return self.inner[index][0], int(self.inner.labels[index])


# ---------------------------------------------------------------------------------------------- trainer ----

class ScalarLoggers:
    """Optional TensorBoard / Weights & Biases logging of the per-epoch row (rank 0; skipped when not installed)."""

    def __init__(self, out: Path, cfg: FlypConfig, enabled: bool = True):
        self.tensorboard = self.wandb = None
        if enabled and cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                log.warning("--tensorboard: the tensorboard package is not installed; logging to stats.tsv only")
        if enabled and cfg.wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=cfg.wandb_project, config=dataclasses.asdict(cfg), dir=str(out))
            except ImportError:
                log.warning("--wandb-project: the wandb package is not installed; logging to stats.tsv only")

    def log(self, row: dict, epoch: int) -> None:
        """Log the numeric entries of ``row`` at ``epoch``."""
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tensorboard is not None:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, epoch)
        if self.wandb is not None:
            self.wandb.log(numbers, step=epoch)

    def close(self) -> None:
        """Flush and close whatever was opened."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


class FlypTrainer:
    """One FLYP run: set-up, the step loop over curriculum stages, per-epoch evaluation, checkpoints."""

    def __init__(self, config: FlypConfig):
        from open_clip import ClipLoss

        from discl.data.iwildcam import IWILDCAM_TEMPLATES, load_dataset, zeroshot_classnames
        from discl.models import create_open_clip

        self.cfg = cfg = config
        self.out = Path(cfg.output_dir)
        self.info = D.init_distributed(cfg.device)
        self._check_config()
        seed_everything(cfg.seed)

        self.table = read_iwildcam_table(cfg.train_table)
        self.wilds = load_dataset(cfg.wilds_root)
        self.classnames = zeroshot_classnames(cfg.wilds_root)
        self.templates = list(IWILDCAM_TEMPLATES)
        check_labels(self.table, len(self.classnames), cfg.train_table)
        levels = self._levels()
        check_levels(self.table, levels, cfg.train_table)
        self.schedule = C.make_schedule(cfg.curriculum, levels, cfg.curriculum_epoch, seed=cfg.seed,
                                        choose=cfg.adaptive_choice)
        self.val_rows = None
        if self.schedule.is_adaptive and self.schedule.needs_probes:
            if not cfg.val_table:
                raise InputError(None, "--curriculum adaptive needs --val-table (the curriculum-validation table)")
            self.val_rows = read_iwildcam_table(cfg.val_table)
            check_labels(self.val_rows, len(self.classnames), cfg.val_table)
            check_validation_levels(self.val_rows, self.schedule.levels, cfg.val_table)

        n_real = int((self.table["guidance"] == REAL_GUIDANCE).sum())
        self.steps_per_epoch = max(1, n_real // cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch

        model, self.train_transform, self.val_transform, self.tokenizer = create_open_clip(
            cfg.model, cfg.pretrained, device=self.info.device)
        self.draft_size = input_size(model) if cfg.jpeg_draft else None
        self.model = D.wrap_ddp(model, self.info)
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                           weight_decay=cfg.wd)
        # Features are gathered across ranks before the loss, so the loss itself sees one global batch.
        self.loss_fn = ClipLoss()
        self.pin = self.info.device.startswith("cuda")
        self.step = 0
        self.start_epoch = 0
        self.stage: dict | None = None  # index, kind, level, until, start_step, batches_done, num_batches
        self.stage_count = 0
        self.best: dict | None = None
        self.scalars = ScalarLoggers(self.out, self.cfg, enabled=self.info.is_main)
        if cfg.resume:
            self._resume()
        self.batches = None

    # -- set-up helpers --
    def _check_config(self) -> None:
        cfg = self.cfg
        ckpt.check_fresh_output(self.out / "checkpoints" / ckpt.LAST, cfg.resume)
        # the baseline never switches, so its curriculum epoch does not matter
        if cfg.curriculum != "none" and cfg.curriculum_epoch > cfg.epochs:
            raise InputError(None, f"--curriculum-epoch {cfg.curriculum_epoch} is larger than --epochs {cfg.epochs}")
        if cfg.batch_size % self.info.world_size:
            raise InputError(None, f"--batch-size {cfg.batch_size} is not divisible by the "
                                   f"{self.info.world_size} processes")
        unknown = [s for s in cfg.eval_splits if s not in ("train", "val", "test", "id_val", "id_test")]
        if unknown:
            raise InputError(None, f"unknown WILDS split(s) {unknown}")

    def _levels(self) -> list[int]:
        if self.cfg.curriculum == "none":
            return [REAL_GUIDANCE]
        if self.cfg.guidance_levels:
            return sorted(set(int(g) for g in self.cfg.guidance_levels))
        return sorted(set(int(g) for g in self.table["guidance"]))

    def _resume(self) -> None:
        path = self.out / "checkpoints" / ckpt.LAST
        state = ckpt.load_checkpoint(path)
        mine = dataclasses.asdict(self.cfg)
        changed = [f"{k}={state['args'].get(k)!r} (now {mine[k]!r})" for k in RESUME_KEYS
                   if state["args"].get(k) != mine[k]]
        if changed:
            raise InputError(path, "was written by a run with other settings, cannot resume: " + ", ".join(changed))
        ckpt.restore(state, self.model, self.optimizer, self.schedule)
        self.step = state["step"]
        self.start_epoch = state["epoch"] + 1
        self.stage = state["trainer"]["stage"]
        self.stage_count = state["trainer"]["stage_count"]
        self.best = state["best"]
        if self.info.is_main:
            # A run killed after writing its logs but before its checkpoint logged work that will be redone.
            truncate_stats(self.out / "stats.tsv", state["epoch"])
            truncate_stats(self.out / "curriculum.tsv", self.stage_count - 1, key="stage")
        log.info("resumed from epoch %d (step %d)", state["epoch"], self.step)

    # -- stages --
    def _stage_seed(self, index: int) -> int:
        return stable_seed("flyp-stage", self.cfg.seed, index)

    def _stage_data(self, stage: dict) -> pd.DataFrame:
        if stage["kind"] == C.REAL_SAMPLE:
            return real_sample_rows(self.table, self.cfg.real_sample_size, self._stage_seed(stage["index"]))
        return stage_rows(self.table, stage["level"])

    def _open_stage(self, rows: pd.DataFrame | None = None) -> None:
        """Build the loader of ``self.stage`` from its identity, skipping the batches it already trained."""
        stage = self.stage
        rows = self._stage_data(stage) if rows is None else rows
        dataset = CaptionedImages(rows, self.train_transform, self.tokenizer, seed=self._stage_seed(stage["index"]),
                                  draft_size=self.draft_size)
        sampler = GlobalBatchSampler(len(dataset), self.cfg.batch_size, self._stage_seed(stage["index"]),
                                     self.info.rank, self.info.world_size, start=stage["batches_done"])
        stage["num_batches"] = sampler.num_batches
        # Kept to report what the batches really contained (per epoch, the guidance of hard-image rows).
        self.stage_guidance = rows["guidance"].to_numpy()
        self.stage_hard = rows["img_id"].to_numpy() >= 0
        self.batches = iter(make_loader(dataset, sampler, workers=self.cfg.workers, pin_memory=self.pin))

    def _next_stage(self) -> None:
        """Ask the schedule for the next training stage, answering probes on the way."""
        while True:
            stage = self.schedule.next_stage(self.step, self.steps_per_epoch)
            if stage.kind != C.PROBE:
                break
            probs = self.probe()
            self.schedule.observe_probe(probs, self.val_rows["guidance"].tolist())
        index = self.stage_count
        self.stage_count += 1
        self.stage = {"index": index, "kind": stage.kind, "level": int(stage.level), "until": stage.until_step,
                      "start_step": self.step, "batches_done": 0}
        rows = self._stage_data(self.stage)
        self._open_stage(rows)
        chose = self.schedule.is_adaptive and stage.kind == C.LEVEL and stage.until_step is not None
        scores = self.schedule.last_scores if chose else {}
        if self.info.is_main:
            append_stats(self.out / "curriculum.tsv", {
                "stage": index, "start_step": self.step, "start_epoch": round(self.step / self.steps_per_epoch, 4),
                "kind": stage.kind, "level": int(stage.level), "rows": len(rows),
                "scores": ";".join(f"{g}:{s:.6f}" for g, s in sorted(scores.items())),
            }, key="stage")
        log.info("stage %d from step %d: %s guidance %d (%d rows)", index, self.step, stage.kind, stage.level,
                 len(rows))

    def _stage_done(self) -> bool:
        stage = self.stage
        return (stage is None or stage["batches_done"] >= stage["num_batches"]
                or (stage["until"] is not None and self.step >= stage["until"]))

    # -- the loop --
    def train_step(self, images: torch.Tensor, tokens: torch.Tensor) -> float:
        """One AdamW step of the FLYP loss on a batch (this rank's share of the global batch)."""
        device = self.info.device
        set_lr(self.optimizer, cosine_lr(self.step, self.cfg.lr, self.cfg.warmup, self.total_steps, self.cfg.min_lr))
        images = images.to(device, non_blocking=True)
        tokens = tokens.to(device, non_blocking=True)
        image_features, text_features, logit_scale = self.model(images, tokens)
        loss = self.loss_fn(D.all_gather_with_grad(image_features), D.all_gather_with_grad(text_features),
                            logit_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def train(self) -> dict:
        """Run the remaining epochs; returns the summary (also written to ``summary.json`` by rank 0)."""
        if self.stage is not None and not self._stage_done():
            self._open_stage()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            self.model.train()
            losses, hard_guidance, real_rows = [], set(), 0
            bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch}", disable=not self.info.is_main,
                       leave=False)
            for _ in bar:
                if self._stage_done():
                    self._next_stage()
                images, tokens, positions = next(self.batches)
                self.stage["batches_done"] += 1
                positions = positions.numpy()
                hard = self.stage_hard[positions]
                hard_guidance.update(int(g) for g in self.stage_guidance[positions][hard])
                real_rows += int((~hard).sum())
                losses.append(self.train_step(images, tokens))
                bar.set_postfix(loss=f"{losses[-1]:.4f}", guidance=self.stage["level"])
            metrics = self.evaluate()
            seen = {"hard_guidance": ";".join(str(g) for g in sorted(hard_guidance)), "non_hard_rows": real_rows}
            self._end_epoch(epoch, float(np.mean(losses)), metrics, seen)
            if self.cfg.stop_after_epoch is not None and epoch >= self.cfg.stop_after_epoch:
                log.info("stopping after epoch %d (--stop-after-epoch)", epoch)
                break
        summary = self.summary()
        if self.info.is_main:
            atomic_write_json(self.out / "summary.json", summary)
            self._figures()
        D.barrier()
        return summary

    def _end_epoch(self, epoch: int, loss: float, metrics: dict[str, dict[str, float]], seen: dict) -> None:
        row = {"epoch": epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"], "loss": loss,
               "guidance": self.stage["level"], "stage": self.stage["index"], **seen, **metric_columns(metrics)}
        selection = metrics.get(SELECTION_SPLIT, {}).get("f1", math.nan)
        improved = is_better(selection, None if self.best is None else self.best[f"{SELECTION_SPLIT}_f1"])
        if improved:
            self.best = {"epoch": epoch, **{k: v for k, v in row.items() if k.endswith(("_f1", "_acc"))}}
        if self.info.is_main:
            append_stats(self.out / "stats.tsv", row)
            state = ckpt.training_state(
                self.model, self.optimizer, epoch=epoch, step=self.step, schedule_state=self.schedule.state_dict(),
                trainer_state={"stage": self.stage, "stage_count": self.stage_count},
                args=dataclasses.asdict(self.cfg), best=self.best)
            ckpt.save_checkpoint(self.out / "checkpoints", state, is_best=improved)
            self.scalars.log(row, epoch)
            log.info("epoch %d: loss %.4f, %s", epoch, loss,
                     ", ".join(f"{s} F1 {100 * m['f1']:.2f}" for s, m in metrics.items()))
        D.barrier()

    # -- probes and evaluation (sharded over ranks, gathered in order) --
    def _zeroshot_on(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        from discl.zeroshot import build_zeroshot_head

        model = ckpt.unwrap(self.model)
        was_training = model.training
        model.eval()
        head = build_zeroshot_head(model, self.tokenizer, self.classnames, self.templates, self.info.device)
        mine = D.shard_indices(list(range(len(dataset))), self.info.rank, self.info.world_size)
        loader = make_loader(Subset(dataset, mine), batch_size=self.cfg.eval_batch_size,
                             workers=self.cfg.workers, pin_memory=self.pin)
        predictions, probs = zeroshot_outputs(model, head, loader, self.info.device)
        model.train(was_training)
        pred_all = np.zeros(len(dataset), np.int64)
        prob_all = np.zeros(len(dataset), np.float64)
        for indices, pred, prob in D.all_gather_objects((mine, predictions, probs)):
            pred_all[indices] = pred
            prob_all[indices] = prob
        return pred_all, prob_all

    def probe(self) -> list[float]:
        """Softmax probability of the true class for every curriculum-validation row, in table order."""
        dataset = _ImagesLabels(self.val_rows, self.val_transform, self.tokenizer, self.draft_size)
        return self._zeroshot_on(dataset)[1].tolist()

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Zero-shot head from the class-name templates; WILDS' metrics on every evaluation split."""
        results = {}
        for split in self.cfg.eval_splits:
            subset = self.wilds.get_subset(split, transform=self.val_transform)
            predictions, _ = self._zeroshot_on(_Labelled(subset))
            results[split] = wilds_split_metrics(self.wilds, subset.indices, predictions)
        return results

    # -- outputs --
    def summary(self) -> dict:
        """The selected epoch (best ID-val macro-F1) with its ID-test and OOD-test F1, and the stages run."""
        summary = {"curriculum": self.cfg.curriculum, "best": self.best, "steps": self.step,
                   "steps_per_epoch": self.steps_per_epoch}
        if self.info.is_main:  # the logs exist on rank 0 only
            stats, stages = read_stats(self.out / "stats.tsv"), read_stats(self.out / "curriculum.tsv")
            # NaN (an empty cell) becomes null: summary.json stays strict JSON
            summary["epochs"] = stats.astype(object).where(stats.notna(), None).to_dict("records")
            summary["stages"] = stages.astype(object).where(stages.notna(), None).to_dict("records")
        return summary

    def _figures(self) -> None:
        from discl.plots.training import plot_curriculum_timeline, plot_metric_curves

        stages = read_stats(self.out / "curriculum.tsv")
        if len(stages):
            ends = list(stages["start_step"].iloc[1:]) + [self.step]
            stages = stages.assign(end_epoch=[e / self.steps_per_epoch for e in ends])
            plot_curriculum_timeline(stages, self.out / "curriculum_timeline.png",
                                     title=f"curriculum: {self.cfg.curriculum}")
        stats = read_stats(self.out / "stats.tsv")
        columns = {IWILDCAM_EVAL_SPLITS.get(s, s): f"{s}_f1" for s in self.cfg.eval_splits}
        plot_metric_curves(stats, columns, self.out / "f1_curves.png", ylabel="macro-F1",
                           best_epoch=None if self.best is None else self.best["epoch"])


def train(config: FlypConfig) -> dict:
    """Run FLYP training end to end (joins the torchrun process group when launched by torchrun)."""
    trainer = FlypTrainer(config)
    try:
        return trainer.train()
    finally:
        trainer.scalars.close()
        D.cleanup()
