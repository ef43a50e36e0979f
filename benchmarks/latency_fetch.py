"""Where one output picture's download goes, through gradio_client as latency.py measures it (`latency.py --fetch`).

For the trivial app's one output picture and Explain's two (the Grad-CAM overlay, the feature-map grid): how many
downloads one call makes, its size, and the time of each piece: building an httpx client (gradio_client builds a new
one per file: httpx.stream), a whole fresh `httpx.get` (what a download costs), a GET on a kept-alive client (Gradio's
file route alone), a plain socket GET on a new TCP connection (the server's side of a new connection); and the
picture's bytes and encoding time as PNG (zlib 1, cnnviz; zlib 6, Gradio) and lossless WebP.
"""
from __future__ import annotations

import io
import socket
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlparse

from latency import CKPT, call_ms  # this folder is on sys.path when run as a script


def _ms(fn: Callable[[], object], runs: int) -> float:
    return round(call_ms(fn, runs), 2)


def _raw_get(url: str) -> int:
    """GET over a new TCP connection with a plain socket: no client library's set-up in the way."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port)) as s:
        s.sendall(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {url}: {data[:80]!r}")
    return len(data)


def _downloads(client, *args, **kwargs) -> int:
    """How many files one call of `client` downloads."""
    from gradio_client.client import Endpoint

    count, real = [0], Endpoint._download_file

    def counting(self, x):
        count[0] += 1
        return real(self, x)

    Endpoint._download_file = counting
    try:
        client.predict(*args, **kwargs)
    finally:
        Endpoint._download_file = real
    return count[0]


def _encodings(path: Path, runs: int) -> dict:
    import PIL.Image

    img = PIL.Image.open(path)
    img.load()
    out = {}
    for name, kw in (("png zlib 1 (cnnviz)", dict(format="png", compress_level=1)),
                     ("png zlib 6 (Gradio)", dict(format="png", compress_level=6)),
                     ("webp lossless", dict(format="webp", lossless=True))):
        def encode(kw=kw):
            buf = io.BytesIO()
            img.save(buf, **kw)
            return buf.getvalue()
        out[name] = {"bytes": len(encode()), "encode_ms": _ms(encode, runs)}
    return out


def fetch_report(server, test_images, runs: int) -> dict:
    """server, test_images: latency.py's (passed in, so this module needs nothing else from it)."""
    import httpx
    from gradio_client import Client, handle_file

    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp, server("trivial") as (t_url, _), server("cnnviz") as (c_url, _):
        png = test_images(Path(tmp), 2)[1]
        explain = dict(checkpoint=CKPT, image=handle_file(png), layer="", target="predicted", opacity=0.5, methods=[],
                       sort="mean", max_maps=64, api_name="/explain")
        with closing(Client(t_url, verbose=False)) as t, closing(Client(c_url, verbose=False)) as c:
            res["downloads_per_call"] = {"trivial": _downloads(t, handle_file(png), api_name="/predict"),
                                         "explain": _downloads(c, **explain)}
        with closing(Client(t_url, verbose=False, download_files=False)) as t, \
                closing(Client(c_url, verbose=False, download_files=False)) as c:
            outs = {"trivial output": (t_url, t.predict(handle_file(png), api_name="/predict")[1])}
            answer = c.predict(**explain)
            outs.update({"explain Grad-CAM": (c_url, answer[1]), "explain feature maps": (c_url, answer[2])})
        pictures = {}
        for name, (root, fd) in outs.items():
            url = f"{root}gradio_api/file={quote(fd['path'])}"
            with httpx.Client() as kept:
                row = {"bytes": len(httpx.get(url).content),
                       "fresh_httpx_get_ms": _ms(lambda url=url: httpx.get(url), runs),
                       "kept_alive_get_ms": _ms(lambda url=url, kept=kept: kept.get(url), runs),
                       "new_tcp_socket_get_ms": _ms(lambda url=url: _raw_get(url), runs)}
            row["encodings"] = _encodings(Path(fd["path"]), runs)
            pictures[name] = row
        res["pictures"] = pictures
        res["httpx_client_build_ms"] = _ms(lambda: httpx.Client().close(), runs)  # while both servers run, as above
    return res
