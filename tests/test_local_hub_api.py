"""The Hub API beyond upload and download, against the real clients: pull requests and discussions,
super-squash, duplicate, LFS file management, listings with filters and sort, gated repos, the repo's
.gitignore, case-insensitive and moved repo names, token list/revoke, the agent-harness registry.

Every check goes through `HfApi`, `HfFileSystem` or the `hf` CLI (in a subprocess) against the server
of the `local_hub` fixture; raw HTTP only where no client method exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError,
)

from helpers import REPO_ROOT
from local_hub.admin import create_token

HF_CLI = Path(sys.executable).parent / "hf"


def _name(prefix: str) -> str:
    return f"org/{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(endpoint=local_hub.endpoint, token=local_hub.token)


@pytest.fixture
def stranger(local_hub) -> HfApi:
    """A signed-in user with a write token who is no member of `org`."""
    return HfApi(endpoint=local_hub.endpoint, token=create_token(local_hub.data_dir, "gast", "write"))


def _hf(*args: str, token: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_TOKEN=token)
    return subprocess.run([str(HF_CLI), *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


# ---------------------------------------------------------------------------------------------- pull requests
def test_create_pr_is_readable_at_refs_pr_then_merged(api, tmp_path):
    repo = _name("pr")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"Modul A\n", path_in_repo="a.txt", repo_id=repo)
    main_before = api.repo_info(repo).sha

    info = api.upload_file(path_or_fileobj=b"Modul B\n", path_in_repo="b.txt", repo_id=repo, create_pr=True,
                           commit_message="B dazu", commit_description="Bitte prüfen")
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1 and info.pr_url.endswith("/discussions/1")
    assert api.repo_info(repo).sha == main_before and not api.file_exists(repo, "b.txt")
    assert api.file_exists(repo, "b.txt", revision="refs/pr/1")
    assert Path(hf_hub_download(repo, "b.txt", revision="refs/pr/1", cache_dir=tmp_path)).read_bytes() == b"Modul B\n"
    fs = HfFileSystem(endpoint=api.endpoint, token=api.token)
    assert fs.read_bytes(f"{repo}@refs/pr/1/b.txt") == b"Modul B\n"

    # A second commit onto the PR, as `revision="refs/pr/1"`.
    api.upload_file(path_or_fileobj=b"Modul A, neu\n", path_in_repo="a.txt", repo_id=repo, revision="refs/pr/1")
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]
    assert refs.pull_requests[0].target_commit == api.repo_info(repo, revision="refs/pr/1").sha

    [listed] = list(api.get_repo_discussions(repo))
    assert (listed.num, listed.is_pull_request, listed.status, listed.title) == (1, True, "open", "B dazu")
    api.comment_discussion(repo, 1, "Sieht gut aus")
    details = api.get_discussion_details(repo, 1)
    assert details.target_branch == "refs/heads/main" and details.conflicting_files == []
    assert "b/b.txt" in details.diff and "+Modul A, neu" in details.diff
    kinds = [e.type for e in details.events]
    assert kinds == ["comment", "commit", "commit", "comment"] and details.events[0].content == "Bitte prüfen"

    api.merge_pull_request(repo, 1, comment="Danke")
    merged = api.get_discussion_details(repo, 1)
    assert merged.status == "merged" and merged.merge_commit_oid == api.repo_info(repo).sha
    assert Path(hf_hub_download(repo, "a.txt", cache_dir=tmp_path / "m")).read_bytes() == b"Modul A, neu\n"
    assert api.file_exists(repo, "b.txt")
    with pytest.raises(HfHubHTTPError) as err:  # a merged PR takes no more commits
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, revision="refs/pr/1")
    assert err.value.response.status_code == 403


def test_dataset_push_to_hub_create_pr_then_load_at_the_pr(local_hub, tmp_path):
    import datasets

    repo = _name("ds-pr")
    datasets.Dataset.from_dict({"frage": ["Wie viele ECTS?"]}).push_to_hub(repo)
    datasets.Dataset.from_dict({"frage": ["Wie viele ECTS?", "Wer prüft?"]}).push_to_hub(repo, create_pr=True)
    [pr] = list(HfApi().get_repo_discussions(repo, repo_type="dataset"))
    assert pr.is_pull_request and pr.git_reference == "refs/pr/1"
    at_pr = datasets.load_dataset(repo, revision="refs/pr/1", cache_dir=str(tmp_path / "pr"))
    at_main = datasets.load_dataset(repo, cache_dir=str(tmp_path / "main"))
    assert at_pr["train"]["frage"] == ["Wie viele ECTS?", "Wer prüft?"] and at_main["train"].num_rows == 1


def test_pr_permissions_conflicts_close_reopen_and_discussions(local_hub, api, stranger):
    repo = _name("pr-rights")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="x.txt", repo_id=repo)
    # A non-member opens a PR on a public repo and pushes to it, but cannot write main or merge.
    pr = stranger.create_commit(repo, [CommitOperationAdd("x.txt", b"v2 vom Gast")], commit_message="Gast",
                                create_pr=True)
    with pytest.raises(HfHubHTTPError) as err:
        stranger.upload_file(path_or_fileobj=b"x", path_in_repo="y.txt", repo_id=repo)
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        stranger.merge_pull_request(repo, pr.pr_num)
    assert err.value.response.status_code == 403
    # The owner changes the same file on main: the PR now conflicts and merging is refused, nothing written.
    head = api.upload_file(path_or_fileobj=b"v2 vom Owner", path_in_repo="x.txt", repo_id=repo).oid
    assert api.get_discussion_details(repo, pr.pr_num).conflicting_files == ["x.txt"]
    with pytest.raises(HfHubHTTPError) as err:
        api.merge_pull_request(repo, pr.pr_num)
    assert err.value.response.status_code == 409 and api.repo_info(repo).sha == head
    # The author closes and reopens their PR; a read-only token cannot open one.
    assert stranger.change_discussion_status(repo, pr.pr_num, "closed").new_status == "closed"
    assert [d.num for d in api.get_repo_discussions(repo, discussion_status="closed")] == [pr.pr_num]
    assert stranger.change_discussion_status(repo, pr.pr_num, "open").new_status == "open"
    reader = HfApi(endpoint=api.endpoint, token=create_token(local_hub.data_dir, "admin", "read"))
    with pytest.raises(HfHubHTTPError) as err:
        reader.create_commit(repo, [CommitOperationAdd("z.txt", b"z")], commit_message="z", create_pr=True)
    assert err.value.response.status_code == 403
    # Plain discussions share the numbering; filters by type and author work.
    d = stranger.create_discussion(repo, "Frage zum Modul")
    assert d.num == pr.pr_num + 1 and not d.is_pull_request
    assert [x.num for x in api.get_repo_discussions(repo, discussion_type="discussion")] == [d.num]
    assert {x.num for x in api.get_repo_discussions(repo, author="gast")} == {d.num, pr.pr_num}
    api.rename_discussion(repo, d.num, "Frage zu INF-101")
    assert api.get_discussion_details(repo, d.num).title == "Frage zu INF-101"
    # Private repos: discussions are as invisible as the repo.
    private = _name("pr-private")
    api.create_repo(private, private=True)
    with pytest.raises(RepositoryNotFoundError):
        list(stranger.get_repo_discussions(private))
    with pytest.raises(RepositoryNotFoundError):
        stranger.create_discussion(private, "Hallo?")


def test_hf_cli_upload_create_pr_and_repos_ls(local_hub, api, tmp_path):
    repo = _name("cli-pr")
    api.create_repo(repo)
    local = tmp_path / "notes.md"
    local.write_text("# Notizen\n")
    out = _hf("upload", repo, str(local), "notes.md", "--create-pr", token=local_hub.token)
    assert out.returncode == 0, out.stdout + out.stderr
    [pr] = list(api.get_repo_discussions(repo, discussion_type="pull_request"))
    assert api.file_exists(repo, "notes.md", revision=pr.git_reference) and not api.file_exists(repo, "notes.md")

    out = _hf("repos", "ls", "--namespace", "org", "--limit", "0", token=local_hub.token)
    assert out.returncode == 0, out.stdout + out.stderr
    assert repo in out.stdout
    listed = {r.id: r for r in api.list_user_repos(namespace="org")}
    assert listed[repo].type == "model" and listed[repo].visibility == "public" and listed[repo].storage > 0
    assert all(r.id.startswith("admin/") for r in api.list_user_repos())
    with pytest.raises(HfHubHTTPError) as err:
        list(HfApi(endpoint=api.endpoint, token=False).list_user_repos())
    assert err.value.response.status_code == 401


# ---------------------------------------------------------------------------------------------- maintenance
def test_super_squash_keeps_files_and_drops_history(api, tmp_path):
    repo = _name("squash")
    api.create_repo(repo)
    for i in range(3):
        api.upload_file(path_or_fileobj=b"%d" % i, path_in_repo=f"f{i}.txt", repo_id=repo)
    files = sorted(api.list_repo_files(repo))
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=api.endpoint, token=False).super_squash_history(repo)
    assert err.value.response.status_code == 401
    api.super_squash_history(repo, commit_message="Alles in einem")
    assert [c.title for c in api.list_repo_commits(repo)] == ["Alles in einem"]
    assert sorted(api.list_repo_files(repo)) == files
    assert Path(hf_hub_download(repo, "f2.txt", cache_dir=tmp_path)).read_bytes() == b"2"


def test_duplicate_repo_space_copies_files_variables_and_given_secrets(api, stranger):
    src = _name("space-src")
    api.create_repo(src, repo_type="space", space_sdk="gradio")
    api.upload_file(path_or_fileobj=b"import gradio\n", path_in_repo="app.py", repo_id=src, repo_type="space")
    api.upload_file(path_or_fileobj=os.urandom(2048), path_in_repo="index.bin", repo_id=src, repo_type="space")
    api.add_space_variable(src, "MODEL_ID", "org/adapter")
    api.add_space_secret(src, "HF_TOKEN", "geheim")
    dst = src + "-copy"
    url = api.duplicate_repo(src, to_id=dst, repo_type="space", private=True,
                             space_secrets=[{"key": "API_KEY", "value": "neu"}])
    assert url.repo_id == dst
    info = api.space_info(dst)
    assert info.private and sorted(s.rfilename for s in info.siblings) == sorted(api.list_repo_files(src, repo_type="space"))
    assert [c.commit_id for c in api.list_repo_commits(dst, repo_type="space")] == \
        [c.commit_id for c in api.list_repo_commits(src, repo_type="space")]  # the full history, as on the Hub
    assert api.get_space_variables(dst)["MODEL_ID"].value == "org/adapter"
    assert list(api.get_space_secrets(dst)) == ["API_KEY"]  # secrets are never copied, only the given ones set
    with pytest.raises(HfHubHTTPError) as err:
        stranger.duplicate_repo(src, to_id=src + "-theft", repo_type="space")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        api.duplicate_repo(src, to_id=src + "-gpu", repo_type="space", space_hardware="t4-small")
    assert err.value.response.status_code == 400


def test_list_and_permanently_delete_lfs_files(api, tmp_path):
    repo = _name("lfs-files")
    api.create_repo(repo)
    weights = os.urandom(4096)
    first = api.upload_file(path_or_fileobj=weights, path_in_repo="w.bin", repo_id=repo).oid
    [lfs] = list(api.list_lfs_files(repo))
    assert lfs.filename == "w.bin" and lfs.size == 4096 and lfs.ref == "refs/heads/main"
    with pytest.raises(HfHubHTTPError) as err:  # still shown at main: refused, nothing deleted
        api.permanently_delete_lfs_files(repo, [lfs])
    assert err.value.response.status_code == 400 and "w.bin" in str(err.value)
    api.delete_file("w.bin", repo)
    api.permanently_delete_lfs_files(repo, list(api.list_lfs_files(repo)))
    assert list(api.list_lfs_files(repo)) == []
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "w.bin", revision=first, cache_dir=tmp_path)
    with pytest.raises(HfHubHTTPError) as err:
        list(HfApi(endpoint=api.endpoint, token=False).list_lfs_files(repo))
    assert err.value.response.status_code == 401


# ---------------------------------------------------------------------------------------------- listings
CARD = "---\nlicense: apache-2.0\nlanguage:\n- de\nlibrary_name: peft\ntags:\n- {tag}\n---\n# Karte\n"


def test_list_models_filter_sort_tags_and_refused_options(api):
    tag = f"rag-{uuid.uuid4().hex[:6]}"
    tagged, plain = _name(f"{tag}-a"), _name(f"{tag}-b")
    for repo in (tagged, plain):
        api.create_repo(repo)
    api.upload_file(path_or_fileobj=CARD.format(tag=tag).encode(), path_in_repo="README.md", repo_id=tagged)
    [hit] = list(api.list_models(filter=tag))
    assert hit.id == tagged and {tag, "peft", "license:apache-2.0", "language:de"} <= set(hit.tags)
    assert [m.id for m in api.list_models(filter=[tag, "language:de"])] == [tagged]
    assert list(api.list_models(filter=[tag, "language:fr"])) == []
    assert api.model_info(tagged).tags == hit.tags
    newest_first = [m.id for m in api.list_models(search=tag, sort="created_at")]
    assert newest_first == [plain, tagged]
    assert [m.id for m in api.list_models(search=tag, sort="last_modified")] == [tagged, plain]
    assert [m.card_data["license"] for m in api.list_models(filter=tag, cardData=True)] == ["apache-2.0"]
    [expanded] = list(api.list_models(filter=tag, expand=["tags", "sha"]))
    assert expanded.sha == api.repo_info(tagged).sha
    for bad in ({"apps": "ollama"}, {"num_parameters": "min:1B"}, {"inference": "warm"}):
        with pytest.raises(HfHubHTTPError) as err:
            list(api.list_models(search=tag, **bad))
        assert err.value.response.status_code == 400 and next(iter(bad)) in str(err.value)


def test_gated_repo_needs_an_accepted_user(local_hub, api, stranger, tmp_path):
    repo = _name("gated")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"# Karte\n", path_in_repo="README.md", repo_id=repo)
    api.upload_file(path_or_fileobj=b"daten", path_in_repo="data.txt", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")
    assert api.repo_info(repo).gated == "manual"
    assert [m.gated for m in api.list_models(search=repo.split("/")[1])] == ["manual"]
    anon = HfApi(endpoint=local_hub.endpoint, token=False)
    assert anon.repo_info(repo).gated == "manual"  # the repo page stays public
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo, "data.txt", token=False, cache_dir=tmp_path / "a")
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo, "data.txt", token=stranger.token, cache_dir=tmp_path / "s")
    assert Path(hf_hub_download(repo, "README.md", token=stranger.token, cache_dir=tmp_path / "r")).exists()
    assert Path(hf_hub_download(repo, "data.txt", cache_dir=tmp_path / "o")).read_bytes() == b"daten"
    api.update_repo_settings(repo, gated="auto")  # every signed-in user is accepted
    assert Path(hf_hub_download(repo, "data.txt", token=stranger.token, cache_dir=tmp_path / "s2")).exists()
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo, "data.txt", token=False, cache_dir=tmp_path / "a2")
    api.update_repo_settings(repo, gated=False)
    assert api.repo_info(repo).gated is False
    with pytest.raises(HfHubHTTPError) as err:
        stranger.update_repo_settings(repo, gated="auto")
    assert err.value.response.status_code == 403


def test_stored_gitignore_applies_to_uploads(api, tmp_path):
    repo = _name("gitignore")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"*.log\ncache/\n", path_in_repo=".gitignore", repo_id=repo)
    folder = tmp_path / "f"
    (folder / "cache").mkdir(parents=True)
    (folder / "train.log").write_text("loss 1.0")
    (folder / "cache" / "x.txt").write_text("x")
    (folder / "model.txt").write_text("ok")
    api.upload_folder(folder_path=folder, repo_id=repo)
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", ".gitignore", "model.txt"]


# ---------------------------------------------------------------------------------------------- names
def test_repo_ids_are_case_insensitive_and_moved_repos_redirect(local_hub, api, stranger, tmp_path):
    repo = _name("Case")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"inhalt", path_in_repo="f.txt", repo_id=repo)
    assert api.repo_info(repo.upper()).id == repo
    assert Path(hf_hub_download(repo.lower(), "f.txt", cache_dir=tmp_path / "c")).read_bytes() == b"inhalt"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(repo.lower())
    assert err.value.response.status_code == 409
    moved = repo + "-neu"
    api.move_repo(repo, moved)
    assert api.repo_info(repo).id == moved
    assert Path(hf_hub_download(repo, "f.txt", cache_dir=tmp_path / "m")).read_bytes() == b"inhalt"
    r = httpx.get(f"{local_hub.endpoint}/api/models/{repo}", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == f"/api/models/{moved}"
    # A private repo's other spellings and old names do not leak to callers who may not see it.
    private = _name("Geheim")
    api.create_repo(private, private=True)
    with pytest.raises(RepositoryNotFoundError):
        stranger.repo_info(private.lower())
    # A new repo may take the old name: the redirect ends.
    api.create_repo(repo)
    assert api.repo_info(repo).id == repo


# ---------------------------------------------------------------------------------------------- admin
def test_cli_token_list_and_revoke(local_hub):
    token = create_token(local_hub.data_dir, "kurzzeit", "read")
    assert HfApi(endpoint=local_hub.endpoint, token=token).whoami()["name"] == "kurzzeit"

    def rag_de(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rag_de", "hub", "token", *args, "--data-dir",
                               str(local_hub.data_dir)], capture_output=True, text=True, cwd=REPO_ROOT)

    out = rag_de("list", "--user", "kurzzeit")
    assert out.returncode == 0 and token not in out.stdout and local_hub.token not in out.stdout
    [row] = out.stdout.splitlines()[1:]
    token_id, user, role = row.split()[:3]
    assert (user, role) == ("kurzzeit", "read") and len(token_id) == 12
    out = rag_de("revoke", token_id)
    assert out.returncode == 0 and token_id in out.stdout
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=local_hub.endpoint, token=token).whoami()
    assert err.value.response.status_code == 401
    out = rag_de("revoke", token_id)
    assert out.returncode == 2
    assert out.stderr.startswith("rag-de hub token revoke: error: no token with id") and "token list" in out.stderr


def test_agent_harness_registry_answers_like_an_empty_hub_listing(local_hub):
    from huggingface_hub.utils._detect_agent import _fetch_registry

    r = httpx.get(f"{local_hub.endpoint}/api/agent-harnesses")
    assert r.status_code == 200 and r.json() == {"standardEnvVars": [], "harnesses": {}}
    assert _fetch_registry() == {"standardEnvVars": [], "harnesses": {}}
