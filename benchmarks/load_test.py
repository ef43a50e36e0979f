"""Lecture-hall load test: simulated students doing predict/explain on a real `python app.py` while training runs queue.

Loopback only and bounded in time. It starts the app as a subprocess on a free port, with its own checkpoints/,
runs/ and Gradio temp folders in a fresh temp dir (the shipped lenet5-digits checkpoint copied in), and always
stops it at the end.

    python benchmarks/load_test.py                                   # 30 students for 60 s, 2 runs queued
    python benchmarks/load_test.py --students 6 --duration 20 --json --out artifacts/load.json
    python benchmarks/load_test.py --overload                        # then a 30-request burst against --max-queue 5
    python benchmarks/load_test.py -- --max-queued-runs 2            # flags after `--` (or unknown ones) go to app.py
    python benchmarks/load_test.py --compare                         # the same load idle, then while a run trains
    python benchmarks/load_test.py --compare --train-preset demo-digits --duration 30

Every student is a thread with its own gradio_client session, alternating /predict and /explain on real digit test
images and checking the answers. The trainers each submit /train (demo-digits) a fraction of a second apart at the
start; their queue wait, start and finish times show whether runs are served in submission order. The load
generator shares the machine's cores with the server, so on a small machine latencies include that contention.

--compare (the training-worker benchmark): against one app, the students' load runs while one long run (--train-preset)
is paused and resumed every --segment s (idle and training windows, interleaved so that other programs on a shared
machine weigh on both alike), and p50/p95 of both and their ratio are reported; also the
time from Start to the first curve point with the warm worker, the run's training speed with and without the students
(steps/s), and a second app with `--devices cpu,cpu` where two runs train at once.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: cnnviz is not installed, it lives in the repository
for _var in ("NO_PROXY", "no_proxy"):  # loopback traffic must never go through a proxy
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "localhost", "127.0.0.1", "::1"]))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from gradio_client import Client, handle_file  # noqa: E402

CKPT = "lenet5-digits"
SHIPPED = REPO / "cnnviz" / "shipped" / "checkpoints" / f"{CKPT}.pt"
LABELS = [str(d) for d in range(10)]
ENDPOINTS = ("/predict", "/explain")
TRAIN_FIELDS = ("arch", "dataset", "subset", "epochs", "batch_size", "optimizer", "lr", "schedule", "augment", "seed",
                "momentum", "weight_decay", "label_smoothing")
STARTUP_TIMEOUT = 120.0
GRACE = 180.0  # the whole run ends at most this long after the students' loops should have
POLL = 0.05  # how often a trainer looks at its job's status


# ---------------------------------------------------------------- the app under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = STARTUP_TIMEOUT) -> float:
    """Seconds until the app answers 200 at `url`; fails early if the process dies."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class App:
    url: str
    log: Path
    startup_seconds: float


@contextmanager
def served_app(max_queue: int, extra: list[str]) -> Iterator[App]:
    """`python app.py --port P --max-queue N [extra]` with fresh checkpoints/, runs/ and Gradio temp folders."""
    with tempfile.TemporaryDirectory(prefix="cnnviz-load-") as tmp:
        tmp = Path(tmp)
        (tmp / "checkpoints").mkdir()
        (tmp / "runs").mkdir()
        shutil.copyfile(SHIPPED, tmp / "checkpoints" / SHIPPED.name)
        env = {**os.environ, "CNNVIZ_CHECKPOINTS": str(tmp / "checkpoints"), "CNNVIZ_RUNS": str(tmp / "runs"),
               "GRADIO_TEMP_DIR": str(tmp / "gradio")}  # the run's uploads and outputs go away with it
        port = free_port()
        log = tmp / "app.log"
        cmd = [sys.executable, "app.py", "--port", str(port), "--max-queue", str(max_queue), *extra]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            yield App(url, log, wait_until_up(url, proc, log))
        finally:
            stop(proc)


def server_errors(log: Path) -> list[str]:
    """Distinct exception lines the server logged (the last line of each traceback)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((lines[j] for j in range(i + 1, len(lines)) if lines[j] and not lines[j][0].isspace()), "")
            if end and end[:120] not in found:
                found.append(end[:120])
    return found


# ---------------------------------------------------------------- requests and their outcomes


@dataclass
class Sample:
    endpoint: str
    start: float  # time.monotonic() when sent
    seconds: float
    outcome: str  # "ok", "wrong", "queue_full", "timeout" or "error"
    message: str = ""


class Recorder:
    """Samples from many threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples: list[Sample] = []

    def add(self, s: Sample) -> None:
        with self.lock:
            self.samples.append(s)


def digit_pngs(folder: Path) -> dict[str, Path]:
    """The first test image of each digit class, as PNG files (real data the checkpoint was tested on)."""
    from cnnviz.examples import first_of_class

    paths = {}
    for label in LABELS:
        paths[label] = folder / f"digit-{label}.png"
        first_of_class("digits", label).image.save(paths[label])
    return paths


def is_queue_full(message: str) -> bool:
    return "queue" in message.lower() and "full" in message.lower()


def right_answer(endpoint: str, result, label: str) -> bool:
    """Predict's top label, or the class Explain says it explains, is the true digit."""
    if endpoint == "/predict":
        return result[0]["label"] == label
    return f"Predicted **{label}**" in result[0]


def timed_call(client: Client, endpoint: str, png: Path, label: str, deadline: float) -> Sample:
    """One request, timed in the calling thread and classified; never raises."""
    if endpoint == "/predict":
        args, kwargs = (CKPT, handle_file(png), 3), {}
    else:  # Explain at the default layer for the predicted class, with all five other methods (ticked: no longer the default)
        args, kwargs = (), dict(checkpoint=CKPT, image=handle_file(png), layer="", target="predicted",
                                methods=["guided-gradcam", "guided-backprop", "ig", "saliency", "occlusion"])
    t0 = time.monotonic()
    job = None
    try:
        job = client.submit(*args, **kwargs, api_name=endpoint)
        result = job.result(timeout=max(0.1, deadline - time.monotonic()))
        outcome, message = ("ok", "") if right_answer(endpoint, result, label) else ("wrong", "")
    except TimeoutError:
        if job is not None:
            job.cancel()
        outcome, message = "timeout", "no answer before the global deadline"
    except Exception as e:  # every failure is a data point here
        message = (str(e) or type(e).__name__)[:120]
        outcome = "queue_full" if is_queue_full(message) else "error"
    return Sample(endpoint, t0, time.monotonic() - t0, outcome, message)


def connect(url: str, tries: int = 3) -> Client:
    """One client; a timed-out /config (a busy machine) is tried again."""
    for k in range(tries):
        try:
            return Client(url, verbose=False)
        except httpx.TimeoutException:
            if k == tries - 1:
                raise
    raise AssertionError("unreachable")


def connect_all(url: str, n: int) -> tuple[list[Client], float]:
    """n clients (one session each), made concurrently because each takes about a second."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        clients = list(pool.map(lambda _: connect(url), range(n)))
    return clients, time.monotonic() - t0


def wait_for_workers(log: Path, n: int, timeout: float = STARTUP_TIMEOUT) -> float:
    """Seconds until the app's log says its `n` training workers are ready (they start with the server)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if tail(log, 200).count("ready: {") >= n:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"the training workers were not ready within {timeout:.0f} s:\n{tail(log)}")


def close_all(clients: list[Client]) -> None:
    """Close concurrently: each close waits up to 1 s for its heartbeat thread."""
    with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
        list(pool.map(lambda c: c.close(), clients))


def student(i: int, client: Client, pngs: dict[str, Path], until: float, deadline: float, cap: int,
            rec: Recorder, think: float = 0.0) -> None:
    """Alternate predict and explain on the digits, at most `cap` requests, until `until`; between two requests
    the student looks at the answer for about `think` seconds (0: back to back, a stress test)."""
    rng = random.Random(i)
    time.sleep(rng.uniform(0, 1))  # students do not all click in the same millisecond
    for n in range(cap):
        if time.monotonic() >= until:
            break
        label = LABELS[(i + n // 2) % len(LABELS)]
        endpoint = ENDPOINTS[n % 2]
        rec.add(timed_call(client, endpoint, pngs[label], label, deadline))
        time.sleep(think * rng.uniform(0.5, 1.5))


# ---------------------------------------------------------------- training runs


@dataclass
class Run:
    order: int  # submission order, 0 first
    submitted: float | None = None
    queued_seen: bool = False  # it waited: in Gradio's queue (IN_QUEUE) or the app's own ("Waiting ..." status)
    started: float | None = None  # the handler began: a status update arrived or the job left Gradio's queue
    training: float | None = None  # the status line first showed an epoch counter
    ended: float | None = None  # the status line first said Finished/Stopped/Failed (training over, results to come)
    finished: float | None = None  # job.result() is available
    result: str = ""
    error: str = ""
    updates: int = 0
    phases: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)  # distinct status lines seen, e.g. 'Waiting ...', 'Training · ...'


def train_args(epochs: int, preset: str = "demo-digits") -> dict:
    """A preset's settings (demo-digits by default) as /train arguments, on the CPU."""
    from cnnviz.train.presets import PRESETS  # plain dataclasses, no gradio

    c = PRESETS[preset].config
    args = {f: getattr(c, f) for f in TRAIN_FIELDS}
    return {**args, "preset": preset, "subset": args["subset"] or 0, "epochs": epochs, "device": "cpu"}


def status_text(update) -> str:
    """The status HTML of one streamed /train update (a list; index 0), tolerating a dict wrapper."""
    first = update[0] if isinstance(update, list | tuple) and update else update
    if isinstance(first, dict):
        first = first.get("value", "")
    return first if isinstance(first, str) else ""


def status_head(html: str) -> str:
    """The status headline as plain text: the 'ts-head' element if there is one, else all text, cut short."""
    m = re.search(r"ts-head[^>]*>([^<]*)<", html)
    text = m.group(1) if m else re.sub(r"<[^>]+>", " ", html)
    return re.sub(r"\s+", " ", text).strip()[:60]


def is_training(html: str) -> bool:
    """Once a run trains its status shows an epoch counter ('Training · epoch 1 of 3', later 'Finished · ...')."""
    return bool(re.search(r"epoch\s+\d+\s+of\s+\d+", html, re.IGNORECASE)) or "training ·" in html.lower()


def trainer(run: Run, client: Client, args: dict, delay: float, t_ref: float, deadline: float) -> None:
    """Submit one run after `delay` s, then watch its status until it ends (times are seconds after t_ref)."""
    time.sleep(delay)
    now = lambda: time.monotonic() - t_ref
    run.submitted = now()
    try:
        job = client.submit(**args, api_name="/train")
    except Exception as e:
        run.error = str(e)[:120]
        return
    while not job.done() and time.monotonic() < deadline:
        code = job.status().code.name
        if not run.phases or run.phases[-1] != code:  # the sequence of states, for the report
            run.phases.append(code)
        outputs = job.outputs()
        html = status_text(outputs[-1]) if outputs else ""
        run.queued_seen |= code == "IN_QUEUE" or "waiting" in html.lower()
        if run.started is None and (outputs or code in ("PROCESSING", "ITERATING")):
            run.started = now()
        if run.training is None and is_training(html):
            run.training = now()
        head = status_head(html)
        if run.ended is None and head.split(" ")[0] in ("Finished", "Stopped", "Failed"):
            run.ended = now()
        if head and head not in run.heads and len(run.heads) < 10:
            run.heads.append(head)
        time.sleep(POLL)
    if not job.done():
        job.cancel()
        run.error = "not finished before the global deadline"
        return
    run.finished = now()
    run.updates = len(job.outputs())
    run.started = run.started if run.started is not None else run.finished
    try:
        final = job.result(timeout=5)
        match = re.search(r"Test accuracy: ([\d.]+%)", str(final[4]))
        run.result = f"test accuracy {match.group(1)}" if match else str(final[4])[:80]
    except Exception as e:
        run.error = (str(e) or type(e).__name__)[:120]


def in_order(runs: list[Run], attr: str) -> bool | None:
    """Whether the runs reached `attr` in submission order (None when some never did)."""
    times = [getattr(r, attr) for r in runs]
    if any(t is None for t in times):
        return None
    return sorted(range(len(runs)), key=lambda k: times[k]) == list(range(len(runs)))


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def endpoint_stats(samples: list[Sample], busy: list[tuple[float, float]]) -> dict:
    """Counts, latency of answered requests, and distinct error messages; `busy` = intervals when a run trained."""
    answered = [s for s in samples if s.outcome in ("ok", "wrong")]
    secs = [s.seconds for s in answered]
    while_training = [s.seconds for s in answered if any(a <= s.start < b for a, b in busy)]
    errors = [s for s in samples if s.outcome in ("error", "timeout")]
    return {
        "count": len(samples), "ok": sum(s.outcome == "ok" for s in samples),
        "wrong": sum(s.outcome == "wrong" for s in samples), "errors": len(errors),
        "queue_full": sum(s.outcome == "queue_full" for s in samples),
        "p50_ms": ms(percentile(secs, 50)), "p95_ms": ms(percentile(secs, 95)), "max_ms": ms(max(secs, default=None)),
        "p50_ms_while_training": ms(percentile(while_training, 50)), "answered_while_training": len(while_training),
        "error_messages": sorted({s.message for s in errors}),
        "queue_full_messages": sorted({s.message for s in samples if s.outcome == "queue_full"}),
    }


# ---------------------------------------------------------------- phases


def load_phase(args: argparse.Namespace, pngs: dict[str, Path]) -> dict:
    """Students and trainers against one app for --duration seconds (bounded by a global deadline)."""
    with served_app(args.max_queue, args.app_args) as app:
        clients, connect_s = connect_all(app.url, args.students + args.trainers)
        students, trainers = clients[:args.students], clients[args.students:]
        rec, runs = Recorder(), [Run(k) for k in range(args.trainers)]
        t0 = time.monotonic()
        until, deadline = t0 + args.duration, t0 + args.duration + GRACE
        threads = [threading.Thread(target=student, args=(i, c, pngs, until, deadline, args.requests, rec, args.think),
                                    daemon=True)
                   for i, c in enumerate(students)]
        targs = train_args(args.epochs)
        threads += [threading.Thread(target=trainer, args=(r, c, targs, 0.3 * r.order, t0, deadline), daemon=True)
                    for r, c in zip(runs, trainers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        wall = time.monotonic() - t0
        close_all(clients)
        busy = [(t0 + r.training, t0 + r.finished) for r in runs if r.training is not None and r.finished is not None]
        return {
            "students": args.students, "trainers": args.trainers, "duration_s": args.duration,
            "requests_cap": args.requests, "think_seconds": args.think, "max_queue": args.max_queue, "app_args": args.app_args,
            "app_startup_s": round(app.startup_seconds, 1), "connect_s": round(connect_s, 1), "wall_s": round(wall, 1),
            "threads_still_running": sum(t.is_alive() for t in threads),
            "endpoints": {e: endpoint_stats([s for s in rec.samples if s.endpoint == e], busy) for e in ENDPOINTS},
            "runs": [run_dict(r) for r in runs],
            "runs_started_in_order": in_order(runs, "training"), "runs_finished_in_order": in_order(runs, "finished"),
            "server_exceptions": server_errors(app.log),
        }


def run_dict(r: Run) -> dict:
    rnd = lambda v: None if v is None else round(v, 2)
    return {"order": r.order, "submitted_s": rnd(r.submitted), "queued_seen": r.queued_seen, "started_s": rnd(r.started),
            "training_s": rnd(r.training), "ended_s": rnd(r.ended), "finished_s": rnd(r.finished), "updates": r.updates, "result": r.result,
            "error": r.error, "status_codes": r.phases, "status_lines": r.heads}


def overload_phase(args: argparse.Namespace, pngs: dict[str, Path]) -> dict:
    """--burst simultaneous predicts against --max-queue 5: the surplus must get 'queue full', nothing else."""
    with served_app(5, args.app_args) as app:
        clients, _ = connect_all(app.url, args.burst)
        rec, gate = Recorder(), threading.Barrier(len(clients))
        deadline = time.monotonic() + GRACE

        def fire(i: int, c: Client) -> None:
            gate.wait()
            label = LABELS[i % len(LABELS)]
            rec.add(timed_call(c, "/predict", pngs[label], label, deadline))

        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            list(pool.map(fire, range(len(clients)), clients))
        close_all(clients)
        return {"burst": args.burst, "max_queue": 5, "predict": endpoint_stats(rec.samples, []),
                "server_exceptions": server_errors(app.log)}


def run_students(clients: list[Client], pngs: dict[str, Path], args: argparse.Namespace) -> tuple[list[Sample], float,
                                                                                                    float]:
    """The students' loop for --duration s on these sessions; their samples and the phase's start and end."""
    rec = Recorder()
    t0 = time.monotonic()
    until, deadline = t0 + args.duration, t0 + args.duration + GRACE
    threads = [threading.Thread(target=student, args=(i, c, pngs, until, deadline, args.requests, rec, args.think),
                                daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return rec.samples, t0, time.monotonic()


def alternate(client: Client, until: float, segment: float) -> list[tuple[float, float, bool]]:
    """Pause and resume the training run every `segment` s until `until`, paused first: (start, end, training) windows.
    Interleaved, so a load that other programs put on a shared machine weighs on both sides alike."""
    windows, training = [], True
    while time.monotonic() < until - 1:
        client.predict(api_name="/pause")  # toggles Pause/Resume
        training = not training
        t = time.monotonic()
        windows.append((t, min(until, t + segment), training))
        time.sleep(max(0.0, windows[-1][1] - time.monotonic()))
    if not training:
        client.predict(api_name="/pause")  # resume
    return windows


def curve_points(update) -> int:
    """Points with a value in the loss plot of one streamed /train update (index 1)."""
    plot = update[1] if isinstance(update, list | tuple) and len(update) > 1 else None
    plot = plot.get("value", plot) if isinstance(plot, dict) else plot
    rows = plot.get("data", []) if isinstance(plot, dict) else []
    return sum(1 for r in rows if len(r) > 1 and isinstance(r[1], int | float) and not math.isnan(r[1]))


class RunWatch:
    """One /train job watched in a thread: when its first curve point came, and (time, step) pairs from its status."""

    def __init__(self, client: Client, targs: dict):
        self.client, self.job = client, None
        self.submitted = self.first_point = None
        self.steps: list[tuple[float, int]] = []
        self.heads: list[str] = []
        self.targs = targs
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> RunWatch:
        self.submitted = time.monotonic()
        self.job = self.client.submit(**self.targs, api_name="/train")
        self.thread.start()
        return self

    def _watch(self) -> None:
        seen = 0
        while not self.job.done():
            outputs = self.job.outputs()
            for update in outputs[seen:]:
                html = status_text(update)
                if self.first_point is None and curve_points(update):
                    self.first_point = time.monotonic()
                m = re.search(r"step ([\d,]+) /", html)
                if m:
                    self.steps.append((time.monotonic(), int(m.group(1).replace(",", ""))))
                head = status_head(html)
                if head and head not in self.heads and len(self.heads) < 10:
                    self.heads.append(head)
            seen = len(outputs)
            time.sleep(POLL)

    def rate(self, a: float, b: float) -> float | None:
        """Training steps per second between monotonic times a and b."""
        inside = [(t, n) for t, n in self.steps if a <= t <= b]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 1:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def wait_training(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.first_point is None and time.monotonic() < deadline and not self.job.done():
            time.sleep(POLL)

    def result_text(self, timeout: float = 120) -> str:
        try:
            final = self.job.result(timeout=timeout)
            return re.sub(r"\s+", " ", str(final[4]))[:100]
        except Exception as e:  # the report says what happened
            return f"error: {(str(e) or type(e).__name__)[:100]}"


def latency_stats(samples: list[Sample]) -> dict:
    return {e: endpoint_stats([s for s in samples if s.endpoint == e], []) for e in ENDPOINTS}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def compare_phase(args: argparse.Namespace, pngs: dict[str, Path]) -> dict:
    """The same student load with the run paused (idle) and training, in alternating --segment windows against one app;
    then the run alone for a while. A request counts for the window it was sent in."""
    with served_app(args.max_queue, args.app_args) as app:
        workers_s = wait_for_workers(app.log, 1)  # idle means idle: not while the worker imports torch
        trainer_client = Client(app.url, verbose=False)
        clients, _ = connect_all(app.url, args.students)
        try:
            run = RunWatch(trainer_client, train_args(args.train_epochs, args.train_preset)).start()
            run.wait_training()
            out_box: dict = {}
            students = threading.Thread(target=lambda: out_box.setdefault("load", run_students(clients, pngs, args)))
            students.start()
            windows = alternate(trainer_client, time.monotonic() + args.duration, args.segment)
            students.join()
            samples, _, load_end = out_box["load"]
            time.sleep(args.alone)  # the run without the students: its speed alone
            alone_end = time.monotonic()
            stopped = trainer_client.predict(api_name="/stop")
            result = run.result_text()
        finally:
            close_all(clients)
            trainer_client.close()

        def sent_in(training: bool) -> list[Sample]:
            return [x for x in samples if any(a <= x.start < b and t == training for a, b, t in windows)]

        rates = [(b - a, r) for a, b, t in windows if t and (r := run.rate(a + 0.5, b)) is not None]
        out = {"idle": latency_stats(sent_in(False)), "training": latency_stats(sent_in(True)),
               "windows": [(round(b - a, 1), t) for a, b, t in windows], "segment_s": args.segment,
               "start_to_first_point_s": None if run.first_point is None else round(run.first_point - run.submitted, 2),
               "steps_per_s_with_students": round(sum(d * r for d, r in rates) / sum(d for d, _ in rates), 2)
               if rates else None, "steps_per_s_alone": run.rate(load_end + 1, alone_end),
               "run_status_lines": run.heads, "run_result": result, "stop_status": status_head(status_text(stopped)),
               "train_preset": args.train_preset, "students": args.students, "duration_s": args.duration,
               "app_startup_s": round(app.startup_seconds, 1), "workers_ready_after_s": round(workers_s, 1),
               "app_args": args.app_args, "server_exceptions": server_errors(app.log)}
    for e in ENDPOINTS:
        out[f"{e[1:]}_p95_ratio"] = ratio(out["training"][e]["p95_ms"], out["idle"][e]["p95_ms"])
        out[f"{e[1:]}_p50_ratio"] = ratio(out["training"][e]["p50_ms"], out["idle"][e]["p50_ms"])
    w, a = out["steps_per_s_with_students"], out["steps_per_s_alone"]
    out["training_slowdown_with_students"] = ratio(a, w)
    return out


def two_workers_phase(args: argparse.Namespace) -> dict:
    """`--devices cpu,cpu`: two runs from two students at once; both must train at the same time and finish."""
    with served_app(args.max_queue, [*args.app_args, "--devices", "cpu,cpu"]) as app:
        wait_for_workers(app.log, 2)
        clients, _ = connect_all(app.url, 2)
        try:
            watches = [RunWatch(c, train_args(args.epochs, "demo-digits")).start() for c in clients]
            results = [w.result_text(timeout=GRACE) for w in watches]
            for w in watches:
                w.thread.join(5)
        finally:
            close_all(clients)
        spans = [(w.steps[0][0], w.steps[-1][0]) if w.steps else None for w in watches]
        overlap = None if None in spans else round(min(b for _, b in spans) - max(a for a, _ in spans), 2)
        return {"results": results, "trained_together_s": overlap, "status_lines": [w.heads for w in watches],
                "start_to_first_point_s": [None if w.first_point is None else round(w.first_point - w.submitted, 2)
                                           for w in watches],
                "server_exceptions": server_errors(app.log)}


def print_compare(c: dict) -> None:
    print(f"\nCompare: {c['students']} students for {c['duration_s']} s, in {c['segment_s']:g} s windows with "
          f"{c['train_preset']} paused (idle) and training, alternating {' '.join(c['app_args'])}")
    print(f"{'endpoint':<10}{'idle p50':>10}{'idle p95':>10}{'train p50':>11}{'train p95':>11}{'p95 ratio':>11}"
          f"{'n idle/train':>14}")
    for e in ENDPOINTS:
        i, t = c["idle"][e], c["training"][e]
        print(f"{e:<10}{fmt(i['p50_ms']):>10}{fmt(i['p95_ms']):>10}{fmt(t['p50_ms']):>11}{fmt(t['p95_ms']):>11}"
              f"{c[e[1:] + '_p95_ratio'] or '-':>11}{i['count']:>7}/{t['count']:<6}")
        for m in i["error_messages"] + t["error_messages"]:
            print(f"    {e} error: {m}")
    print(f"app up in {c['app_startup_s']} s, its training worker ready {c['workers_ready_after_s']} s later")
    print(f"Start -> first curve point (warm worker): {c['start_to_first_point_s']} s")
    print(f"training speed: {c['steps_per_s_with_students']} steps/s with the students, {c['steps_per_s_alone']} alone "
          f"(slowdown {c['training_slowdown_with_students']}x); run: {c['run_result']}")
    print(f"server exceptions: {c['server_exceptions'] or 'none'}")
    if "two_workers" in c:
        t = c["two_workers"]
        print(f"two CPU workers: trained together for {t['trained_together_s']} s; first points after "
              f"{t['start_to_first_point_s']} s; results: {t['results']}")


# ---------------------------------------------------------------- report


def fmt(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def print_report(summary: dict) -> None:
    load = summary["load"]
    print(f"\nLoad: {load['students']} students, {load['trainers']} training runs, {load['duration_s']} s "
          f"(cap {load['requests_cap']} requests each), --max-queue {load['max_queue']} {' '.join(load['app_args'])}")
    print(f"app up in {load['app_startup_s']} s; {load['students'] + load['trainers']} clients connected in "
          f"{load['connect_s']} s; phase took {load['wall_s']} s")
    header = f"{'endpoint':<10}{'count':>7}{'ok':>6}{'wrong':>7}{'errors':>8}{'q-full':>8}{'p50 ms':>9}{'p95 ms':>9}" \
             f"{'max ms':>9}  p50 while a run trained (n)"
    print(header)
    for name, s in load["endpoints"].items():
        print(f"{name:<10}{s['count']:>7}{s['ok']:>6}{s['wrong']:>7}{s['errors']:>8}{s['queue_full']:>8}"
              f"{fmt(s['p50_ms']):>9}{fmt(s['p95_ms']):>9}{fmt(s['max_ms']):>9}"
              f"{fmt(s['p50_ms_while_training']):>9} (n={s['answered_while_training']})")
        for m in s["error_messages"] + s["queue_full_messages"]:
            print(f"    {name} error: {m}")
    print(f"\n{'run':<5}{'submitted':>10}{'waited':>8}{'handler':>9}{'training':>10}{'ended':>8}{'result':>8}  "
          "(seconds after the phase began)")
    for r in load["runs"]:
        t = {k: "-" if r[k] is None else f"{r[k]:.2f}"
             for k in ("submitted_s", "started_s", "training_s", "ended_s", "finished_s")}
        print(f"{r['order']:<5}{t['submitted_s']:>10}{'yes' if r['queued_seen'] else 'no':>8}{t['started_s']:>9}"
              f"{t['training_s']:>10}{t['ended_s']:>8}{t['finished_s']:>8}  {r['result'] or r['error']}")
        print(f"     status lines: {' | '.join(r['status_lines'][:4])}")
    print(f"runs started training in submission order: {load['runs_started_in_order']}; "
          f"finished in order: {load['runs_finished_in_order']}")
    print(f"server exceptions: {load['server_exceptions'] or 'none'}")
    if "overload" in summary:
        o, p = summary["overload"], summary["overload"]["predict"]
        print(f"\nOverload: {o['burst']} simultaneous predicts, --max-queue {o['max_queue']}: {p['ok']} ok, "
              f"{p['wrong']} wrong, {p['queue_full']} queue full, {p['errors']} other errors; "
              f"answered p50 {fmt(p['p50_ms'])} ms, max {fmt(p['max_ms'])} ms")
        for m in p["queue_full_messages"]:
            print(f"    queue full message: {m}")
        for m in p["error_messages"]:
            print(f"    other error: {m}")
        print(f"server exceptions: {o['server_exceptions'] or 'none'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Unknown flags (or everything after `--`) are passed to app.py.")
    p.add_argument("--students", type=int, default=30, help="simulated students, one client session each")
    p.add_argument("--duration", type=float, default=60, help="seconds each student keeps sending requests")
    p.add_argument("--requests", type=int, default=20, help="at most this many requests per student")
    p.add_argument("--think", type=float, default=0.0,
                   help="mean seconds a student looks at an answer before the next request (default 0: back to back)")
    p.add_argument("--trainers", type=int, default=2, help="training runs submitted at the start")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training run (demo-digits preset)")
    p.add_argument("--max-queue", type=int, default=64, help="app.py --max-queue for the load phase")
    p.add_argument("--overload", action="store_true", help="then a burst of --burst predicts against --max-queue 5")
    p.add_argument("--burst", type=int, default=30, help="simultaneous predicts in the overload phase")
    p.add_argument("--compare", action="store_true",
                   help="instead: the student load idle, then while one run trains; and two runs on --devices cpu,cpu")
    p.add_argument("--train-preset", default="demo-fashion-mnist", help="--compare: the preset that trains meanwhile")
    p.add_argument("--train-epochs", type=int, default=50, help="--compare: its epochs (it is stopped at the end)")
    p.add_argument("--alone", type=float, default=8.0, help="--compare: seconds the run trains alone afterwards")
    p.add_argument("--segment", type=float, default=10.0,
                   help="--compare: seconds of each paused (idle) or training window, alternating")
    p.add_argument("--no-two-workers", action="store_true", help="--compare: skip the two-worker app")
    p.add_argument("--json", action="store_true", help="print the summary as JSON too")
    p.add_argument("--out", type=Path, help="write the JSON summary to this file")
    args, rest = p.parse_known_args(argv)
    args.app_args = [a for a in rest if a != "--"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnnviz-load-images-") as tmp:
        pngs = digit_pngs(Path(tmp))
        if args.compare:
            summary = {"compare": compare_phase(args, pngs)}
            if not args.no_two_workers:
                summary["compare"]["two_workers"] = two_workers_phase(args)
        else:
            summary = {"load": load_phase(args, pngs)}
            if args.overload:
                summary["overload"] = overload_phase(args, pngs)
    print_compare(summary["compare"]) if args.compare else print_report(summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
