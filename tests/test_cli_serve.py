"""`cnnviz serve` (= `python app.py`): flags, the environment variables behind them, and logins from --auth-file."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cnnviz.cli import serve
from cnnviz.cli.auth_file import AuthFileError, checker, hash_password, read_auth_file
from cnnviz.train.config import Limits

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--host", "--port", "--share", "--auth", "--auth-file", "--max-epochs", "--max-subset", "--max-queue",
         "--max-upload-mb", "--max-body-mb", "--upload-budget-mb", "--max-queued-runs", "--max-pause-seconds"]
VARS = ["GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "CNNVIZ_SHARE", "CNNVIZ_AUTH", "CNNVIZ_AUTH_FILE",
        "CNNVIZ_MAX_EPOCHS", "CNNVIZ_MAX_SUBSET", "CNNVIZ_MAX_QUEUE", "CNNVIZ_MAX_UPLOAD_MB", "CNNVIZ_MAX_BODY_MB",
        "CNNVIZ_UPLOAD_BUDGET_MB", "CNNVIZ_MAX_QUEUED_RUNS", "CNNVIZ_MAX_PAUSE_SECONDS"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of the serve variables, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if k not in VARS}, **extra}


@pytest.mark.parametrize("cmd", [[str(Path(sys.executable).with_name("cnnviz"))], [sys.executable, "-m", "cnnviz"]],
                         ids=["console-script", "python-m"])
def test_serve_help_lists_every_flag_and_its_variable(cmd):
    if not Path(cmd[0]).exists():
        pytest.skip("the cnnviz console script is not installed in this environment")
    out = subprocess.run([*cmd, "serve", "--help"], capture_output=True, text=True, timeout=120, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {'cnnviz' if len(cmd) == 1 else 'python -m cnnviz'} serve")
    text = " ".join(out.stdout.split())  # argparse wraps lines anywhere
    for word in FLAGS + VARS:
        assert word in text, word
    top = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120, env=clean_env())
    assert "serve" in top.stdout and "start the web app" in " ".join(top.stdout.split())


def test_defaults_without_variables_are_the_safe_ones():
    args = serve.parse_args([], environ={})
    assert (args.host, args.port, args.share, args.auth, args.auth_file) == ("127.0.0.1", 7860, False, [], None)
    assert (args.max_epochs, args.max_subset, args.max_queue, args.max_upload_mb, args.max_body_mb) == (
        None, None, 64, 10, None)
    assert (args.upload_budget_mb, args.max_queued_runs, args.max_pause_seconds) == (
        60, Limits.max_queued_runs, Limits.max_pause_seconds)
    assert args.from_env == {}


def test_variables_set_the_caps_and_the_host():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9001", "CNNVIZ_SHARE": "no",
           "CNNVIZ_AUTH": "ann:pw1 bob:pw:2", "CNNVIZ_AUTH_FILE": "/etc/cnnviz/logins", "CNNVIZ_MAX_EPOCHS": "7",
           "CNNVIZ_MAX_SUBSET": "500", "CNNVIZ_MAX_QUEUE": "9", "CNNVIZ_MAX_UPLOAD_MB": "4", "CNNVIZ_MAX_BODY_MB": "2.5",
           "CNNVIZ_UPLOAD_BUDGET_MB": "0", "CNNVIZ_MAX_QUEUED_RUNS": "3", "CNNVIZ_MAX_PAUSE_SECONDS": "30"}
    args = serve.parse_args([], environ=env)
    assert (args.host, args.port, args.share, args.auth_file) == ("0.0.0.0", 9001, False, "/etc/cnnviz/logins")
    assert serve.parse_auth(args.auth) == [("ann", "pw1"), ("bob", "pw:2")]
    assert (args.max_epochs, args.max_subset, args.max_queue, args.max_upload_mb, args.max_body_mb) == (7, 500, 9, 4, 2.5)
    assert (args.upload_budget_mb, args.max_queued_runs, args.max_pause_seconds) == (0, 3, 30)
    limits = serve.check_limits(args)
    assert (limits.max_epochs, limits.max_subset, limits.max_queued_runs, limits.max_pause_seconds) == (7, 500, 3, 30)
    assert set(args.from_env.values()) == set(env)
    assert serve.parse_args([], environ={"CNNVIZ_SHARE": "TRUE", "CNNVIZ_MAX_EPOCHS": " "}).share is True  # blank = unset


def test_flags_win_over_variables():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9001", "CNNVIZ_AUTH": "ann:pw1",
           "CNNVIZ_MAX_EPOCHS": "7", "CNNVIZ_MAX_QUEUE": "9", "CNNVIZ_SHARE": "1"}
    args = serve.parse_args(["--host", "127.0.0.1", "--port", "9002", "--auth", "eve:pw", "--max-epochs", "3"],
                            environ=env)
    assert (args.host, args.port, args.auth, args.max_epochs) == ("127.0.0.1", 9002, ["eve:pw"], 3)
    assert (args.max_queue, args.share) == (9, True)  # the variables without a flag still count
    assert set(args.from_env) == {"max_queue", "share"}


@pytest.mark.parametrize("var, value, message", [
    ("GRADIO_SERVER_PORT", "abc", "error: GRADIO_SERVER_PORT: invalid int value: 'abc'"),
    ("CNNVIZ_MAX_EPOCHS", "ten", "error: CNNVIZ_MAX_EPOCHS: invalid int value: 'ten'"),
    ("CNNVIZ_MAX_BODY_MB", "5MB", "error: CNNVIZ_MAX_BODY_MB: invalid float value: '5MB'"),
    ("CNNVIZ_SHARE", "maybe", "error: CNNVIZ_SHARE must be one of 1/true/yes/on/0/false/no/off, got 'maybe'"),
])
def test_a_malformed_variable_is_one_error_line_naming_it(capsys, var, value, message):
    with pytest.raises(SystemExit) as exc:
        serve.parse_args([], environ={var: value})
    assert exc.value.code == 2 and str(exc.value) == message
    assert capsys.readouterr().err.strip() == message


def test_a_variable_out_of_range_is_named_in_the_check(capsys):
    for env, dest in [({"CNNVIZ_MAX_EPOCHS": "0"}, "CNNVIZ_MAX_EPOCHS=0"),
                      ({"CNNVIZ_MAX_PAUSE_SECONDS": "nan"}, "CNNVIZ_MAX_PAUSE_SECONDS=nan"),
                      ({"CNNVIZ_MAX_UPLOAD_MB": "5000"}, "CNNVIZ_MAX_UPLOAD_MB=5000")]:
        with pytest.raises(SystemExit, match=f"^error: --.* \\(from {dest}\\)$"):
            serve.check_limits(serve.parse_args([], environ=env))
    with pytest.raises(SystemExit) as exc:  # the same check from a flag names no variable
        serve.check_limits(serve.parse_args(["--max-epochs", "0"], environ={}))
    assert str(exc.value) == "error: --max-epochs must be at least 1 and --max-subset at least 10"
    capsys.readouterr()


def test_app_py_reports_a_bad_variable_before_building_anything():
    for env, line in [({"GRADIO_SERVER_PORT": "99999"}, "error: --port must be from 1 to 65535, got 99999 "
                                                         "(from GRADIO_SERVER_PORT=99999)"),
                      ({"CNNVIZ_MAX_QUEUE": "x"}, "error: CNNVIZ_MAX_QUEUE: invalid int value: 'x'")]:
        out = subprocess.run([sys.executable, str(REPO / "app.py")], capture_output=True, text=True, timeout=120,
                             cwd=REPO, env=clean_env(**env))
        assert out.returncode == 2 and out.stderr.strip() == line, out.stderr


# --auth-file

def write(tmp_path: Path, text: str, name: str = "logins.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def login(users, user: str, password: str) -> bool:
    import asyncio

    return asyncio.run(checker(users)(user, password))


def test_auth_file_plain_and_hashed_lines(tmp_path):
    hashed = hash_password("s3cret: with spaces", iterations=1000)
    path = write(tmp_path, f"# the lecture's logins\n\nann:pw1\n  bob:pw:2  \ncarol:{hashed}\n")
    users = read_auth_file(path)
    assert sorted(users) == ["ann", "bob", "carol"] and users["carol"].iterations == 1000
    assert login(users, "ann", "pw1") and login(users, "bob", "pw:2") and login(users, "carol", "s3cret: with spaces")
    assert not login(users, "ann", "pw2") and not login(users, "carol", hashed) and not login(users, "dave", "pw1")
    assert not login(users, "ann", "")
    import hashlib  # the documented scheme, computed without cnnviz

    _, n, salt, key = hashed.split(":")
    assert hashlib.pbkdf2_hmac("sha256", b"s3cret: with spaces", salt.encode(), int(n)).hex() == key


@pytest.mark.parametrize("text, message", [
    ("ann\n", "line 1: expected USER:PASSWORD"),
    ("# ok\nann:pw\n:pw\n", "line 3: expected USER:PASSWORD"),
    ("ann:\n", "line 1: expected USER:PASSWORD"),
    ("ann:pw\nann:other\n", "line 2: user 'ann' is named twice"),
    ("ann:pbkdf2_sha256:1000:salt:abc\n", "line 1: a hashed password must be pbkdf2_sha256:"),
    (f"ann:pbkdf2_sha256:0:salt:{'0' * 64}\n", "line 1: pbkdf2_sha256 iterations must be from 1"),
    ("# nobody\n\n", "no USER:PASSWORD line"),
])
def test_a_malformed_auth_file_is_refused(tmp_path, text, message):
    with pytest.raises(AuthFileError, match=message):
        read_auth_file(write(tmp_path, text))


def test_bad_auth_files_are_one_error_line_before_the_build(tmp_path, capsys):
    bad = write(tmp_path, "ann\n")
    unreadable = write(tmp_path, "ann:pw\n", "locked.txt")
    unreadable.chmod(0)
    cases = [(["--auth-file", str(tmp_path / "missing.txt")], {}, f"{tmp_path / 'missing.txt'}: no such file"),
             (["--auth-file", str(tmp_path)], {}, f"{tmp_path}: is a folder, not a file"),
             (["--auth-file", str(bad)], {}, f"{bad} line 1: expected USER:PASSWORD"),
             ([], {"CNNVIZ_AUTH_FILE": str(bad)}, f"{bad} line 1: expected USER:PASSWORD (from CNNVIZ_AUTH_FILE="),
             (["--auth-file", str(write(tmp_path, "ann:pw\n", "ok.txt")), "--auth", "ann:x"], {}, None)]
    if os.geteuid() != 0:  # root reads any file
        cases.append((["--auth-file", str(unreadable)], {}, f"{unreadable}: permission denied"))
    for argv, env, message in cases:
        with pytest.raises(SystemExit) as exc:
            serve.login_check(serve.parse_args(argv, environ=env))
        want = f"error: --auth-file {message}" if message else "error: user 'ann' is given twice (--auth and the auth"
        assert exc.value.code == 2 and str(exc.value).startswith(want), str(exc.value)
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    out = subprocess.run([sys.executable, "-m", "cnnviz", "serve", "--auth-file", str(bad)], capture_output=True,
                         text=True, timeout=120, env=clean_env())
    assert out.returncode == 2 and out.stderr.strip() == f"error: --auth-file {bad} line 1: expected USER:PASSWORD"


def test_auth_alone_keeps_gradios_own_list():
    assert serve.login_check(serve.parse_args(["--auth", "ann:pw1"], environ={})) == [("ann", "pw1")]
    assert serve.login_check(serve.parse_args([], environ={})) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (a login page or a 401 is an answer)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
def test_serve_on_the_port_from_the_environment_with_logins_from_a_file(tmp_path):
    """One real launch: `python -m cnnviz serve` on GRADIO_SERVER_PORT; a plain, a hashed and an --auth login get in,
    a wrong password does not."""
    gradio_client = pytest.importorskip("gradio_client")
    logins = write(tmp_path, f"ann:pw1\nbob:{hash_password('correct horse', iterations=2000)}\n")
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    ck.mkdir()
    runs.mkdir()
    shipped = REPO / "cnnviz" / "shipped" / "checkpoints" / "lenet5-digits.pt"
    if shipped.is_file():
        shutil.copyfile(shipped, ck / shipped.name)
    port = free_port()
    env = clean_env(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", CNNVIZ_AUTH_FILE=str(logins),
                    CNNVIZ_MAX_QUEUE="5", CNNVIZ_CHECKPOINTS=str(ck), CNNVIZ_RUNS=str(runs),
                    GRADIO_TEMP_DIR=str(tmp_path / "gradio-tmp"))
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "serve", "--auth", "carol:pw3"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, proc)
        for user, password in [("ann", "pw1"), ("bob", "correct horse"), ("carol", "pw3")]:
            client = gradio_client.Client(url, auth=(user, password), verbose=False)
            try:
                header = client.predict("lenet5", "fashion-mnist", api_name="/architecture")[0]
                assert "LeNet-5" in header
            finally:
                client.close()
        for user, password in [("ann", "pw2"), ("bob", "correct horse "), ("dave", "pw1"), ("carol", "pw1")]:
            with pytest.raises(ValueError, match="Could not login"):  # Gradio answers 400 "Incorrect credentials"
                gradio_client.Client(url, auth=(user, password), verbose=False)
        with pytest.raises(urllib.error.HTTPError) as exc:  # no login, no config
            urllib.request.urlopen(f"{url}config", timeout=10)
        assert exc.value.code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_hash_command_prints_a_line_the_file_accepts(tmp_path, monkeypatch, capsys):
    from cnnviz.cli import auth_file

    monkeypatch.setattr(auth_file.getpass, "getpass", lambda prompt="": "pw with: colon")
    assert auth_file.main(["ann"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"ann:pbkdf2_sha256:{auth_file.ITERATIONS}:")
    users = read_auth_file(write(tmp_path, line + "\n"))
    assert users["ann"].matches("pw with: colon") and not users["ann"].matches("pw with")
    assert auth_file.main([]) == 2 and auth_file.main(["a:b"]) == 2
