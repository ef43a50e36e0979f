"""`python -m cnnviz overview`: the picture, the GIF and one unit's arithmetic written for a shipped checkpoint."""
from __future__ import annotations

import PIL.Image

from cnnviz.cli.main import main
from cnnviz.examples import first_of_class


def test_overview_writes_the_picture_the_gif_and_a_unit(tmp_path, capsys):
    image = tmp_path / "seven.png"
    first_of_class("digits", "7").image.save(image)
    out, gif, unit = tmp_path / "o.png", tmp_path / "o.gif", tmp_path / "u.png"
    rc = main(["overview", "--checkpoint", "lenet5-digits", "--image", str(image), "--out", str(out), "--gif", str(gif),
               "--unit", "features.1:2:8:7", "--unit-out", str(unit)])
    text = capsys.readouterr().out
    assert rc == 0 and "predicted 7" in text and "features.3" in text and "the model's own value" in text
    assert PIL.Image.open(out).width > 1000 and PIL.Image.open(gif).n_frames > 10 and PIL.Image.open(unit).width >= 900


def test_a_bad_unit_is_one_error_line(tmp_path, capsys):
    image = tmp_path / "seven.png"
    first_of_class("digits", "7").image.save(image)
    rc = main(["overview", "--checkpoint", "lenet5-digits", "--image", str(image), "--out", str(tmp_path / "o.png"),
               "--unit", "features.0:99:0:0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "choose a channel from 0 to 5" in err and err.count("\n") == 1
