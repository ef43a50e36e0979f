"""The README's deploy recipes: its front matter makes the repository a Hugging Face Space that runs the tested Gradio
and app.py; its systemd unit is valid and starts `cnnviz serve` with flags and variables that exist."""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnviz.cli import serve

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def front_matter() -> dict:
    match = re.match(r"---\n(.*?)\n---\n", README, flags=re.S)  # a Space reads it only at the very top
    assert match, "README.md does not start with a YAML front matter block"
    return yaml.safe_load(match.group(1))


def test_the_space_runs_app_py_with_the_tested_gradio() -> None:
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (REPO / meta["app_file"]).is_file()
    pinned = re.search(r"^gradio==(\S+)$", (REPO / "requirements.txt").read_text(), flags=re.M)
    assert pinned and meta["sdk_version"] == pinned.group(1), "the Space must run the Gradio version the tests ran"
    assert str(meta["python_version"]) == f"{sys.version_info.major}.{sys.version_info.minor}" == "3.11"
    assert meta["title"] and meta["emoji"] and len(meta["short_description"]) <= 60  # the Hub's limit


def test_the_readme_still_starts_with_its_title_after_the_front_matter() -> None:
    body = re.sub(r"\A---\n.*?\n---\n", "", README, count=1, flags=re.S)
    assert body.lstrip().startswith("# cnnviz"), body[:200]
    assert "## Deploy" in body and "## Layout" in body


def systemd_unit() -> str:
    match = re.search(r"^## Deploy\n.*?```ini\n(.*?)```", README, flags=re.S | re.M)
    assert match, "the Deploy section has no systemd unit"
    return match.group(1)


def test_the_systemd_unit_starts_serve_with_settings_that_exist() -> None:
    unit = systemd_unit()
    env = dict(item.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit, flags=re.M) for item in shlex.split(line))
    (command,) = re.findall(r"^ExecStart=(.*)$", unit, flags=re.M)
    program, sub, *flags = shlex.split(command)
    assert program.endswith("/bin/cnnviz") and sub == "serve"
    args = serve.parse_args(flags, environ=env)  # an unknown flag or a malformed variable exits here
    serve.check_limits(args)
    assert args.host == "0.0.0.0" and args.auth_file == "/etc/cnnviz/logins.txt" and args.max_epochs == 20
    assert set(args.from_env) == {"auth_file", "max_epochs", "max_queued_runs"}  # no misspelt variable name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    cnnviz = Path(sys.executable).with_name("cnnviz")  # the console script of this environment, for ExecStart
    if not cnnviz.is_file():
        pytest.skip(f"no {cnnviz} (cnnviz is not installed in this environment)")
    unit = tmp_path / "cnnviz.service"
    unit.write_text(systemd_unit().replace("/opt/cnnviz/venv/bin/cnnviz", str(cnnviz)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
