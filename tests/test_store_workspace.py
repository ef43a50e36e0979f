"""Workspaces: a user's runs are theirs until shared; keys never become paths; sharing is one atomic move."""
from __future__ import annotations

import shutil

import pytest

from cnnviz.store.workspace import Workspace, WorkspaceError
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.events import Finished

TINY = TrainConfig(arch="lenet5", dataset="digits", subset=200, epochs=1, batch_size=64)


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("CNNVIZ_RUNS", str(tmp_path / "runs"))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path


def train_into(ws: Workspace) -> str:
    end = list(fit(TINY, runs_root=ws.runs_root))[-1]
    assert isinstance(end, Finished), end
    return end.run_id


def names(entries) -> set[str]:
    return {e.name for e in entries if not e.shipped}  # the shipped checkpoints (package data) are everyone's


def test_own_runs_are_private_and_shared_runs_are_everyones(folders):
    ann, bob = Workspace.new(), Workspace.new()
    mine = train_into(ann)
    lecturer = train_into(Workspace())  # the command line writes to runs/: shared
    assert names(ann.checkpoints()) == {mine, lecturer} and {r.run_id for r in ann.runs()} == {mine, lecturer}
    assert names(bob.checkpoints()) == {lecturer} and {r.run_id for r in bob.runs()} == {lecturer}
    assert names(Workspace().checkpoints()) == {lecturer}  # the command line does not list students' runs
    with pytest.raises(WorkspaceError, match="no run called"):
        bob.find_run(mine)
    assert ann.find_run(mine).checkpoint is not None
    # The direct look-up the app uses for every prediction agrees with the listings.
    assert ann.find_checkpoint(mine) == ann.find_run(mine).checkpoint and bob.find_checkpoint(mine) is None
    assert bob.find_checkpoint(lecturer) == folders / "runs" / lecturer / "model.pt"
    for hostile in ("../../etc/passwd", "..", "/etc/passwd", "", f"users/{ann.own_root.name}/{mine}"):
        assert ann.find_checkpoint(hostile) is None


def test_sharing_moves_the_run_where_everyone_sees_it(folders):
    ann, bob = Workspace.new(), Workspace.new()
    run = train_into(ann)
    target = ann.share(run)
    assert target == folders / "runs" / run and (target / "model.pt").is_file()
    # The whole run moves, and it holds only finished files (atomic writes leave no temp files behind).
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "metrics.csv", "model.pt", "timelapse.npz"]
    assert {r.run_id: r.has_timelapse for r in bob.runs()}[run]
    assert run in names(bob.checkpoints()) and run in names(ann.checkpoints())
    assert not ann.owns(target)
    with pytest.raises(WorkspaceError, match="already shared"):
        ann.share(run)


def test_sharing_refuses_other_peoples_runs_unfinished_runs_and_odd_names(folders):
    ann, bob = Workspace.new(), Workspace.new()
    run = train_into(ann)
    with pytest.raises(WorkspaceError, match="no run called"):
        bob.share(run)  # Bob cannot publish Ann's work
    for hostile in ("../../etc", "..", "a/b", "/etc/passwd", ""):
        with pytest.raises(WorkspaceError):
            ann.share(hostile)
    (ann.find_run(run).dir / "model.pt").unlink()  # as when the disk was full at the end (training: test_store_run_state)
    with pytest.raises(WorkspaceError, match="no saved weights to share"):
        ann.share(run)


def test_sharing_never_overwrites_a_shared_run(folders):
    ann = Workspace.new()
    run = train_into(ann)
    shutil.copytree(ann.find_run(run).dir, folders / "runs" / run)
    with pytest.raises(WorkspaceError, match="already exists"):
        ann.share(run)
    assert ann.owns(ann.find_run(run).dir)  # still private, nothing moved


def test_keys_become_hashed_folder_names_inside_runs_users(folders):
    ws = [Workspace.new(), Workspace.for_login("../../etc"), Workspace("x" * 10_000)]
    for w in ws:
        assert w.own_root.parent == folders / "runs" / "users" and len(w.own_root.name) == 24
    assert len({w.own_root for w in ws}) == 3
    assert Workspace.for_login("ann").own_root == Workspace.for_login("ann").own_root  # a login finds its runs again


def test_only_tokens_of_ours_are_adopted():
    token = Workspace.new().token
    assert Workspace.from_token(token) == Workspace(token)
    for bad in (None, "", "../../etc", "A" * 32, token + "0", 42, {"key": token}):
        assert Workspace.from_token(bad) is None
    assert Workspace.for_login("ann").token is None  # a login's key is never sent to a browser


def test_a_user_deletes_their_own_runs_only(folders):
    ann, bob = Workspace.new(), Workspace.new()
    mine, lecturer = train_into(ann), train_into(Workspace())
    with pytest.raises(WorkspaceError, match="no run called"):
        bob.delete(mine)
    with pytest.raises(WorkspaceError, match="shared with everyone"):
        ann.delete(lecturer)
    for hostile in ("../../etc", "..", "/etc", ""):
        with pytest.raises(WorkspaceError):
            ann.delete(hostile)
    folder = ann.find_run(mine).dir
    ann.delete(mine)
    assert not folder.exists() and mine not in names(ann.checkpoints()) and lecturer in names(ann.checkpoints())
    assert not any(ann.own_root.iterdir())  # no half-deleted leftovers
    assert (folders / "runs" / lecturer / "model.pt").is_file()


def test_a_half_written_run_is_a_clear_message(folders):
    ann = Workspace.new()
    broken = ann.runs_root / "20260101-000000-lenet5-digits-beef"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(WorkspaceError, match="cannot be read"):
        ann.find_run(broken.name)
    assert ann.runs() == []  # and the listing leaves it out
