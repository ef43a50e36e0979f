"""A Stop sent right after Start always stops the run, whichever handler Gradio runs first: the Train tab's handlers
called directly from two threads, and the launched app driven through gradio_client."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

gr = pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402
from test_ui_api import RESULT, STATUS, TRAIN, running_app  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.store.model_cache import ModelCache  # noqa: E402
from cnnviz.train.events import Stopped  # noqa: E402
from cnnviz.train.session import TrainSession  # noqa: E402
from cnnviz.ui.common import SessionWorkspace  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
TRIES = 6
LONG = {**TRAIN, "epochs": 50}  # a lost Stop would train for a minute


@pytest.fixture(scope="module")
def tab(tmp_path_factory) -> Iterator:
    """The Train tab of a built (not launched) app, runs saved in a scratch folder."""
    from cnnviz.ui import build_demo

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNVIZ_RUNS", str(tmp_path_factory.mktemp("runs")))
        demo = build_demo()
        yield next(fn for fn in demo.fns.values() if fn.api_name == "train").fn.__self__


@pytest.mark.parametrize("first", ["start", "stop"])
def test_stop_0_ms_after_start_through_the_handlers(tab, first):
    session, ws = TrainSession(tab.shared.trainers), SessionWorkspace(ModelCache())
    for _ in range(TRIES):
        out: dict = {}
        train = threading.Thread(target=lambda o=out: o.setdefault("train", list(tab.train(session=session, ws=ws, **LONG))))
        stop = threading.Thread(target=lambda o=out: o.setdefault("stop", tab.stop_run(session=session)))
        for t in (train, stop) if first == "start" else (stop, train):  # "stop": Stop's handler gets there first
            t.start()
        stop.join(30)
        train.join(30)
        try:
            status = out["stop"][tab.view.status]
            assert "Nothing is training" not in status and "Stopped" in status
            assert isinstance(session.worker.end, Stopped) and not train.is_alive()
        finally:
            if session.worker is not None:
                session.worker.stop.set()  # a lost Stop must not leave a run training for the next test


def test_stop_0_ms_after_start_through_the_api(tmp_path):
    with running_app(tmp_path) as url:
        client = Client(url, verbose=False)
        try:
            for _ in range(TRIES):
                job = client.submit(**LONG, api_name="/train")
                stopped = client.predict(api_name="/stop")  # sent at once, before /train has answered
                assert "Nothing is training" not in stopped[STATUS] and "Stopped" in stopped[STATUS]
                assert "### Stopped" in job.result(timeout=60)[RESULT]
        finally:
            client.close()
