"""The memory check before training: an upper bound of what a run really uses, and absurd batch sizes refused with a
batch size that fits, before any memory is taken (on a CPU the alternative is the OOM killer ending the server)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cnnviz.models import get_model
from cnnviz.train import memory
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.events import Failed
from cnnviz.train.memory import MemoryTooSmall, check_fits, estimate

# Peak resident memory added by two Adam training steps, measured in a fresh process (the oracle). The kernel's
# high-water mark is reset first (clear_refs 5): the process's peak so far may come from importing torch.
MEASURE = """
import json, sys, torch
from cnnviz.models import get_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

arch, ch, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
model = get_model(arch, ch, 10, size)
opt = torch.optim.Adam(model.parameters())
x, y = torch.randn(batch, ch, size, size), torch.randint(0, 10, (batch,))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
assert status("VmHWM:") <= before + (1 << 20), "the high-water mark was not reset"
for _ in range(2):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
print(json.dumps(status("VmHWM:") - before))
"""


@pytest.mark.parametrize("arch, channels, size, batch", [("lenet5", 1, 28, 2048), ("vgg11", 3, 32, 128),
                                                         ("resnet18", 3, 32, 64)])
def test_the_estimate_is_an_upper_bound_of_the_real_peak_but_not_a_wild_one(arch, channels, size, batch):
    out = subprocess.run([sys.executable, "-c", MEASURE, arch, str(channels), str(size), str(batch)], check=True,
                         capture_output=True, text=True, timeout=240)
    measured = json.loads(out.stdout)
    estimated = estimate(get_model(arch, channels, 10, size), channels, size, "adam").total(batch)
    print(f"\n{arch} {size}px batch {batch}: measured {measured / 1e6:.0f} MB, estimated {estimated / 1e6:.0f} MB")
    assert measured <= estimated <= 4 * measured


def test_an_absurd_batch_is_refused_with_a_batch_size_that_fits():
    model = get_model("alexnet_d2l", 1, 10, 224)
    with pytest.raises(MemoryTooSmall, match=r"needs about \d+\.\d GB at batch size 4096 .* 4\.0 GB free; use a batch "
                                             r"size of at most (\d+)") as info:
        check_fits(model, 1, 224, 4096, "sgd", torch.device("cpu"), free=4_000_000_000)
    advised = int(info.value.args[0].rsplit(" ", 1)[-1])
    assert 1 <= advised < 4096
    assert check_fits(model, 1, 224, advised, "sgd", torch.device("cpu"), free=4_000_000_000) >= advised
    with pytest.raises(MemoryTooSmall):
        check_fits(model, 1, 224, advised + 1, "sgd", torch.device("cpu"), free=4_000_000_000)


def test_a_model_that_cannot_fit_at_all_says_so():
    with pytest.raises(MemoryTooSmall, match="does not fit at all"):
        check_fits(get_model("vgg16", 3, 10, 32), 3, 32, 1, "adam", torch.device("cpu"), free=100_000_000)


def test_fit_refuses_before_training_and_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 2_000_000_000)  # a small laptop
    cfg = TrainConfig(arch="alexnet_d2l", dataset="digits", epochs=1, batch_size=1024, device="cpu")
    events = list(fit(cfg, runs_root=tmp_path))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert "use a batch size of at most" in events[0].message
    assert not any(tmp_path.iterdir())  # no run folder: nothing started
