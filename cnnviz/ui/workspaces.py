"""Which workspace a page gets: the login's when the server runs with --auth, else the browser's own, whose token is
kept in the browser's localStorage so a reload or a server restart shows the same runs again."""
from __future__ import annotations

import gradio as gr

from ..store.workspace import Workspace
from .common import SessionWorkspace, refreshed_dropdown

STORAGE_KEY = "cnnviz-workspace"
# BrowserState encrypts in the browser with a key the page itself receives, so it hides nothing from the user; a fixed
# key only keeps the stored token readable after a server restart. The secret is the token: 128 random bits.
STORAGE_SECRET = "cnnviz-workspace-v1"


def browser_token() -> gr.BrowserState:
    """Where a browser keeps its workspace token."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)


def claim_workspace(token: str | None, ws: SessionWorkspace, request: gr.Request) -> tuple:
    """On page load: adopt the login's or the browser's workspace (a new browser keeps the fresh one it was given and
    stores its token), then fill the checkpoint menus with what this user may see."""
    if request is not None and request.username:
        ws.workspace = Workspace.for_login(request.username)
    else:
        ws.workspace = Workspace.from_token(token) or ws.workspace  # anything but a token of ours is ignored
    stored = ws.workspace.token or gr.skip()  # a login's workspace needs no token
    return stored, refreshed_dropdown(ws), refreshed_dropdown(ws)
