"""One ASGI middleware in front of every Gradio route: a login under --auth, a cap on every request body, a per-client
upload budget, and each session hash tied to the login that first used it.

Gradio 6.31 leaves these gaps: /gradio_api/cancel, /heartbeat and /stream need no login (routes.py has no login_check
on them) and take any session hash; every request body is read whole before any check (an 800 MB JSON body was
parsed); uploads have a per-file cap (max_file_size) but none per request or per user. A refusal goes out before the
body is read (Content-Length) or as soon as the counted bytes pass the cap (chunked), and closes the connection, so
the rest of the body is never read.
"""
from __future__ import annotations

import inspect
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson
from gradio.routes import App as GradioApp  # the login lives in Gradio's own app object
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MB = 1024 * 1024  # Gradio's "10mb" is 10 MiB (gradio.utils.FileSize)
SLACK = MB  # room for multipart headers, JSON around a data URL, several small files of one drawing
UPLOAD_WINDOW_S = 600.0
UPLOAD_BUDGET_MB = 60  # per client per window: six uploads at the default 10 MB cap
MIN_CHARGE = 16 * 1024  # each upload counts at least this much, so tiny ones cannot add files without end
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")
# What a browser needs to show the login form and send it, plus Gradio's own start-up call; the rest needs a login.
PUBLIC_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                          "/robots.txt", "/manifest.json", "/gradio_api/startup-events"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
SESSION_PATHS = ("/gradio_api/heartbeat/", "/gradio_api/stream/")  # GET routes with the session hash in the path


def json_body_cap(max_upload_bytes: int) -> int:
    """The cap for JSON bodies: a data-URL image as large as the upload cap (base64 adds a third) plus slack."""
    return math.ceil(max_upload_bytes * 4 / 3) + SLACK


@dataclass(frozen=True)
class GuardLimits:
    """Sizes in bytes; upload_budget_bytes per client per upload_window_s (0 turns the budget off)."""

    max_upload_bytes: int
    max_body_bytes: int
    upload_budget_bytes: int
    upload_window_s: float = UPLOAD_WINDOW_S

    @classmethod
    def from_mb(cls, max_upload_mb: float, max_body_mb: float | None = None,
                upload_budget_mb: float = UPLOAD_BUDGET_MB) -> GuardLimits:
        """Limits from the command line's megabytes; the body cap defaults to json_body_cap(upload cap)."""
        upload = int(max_upload_mb * MB)
        body = int(max_body_mb * MB) if max_body_mb else json_body_cap(upload)
        return cls(upload, body, int(upload_budget_mb * MB))


class Reservation:
    """One upload's bytes on its client's account: refused when they would pass the budget, refunded if not stored."""

    def __init__(self, budget: UploadBudget, client: str) -> None:
        self.budget, self.client = budget, client
        self.entry: list[float] | None = None  # [start, bytes] in the ledger once something is charged

    def add(self, n: int) -> bool:
        """Charge n more bytes (the first charge at least MIN_CHARGE); False, with nothing charged, past the budget."""
        n = max(n, MIN_CHARGE) if self.entry is None else n
        if self.budget.used(self.client) + n > self.budget.limit:
            return False
        if self.entry is None:  # refused uploads leave nothing behind: the ledger grows only with stored ones
            self.entry = [time.monotonic(), 0]
            self.budget.ledger.setdefault(self.client, deque()).append(self.entry)
        self.entry[1] += n
        return True

    def cancel(self) -> None:
        if self.entry is not None:
            self.entry[1] = 0

    def retry_after(self) -> int:
        """Seconds until the oldest upload in the window stops counting."""
        now = time.monotonic()
        oldest = min((t for t, n in self.budget.ledger.get(self.client, ()) if n), default=now)
        return max(1, math.ceil(oldest + self.budget.window - now))

    def message(self) -> str:
        return (f"Upload limit reached: at most {_mb(self.budget.limit)} of uploads per {self.budget.window / 60:g} "
                f"minutes for each user. Try again in {self.retry_after()} s.")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after()).encode())]


class UploadBudget:
    """Bytes each client (a login, else an address) may upload in a sliding window of `window` seconds."""

    MAX_CLIENTS = 10_000  # past this many, clients with nothing left in the window are forgotten

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.ledger: dict[str, deque[list[float]]] = {}  # client -> [[start, bytes], ...], oldest first

    def open(self, client: str) -> Reservation:
        """Start counting one upload of `client` (nothing is charged yet)."""
        if len(self.ledger) > self.MAX_CLIENTS:
            cutoff = time.monotonic() - self.window
            for idle in [c for c, entries in self.ledger.items() if not entries or entries[-1][0] < cutoff]:
                del self.ledger[idle]
        return Reservation(self, client)

    def used(self, client: str) -> int:
        """Bytes `client` uploaded in the last `window` seconds (older entries are dropped)."""
        entries = self.ledger.get(client, deque())
        cutoff = time.monotonic() - self.window
        while entries and entries[0][0] < cutoff:
            entries.popleft()
        return int(sum(n for _, n in entries))


class SessionOwners:
    """Session hash -> the login that first used it; another login naming that hash is refused."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()

    def claim(self, session_hash: str | None, user: str) -> bool:
        """True if `user` may use `session_hash` (no hash, a new one, or their own)."""
        if session_hash is None:
            return True
        owner = self._owners.setdefault(session_hash, user)
        self._owners.move_to_end(session_hash)
        if len(self._owners) > self.capacity:  # the oldest are forgotten: their sessions have long gone
            self._owners.popitem(last=False)
        return owner == user


def guard_middleware(limits: GuardLimits) -> Middleware:
    """For launch(app_kwargs={"middleware": [...]}): Gradio's FastAPI app is built with it."""
    return Middleware(ServerGuard, limits=limits)


class Refused(Exception):
    """Raised from the wrapped receive() to stop the app reading a body we refuse."""


async def respond(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                  plain: bool = False) -> None:
    """A short refusal that closes the connection, so an unread body stays unread: JSON in FastAPI's shape
    ({"detail": ...}), or plain text where Gradio's own upload route answers so (its frontend shows the text)."""
    body = message.encode() if plain else orjson.dumps({"detail": message})
    kind = b"text/plain; charset=utf-8" if plain else b"application/json"
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _mb(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= 10 * MB else f"{n / MB:.1f} MB"


class BodyMeter:
    """Counts the request body as the app reads it. Past the cap or the upload budget it remembers a refusal, stops the
    read, and sends the refusal in place of whatever the app then answers."""

    def __init__(self, receive: Receive, send: Send, cap: int, reservation: Reservation | None = None,
                 declared: int | None = None, plain: bool = False) -> None:
        self._receive, self._send, self.cap, self.reservation, self.plain = receive, send, cap, reservation, plain
        self.count_budget = reservation is not None and declared is None  # a declared length was reserved up front
        self.size, self.status, self.responded = 0, 0, False
        self.refusal: tuple[int, str, list | None] | None = None

    def refuse(self, status: int, message: str, headers: list | None = None) -> None:
        self.refusal = (status, message, headers)
        raise Refused(message)

    async def receive(self) -> Message:
        """The app's receive(): passes messages on, counting body bytes."""
        if self.refusal:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            n = len(message.get("body", b""))
            self.size += n
            if self.size > self.cap:
                self.refuse(413, f"Request too large: the limit is {_mb(self.cap)}.")
            if self.count_budget and not self.reservation.add(n):
                self.refuse(429, self.reservation.message(), self.reservation.headers())
        return message

    async def send(self, message: Message) -> None:
        """The app's send(): after a refusal, the refusal goes out instead of the app's answer."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
        if self.refusal is None:
            await self._send(message)
        elif not self.responded:
            await self.send_refusal()

    async def send_refusal(self) -> None:
        self.responded = True
        await respond(self._send, *self.refusal, plain=self.plain)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header(scope: Scope, name: bytes) -> bytes:
    return next((v for k, v in scope.get("headers", []) if k == name), b"")


async def login_of(scope: Scope) -> tuple[bool, str | None]:
    """(auth on, login or None), read the way Gradio's own get_current_user/login_check read it (routes.py)."""
    app = scope.get("app")
    if not isinstance(app, GradioApp) or (app.auth is None and app.auth_dependency is None):
        return False, None
    request = Request(scope) if scope["type"] == "http" else HTTPConnection(scope)
    if app.auth_dependency is not None:
        user = app.auth_dependency(request)
        return True, (await user) if inspect.isawaitable(user) else user
    cookies = request.cookies
    token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
    return True, app.tokens.get(token)


def is_public(path: str) -> bool:
    """The login page and its assets, which must load before anyone has logged in."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def session_hash_in_url(scope: Scope, path: str) -> str | None:
    """The session hash a GET names in its query (?session_hash=) or path (/heartbeat/<hash>, /stream/<hash>/...)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
    if query:
        return query[0]
    if scope["method"] == "GET" and path.startswith(SESSION_PATHS):
        return path.split("/")[3] or None
    return None


async def read_all(meter: BodyMeter) -> bytes | None:
    """The whole body through the meter (capped); None if the client went away."""
    chunks = []
    while True:
        message = await meter.receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, meter: BodyMeter) -> Receive:
    """A receive() that hands over an already read body once, then the client's own messages (disconnects)."""
    pending = [body]

    async def receive() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await meter.receive()
    return receive


def session_hash_in_json(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # Gradio answers malformed JSON itself
    value = data.get("session_hash") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class ServerGuard:
    """The middleware: login, then session owner, then body cap and upload budget, then Gradio."""

    def __init__(self, app: ASGIApp, limits: GuardLimits) -> None:
        self.app, self.limits = app, limits
        self.budget = UploadBudget(limits.upload_budget_bytes, limits.upload_window_s)
        self.owners = SessionOwners()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        auth, user = await login_of(scope)
        if auth and user is None and not is_public(path):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await respond(send, 401, "Not authenticated: log in first.")
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        await self.guard_http(scope, receive, send, path, user if auth else None)

    async def guard_http(self, scope: Scope, receive: Receive, send: Send, path: str, user: str | None) -> None:
        """Body cap and upload budget around the app; the session owner check where a login exists."""
        upload = scope["method"] == "POST" and path in UPLOAD_PATHS
        cap = self.limits.max_upload_bytes + SLACK if upload else self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > cap:
            return await respond(send, 413, f"Request too large: the limit is {_mb(cap)}.", plain=upload)
        if user is not None and not self.owners.claim(session_hash_in_url(scope, path), user):
            return await respond(send, 403, "This session belongs to another login.")
        reservation = None
        if upload and self.budget.limit:
            reservation = self.budget.open(user or (scope.get("client") or ("unknown",))[0])
            if declared is not None and not reservation.add(declared):
                return await respond(send, 429, reservation.message(), reservation.headers(), plain=True)
        meter = BodyMeter(receive, send, cap, reservation, declared, plain=upload)
        try:
            await self.run_app(scope, meter, user)
        except Exception:
            if meter.refusal is None or meter.responded:
                raise
            await meter.send_refusal()  # the app let our Refused (or what it made of it) escape
        finally:
            if reservation is not None and not 200 <= meter.status < 300:
                reservation.cancel()  # nothing was stored: the bytes do not count

    async def run_app(self, scope: Scope, meter: BodyMeter, user: str | None) -> None:
        """Call Gradio; a logged-in JSON POST is read first to check its session hash (it is capped by the meter)."""
        receive: Receive = meter.receive
        if user is not None and scope["method"] == "POST" and _header(scope, b"content-type").startswith(
                b"application/json"):
            body = await read_all(meter)
            if body is None:
                return
            if not self.owners.claim(session_hash_in_json(body), user):
                return await respond(meter._send, 403, "This session belongs to another login.")
            receive = replay(body, meter)
        await self.app(scope, receive, meter.send)
