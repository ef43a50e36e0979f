"""The server's guards (cnnviz/ui/server_guards.py) against a launched app: request bodies are capped before they are
read (declared or chunked), the upload route keeps its cap and a per-user budget, data-URL images obey the upload cap,
and under --auth every route but the login page needs a login and no student can act on another's session.

All traffic goes to 127.0.0.1; big bodies are declared, never sent: each probe sends at most a few MB and stops.
"""
from __future__ import annotations

import base64
import io
import json
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402
from test_ui_api import CKPT, REPO, TRAIN, free_port, seed_checkpoint  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.ui.server_guards import MB, MIN_CHARGE, UPLOAD_BUDGET_MB, GuardLimits, SessionOwners, UploadBudget  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
DIGIT = REPO / "cnnviz" / "shipped" / "examples" / "digits_7.png"
USERS = [("ann", "pw-ann"), ("bob", "pw-bob"), ("cy", "pw-cy")]  # cy: the browser test
UPLOAD_MB, BUDGET_MB = 1, 3  # small, so the probes stay small: body cap = 4/3 MB + 1 MB = 2.33 MB


@dataclass
class App:
    url: str
    port: int
    demo: object  # the gr.Blocks


@contextmanager
def launched(tmp: Path, **options) -> Iterator[App]:
    """The real app on a free loopback port with launch_options(**options); checkpoints/ and runs/ in `tmp`."""
    from cnnviz.ui import build_demo, configure_queue, launch_options

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNVIZ_CHECKPOINTS", str(tmp / "checkpoints"))
        mp.setenv("CNNVIZ_RUNS", str(tmp / "runs"))
        seed_checkpoint(tmp / "checkpoints", tmp / "runs")
        demo = configure_queue(build_demo(), max_size=20)
        port = free_port()
        demo.launch(prevent_thread_lock=True, **launch_options(port=port, **options))
        try:
            yield App(f"http://127.0.0.1:{port}/", port, demo)
        finally:
            demo.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[App]:
    with launched(tmp_path_factory.mktemp("guards"), max_upload_mb=UPLOAD_MB, upload_budget_mb=BUDGET_MB) as a:
        yield a


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory) -> Iterator[App]:
    with launched(tmp_path_factory.mktemp("guards-auth"), auth=USERS, max_upload_mb=UPLOAD_MB,
                  upload_budget_mb=BUDGET_MB) as a:
        yield a


def rss_mb() -> float:
    """This process's resident memory (the server runs in it)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def send_until_answered(port: int, head: bytes, chunk: bytes, limit: int, seconds: float = 10.0) -> tuple[int, bytes]:
    """Send `head`, then `chunk` again and again (up to `limit` bytes) until the server answers; (bytes sent, answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    sock.sendall(head)
    sock.setblocking(False)
    sent, answer, t0 = 0, b"", time.monotonic()
    try:
        while time.monotonic() - t0 < seconds and b"\r\n\r\n" not in answer:
            readable, writable, _ = select.select([sock], [sock] if sent < limit else [], [], 0.5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                sent += sock.send(chunk)
        while readable and time.monotonic() - t0 < seconds and select.select([sock], [], [], 0.5)[0]:
            data = sock.recv(65536)  # the rest of the answer's body
            if not data:
                break
            answer += data
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection: what it answered before that is in `answer`
    finally:
        sock.close()
    return sent, answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def join_head(length: int | None) -> bytes:
    """The request line and headers of a /queue/join whose body is declared as `length` bytes, or chunked."""
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{size}\r\n"
            "\r\n").encode()


def test_a_declared_200_mb_body_is_refused_before_it_is_sent(app):
    before, t0 = rss_mb(), time.monotonic()
    # at most 32 MB is sent: a server that reads the body waits for the rest and never answers
    sent, answer = send_until_answered(app.port, join_head(200_000_000), b" " * 65536, limit=32 * MB)
    elapsed, grown = time.monotonic() - t0, rss_mb() - before
    print(f"\n200 MB declared: {status_of(answer)} after {elapsed * 1000:.0f} ms and {sent / MB:.1f} MB sent; "
          f"RSS {before:.0f} -> {before + grown:.0f} MB")
    assert status_of(answer) == 413, answer[:200]
    assert b"the limit is 2.3 MB" in answer and b"connection: close" in answer.lower()
    assert sent < 16 * MB  # what the socket buffers took before the answer came: never the body
    assert elapsed < 5 and grown < 50


def test_a_chunked_body_is_counted_and_refused_past_the_cap(app):
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    before = rss_mb()
    sent, answer = send_until_answered(app.port, join_head(None), chunk, limit=48 * MB)
    grown = rss_mb() - before
    print(f"\nchunked: {status_of(answer)} after {sent / MB:.1f} MB sent; RSS grew {grown:.0f} MB")
    assert status_of(answer) == 413, answer[:200]
    assert 2.3 * MB < sent < 24 * MB and grown < 50  # read up to the cap, then refused; never the 48 MB


def test_other_routes_are_capped_too(app):
    for path in ("/gradio_api/component_server", "/gradio_api/run/predict", "/login", "/gradio_api/cancel"):
        r = httpx.post(app.url + path.lstrip("/"), content=b"x" * (3 * MB), timeout=30)
        assert r.status_code == 413 and "the limit is 2.3 MB" in r.json()["detail"], (path, r.status_code, r.text[:99])


def test_the_upload_route_keeps_its_cap_per_request(app):
    # each file is under the 1 MB per-file cap (Gradio's own check), together they pass the 2 MB request cap
    files = [("files", (f"part{i}.bin", os.urandom(900_000), "application/octet-stream")) for i in range(3)]
    r = httpx.post(app.url + "gradio_api/upload", files=files, timeout=30)
    assert r.status_code == 413 and r.text == "Request too large: the limit is 2.0 MB."  # plain, as Gradio's own


def test_a_normal_predict_and_upload_still_work(app):
    client = Client(app.url, verbose=False)
    try:
        probs, _, _ = client.predict(CKPT, handle_file(DIGIT), 3, api_name="/predict")
        assert probs["label"] == "7"
    finally:
        client.close()


def data_url_predict(url: str, data_url: str) -> dict:
    """A /predict whose image is a data URL inside the JSON (what a scripted client can send); the SSE answer."""
    session = f"probe{time.monotonic_ns()}"
    fn_index, dep = next((i, d) for i, d in enumerate(httpx.get(url + "config", timeout=30).json()["dependencies"])
                         if d.get("api_name") == "predict")
    image = {"path": None, "url": data_url, "meta": {"_type": "gradio.FileData"}}
    data = [CKPT, image, 3] + [None] * (len(dep["inputs"]) - 3)  # the rest are gr.State, which the server fills
    r = httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                         "event_data": None}, timeout=30)
    if r.status_code != 200:
        return {"status": r.status_code, "detail": r.json()["detail"]}
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return json.loads(line[5:])
    raise AssertionError("no answer")


def png_data_url(nbytes: int) -> str:
    """A PNG data URL of about `nbytes` decoded bytes (noise does not compress)."""
    side = int((nbytes / 3) ** 0.5)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, format="PNG", compress_level=0)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_a_data_url_image_obeys_the_upload_cap(app):
    ok = data_url_predict(app.url, png_data_url(200_000))
    assert ok["success"], ok
    over = data_url_predict(app.url, png_data_url(int(1.3 * MB)))  # 1.7 MB of JSON: under the body cap, over 1 MB
    assert not over["success"] and "larger than the 1 MB upload limit" in over["output"]["error"], over
    huge = data_url_predict(app.url, png_data_url(2 * MB))  # 2.7 MB of JSON: over the body cap
    assert huge == {"status": 413, "detail": "Request too large: the limit is 2.3 MB."}


def post_upload(url: str, nbytes: int, cookies: dict | None = None) -> httpx.Response:
    return httpx.post(url + "gradio_api/upload", files={"files": ("x.png", os.urandom(nbytes), "image/png")},
                      cookies=cookies, timeout=30)


def test_stored_uploads_are_in_the_set_gradios_cache_cleaner_sweeps(app):
    from gradio.route_utils import delete_files_created_by_app

    assert app.demo.delete_cache == (600, 3600)  # every 10 minutes, delete what is over an hour old
    (stored,) = post_upload(app.url, 1000).json()
    assert stored in app.demo.upload_file_set and Path(stored).is_file()
    delete_files_created_by_app(app.demo, age=3600)  # the sweep, on a file of a few seconds: kept
    assert Path(stored).is_file()
    delete_files_created_by_app(app.demo, age=None)  # what the sweep does to a file past its age
    assert not Path(stored).exists() and stored not in app.demo.upload_file_set


def test_uploads_have_a_budget_per_client_and_parallel_uploads_do_not_get_round_it(app):
    assert post_upload(app.url, int(1.5 * MB)).status_code == 413  # over the per-file cap: refused, not counted
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post_upload(app.url, 900_000).status_code))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 3 + [429] * 3  # 3 MB per 10 minutes: three 0.9 MB uploads
    r = post_upload(app.url, 500_000)  # 0.45 MB are left
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 600
    assert r.text.startswith("Upload limit reached: at most 3.0 MB of uploads per 10 minutes for each user. Try again")


# ---- under --auth ----

NO_LOGIN = [("POST", "gradio_api/cancel", {"session_hash": "x", "fn_index": 0, "event_id": "x"}),
            ("POST", "gradio_api/queue/join", {"data": [], "fn_index": 0, "session_hash": "x"}),
            ("POST", "gradio_api/upload", None), ("GET", "config", None), ("GET", "gradio_api/info", None),
            ("GET", "gradio_api/heartbeat/x", None), ("GET", "gradio_api/queue/data?session_hash=x", None),
            ("POST", "gradio_api/reset", {"event_id": "x"})]


def login(url: str, user: tuple[str, str]) -> dict:
    r = httpx.post(url + "login", data={"username": user[0], "password": user[1]}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.cookies)


def call(url: str, method: str, path: str, body: dict | None, cookies: dict | None = None) -> httpx.Response:
    if path.endswith("upload"):
        return post_upload(url, 1000, cookies)
    return httpx.request(method, url + path, json=body, cookies=cookies, timeout=5)


def test_every_route_needs_a_login_except_the_login_page(auth_app):
    for method, path, body in NO_LOGIN:
        r = call(auth_app.url, method, path, body)
        assert r.status_code in (401, 403), (path, r.status_code, r.text[:99])
    page = httpx.get(auth_app.url, timeout=30)
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    asset = next(p for p in page.text.split('"') if p.startswith("./assets/") and p.endswith(".js"))
    assert httpx.get(auth_app.url + asset[2:], timeout=30).status_code == 200
    assert httpx.post(auth_app.url + "login", data={"username": "ann", "password": "no"}, timeout=30).status_code == 400


def test_with_a_login_the_routes_work(auth_app):
    cookies = login(auth_app.url, USERS[0])
    for path in ("config", "gradio_api/info"):
        assert httpx.get(auth_app.url + path, cookies=cookies, timeout=30).status_code == 200
    assert post_upload(auth_app.url, 1000, cookies).status_code == 200
    client = Client(auth_app.url, auth=USERS[0], verbose=False)
    try:
        probs, _, _ = client.predict(CKPT, handle_file(DIGIT), 3, api_name="/predict")
        assert probs["label"] == "7"
    finally:
        client.close()


def test_a_student_cannot_cancel_or_join_another_students_session(auth_app):
    ann, bob = Client(auth_app.url, auth=USERS[0], verbose=False), login(auth_app.url, USERS[1])
    try:
        job = ann.submit(**{**TRAIN, "epochs": 50}, api_name="/train")
        t0 = time.monotonic()
        while not job.outputs() and time.monotonic() - t0 < 60:  # training has started and is streaming
            time.sleep(0.1)
        fn_index = ann._infer_fn_index("/train", None)
        victim = {"session_hash": ann.session_hash, "fn_index": fn_index, "event_id": job.communicator.event_id}
        r = httpx.post(auth_app.url + "gradio_api/cancel", json=victim, cookies=bob, timeout=5)
        assert r.status_code == 403 and "another login" in r.json()["detail"]
        r = httpx.post(auth_app.url + "gradio_api/queue/join", cookies=bob, timeout=5,
                       json={"data": [], "fn_index": fn_index, "session_hash": ann.session_hash})
        assert r.status_code == 403
        for path in (f"gradio_api/heartbeat/{ann.session_hash}", f"gradio_api/queue/data?session_hash={ann.session_hash}"):
            assert httpx.get(auth_app.url + path, cookies=bob, timeout=5).status_code == 403
        seen, t0 = len(job.outputs()), time.monotonic()
        while len(job.outputs()) <= seen and time.monotonic() - t0 < 30:  # a cold worker may still be starting
            time.sleep(0.1)
        assert not job.done() and len(job.outputs()) > seen  # ann's run goes on
        r = httpx.post(auth_app.url + "gradio_api/cancel", json=victim, cookies=ann.cookies, timeout=5)
        assert r.status_code == 200  # her own Stop still works
        t0 = time.monotonic()
        while not job.done() and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        assert job.done()
    finally:
        ann.close()


def test_upload_budgets_are_per_login(auth_app):
    ann, bob = login(auth_app.url, USERS[0]), login(auth_app.url, USERS[1])
    codes = [post_upload(auth_app.url, 900_000, ann).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert post_upload(auth_app.url, 900_000, bob).status_code == 200  # the same address, another login


@pytest.mark.browser
def test_a_browser_logs_in_uploads_and_predicts_through_the_guards(auth_app, tmp_path):
    from test_ui_browser import ARGS, CHROMIUM, choose

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    refused: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status in (401, 403, 413, 429)
                    else None)
            page.goto(auth_app.url)
            page.get_by_label("username").fill(USERS[2][0])
            page.get_by_label("password").fill(USERS[2][1])
            page.get_by_role("button", name="Login").click()
            page.get_by_role("tab", name="Predict", exact=True).click()
            choose(page, "#predict-checkpoint", CKPT)
            photo = tmp_path / "seven.png"
            Image.open(DIGIT).convert("RGB").resize((64, 64)).save(photo)  # a file of its own: a real upload
            page.locator("#predict-image input[type=file]").set_input_files(str(photo))
            sync_api.expect(page.get_by_test_id("label-output-value")).to_contain_text("7")
            sync_api.expect(page.locator("#predict-view img")).to_be_visible()
            assert not refused, refused
            for i in range(4):  # 0.85 MB each against cy's 3 MB: the fourth is refused, with the reason shown
                noise = tmp_path / f"noise{i}.png"
                Image.frombytes("RGB", (530, 530), os.urandom(530 * 530 * 3)).save(noise)
                page.locator("#predict-image input[type=file]").set_input_files(str(noise))
                time.sleep(0.5)
            sync_api.expect(page.locator(".toast-body").first).to_contain_text("HTTP 429: Upload limit reached")
        finally:
            browser.close()
    assert [r.split()[0] for r in refused] == ["429"], refused


# ---- units ----


def test_limits_from_the_command_line():
    assert GuardLimits.from_mb(10) == GuardLimits(10 * MB, 15_029_590, UPLOAD_BUDGET_MB * MB)  # 4/3 x 10 MiB + 1 MiB
    assert GuardLimits.from_mb(10, max_body_mb=1, upload_budget_mb=0).max_body_bytes == MB
    sys.path.insert(0, str(REPO))
    import app as app_py

    args = app_py.parse_args(["--max-body-mb", "5", "--upload-budget-mb", "20"])
    assert (args.max_body_mb, args.upload_budget_mb) == (5, 20)
    assert app_py.parse_args([]).upload_budget_mb == UPLOAD_BUDGET_MB
    with pytest.raises(SystemExit, match="max-body-mb"):
        app_py.main(["--max-body-mb", "0"])


def test_the_budget_window_slides(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("cnnviz.ui.server_guards.time.monotonic", lambda: now[0])
    budget = UploadBudget(limit=100_000, window=600)
    first = budget.open("ann")
    assert first.add(60_000) and not budget.open("ann").add(50_000) and budget.open("bob").add(100_000)
    now[0] += 300
    second = budget.open("ann")
    assert second.add(40_000) and not second.add(1) and second.retry_after() == 300
    second.cancel()  # a refused or failed upload is refunded
    assert budget.open("ann").add(40_000)
    now[0] += 301  # the first upload has left the window
    assert budget.open("ann").add(60_000) and not budget.open("ann").add(1)
    assert len(budget.ledger["ann"]) == 3  # refused uploads leave no entry behind


def test_tiny_uploads_count_a_minimum_each():
    budget = UploadBudget(limit=2 * MIN_CHARGE, window=600)
    assert budget.open("ann").add(1) and budget.open("ann").add(1) and not budget.open("ann").add(1)


def test_session_owners_are_first_come_and_bounded():
    owners = SessionOwners(capacity=2)
    assert owners.claim("s1", "ann") and owners.claim("s1", "ann") and not owners.claim("s1", "bob")
    assert owners.claim(None, "bob") and owners.claim("s2", "bob") and owners.claim("s3", "bob")
    assert owners.claim("s1", "bob")  # forgotten after 2 newer sessions: the first to come back has it

