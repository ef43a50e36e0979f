"""The command line: real runs of `python -m cnnviz ...`; user mistakes are one line and exit code 2."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from cnnviz.cli.main import main
from cnnviz.data import load_dataset


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True, timeout=300, env=env)


def test_list_shows_models_datasets_and_availability():
    out = cli("list")
    assert out.returncode == 0, out.stderr
    for word in ("lenet5", "resnet18", "imagenet-resnet50", "fashion-mnist", "offline-ready", "needs download", "shapes"):
        assert word in out.stdout


def test_summary_prints_the_layer_table():
    out = cli("summary", "resnet18", "--dataset", "cifar10")
    assert out.returncode == 0, out.stderr
    assert "layer4.1.conv2" in out.stdout and "11,173,962" in out.stdout


def test_train_json_then_predict_and_eval(workdirs, capsys):
    assert main(["train", "--arch", "lenet5", "--dataset", "digits", "--epochs", "2", "--batch-size", "64",
                 "--lr", "0.003", "--out", "cli-digits", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "finished" and "progress" in kinds
    epoch_end = next(e for e in events if e["event"] == "epoch_end")
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_seconds"):
        assert key in epoch_end
    assert (workdirs[0] / "cli-digits.pt").exists()

    ds = load_dataset("digits")
    img = ds.test.images[0, 0].numpy()
    path = workdirs[0].parent / "digit.png"
    PIL.Image.fromarray(img).save(path)
    assert main(["predict", "--checkpoint", "cli-digits", "--image", str(path), "--topk", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert len(top) == 3 and abs(sum(t["prob"] for t in top)) <= 1.0 + 1e-6
    assert top[0]["prob"] >= top[1]["prob"]

    assert main(["eval", "--checkpoint", "cli-digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_test"] == len(ds.test) and np.array(result["confusion"]).sum() == len(ds.test)
    assert result["test_acc"] == pytest.approx(events[-1]["test_acc"], abs=1e-9)


@pytest.mark.parametrize("args,needle", [
    (["predict", "--checkpoint", "nope", "--image", "x.png"], "no checkpoint"),
    (["train", "--arch", "lenet9", "--epochs", "1"], "unknown"),
    (["train", "--dataset", "digits", "--epochs", "0"], "epochs"),
    (["train", "--preset", "no-such-preset"], "unknown preset"),
    (["train", "--dataset", "digits", "--out", "../escape"], "invalid checkpoint name"),
    (["summary", "lenet9"], "unknown model"),
    (["summary", "lenet5", "--input-size", "100000"], "--input-size must be from 8 to 512"),  # was a 40 GB tensor
    (["summary", "lenet5", "--input-size", "0"], "--input-size must be from 8 to 512"),
    (["explain", "--checkpoint", "lenet5-digits", "--image", "x.png", "--dpi", "100000"], "dpi must be a whole number"),
    (["explain", "--checkpoint", "lenet5-digits", "--image", "x.png", "--dpi", "0"], "from 20 to 300"),
])
def test_user_mistakes_are_one_line_errors(workdirs, args, needle):
    out = cli(*args)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_predict_on_a_shipped_checkpoint():
    ds = load_dataset("fashion-mnist", subset=20)
    path = f"/tmp/cnnviz-test-{id(ds)}.png"
    PIL.Image.fromarray(ds.test.images[0, 0].numpy()).save(path)
    out = cli("predict", "--checkpoint", "lenet5-fashion-mnist", "--image", path)
    assert out.returncode == 0, out.stderr
    assert ds.info.class_names[int(ds.test.labels[0])] in out.stdout


def test_explain_prints_what_the_shared_pipeline_found(tmp_path, capsys):
    from cnnviz.explain.pipeline import explain_image
    from cnnviz.store.checkpoints import load_checkpoint

    ckpt = str(load_checkpoint("lenet5-digits").path)  # shipped; by path, as a student's own file would be given
    ds = load_dataset("digits")
    image, out = tmp_path / "digit.png", tmp_path / "all.png"
    PIL.Image.fromarray(ds.test.images[0, 0].numpy()).save(image)
    assert main(["explain", "--checkpoint", ckpt, "--image", str(image), "--method", "all", "--target", "predicted",
                 "--out", str(out), "--dpi", "50"]) == 0
    exp = explain_image(load_checkpoint(ckpt), str(image), None, None, ("gradcam",))
    assert capsys.readouterr().out.splitlines()[0] == f"wrote {out}: {exp.headline}"
    assert PIL.Image.open(out).size[0] > 5 * PIL.Image.open(out).size[1] > 0  # the input and six maps in a row


REPO = Path(__file__).resolve().parents[1]


def test_app_refuses_a_port_outside_1_to_65535():
    for port in ("99999", "0", "-1"):  # 99999 was an OverflowError from the socket, after building the whole app
        out = subprocess.run([sys.executable, str(REPO / "app.py"), "--port", port], capture_output=True, text=True,
                             timeout=120, cwd=REPO)
        assert out.returncode == 2 and out.stderr.strip() == f"error: --port must be from 1 to 65535, got {port}"
    out = subprocess.run([sys.executable, str(REPO / "app.py")], capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "GRADIO_SERVER_PORT": "abc"})
    assert out.returncode == 2 and out.stderr.strip() == "error: GRADIO_SERVER_PORT: invalid int value: 'abc'"


def test_a_reader_that_goes_away_ends_the_run_quietly(workdirs):
    """`train --json | head -1`: like a Unix tool, no BrokenPipeError traceback; the shell's code for SIGPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", "--dataset", "digits", "--epochs", "3", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline())["event"] == "run_started"
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_out_never_replaces_a_checkpoint_without_force(workdirs, capsys):
    ck, _ = workdirs
    shipped = ck.resolve() / "lenet5-digits.pt"
    shipped.write_bytes(b"the shipped 96% model")
    out = cli("train", "--dataset", "digits", "--epochs", "1", "--out", "lenet5-digits")
    assert out.returncode == 2 and shipped.read_bytes() == b"the shipped 96% model"  # refused before training
    assert out.stderr.strip() == f"error: {shipped} already exists; choose another --out name, or add --force to replace it"

    umask = os.umask(0o077)  # a strict umask must not make a checkpoint private (it was written 0600)
    try:
        assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", "lenet5-digits", "--force"]) == 0
    finally:
        os.umask(umask)
    assert shipped.read_bytes() != b"the shipped 96% model" and shipped.stat().st_mode & 0o777 == 0o644
    assert capsys.readouterr().out.splitlines()[-1] == f"checkpoint: {shipped}"


def test_an_unreadable_training_folder_is_one_error_line(workdirs, tmp_path, monkeypatch, capsys):
    import cnnviz.data.folder as folder

    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    scanned = []

    def no_permission(root):
        scanned.append(root)
        raise PermissionError(errno.EACCES, "Permission denied", "/proc/1/cwd")  # what `--folder /` met after 22 s

    monkeypatch.setattr(folder, "scan_folder", no_permission)
    args = ["train", "--dataset", "folder", "--folder", str(tmp_path / "imgs"), "--epochs", "1"]
    assert main(args) == 2 and scanned
    assert capsys.readouterr().err == "error: permission denied: /proc/1/cwd\n"

    scanned.clear()  # a folder that cannot even be listed: refused before loading (as root, access() is faked)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path / "imgs")
    assert main(args) == 2 and not scanned
    assert capsys.readouterr().err == f"error: permission denied: {tmp_path / 'imgs'}\n"


def test_a_checkpoint_that_appears_while_training_is_kept(workdirs, tmp_path, monkeypatch, capsys):
    import cnnviz.cli.train as cli_train
    from cnnviz.train.events import Finished

    ck, _ = workdirs
    theirs, mine = ck.resolve() / "taken.pt", tmp_path / "model.pt"
    mine.write_bytes(b"this run's model")

    def fit(cfg, group=None):  # another process saves checkpoints/taken.pt while this run trains
        theirs.write_bytes(b"someone else's model")
        yield Finished(run_id="r", checkpoint=str(mine), test_loss=0.1, test_acc=0.9, confusion=(), per_class_acc=(),
                       seconds=1.0)

    monkeypatch.setattr(cli_train, "fit", fit)
    assert main(["train", "--dataset", "digits", "--out", "taken"]) == 0
    assert theirs.read_bytes() == b"someone else's model"
    out, err = capsys.readouterr()
    assert f"warning: {theirs} appeared while training; not replaced (use --force)" in err
    assert out.strip() == f"checkpoint: {mine}"  # where this run's model is
