"""The Dockerfile: what it copies is in the build context and exists, and (where a Docker daemon answers) the image
builds, lists the shipped checkpoints and serves the app. Building needs Docker Hub and PyPI, so it is skipped here."""
import fnmatch
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    lines, out = [], []
    for line in DOCKERFILE.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        lines.append(line.rstrip())
        if not line.endswith("\\"):
            text = " ".join(x.rstrip("\\").strip() for x in lines)
            name, _, args = text.partition(" ")
            out.append((name.upper(), args.strip()))
            lines = []
    return out


def sent_to_docker(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching line wins, `!` re-includes)."""
    sent = True
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/"):
            sent = negate
    return sent


def test_the_image_is_python_311_slim_and_runs_cnnviz_serve_on_all_interfaces() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("CMD", '["cnnviz", "serve", "--host", "0.0.0.0"]') in steps
    runs = " ".join(args for name, args in steps if name == "RUN")
    assert "-r requirements.txt -c requirements-lock.txt" in runs  # every version from the lock


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    copied = [src for name, args in instructions() if name == "COPY" for src in args.split()[:-1]]
    assert {"requirements-lock.txt", "cnnviz", "pyproject.toml", "README.md"} <= set(copied)
    for src in copied:
        assert (REPO / src).exists(), f"the Dockerfile copies {src}, which is not in the repository"
        assert sent_to_docker(src), f".dockerignore leaves {src} out of the build context"
    for private in (".venv", "runs", "data", "checkpoints", ".git", "logins.txt"):
        assert not sent_to_docker(private), f".dockerignore sends {private} to the Docker daemon"


def docker_unavailable() -> str | None:
    """Why no image can be built here, or None."""
    if shutil.which("docker") is None:
        return "Docker is not installed (no `docker` on PATH)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if info.returncode != 0:
        return "no Docker daemon answers (`docker info` failed): " + (info.stderr.strip().splitlines() or ["?"])[-1]
    return None


@pytest.mark.slow
@pytest.mark.timeout(3600)  # downloads python:3.11-slim, torch (CPU build) and the rest from PyPI
def test_the_image_builds_lists_checkpoints_and_serves() -> None:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"cnnviz-test-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(["docker", "build", "-t", tag, "--build-arg", "TORCH_INDEX=https://download.pytorch.org/whl/cpu",
                            str(REPO)], capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stderr[-4000:]
    name = f"{tag}-run"
    try:
        listed = subprocess.run(["docker", "run", "--rm", tag, "cnnviz", "list"], capture_output=True, text=True, timeout=300)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert all(n in listed.stdout for n in ("lenet5-digits", "lenet5-fashion-mnist", "tinyvgg-shapes")), listed.stdout
        subprocess.run(["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::7860", tag], check=True, timeout=60,
                       capture_output=True)
        port = subprocess.run(["docker", "port", name, "7860"], capture_output=True, text=True, check=True,
                              timeout=30).stdout.split(":")[-1].strip()
        deadline, page = time.monotonic() + 180, ""
        while time.monotonic() < deadline and "gradio" not in page.lower():
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode(errors="replace")
            except OSError:
                time.sleep(2)
        assert "gradio" in page.lower(), "the container did not serve the app within 180 s"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
