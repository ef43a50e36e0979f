"""Shared UI plumbing: turning errors into messages, each session's workspace and its checkpoint menus."""
from __future__ import annotations

import functools
import inspect
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..data import DatasetUnavailable
from ..explain.hooks import LayerError
from ..explain.layers import ExplainError
from ..images import ImageError
from ..models import WeightsUnavailable, get_model_info
from ..store.checkpoints import CheckpointEntry, CheckpointError, LoadedModel
from ..store.hub_weights import hub_entries
from ..store.model_cache import ModelCache
from ..store.workspace import Workspace, WorkspaceError
from ..train.config import ConfigError, Limits
from ..train.run_queue import QueueFull
from ..train.worker_pool import WorkerPool

log = logging.getLogger("cnnviz.ui")

# Errors whose message was written for the user; anything else is a bug and gets a generic message.
USER_ERRORS = (ConfigError, CheckpointError, ImageError, ExplainError, LayerError, DatasetUnavailable, WeightsUnavailable,
               QueueFull, WorkspaceError)


ECHO_LIMIT = 80  # characters of user input a message repeats: enough to recognise it, never a 100 kB name
MESSAGE_LIMIT = 1000  # a whole message, for input with spaces that the per-word limit does not catch
_LONG_WORD = re.compile(rf"\S{{{ECHO_LIMIT + 1},}}")
# Where the browser's HTML parser would start a tag ("<img", "</", "<!") or a character reference ("&lt;", "&#39;").
_MARKUP_START = re.compile(r"<(?=[A-Za-z/!?])|&(?=[A-Za-z0-9#])")
WORD_JOINER = "\u2060"  # invisible; after "<" or "&" it makes the parser read them as plain characters


def shorten(text: object, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters with an ellipsis: how a message repeats what the user typed."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}…"


def plain_message(message: str) -> str:
    """A message that reads the same through gradio_client (plain text) and in the browser's toast.

    The toast renders the message as sanitised HTML, so `<img src=x>` in a name would become an image; html.escape
    would show API clients `&lt;` and `&#x27;`. Instead a word joiner (invisible, in the browser and when printed) after
    each "<" or "&" that could start markup keeps the parser from reading a tag or an entity. Over-long words are cut.
    """
    message = shorten(_LONG_WORD.sub(lambda m: shorten(m.group()), str(message)), MESSAGE_LIMIT)
    return _MARKUP_START.sub(lambda m: m.group() + WORD_JOINER, message)


def user_error(message: str, title: str = "Cannot do that") -> gr.Error:
    """A gr.Error whose message is plain text and safe in the browser (messages may quote user input)."""
    return gr.Error(plain_message(message), title=title, print_exception=False)


def to_gr_error(exc: BaseException) -> gr.Error:
    """Our own errors keep their message; unexpected ones are logged and shown as a generic message with an id."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, USER_ERRORS):
        return user_error(str(exc))
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) and "choose" in exc.args[0]:
        return user_error(exc.args[0])  # registry look-ups: "unknown model 'x'; choose one of: ..."
    ref = secrets.token_hex(3)
    log.error("unexpected error %s", ref, exc_info=exc)
    return gr.Error(f"Something went wrong on the server (error {ref}); the details are in the server log.",
                    title="Server error", print_exception=False)


def guarded(fn: Callable) -> Callable:
    """Decorate a handler so every exception reaches the user as a gr.Error (generators stay generators)."""
    if inspect.isgeneratorfunction(fn):  # gradio inspects the function itself to decide how to stream it

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # GeneratorExit (a cancelled run) is a BaseException and passes through
                raise to_gr_error(exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise to_gr_error(exc) from exc

    return wrapper


class SessionWorkspace:
    """gr.State value: whose runs this browser session sees. A new session (a page or an API client) starts with a fresh
    private workspace; the page load then claims the browser's own or the login's (ui/workspaces.py)."""

    def __init__(self, models: ModelCache, workspace: Workspace | None = None) -> None:
        self.models = models  # the server's, shared by every session
        self.workspace = workspace or Workspace.new()

    def __deepcopy__(self, memo: dict) -> SessionWorkspace:
        # gr.State copies its initial value per session: every session gets its own key, all share the model cache.
        return SessionWorkspace(self.models)


@dataclass
class Shared:
    """Components more than one tab uses, created before the tabs (render=False) and rendered by their owner."""

    limits: Limits
    trainers: WorkerPool  # the server's training processes (one per device) and the queue of runs waiting for them
    workspace: gr.State  # of SessionWorkspace
    predict_checkpoint: gr.Dropdown
    explain_checkpoint: gr.Dropdown
    explain_image: gr.Image
    predict_image: gr.Image | None = None  # set by the Predict tab: Compare and the sanity check copy its image too


def entry_label(e: CheckpointEntry, workspace: Workspace) -> str:
    """Menu text for a checkpoint: name, architecture, dataset, accuracy, and whose it is."""
    try:
        title = get_model_info(e.arch).title.split(" (")[0]
    except KeyError:
        title = e.arch
    acc = f", {e.test_acc:.1%}" if e.test_acc is not None else ""
    tag = e.note or ("shipped" if e.shipped else "yours" if workspace.owns(e.path) else "shared")
    return f"{e.name}  ({title} on {e.dataset}{acc}, {tag})"


def checkpoint_entries(ws: SessionWorkspace | None) -> dict[str, CheckpointEntry]:
    """Name -> entry of every checkpoint this session may open, shipped first, torchvision's ImageNet networks last
    (cached or 'needs download'); of two equal names the first wins."""
    entries: dict[str, CheckpointEntry] = {}
    for e in [*_workspace(ws).checkpoints(), *hub_entries()]:
        entries.setdefault(e.name, e)
    return entries


def checkpoint_choices(ws: SessionWorkspace | None) -> list[tuple[str, str]]:
    """(label, name) pairs for a checkpoint dropdown."""
    workspace = _workspace(ws)
    return [(entry_label(e, workspace), name) for name, e in checkpoint_entries(ws).items()]


def _workspace(ws: SessionWorkspace | None) -> Workspace:
    return ws.workspace if ws is not None else Workspace()  # None: the shared view, as the page is first built


DEFAULT_CHECKPOINT = "lenet5-fashion-mnist"  # real garments a class recognises at a glance; shipped, so always there


def default_checkpoint(choices: list[tuple[str, str]]) -> str | None:
    """DEFAULT_CHECKPOINT when the menu has it, else the first checkpoint in the menu (shipped ones come first)."""
    names = [name for _, name in choices]
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in names else names[0] if names else None


def checkpoint_dropdown(label: str = "Checkpoint", render: bool = True, elem_id: str | None = None) -> gr.Dropdown:
    """A dropdown of the shared checkpoints (the page load adds the user's own); custom values are allowed so API
    callers can name runs newer than the page."""
    choices = checkpoint_choices(None)
    return gr.Dropdown(choices=choices, value=default_checkpoint(choices), label=label, allow_custom_value=True,
                       render=render, info="shipped, shared, and your runs", elem_id=elem_id)


def refreshed_dropdown(ws: SessionWorkspace, value: str | None = None) -> gr.Dropdown:
    """Update for a checkpoint dropdown: this session's choices, and `value` (or the first choice)."""
    choices = checkpoint_choices(ws)
    names = [n for _, n in choices]
    return gr.Dropdown(choices=choices, value=value if value in names else default_checkpoint(choices))


def load_model(name: str | None, ws: SessionWorkspace) -> LoadedModel:
    """The checkpoint called `name`, if this session may see it, from the server's model cache."""
    return ws.models.open(ws.workspace, name)


@guarded
def share_run(name: str | None, ws: SessionWorkspace) -> gr.Button:
    """Make one of this user's runs visible to everyone on the server (the lecturer's projector, classmates)."""
    if not name:
        raise user_error("Choose a run first: train one, or pick one of yours.")
    ws.workspace.share(name)
    gr.Info(f"Run {name} is now shared: everyone on this server finds it in their checkpoint and run menus.")
    return gr.Button("Shared", interactive=False)


def note(text: str) -> gr.Markdown:
    """The short 'what am I looking at' note at the top of a tab."""
    return gr.Markdown(text, elem_classes=["tab-note"])
