"""The command line: real runs of `python -m cnnviz ...`; user mistakes are one line and exit code 2."""
import json
import subprocess
import sys

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
