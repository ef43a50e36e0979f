"""Checkpoints: round trip, and every kind of bad file refused with a clear message and nothing executed."""
import os
import pickle
import zipfile

import pytest
import torch

from cnnviz.models import get_model
from cnnviz.store.checkpoints import CheckpointError, build_meta, checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint


def lenet_meta(**kw):
    base = dict(arch="lenet5", dataset="fashion-mnist", class_names=tuple(f"c{i}" for i in range(10)), in_channels=1,
                input_size=28, mean=(0.286,), std=(0.353,), metrics={"test_acc": 0.5})
    return build_meta(**{**base, **kw})


@pytest.fixture
def saved(workdirs):
    torch.manual_seed(0)
    model = get_model("lenet5", 1, 10, 28)
    path = save_checkpoint(model, lenet_meta(), checkpoint_path("good"))
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = load_checkpoint("good")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded.model(x))
    assert loaded.meta.class_names[3] == "c3" and not loaded.model.training
    assert [e.name for e in list_checkpoints() if not e.shipped] == ["good"]


def test_pickle_with_code_is_refused_and_not_executed(workdirs, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = workdirs[0] / "evil.pt"
    torch.save({"format": "cnnviz-checkpoint", "version": 1, "meta": Evil(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a readable cnnviz checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = workdirs[0] / "raw.pt"  # a plain pickle (not torch's zip format) with the same payload
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_and_garbage_files_are_refused(saved, workdirs):
    _, path = saved
    data = path.read_bytes()
    (workdirs[0] / "cut.pt").write_bytes(data[: len(data) // 2])
    (workdirs[0] / "junk.pt").write_bytes(os.urandom(5000))
    (workdirs[0] / "empty.pt").write_bytes(b"")
    for name in ("cut", "junk", "empty"):
        with pytest.raises(CheckpointError):
            load_checkpoint(name)
    assert [e.name for e in list_checkpoints() if not e.shipped] == ["good"]  # the listing skips them


def test_weights_of_another_architecture_are_refused_before_loading(workdirs):
    tiny = get_model("tinyvgg", 1, 10, 28)
    path = save_checkpoint(tiny, lenet_meta(), workdirs[0] / "liar.pt")  # metadata says lenet5
    with pytest.raises(CheckpointError, match="do not fit lenet5"):
        load_checkpoint(path)
    other = save_checkpoint(get_model("lenet5", 1, 7, 28), lenet_meta(), workdirs[0] / "classes.pt")
    with pytest.raises(CheckpointError, match="10 classes"):
        load_checkpoint(other)


def test_non_finite_weights_are_refused(workdirs):
    model = get_model("lenet5", 1, 10, 28)
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(model, lenet_meta(), workdirs[0] / "nan.pt")
    # A NaN file written by someone else is refused at load time too.
    torch.save({"format": "cnnviz-checkpoint", "version": 1, "meta": lenet_meta().to_dict(),
                "state_dict": model.state_dict()}, workdirs[0] / "nan2.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint("nan2")


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65, "..", "c:\\x", "name with space"])
def test_unsafe_names_are_refused(workdirs, name):
    with pytest.raises(CheckpointError):
        checkpoint_path(name)


def test_failed_save_leaves_the_previous_checkpoint_intact(saved, workdirs, monkeypatch):
    _, path = saved
    before = path.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(get_model("lenet5", 1, 10, 28), lenet_meta(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in workdirs[0].iterdir()) == ["good.pt"]  # no temp files left


def test_saved_checkpoints_are_readable_by_others(saved):
    _, path = saved
    assert path.stat().st_mode & 0o777 == 0o644  # shared with the lecture room, not private like a temp file


def test_metadata_is_validated(workdirs):
    model = get_model("lenet5", 1, 10, 28)
    for bad, match in ((dict(arch="lenet9"), "unknown architecture"), (dict(mean=(0.1, 0.2)), "mean/std"),
                       (dict(arch_kwargs={"evil": 1}), "unsupported")):
        path = workdirs[0] / "m.pt"
        torch.save({"format": "cnnviz-checkpoint", "version": 1, "meta": lenet_meta(**bad).to_dict(),
                    "state_dict": model.state_dict()}, path)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path)
    assert zipfile.is_zipfile(path)  # torch's format: a zip archive, read with weights_only
