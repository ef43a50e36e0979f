"""Presets: every one is a valid config that says what it is, and the 60-second Fashion-MNIST preset is what its
description promises (the network, all the data, the accuracy and time it states) and really trains.
The long training itself is not run here: its figures come from `cnnviz train --preset fast-fashion-mnist`."""
import math
import re

import pytest

from cnnviz.models import get_model_info
from cnnviz.train.config import config_problems
from cnnviz.train.engine import fit
from cnnviz.train.events import EpochEnded, Finished
from cnnviz.train.presets import PRESETS, get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_described(name):
    p = PRESETS[name]
    assert p.name == name and config_problems(p.config) == []
    assert p.source and len(p.description) > 40


def test_the_60_second_preset_states_its_accuracy_and_time_and_uses_all_the_data():
    p = get_preset("fast-fashion-mnist")
    assert p.config.dataset == "fashion-mnist" and p.config.subset is None  # all 60,000 / 10,000 images
    accuracy = [float(a) for a in re.findall(r"0\.9\d+", p.description)]
    assert accuracy and min(accuracy) >= 0.92, p.description
    seconds = [int(s) for s in re.findall(r"(\d+) s of training", p.description)]
    assert seconds and max(seconds) <= 60, p.description
    assert get_model_info(p.config.arch).title.split(" (")[0] in p.description  # names the network it trains


def test_the_60_second_preset_trains():
    """Its network, optimiser, schedule and input size work together: one short epoch on 800 real images (two steps;
    too few to ask for accuracy)."""
    cfg = get_preset("fast-fashion-mnist").config.with_(subset=800, epochs=1)
    events = list(fit(cfg, save=False, callbacks=[]))
    assert isinstance(events[-1], Finished), events[-1]
    [epoch] = [e for e in events if isinstance(e, EpochEnded)]
    assert math.isfinite(epoch.train_loss) and math.isfinite(epoch.val_loss) and epoch.step >= 2
