"""The training loop of both trainers: stages over optimiser steps, evaluation, selection, checkpoints, logs.

Time is counted in optimiser steps. An epoch is a fixed ``steps_per_epoch = max(1, epoch_rows // batch)``,
where ``epoch_rows`` is the stage-data recipe's size of a real-only epoch. The curriculum
(``discl.curriculum``) hands out *stages*; a stage's loader is rebuilt when its data runs out (a new stage
of the same level), so stages cut across epochs. Every stage is identified by its index: its rows, its
batch order and every item's augmentation derive from ``(seed, stage index)``, which makes a resumed run
reproduce the uninterrupted one exactly. The task adapter (``discl.training.task.Task``) brings the model,
optimiser, learning-rate curve, loss and evaluation logits. After every epoch each evaluation split of the
dataset is scored by the dataset's own ``evaluate``; the epoch is selected on the dataset's validation
split (``selection_split`` / ``selection_metric``), never on a test split.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from discl import checkpoint as ckpt
from discl import curriculum as C
from discl import distributed as D
from discl import runrecord
from discl.config import to_plain
from discl.datasets.base import Dataset
from discl.errors import InputError
from discl.fileio import atomic_write_json
from discl.guidance import REAL
from discl.lr import set_lr
from discl.metrics import is_better
from discl.progress import progress
from discl.seeding import seed_everything, stable_seed
from discl.stats import append_stats, truncate_stats
from discl.training import outputs
from discl.training import precision as P
from discl.training.config import LATER_RESUME_KEYS, RESUME_KEYS, LoopConfig
from discl.training.data import ROW, GlobalBatchSampler, ImageSource, TableImages, check_duplicates, check_files, \
    check_labels, fingerprint, make_loader, numbered, predict, read_table, real_table
from discl.training.stage_data import StageData
from discl.training.task import Task

log = logging.getLogger(__name__)

# Settings of the run besides the loop's and the task's: a resume must match them too.
RUN_KEYS = ("trainer", "dataset", "data_root", "dataset_options", "num_classes")


def check_validation_levels(val_rows: pd.DataFrame, levels, path) -> None:
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


def tail_classes(dataset: Dataset) -> frozenset[int]:
    """The few-shot classes of the dataset's many / medium / few cut that have training images."""
    counts = dataset.class_counts()
    return frozenset(c for c, group in enumerate(dataset.class_groups()) if group == "few" and counts[c] > 0)


class Trainer:
    """One run: set-up, the step loop over curriculum stages, per-epoch evaluation, checkpoints and logs."""

    def __init__(self, dataset: Dataset, config: LoopConfig, task: Task):
        self.dataset, self.cfg, self.task = dataset, config, task
        self.out = Path(config.output_dir)
        self.info = D.init_distributed(config.device)
        self._check_config()
        cfg = self.cfg  # --resume without a checkpoint: a fresh run's settings
        seed_everything(cfg.seed)
        self.num_classes = len(dataset.class_names())

        table_path = cfg.train_table or f"{dataset.name} training images (no --train-table)"
        raw = real_table(dataset) if cfg.train_table is None else self._read(cfg.train_table)
        check_labels(raw, self.num_classes, table_path)
        check_files(raw, table_path)
        if cfg.train_table is not None:
            check_duplicates(raw, table_path)
        # each row keeps its data row in the file: an image that does not decode in training is named by it
        self.table = task.prepare_table(numbered(raw), dataset).reset_index(drop=True)
        levels = self._levels()
        tail = tail_classes(dataset) if cfg.stage_data == "tail-topup" else frozenset()
        self.stage_data = StageData(cfg.stage_data, self.table, tail, cfg.downsample_ratio, cfg.tail_fraction,
                                    levels=tuple(levels))
        self.stage_data.check_levels(levels, table_path)
        self.schedule = self._make_schedule(levels)
        self.val_rows = None
        if self.schedule.is_adaptive and self.schedule.needs_probes:
            if cfg.val_table is None:
                raise InputError(None, "--curriculum adaptive needs --val-table (the curriculum-validation table)")
            val_rows = self._read(cfg.val_table)
            check_labels(val_rows, self.num_classes, cfg.val_table)
            check_files(val_rows, cfg.val_table)
            # one probe row per image and level (the table's caption copies would only weight images twice)
            self.val_rows = numbered(val_rows).drop_duplicates(subset=["filepath", "guidance", "seed"]).reset_index(
                drop=True)
            check_validation_levels(self.val_rows, self.schedule.levels, cfg.val_table)

        self.selection = (dataset.selection_split, dataset.selection_metric)
        splits = list(cfg.eval_splits) if cfg.eval_splits is not None else list(dataset.eval_splits)
        self.splits = splits if self.selection[0] in splits else [self.selection[0], *splits]
        self.eval_sets = {split: dataset.eval_set(split) for split in self.splits}

        self.steps_per_epoch = max(1, self.stage_data.epoch_rows // cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch

        model = task.build(dataset, self.info.device, cfg.resume)
        self.draft_size = task.draft_size(model) if cfg.jpeg_draft else None
        parameters = task.trainable(model)
        self.step_context = P.StepContext(self.info.device, cfg.precision, cfg.accum_steps,
                                          P.grad_scaler(self.info.device, cfg.precision))
        self.optimizer = task.optimizer(parameters)
        self.memory = self._memory_estimate(model)  # before compiling: it measures one eager forward
        if cfg.compile:
            P.compile_module(model, cfg.compile_backend)
        self.model = D.wrap_ddp(model, self.info)
        self.pin = self.info.device.startswith("cuda")
        self.step = 0
        self.start_epoch = 0
        self.stage: dict | None = None  # index, kind, level, until, start_step, batches_done, num_batches
        self.stage_count = 0
        self.best: dict | None = None  # epoch and value of the selected epoch
        self.batches = None
        self.run_args = self._run_args()
        state = self._resume_state() if cfg.resume else None  # compared with this run's settings: no writes yet
        # the logs a run appends to (a resume's, or a killed fresh run's)
        outputs.check_run_tables(self.out, None if state is None else state["epoch"])
        if self.info.is_main:  # what a kill during a write left (a checkpoint's temp file can be gigabytes)
            ckpt.remove_stale_temp_files(self.out, self.out / "checkpoints")
            if state is None:  # a fresh start: a killed run's curves would be drawn beside this one's
                outputs.remove_old_events(self.out)
        if state is not None:
            self._resume(state)
        self.scalars = outputs.ScalarLoggers(self.out, cfg.tensorboard, cfg.wandb_project, self.run_args,
                                             enabled=self.info.is_main,
                                             purge_step=self.step + 1 if cfg.resume else None)

    # -- set-up helpers --
    def _memory_estimate(self, model: torch.nn.Module) -> P.MemoryEstimate:
        """Parameters, gradients, optimiser state and one micro-batch's activations (measured on a batch of the
        first image repeated); logged, and an ``InputError`` naming the ``--accum-steps`` that fits when the device
        is too small."""
        cfg, device = self.cfg, self.info.device
        share = cfg.batch_size // self.info.world_size
        micro = share // cfg.accum_steps
        rows = self.table.iloc[np.arange(micro) % len(self.table)]
        example = TableImages(rows["filepath"].tolist()[:1], self.task.targets(rows.iloc[:1]),
                              self.task.train_transform, seed=0, draft_size=self.draft_size,
                              source=ImageSource(self.cfg.train_table, rows[ROW].to_numpy()[:1]))[0][0]
        images = example.unsqueeze(0).expand(micro, *example.shape).contiguous()
        row_targets = self.task.targets(rows)
        targets = torch.stack([row_targets[i] for i in range(micro)])
        try:
            with self.step_context.autocast():
                activations = P.measure_activations(
                    lambda: self.task.loss(model, images.to(device), targets.to(device)), model)
        except RuntimeError as err:
            if not P.is_out_of_memory(err):
                raise
            raise InputError("--accum-steps", P.out_of_memory_message(micro, cfg.accum_steps, share,
                                                                      cfg.precision)) from None
        trainable = self.task.trainable(model)
        estimate = P.MemoryEstimate(parameters=P.tensor_bytes(model.parameters()),
                                    gradients=P.tensor_bytes(trainable),
                                    optimizer=P.optimizer_state_bytes(self.optimizer), activations=activations,
                                    micro_batch=micro, accum_steps=cfg.accum_steps,
                                    capacity=P.device_capacity(device))
        if self.info.is_main:
            log.info("%s", estimate.describe())
        P.check_fits(estimate, share, cfg.precision)
        return estimate

    def _read(self, path) -> pd.DataFrame:
        return read_table(path, self.dataset.root, self.cfg.synthetic_root)

    def _check_config(self) -> None:
        cfg = self.cfg
        cfg.check()
        last = self.out / "checkpoints" / ckpt.LAST
        if cfg.resume and not last.exists():  # killed before its first checkpoint: the same command starts it
            log.info("--resume: %s holds no checkpoint (%s); starting a fresh run", self.out, last)
            self.cfg = cfg = dataclasses.replace(cfg, resume=False)
        ckpt.check_fresh_output(last, cfg.resume)
        if cfg.batch_size % self.info.world_size:
            raise InputError(None, f"--batch-size {cfg.batch_size} is not divisible by the "
                                   f"{self.info.world_size} processes")
        if cfg.batch_size % (self.info.world_size * cfg.accum_steps):
            raise InputError("--accum-steps", f"--batch-size {cfg.batch_size} is not divisible into "
                                              f"{self.info.world_size} process(es) × {cfg.accum_steps} equal "
                                              "micro-batches")
        self.task.check(cfg)

    def _levels(self) -> list[int]:
        if self.cfg.curriculum == "none":
            return [REAL]
        if self.cfg.guidance_levels:
            return sorted({int(g) for g in self.cfg.guidance_levels})
        return sorted({int(g) for g in self.table["guidance"]})

    def _make_schedule(self, levels: list[int]) -> C.Schedule:
        cfg = self.cfg
        starts = cfg.level_starts if cfg.curriculum == "fixed" and cfg.level_starts else None
        if starts is not None:
            # the fixed schedule runs the levels in ascending order; one starting at or after the curriculum
            # epoch would be cut to zero length without a word (real data follows the curriculum anyway)
            cut = [f"{level} (start {start})" for level, start in zip(levels, starts)
                   if level != REAL and start >= cfg.curriculum_epoch]
            if cut:
                raise InputError(None, f"--level-starts {' '.join(map(str, starts))}: guidance level(s) "
                                       f"{', '.join(cut)} would never run before --curriculum-epoch "
                                       f"{cfg.curriculum_epoch}; start them earlier or raise --curriculum-epoch")
        try:
            return C.make_schedule(cfg.curriculum, levels, cfg.curriculum_epoch, seed=cfg.seed,
                                   choose=cfg.adaptive_choice, starts=starts)
        except ValueError as err:
            raise InputError(None, f"curriculum: {err} (see --guidance-levels, --level-starts, "
                                   "--curriculum-epoch)") from None

    def _run_args(self) -> dict:
        """The settings as plain data: what checkpoints store and a resume compares (the tables by their bytes)."""
        dataset, cfg = self.dataset, self.cfg
        return {"trainer": self.task.name, "dataset": dataset.name,
                "data_root": None if dataset.root is None else str(dataset.root),
                "dataset_options": to_plain_dict(dataset.options), "num_classes": self.num_classes,
                **to_plain(cfg), **to_plain(self.task.options),
                "train_table_sha256": fingerprint(cfg.train_table),
                "val_table_sha256": fingerprint(cfg.val_table) if self.val_rows is not None else None}

    def _resume_state(self) -> dict:
        """``last.pt``, once its settings are found to be this run's (an ``InputError`` naming what changed)."""
        path = self.out / "checkpoints" / ckpt.LAST
        state = ckpt.load_checkpoint(path)
        saved, mine = state["args"], self.run_args
        # a checkpoint from before a key was recorded cannot be checked on it (it still resumes)
        unrecorded = [k for k in LATER_RESUME_KEYS if k not in saved]
        if unrecorded:
            log.warning("%s predates the recording of %s: the resume cannot check them", path, ", ".join(unrecorded))
        keys = [k for k in RUN_KEYS + RESUME_KEYS + tuple(self.task.resume_keys) if k not in unrecorded]
        changed = [_change(k, saved, mine) for k in keys if saved.get(k) != mine.get(k)]
        changed = [text for text in changed if text]
        if changed:
            raise InputError(path, "was written by a run with other settings, cannot resume: " + ", ".join(changed))
        trainer = state["trainer"]
        if (trainer.get("steps_per_epoch"), trainer.get("total_steps")) != (self.steps_per_epoch, self.total_steps):
            raise InputError(path, f"the run has {self.total_steps} steps ({self.steps_per_epoch} per epoch), the "
                                   f"checkpoint's had {trainer.get('total_steps')} ({trainer.get('steps_per_epoch')}"
                                   " per epoch): the training data changed")
        return state

    def _resume(self, state: dict) -> None:
        """Continue from ``state`` (checked by ``_resume_state``): weights, counters, logs cut back to it."""
        path = self.out / "checkpoints" / ckpt.LAST
        trainer = state["trainer"]
        ckpt.restore(state, self.model, self.optimizer, self.schedule)
        self.step = state["step"]
        self.start_epoch = state["epoch"] + 1
        self.stage = trainer["stage"]
        self.stage_count = trainer["stage_count"]
        if self.step_context.scaler is not None and trainer.get("grad_scaler"):
            self.step_context.scaler.load_state_dict(trainer["grad_scaler"])
        self.best = state["best"]
        if self.info.is_main:
            # A run killed after writing its logs but before its checkpoint logged work that will be redone;
            # one killed between last.pt and best.pt left an older best.pt. The summary follows the checkpoint.
            truncate_stats(self.out / "stats.tsv", state["epoch"])
            truncate_stats(self.out / "curriculum.tsv", self.stage_count - 1, key="stage")
            ckpt.repair_best(path.parent, state)
            self._write_summary()
        log.info("resumed from epoch %d (step %d)", state["epoch"], self.step)

    # -- stages --
    def _stage_seed(self, index: int) -> int:
        return stable_seed("discl-stage", self.cfg.seed, index)

    def _stage_rows(self, stage: dict) -> pd.DataFrame:
        rng = np.random.default_rng(self._stage_seed(stage["index"]))
        try:
            if stage["kind"] == C.REAL_SAMPLE:
                rows = self.stage_data.real_sample(self.cfg.real_sample_size, rng)
            else:
                rows = self.stage_data.rows(stage["level"], rng)
        except ValueError as err:
            raise InputError(self.cfg.train_table, str(err)) from None
        return rows.reset_index(drop=True)

    def _open_stage(self, rows: pd.DataFrame | None = None) -> None:
        """Build the loader of ``self.stage`` from its identity, skipping the batches it already trained."""
        stage = self.stage
        rows = self._stage_rows(stage) if rows is None else rows
        seed = self._stage_seed(stage["index"])
        dataset = TableImages(rows["filepath"].tolist(), self.task.targets(rows), self.task.train_transform,
                              seed=seed, draft_size=self.draft_size,
                              source=ImageSource(self.cfg.train_table, rows[ROW].to_numpy()))
        sampler = GlobalBatchSampler(len(dataset), self.cfg.batch_size, seed, self.info.rank, self.info.world_size,
                                     start=stage["batches_done"])
        stage["num_batches"] = sampler.num_batches
        # Kept to report what the batches really contained (per epoch, by guidance and hard / non-hard).
        self.stage_guidance = rows["guidance"].to_numpy()
        self.stage_hard = rows["img_id"].to_numpy() >= 0
        self.batches = iter(make_loader(dataset, sampler, workers=self.cfg.workers, pin_memory=self.pin))

    def _next_stage(self) -> None:
        """Ask the schedule for the next training stage, answering probes on the way."""
        while True:
            stage = self.schedule.next_stage(self.step, self.steps_per_epoch)
            if stage.kind != C.PROBE:
                break
            self.schedule.observe_probe(self.probe(), self.val_rows["guidance"].tolist())
        index = self.stage_count
        self.stage_count += 1
        self.stage = {"index": index, "kind": stage.kind, "level": int(stage.level), "until": stage.until_step,
                      "start_step": self.step, "batches_done": 0}
        rows = self._stage_rows(self.stage)
        self._open_stage(rows)
        chose = self.schedule.is_adaptive and stage.kind == C.LEVEL and stage.until_step is not None
        scores = self.schedule.last_scores if chose else {}
        if self.info.is_main:
            append_stats(self.out / "curriculum.tsv", {
                "stage": index, "start_step": self.step, "start_epoch": round(self.step / self.steps_per_epoch, 4),
                "kind": stage.kind, "level": int(stage.level), "rows": len(rows),
                "scores": ";".join(f"{g}:{s:.6f}" for g, s in sorted(scores.items())),
            }, key="stage")
            self.scalars.log_stage(self.step, int(stage.level), scores)
        log.info("stage %d from step %d: %s guidance %d (%d rows)", index, self.step, stage.kind, stage.level,
                 len(rows))

    def _stage_done(self) -> bool:
        stage = self.stage
        return (stage is None or stage["batches_done"] >= stage["num_batches"]
                or (stage["until"] is not None and self.step >= stage["until"]))

    # -- the loop --
    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> float:
        """One optimiser step of the task's loss on this rank's share of a global batch (in ``--accum-steps``
        micro-batches, under ``--precision``'s autocast)."""
        set_lr(self.optimizer, self.task.lr(self.step, self.total_steps))
        self.optimizer.zero_grad(set_to_none=True)
        try:
            loss = self.task.backward(self.model, images, targets, self.step_context)
        except RuntimeError as err:
            if not P.is_out_of_memory(err):
                raise
            share = self.cfg.batch_size // self.info.world_size
            raise InputError("--accum-steps", P.out_of_memory_message(
                share // self.cfg.accum_steps, self.cfg.accum_steps, share, self.cfg.precision)) from None
        scaler = self.step_context.scaler
        if scaler is not None:  # fp16: unscale, skip a step with inf / NaN gradients, adapt the scale
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.step += 1
        return loss

    def train(self) -> dict | None:
        """Run the remaining epochs; rank 0 returns the summary (also written to ``summary.json``)."""
        if self.stage is not None and not self._stage_done():
            # A loader draws its base seed from torch's global RNG; the uninterrupted run drew it when the stage
            # began, so the reopening must not draw again (the RNG state saved next would differ).
            with torch.random.fork_rng(devices=[]):
                self._open_stage()
        self.task.enter_training(self.model)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            losses, guidance_rows, hard_guidance, non_hard = [], Counter(), set(), 0
            bar = progress(range(self.steps_per_epoch), desc=f"epoch {epoch}/{self.cfg.epochs}", unit="step",
                           enabled=self.info.is_main, leave=False)
            for _ in bar:
                if self._stage_done():
                    self._next_stage()
                images, targets, positions = next(self.batches)
                self.stage["batches_done"] += 1
                positions = positions.numpy()
                hard = self.stage_hard[positions]
                guidance = self.stage_guidance[positions]
                guidance_rows.update(int(g) for g in guidance)
                hard_guidance.update(int(g) for g in guidance[hard])
                non_hard += int((~hard).sum())
                losses.append(self.train_step(images, targets))
                bar.set_postfix(loss=f"{losses[-1]:.4f}", guidance=self.stage["level"])
                if self.info.is_main:
                    self.scalars.log_step(self.step, losses[-1], self.optimizer.param_groups[0]["lr"],
                                          self.stage["level"])
            metrics = self.evaluate()
            self._end_epoch(epoch, metrics, (losses, guidance_rows, hard_guidance, non_hard))
            if self.cfg.stop_after_epoch is not None and epoch >= self.cfg.stop_after_epoch:
                log.info("stopping after epoch %d (--stop-after-epoch); continue with --resume", epoch)
                break
        summary = None
        if self.info.is_main:
            summary = self._write_summary()
            if self.cfg.plots:
                self._figures()
        D.barrier()
        return summary

    def _end_epoch(self, epoch: int, metrics: dict[str, dict[str, float]], seen: tuple) -> None:
        # every rank saw its share of each batch: merge the counts (the losses are per-rank means)
        losses, guidance_rows, hard_guidance, non_hard = [], Counter(), set(), 0
        for rank_losses, rank_rows, rank_hard, rank_non_hard in D.all_gather_objects(seen):
            losses.append(rank_losses)
            guidance_rows.update(rank_rows)
            hard_guidance |= rank_hard
            non_hard += rank_non_hard
        row = {"epoch": epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
               "loss": float(np.mean(losses)), "guidance": self.stage["level"], "stage": self.stage["index"],
               "guidance_rows": outputs.format_level_map(guidance_rows),
               "hard_guidance": ";".join(str(g) for g in sorted(hard_guidance)), "non_hard_rows": non_hard}
        row.update({f"{split}_{name}": value for split, values in metrics.items() for name, value in values.items()})
        split, metric = self.selection
        value = metrics[split][metric]
        improved = is_better(value, None if self.best is None else self.best["value"])
        if improved:
            self.best = {"epoch": epoch, "value": value}
        if self.info.is_main:
            append_stats(self.out / "stats.tsv", row)
            state = ckpt.training_state(
                self.model, self.optimizer, epoch=epoch, step=self.step, schedule_state=self.schedule.state_dict(),
                trainer_state={"stage": self.stage, "stage_count": self.stage_count,
                               "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                               "grad_scaler": None if self.step_context.scaler is None
                               else self.step_context.scaler.state_dict()},
                args=self.run_args, best=self.best)
            ckpt.save_checkpoint(self.out / "checkpoints", state, is_best=improved)
            self._write_summary()
            self.scalars.log(row, epoch, self.splits)
            log.info("epoch %d: loss %.4f | %s", epoch, row["loss"], " | ".join(
                f"{s} {self.dataset.format_metrics(m)}" for s, m in metrics.items()))
        D.barrier()

    # -- probes and evaluation (sharded over ranks, gathered in order) --
    def _predict(self, paths, labels, draft_size: int | None, what: str,
                 source: ImageSource | None = None) -> tuple[np.ndarray, np.ndarray]:
        model = ckpt.unwrap(self.model)
        model.eval()
        self.task.prepare_eval(model, self.dataset, self.info.device)
        # rank 0's share of the batches drives the one progress display of the job
        share = len(range(self.info.rank, len(paths), self.info.world_size))
        bar = progress(total=-(-share // self.cfg.eval_batch_size), desc=what, unit="batch",
                       enabled=self.info.is_main, leave=False)

        def logits(images: torch.Tensor) -> torch.Tensor:
            out = self.task.logits(model, images)
            bar.update(1)
            return out

        try:
            return predict(logits, paths, labels, self.task.eval_transform, self.info, self.cfg.eval_batch_size,
                           self.cfg.workers, draft_size, source)
        finally:
            bar.close()
            self.task.enter_training(self.model)

    def probe(self) -> list[float]:
        """Softmax probability of the true class for every curriculum-validation row, in table order."""
        rows = self.val_rows
        source = ImageSource(self.cfg.val_table, rows[ROW].to_numpy())
        return self._predict(rows["filepath"].tolist(), rows["label"].to_numpy(), self.draft_size,
                             f"probe at step {self.step}", source)[1].tolist()

    def evaluate(self) -> dict[str, dict[str, float]]:
        """The dataset's metrics on every evaluation split."""
        results = {}
        for split, eval_set in self.eval_sets.items():
            predictions, _ = self._predict(eval_set.paths, eval_set.labels, None, f"evaluate {split}")
            results[split] = {k: float(v) for k, v in self.dataset.evaluate(eval_set, predictions).items()}
        return results

    # -- outputs (rank 0) --
    def _write_summary(self) -> dict:
        split, metric = self.selection
        run = {"trainer": self.task.name, "dataset": self.dataset.name, "curriculum": self.cfg.curriculum,
               "stage_data": self.cfg.stage_data, "selection": {"split": split, "metric": metric},
               "splits": self.splits, "metric_names": list(self.dataset.metric_names),
               "num_epochs": self.cfg.epochs, "curriculum_epoch": self.cfg.curriculum_epoch, "seed": self.cfg.seed,
               "steps": self.step, "steps_per_epoch": self.steps_per_epoch,
               "total_steps": self.total_steps}
        summary = outputs.build_summary(self.out, run=run, splits=self.splits, metrics=self.dataset.metric_names,
                                        best_epoch=None if self.best is None else self.best["epoch"])
        atomic_write_json(self.out / "summary.json", summary)
        return summary

    def _figures(self) -> None:
        outputs.write_figures(self.out, steps_per_epoch=self.steps_per_epoch, last_step=self.step, splits=self.splits,
                              metrics=self.dataset.metric_names, selection_metric=self.selection[1],
                              titles=dict(self.dataset.split_titles),
                              best_epoch=None if self.best is None else self.best["epoch"],
                              curriculum=self.cfg.curriculum)

    def close(self) -> None:
        """Close the trackers and leave the process group."""
        self.scalars.close()
        D.cleanup()


def _change(key: str, saved: dict, mine: dict) -> str | None:
    """How setting ``key`` differs from the checkpoint's; a table's new bytes are named by the table's flag (none
    when its path changed too: that is named already)."""
    if key.endswith("_sha256"):
        table = key.removesuffix("_sha256")
        if saved.get(table) != mine.get(table):
            return None
        return (f"the contents of --{table.replace('_', '-')} {mine.get(table)} changed (SHA-256 "
                f"{str(saved.get(key))[:12]}… now {str(mine.get(key))[:12]}…)")
    return f"{key}={saved.get(key)!r} (now {mine.get(key)!r})"


def to_plain_dict(options: dict) -> dict:
    """Dataset options as plain data (paths as strings, unset options dropped)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in sorted(options.items()) if v is not None}


def train(dataset: Dataset, config: LoopConfig, task: Task) -> dict | None:
    """Train (or resume) one run; rank 0 returns the summary. Joins torchrun's process group when launched by it."""
    try:
        trainer = Trainer(dataset, config, task)
    except BaseException:
        D.cleanup()
        raise
    try:
        runrecord.start(trainer.out, trainer.run_args)  # every input checked: the run record starts
        return trainer.train()
    finally:
        trainer.close()
