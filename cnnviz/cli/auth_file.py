"""Logins from a file, so that no password is ever on a command line (where `ps` and the shell history show it).

One `user:password` a line (spaces around the line are ignored; the password is the rest after the first
`:`, colons included); blank lines and `#` comments are allowed. The password is either plain or a PBKDF2-SHA256
hash (hashlib.pbkdf2_hmac, the scheme Django and passlib use by default): `user:pbkdf2_sha256:<iterations>:<salt>:<hex>`,
where the salt is text and <hex> is the 32-byte key. Make such a line with one command (it asks for the password):

    python -m cnnviz.cli.auth_file USER >> logins.txt

Every check is a constant-time compare (hmac.compare_digest); an unknown user costs as much as a known one.
"""
from __future__ import annotations

import asyncio
import getpass
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about 0.3 s per login on one core
MAX_ITERATIONS = 10_000_000  # a typo of extra zeros would make every login take minutes
HASHED = re.compile(rf"{SCHEME}:(\d+):([^:\s]+):([0-9a-fA-F]{{64}})")


class AuthFileError(ValueError):
    """A line that is no `user:password`, a bad hash, a user named twice: the message names the file and line."""


@dataclass(frozen=True)
class Secret:
    """A plain password (iterations 0) or a PBKDF2-SHA256 key."""

    key: bytes
    iterations: int = 0
    salt: bytes = b""

    def matches(self, password: str) -> bool:
        given = password.encode()
        if self.iterations:
            given = hashlib.pbkdf2_hmac("sha256", given, self.salt, self.iterations)
        return hmac.compare_digest(given, self.key)


def parse_secret(text: str) -> Secret:
    """'pbkdf2_sha256:N:salt:hex' -> a hashed secret, anything else -> a plain one; a broken hash is an error."""
    if not text.startswith(f"{SCHEME}:"):
        return Secret(text.encode())
    m = HASHED.fullmatch(text)
    if not m:
        raise AuthFileError(f"a hashed password must be {SCHEME}:<iterations>:<salt>:<64 hex digits>")
    iterations = int(m.group(1))
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise AuthFileError(f"{SCHEME} iterations must be from 1 to {MAX_ITERATIONS}, got {iterations}")
    return Secret(bytes.fromhex(m.group(3)), iterations, m.group(2).encode())


def hash_password(password: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """The `pbkdf2_sha256:...` text for a password (a random 16-byte salt unless given)."""
    salt = salt or secrets.token_hex(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{SCHEME}:{iterations}:{salt}:{key.hex()}"


def read_auth_file(path: str | Path) -> dict[str, Secret]:
    """user -> secret; a missing or unreadable file, a malformed line, a user named twice or no user at all raise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthFileError(f"{path}: no such file") from None
    except PermissionError:
        raise AuthFileError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise AuthFileError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError:
        raise AuthFileError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise AuthFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    users: dict[str, Secret] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            raise AuthFileError(f"{path} line {number}: expected USER:PASSWORD")
        if user in users:
            raise AuthFileError(f"{path} line {number}: user {user!r} is named twice")
        try:
            users[user] = parse_secret(password)
        except AuthFileError as exc:
            raise AuthFileError(f"{path} line {number}: {exc}") from None
    if not users:
        raise AuthFileError(f"{path}: no USER:PASSWORD line (an empty file would let nobody in)")
    return users


def merge_logins(pairs: Iterable[tuple[str, str]], users: dict[str, Secret]) -> dict[str, Secret]:
    """--auth pairs and the file's users together; a user in both is an error (which password would win?)."""
    merged = dict(users)
    for user, password in pairs:
        if user in merged:
            raise AuthFileError(f"user {user!r} is given twice (--auth and the auth file, or --auth twice)")
        merged[user] = Secret(password.encode())
    return merged


def checker(users: dict[str, Secret]) -> Callable[[str, str], Awaitable[bool]]:
    """The `launch(auth=...)` callable. Async, and the hashing runs in a worker thread: Gradio awaits it inside its
    login route, so a plain function would stop the whole server for the 0.3 s of each PBKDF2 login."""
    hashed = [s for s in users.values() if s.iterations]
    decoy = hashed[0] if hashed else Secret(b"\0" * 32)  # an unknown user costs the same as a known one

    def verify(username: str, password: str) -> bool:
        secret = users.get(username)
        ok = (secret or decoy).matches(password)
        return ok and secret is not None

    async def check(username: str, password: str) -> bool:
        return await asyncio.to_thread(verify, username, password)

    return check


def main(argv: list[str] | None = None) -> int:
    """`python -m cnnviz.cli.auth_file USER`: ask for a password twice and print the `USER:pbkdf2_sha256:...` line."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0] or ":" in argv[0] or argv[0].startswith("-"):
        print("usage: python -m cnnviz.cli.auth_file USER   (prints USER:pbkdf2_sha256:... for an --auth-file)",
              file=sys.stderr)
        return 2
    try:
        password, again = getpass.getpass(f"password for {argv[0]}: "), getpass.getpass("again: ")
    except (EOFError, KeyboardInterrupt):
        print("\nerror: no password given", file=sys.stderr)
        return 2
    if not password or password != again:
        print("error: the passwords are empty or differ", file=sys.stderr)
        return 2
    print(f"{argv[0]}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
