"""fit(): train a model and report progress as an iterator of events (the CLI, tests and UI share it)."""
from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import torch
import torch.nn as nn

from ..data import DatasetInfo, DatasetUnavailable, load_dataset
from ..images import InputSpec
from ..models import model_input_size
from ..store.disk import is_disk_full, write_problem
from ..store.paths import runs_dir
from ..store.run_writer import RunLog
from .callbacks import Callback, TimelapseCallback
from .config import ConfigError, Limits, TrainConfig, divergence_advice, validate
from .device_data import DeviceData
from .distributed import Group, GroupBroken, GroupSpec, rank_device, shard, shard_split
from .evaluate import EVAL_BATCH, evaluate, per_class_accuracy
from .events import END_EVENTS, EpochEnded, Event, Failed, Finished, Paused, Progress, Resumed, RunStarted, Stopped
from .memory import check_fits
from .recipe import build_model, make_optimizer
from .speed import choose_speed

MAX_LOSS = 1000.0  # mean cross-entropy this large means p(correct) ~ e^-1000: the run has blown up
NO_FLIP = {"mnist", "digits"}  # a mirrored digit is another symbol; garments, CIFAR and shapes survive a flip
NEEDS_GROUP = ("world size {n} needs {n} processes that train together: start the run with `torchrun --nproc-per-node "
               "{n} -m cnnviz train ...` (or pass fit(..., group=GroupSpec(...))), or set the world size to 1")


class Divergence(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error with a fix."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available here; choose 'auto' or 'cpu'")
    return torch.device(name)


def open_run_log(run_dir: Path, cfg: TrainConfig, info: DatasetInfo, size: int) -> tuple[RunLog | None, str | None]:
    """The run folder's writer, or None and a warning: a read-only or full disk must not stop the training."""
    try:
        return RunLog(run_dir, cfg, info, size), None
    except OSError as exc:
        if is_disk_full(exc):
            return None, f"nothing was saved because {write_problem(exc)}; free some space to keep the next run"
        return None, f"nothing was saved because the runs folder is not writable ({exc}); set CNNVIZ_RUNS"


def new_run_id(cfg: TrainConfig) -> str:
    """Sortable and unique: time, architecture, dataset, random suffix."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{cfg.arch}-{cfg.dataset}-{secrets.token_hex(2)}"


def fit(cfg: TrainConfig, *, stop: threading.Event | None = None, pause: threading.Event | None = None,
        limits: Limits = Limits(), runs_root: Path | None = None, save: bool = True, progress_every: float = 0.25,
        callbacks: Sequence[Callback] | None = None, group: GroupSpec | None = None) -> Iterator[Event]:
    """Train `cfg`, yielding RunStarted, Progress, EpochEnded ... and exactly one Finished/Stopped/Failed.

    `group` (train.distributed): this process is one rank of a DistributedDataParallel run of `group.world_size`
    processes (cfg.world_size is set from it; cfg.batch_size stays the global batch). Every rank trains its share of
    each batch; the events describe the whole run; rank 0 alone yields them (the others yield only their end event),
    writes the run folder, runs the callbacks and saves the checkpoint.

    `stop`/`pause` are checked at every batch boundary. `callbacks` (train.callbacks) run before the first epoch and
    after every epoch; None means [TimelapseCallback()]: with `save`, the run folder also gets a learning time-lapse of
    8 test images, saved after every epoch (runs/<id>/timelapse.npz); [] means none. Nothing runs until the first
    `next()`.
    """
    return _fit_events(cfg, stop, pause, limits, runs_root, save, progress_every,
                       [TimelapseCallback()] if callbacks is None else list(callbacks), group)


def _fit_events(cfg: TrainConfig, stop: threading.Event | None, pause: threading.Event | None, limits: Limits,
                runs_root: Path | None, save: bool, progress_every: float, callbacks: list[Callback],
                spec: GroupSpec | None) -> Iterator[Event]:
    """fit()'s generator: a bad config, a missing dataset or a group that cannot meet is a Failed event."""
    group = None
    try:
        try:
            cfg = cfg if spec is None else cfg.with_(world_size=spec.world_size)
            validate(cfg, limits)
            if spec is None and cfg.world_size != 1:
                raise ConfigError(NEEDS_GROUP.format(n=cfg.world_size))
            device = rank_device(resolve_device(cfg.device), spec)
            group = Group(spec, device) if spec is not None else None
            run = _Run(cfg, stop or threading.Event(), pause or threading.Event(), runs_root or runs_dir(), save,
                       progress_every, callbacks, device, group)
        except (ValueError, DatasetUnavailable, GroupBroken) as exc:
            yield Failed(message=str(exc))
            return
        yield from run.events()
    finally:
        if group is not None:
            group.close()


class _Run:
    """State of one training run; `events()` drives it. Callbacks read it through train.callbacks.RunState."""

    def __init__(self, cfg: TrainConfig, stop: threading.Event, pause: threading.Event, runs_root: Path, save: bool,
                 progress_every: float, callbacks: list[Callback], device: torch.device | None = None,
                 group: Group | None = None):
        self.cfg, self.stop, self.pause, self.save = cfg, stop, pause, save
        self.group, self.rank, self.world = group, group.rank if group else 0, group.world_size if group else 1
        self.progress_every, self.callbacks = progress_every, list(callbacks) if self.rank == 0 else []
        self.stopping = self.pausing = False  # in a group: Stop and Pause as all ranks agreed at the latest check
        self.device = device or resolve_device(cfg.device)
        ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, subset=cfg.subset, seed=cfg.seed, path=cfg.folder_path)
        self.info = ds.info
        self.size = cfg.input_size or model_input_size(cfg.arch, ds.info.size)
        self.spec = InputSpec(ds.info.channels, self.size, tuple(ds.info.mean), tuple(ds.info.std))
        self.test_split = ds.test  # uint8 on the CPU: callbacks take probe images from it
        self.model = build_model(cfg, ds.info, self.size, self.device)
        # The global batch (each of `world` ranks trains batch_size / world of it); a small subset rounds it down.
        self.batch_size = max(self.world, min(cfg.batch_size, len(ds.train.labels)) // self.world * self.world)
        self.rank_batch = self.batch_size // self.world
        # Before any batch: an absurd batch size is refused with advice (on a CPU the OOM killer ends the server).
        largest = check_fits(self.model, ds.info.channels, self.size, self.rank_batch, cfg.optimizer, self.device)
        self.eval_batch = EVAL_BATCH if largest is None else max(self.rank_batch, min(EVAL_BATCH, largest))
        # Memory format and precision: fixed on CUDA, the fastest of a few timed steps on the CPU (train.speed); one
        # choice for the whole group (rank 0's), so that every rank computes alike.
        speed = choose_speed(self.model, (ds.info.channels, self.size, self.size), self.rank_batch,
                             ds.info.num_classes, self.device) if self.rank == 0 else None
        self.speed, self.speed_probe = group.broadcast(speed) if group else speed
        self.model = self.model.to(memory_format=self.speed.memory_format)
        # What the training steps call: the model, or (in a group) DDP around it, which averages the gradients.
        self.step_model = group.wrap(self.model) if group else self.model
        cl = self.speed.channels_last
        self.train_data = DeviceData(ds.train, ds.info.mean, ds.info.std, self.size, self.device, channels_last=cl)
        test = shard_split(ds.test, self.rank, self.world) if group else ds.test
        self.test_data = DeviceData(test, ds.info.mean, ds.info.std, self.size, self.device, channels_last=cl)
        self.steps_per_epoch = len(self.train_data) // self.batch_size  # drop_last: fixed batch shapes
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.opt, self.sched = make_optimizer(cfg, self.model, self.total_steps)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed)  # the same on every rank: the same permutations
        # Augmentation draws: each rank its own stream (alone, the one stream, as without a group).
        self.aug_gen = self.gen if self.world == 1 else \
            torch.Generator(self.device).manual_seed(cfg.seed * 1009 + self.rank + 1)
        self.run_id = new_run_id(cfg)
        self.log, self.save_warning = open_run_log(Path(runs_root) / self.run_id, cfg, ds.info, self.size) \
            if save and self.rank == 0 else (None, None)
        self.step, self.epoch, self.started = 0, 0, time.perf_counter()
        self.epoch_sums = torch.zeros(3, device=self.device, dtype=torch.float64)  # this epoch's [loss sum, correct, seen]
        self.epoch_train_seconds, self.done_train_seconds = 0.0, 0.0  # this epoch's, and all finished epochs'
        self.last_epoch: EpochEnded | None = None
        self.confusion: torch.Tensor | None = None  # [true, predicted] of the latest validation pass, on the CPU
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    @property
    def run_dir(self) -> Path | None:
        """The run folder, None when nothing is saved."""
        return self.log.dir if self.log else None

    def autocast(self):
        """bf16 autocast where train.speed chose it (always on CUDA; on the CPU when it measured faster)."""
        return self.speed.autocast(self.device)

    def started_event(self) -> RunStarted:
        """The first event: what this run is and how big."""
        return RunStarted(
            run_id=self.run_id, run_dir=str(self.run_dir or ""), config=self.cfg.to_dict(),
            device=f"{self.device} ({self.group.describe()})" if self.group else str(self.device),
            num_train=len(self.train_data), num_test=self.num_test, input_size=self.size,
            batch_size=self.batch_size, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
            params=sum(p.numel() for p in self.model.parameters()), class_names=tuple(self.info.class_names))

    @property
    def num_test(self) -> int:
        """Test images of the whole run (in a group each rank holds its part)."""
        return len(self.test_split.labels)

    def events(self) -> Iterator[Event]:
        """The run's events: all of them on rank 0 (and without a group), only the end event on the other ranks."""
        with contextlib.closing(self.all_events()) as events:  # closed with this one: its `finally` runs at once
            for ev in events:
                if self.rank == 0 or isinstance(ev, END_EVENTS):
                    yield ev

    def all_events(self) -> Iterator[Event]:
        """Run the epochs; translate stop, divergence, out-of-memory and a lost rank into end events."""
        yield self.started_event()
        try:
            self.notify("on_run_start")
            for epoch in range(1, self.cfg.epochs + 1):
                self.epoch = epoch
                yield from self.train_epoch()
                if self.halted():
                    yield self.stopped()
                    return
                yield self.end_epoch()
            yield self.finished()
        except Divergence as exc:
            yield Failed(message=str(exc), epoch=self.epoch, step=self.step, run_id=self.run_id)
        except torch.OutOfMemoryError:
            yield self.out_of_memory()
        except RuntimeError as exc:  # DDP's own gradient all-reduce fails inside backward() when a rank is gone
            message = self.group.lost(exc) if self.group else None
            if message is None:
                raise
            yield Failed(message=message, epoch=self.epoch, step=self.step, run_id=self.run_id)
        finally:
            self.release()

    def halted(self) -> bool:
        """Stop, as every rank sees it: in a group the flag all ranks agreed on at the latest check."""
        return self.stopping if self.group else self.stop.is_set()

    def pausing_now(self) -> bool:
        """Pause, likewise."""
        return self.pausing if self.group else self.pause.is_set()

    def agree(self, due: bool) -> bool:
        """In a group, one tiny all-reduce at the same step on every rank: Stop and Pause (any rank's counts) and
        whether to report now (rank 0's clock decides), so every rank takes the same branch. Alone: `due` as it is."""
        if self.group is None:
            return due
        self.stopping, self.pausing, due = self.group.agree(self.stop.is_set(), self.pause.is_set(),
                                                            due and self.rank == 0)
        return due

    def notify(self, hook: str, *args) -> None:
        """Call `hook` (a Callback method name) on every callback in order, with the model in eval mode."""
        if self.callbacks:
            self.model.eval()
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def train_epoch(self) -> Iterator[Event]:
        """One pass over the training split; Progress every `progress_every` seconds (and after the last batch)."""
        self.step_model.train()
        flip = self.cfg.augment and self.cfg.dataset not in NO_FLIP
        perm = torch.randperm(len(self.train_data), device=self.device, generator=self.gen)
        # Device accumulators [loss sum, correct, seen] for the report window and the epoch: no host sync per step,
        # and the epoch's numbers do not depend on when reports happened (same seed -> same curve).
        window = torch.zeros(3, device=self.device, dtype=torch.float64)
        self.epoch_sums.zero_()
        last_report, self.epoch_train_seconds = time.perf_counter(), 0.0
        due = False
        for batch in range(self.steps_per_epoch):
            if self.agree(due):  # the batches since the last report, reported before the next one starts
                yield self.progress(batch, window)
                window.zero_()
                last_report = time.perf_counter()
            if self.pausing_now() and not self.halted():
                yield from self.wait_while_paused()
            if self.halted():
                return
            t0 = time.perf_counter()
            idx = perm[batch * self.batch_size:(batch + 1) * self.batch_size]
            if self.group:  # this rank's share of the global batch
                idx = shard(idx, self.rank, self.world)
            x, y = self.train_data.batch(idx, augment=self.cfg.augment, flip=flip, generator=self.aug_gen)
            loss, out = self.train_step(x, y)
            sums = torch.stack([loss.detach().double() * len(y), (out.argmax(1) == y).sum().double(),
                                torch.tensor(float(len(y)), device=self.device, dtype=torch.float64)])
            window += sums
            self.epoch_sums += sums
            self.step += 1
            self.epoch_train_seconds += time.perf_counter() - t0
            due = time.perf_counter() - last_report >= self.progress_every
        yield self.progress(self.steps_per_epoch, window)  # every rank gets here: no agreement needed

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on batch x [B,C,S,S], y [B]; returns the loss and logits [B,classes] (still on the device)."""
        with self.autocast():
            out = self.step_model(x)
            loss = self.criterion(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss, out

    def progress(self, batch: int, window: torch.Tensor) -> Progress:
        """Read the window's accumulators (the only host sync; in a group summed over the ranks first) and check the
        loss is still finite."""
        loss_sum, right, seen = (self.group.sum_(window) if self.group else window).tolist()
        loss = loss_sum / max(1.0, seen)
        if not math.isfinite(loss) or loss > MAX_LOSS:
            raise Divergence(
                f"the loss became {loss:.4g} in epoch {self.epoch} (step {self.step}): training diverged. "
                + divergence_advice(self.cfg)
            )
        ips = self.step * self.batch_size / max(1e-9, self.train_seconds_total())
        eta = (self.total_steps - self.step) * self.batch_size / max(ips, 1e-9)
        return Progress(step=self.step, epoch=self.epoch, batch=batch, steps_per_epoch=self.steps_per_epoch,
                        loss=loss, acc=right / max(1.0, seen), images_per_sec=ips, eta_seconds=eta,
                        lr=self.sched.get_last_lr()[0])

    def train_seconds_total(self) -> float:
        """Seconds spent in training steps so far (no validation, no callbacks, no pauses)."""
        return self.done_train_seconds + self.epoch_train_seconds

    def wait_while_paused(self) -> Iterator[Event]:
        """Block at a batch boundary; yield a Paused heartbeat twice a second so a UI can notice disconnects."""
        yield Paused(step=self.step, epoch=self.epoch)
        while self.pausing_now() and not self.halted():
            stopped = self.stop.wait(0.5)
            if self.group is None and stopped:
                break
            self.agree(False)  # in a group: every rank looks again, together (the same count of checks everywhere)
            if self.group is not None and (self.halted() or not self.pausing_now()):
                break
            yield Paused(step=self.step, epoch=self.epoch)
        yield Resumed(step=self.step, epoch=self.epoch)

    def end_epoch(self) -> EpochEnded:
        """Validate, run the callbacks, log the epoch's row and return its event."""
        t0 = time.perf_counter()
        # CPU: validate in float32, so the run's test accuracy is what `cnnviz eval` of its checkpoint reports.
        precision = self.autocast if self.device.type == "cuda" else contextlib.nullcontext
        if self.group:  # every rank validates rank 0's weights and batch-norm statistics: the checkpoint's accuracy
            self.group.sync_buffers(self.model)
        val_loss, val_acc, self.confusion = evaluate(self.model, self.test_data, self.info.num_classes, self.criterion,
                                                     precision, self.eval_batch)
        if self.group:  # the whole test set's numbers, from every rank's part
            val_loss, val_acc, self.confusion = self.group.whole_split(val_loss, len(self.test_data), self.confusion)
        if not math.isfinite(val_loss):
            raise Divergence(f"the validation loss became {val_loss} in epoch {self.epoch}: training diverged. "
                             + divergence_advice(self.cfg))
        self.done_train_seconds = self.train_seconds_total()
        self.notify("on_epoch_end", self.epoch)
        loss_sum, right, seen = (self.group.sum_(self.epoch_sums) if self.group else self.epoch_sums).tolist()
        ev = EpochEnded(
            epoch=self.epoch, step=self.step, train_loss=loss_sum / max(1.0, seen), train_acc=right / max(1.0, seen),
            val_loss=val_loss, val_acc=val_acc, lr=self.sched.get_last_lr()[0], train_seconds=self.epoch_train_seconds,
            epoch_seconds=self.epoch_train_seconds + time.perf_counter() - t0,
            images_per_sec=seen / max(1e-9, self.epoch_train_seconds))
        self.epoch_train_seconds = 0.0
        if self.log:
            self.log.epoch(ev)
        self.last_epoch = ev
        return ev

    def finished(self) -> Finished:
        """The end event after the last epoch (validate() guarantees at least one), with the final checkpoint."""
        confusion, last = self.confusion, self.last_epoch
        path, warning = self.save_model(final=True)
        warning = self.log.end("finished", warning) if self.log else warning
        return Finished(
            run_id=self.run_id, checkpoint=path, test_loss=last.val_loss, test_acc=last.val_acc,
            confusion=tuple(tuple(int(v) for v in row) for row in confusion.tolist()),
            per_class_acc=tuple(per_class_accuracy(confusion)), seconds=time.perf_counter() - self.started, warning=warning)

    def stopped(self) -> Stopped:
        """The end event for a stop: the weights so far are kept, marked incomplete."""
        path, warning = self.save_model(final=False) if self.epoch > 1 or self.step > 0 else (None, None)
        warning = self.log.end("stopped", warning) if self.log else warning
        msg = f"stopped by the user in epoch {self.epoch} after {self.step} steps"
        return Stopped(run_id=self.run_id, epoch=self.epoch, step=self.step, checkpoint=path,
                       message=msg + (f"; {warning}" if warning else ""))

    def save_model(self, final: bool) -> tuple[str | None, str | None]:
        """Save into the run folder; a full or read-only disk becomes a warning, not a lost result."""
        if not self.log:
            return None, self.save_warning
        try:
            metrics = {}
            if final:
                metrics = {"test_acc": self.last_epoch.val_acc, "test_loss": self.last_epoch.val_loss,
                           "confusion": self.confusion.tolist()}
            return str(self.log.save_model(self.model, metrics, final)), None
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: torch's own write errors
            advice = " Free some disk space (delete old runs) and train again to keep them" if is_disk_full(exc) else ""
            return None, f"the weights could not be saved ({write_problem(exc)}); the results shown are still valid.{advice}"

    def out_of_memory(self) -> Failed:
        """The end event for CUDA out-of-memory, with a smaller batch size to try."""
        self.release()
        return Failed(message=f"the GPU ran out of memory at batch size {self.batch_size}; try {max(1, self.batch_size // 2)} "
                      "or a smaller model/input size", epoch=self.epoch, step=self.step, run_id=self.run_id)

    def release(self) -> None:
        """Drop device tensors so the next run gets the memory (matters on a shared GPU); the run is over after this."""
        if self.device.type != "cuda":
            return
        # The scheduler holds the optimiser, which holds the parameters: all of them go, or none is freed.
        self.model = self.step_model = self.opt = self.sched = self.train_data = self.test_data = None
        torch.cuda.empty_cache()
