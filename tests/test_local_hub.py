"""The local Hub against the real clients: huggingface_hub and datasets talk to it through HF_ENDPOINT.

Every test goes through public client APIs (or, for malformed input that no client would send, raw HTTP)
against the server started by the `local_hub` fixture; the crash test starts its own server.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError,
)

from helpers import REPO_ROOT, free_port, start_hub
from local_hub.admin import create_token


def _name(prefix: str) -> str:
    return f"org/{prefix}-{uuid.uuid4().hex[:8]}"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and ".cache" not in p.relative_to(root).parts}


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(endpoint=local_hub.endpoint, token=local_hub.token)


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_upload_folder_snapshot_roundtrip_at_main_and_old_commit(api, tmp_path):
    repo = _name("roundtrip")
    api.create_repo(repo)
    v1 = {"README.md": "# Modulhandbuch\n".encode(), "data/module.json": b'{"ECTS": 5}',
          "weights/tiny.bin": os.urandom(4096), "docs/ä ö.txt": "Prüfungsordnung".encode()}
    first = api.upload_folder(folder_path=_write_tree(tmp_path / "v1", v1), repo_id=repo, commit_message="v1")
    v2 = dict(v1, **{"data/module.json": b'{"ECTS": 6}', "neu.txt": b"neu"})
    del v2["docs/ä ö.txt"]
    second = api.upload_folder(folder_path=_write_tree(tmp_path / "v2", v2), repo_id=repo, commit_message="v2",
                               delete_patterns=["docs/*"])

    at_main = _files(Path(snapshot_download(repo, cache_dir=tmp_path / "c1")))
    at_first = _files(Path(snapshot_download(repo, revision=first.oid, cache_dir=tmp_path / "c2")))
    assert at_main.pop(".gitattributes") and at_first.pop(".gitattributes")  # the Hub's initial commit
    assert at_main == v2
    assert at_first == v1

    assert sorted(api.list_repo_files(repo)) == sorted([".gitattributes", *v2])
    assert sorted(api.list_repo_files(repo, revision=first.oid)) == sorted([".gitattributes", *v1])
    assert Path(hf_hub_download(repo, "data/module.json", cache_dir=tmp_path / "c3")).read_bytes() == b'{"ECTS": 6}'
    assert Path(hf_hub_download(repo, "docs/ä ö.txt", revision=first.oid,
                                cache_dir=tmp_path / "c3")).read_bytes() == v1["docs/ä ö.txt"]
    assert api.file_exists(repo, "neu.txt") and not api.file_exists(repo, "docs/ä ö.txt")
    assert api.file_exists(repo, "docs/ä ö.txt", revision=first.oid)
    commits = api.list_repo_commits(repo)
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid]
    assert [c.title for c in commits] == ["v2", "v1", "initial commit"]
    assert api.repo_info(repo).sha == second.oid
    assert api.repo_info(repo, revision=first.oid).sha == first.oid
    assert all(len(c.commit_id) == 40 and int(c.commit_id, 16) >= 0 for c in commits)


def test_dataset_push_to_hub_then_load_dataset_two_splits(local_hub, tmp_path):
    import datasets

    repo = _name("ds")
    rows = {
        "train": {"id": ["a", "b", "c"], "question": ["Wie viele ECTS hat Mathe 1?", "Wer prüft?", "Wann?"],
                  "answerable": [True, True, False]},
        "test": {"id": ["d"], "question": ["Was ist das Modul INF-101?"], "answerable": [True]},
    }
    dd = datasets.DatasetDict({split: datasets.Dataset.from_dict(cols) for split, cols in rows.items()})
    dd.push_to_hub(repo)
    loaded = datasets.load_dataset(repo, download_mode="force_redownload", cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"}
    for split, cols in rows.items():
        assert loaded[split].to_dict() == cols


def test_50mb_file_goes_through_lfs_and_comes_back_identical(api, tmp_path):
    repo = _name("lfs")
    api.create_repo(repo)
    big = tmp_path / "model.safetensors"
    data = os.urandom(50 * 1024 * 1024)
    big.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    del data
    api.upload_file(path_or_fileobj=big, path_in_repo="model.safetensors", repo_id=repo)
    # A large *text* file without an LFS pattern also goes to LFS, by size alone.
    text = tmp_path / "corpus.txt"
    text.write_bytes(b"Ein Satz.\n" * (1_200_000))
    api.upload_file(path_or_fileobj=text, path_in_repo="corpus.txt", repo_id=repo)

    info = {p.path: p for p in api.get_paths_info(repo, ["model.safetensors", "corpus.txt"])}
    assert info["model.safetensors"].lfs is not None and info["model.safetensors"].lfs.sha256 == sha
    assert info["model.safetensors"].size == 50 * 1024 * 1024
    assert info["corpus.txt"].lfs is not None
    got = hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path / "cache")
    h = hashlib.sha256()
    with open(got, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == sha
    # Range requests (used by HfFileSystem / parquet readers) return exactly the asked bytes.
    url = f"{api.endpoint}/{repo}/resolve/main/model.safetensors"
    r = httpx.get(url, headers={"Range": "bytes=10-19", "Authorization": f"Bearer {api.token}"})
    assert r.status_code == 206 and r.content == big.read_bytes()[10:20]
    assert r.headers["x-linked-etag"].strip('"') == sha and r.headers["x-repo-commit"] == api.repo_info(repo).sha


def test_private_repo_needs_token_and_read_token_cannot_commit(local_hub, api, tmp_path):
    repo = _name("private")
    api.create_repo(repo, private=True)
    api.upload_file(path_or_fileobj=b"geheim", path_in_repo="secret.txt", repo_id=repo)
    anon = HfApi(endpoint=local_hub.endpoint, token=False)
    with pytest.raises(RepositoryNotFoundError) as err:
        anon.repo_info(repo)
    assert err.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "secret.txt", token=False, cache_dir=tmp_path / "anon")
    # Another user, with a valid token, does not see it either (404, as the Hub answers).
    stranger = HfApi(endpoint=local_hub.endpoint, token=create_token(local_hub.data_dir, "stranger", "write"))
    with pytest.raises(RepositoryNotFoundError) as err:
        stranger.repo_info(repo)
    assert err.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as err:
        stranger.create_repo(_name("foreign"))
    assert err.value.response.status_code == 403
    # The owner's org reads it; a read-only token reads but cannot commit.
    assert Path(hf_hub_download(repo, "secret.txt", token=local_hub.token,
                                cache_dir=tmp_path / "owner")).read_bytes() == b"geheim"
    reader = HfApi(endpoint=local_hub.endpoint, token=create_token(local_hub.data_dir, "admin", "read"))
    assert reader.repo_info(repo).private is True
    with pytest.raises(HfHubHTTPError) as err:
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=local_hub.endpoint, token="hf_not_a_token").whoami()
    assert err.value.response.status_code == 401
    assert api.list_repo_files(repo) == [".gitattributes", "secret.txt"]


def test_eight_threads_ten_commits_each_all_land(api):
    repo = _name("concurrent")
    api.create_repo(repo)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(10):
                api.create_commit(repo, [CommitOperationAdd(f"t{t}/c{i}.txt", f"{t}-{i}".encode())],
                                  commit_message=f"thread {t} commit {i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    commits = api.list_repo_commits(repo)  # 81 > one page of 50: the Link header is followed
    assert len(commits) == 81 and len({c.commit_id for c in commits}) == 81
    files = set(api.list_repo_files(repo))
    assert files == {".gitattributes"} | {f"t{t}/c{i}.txt" for t in range(8) for i in range(10)}
    for t, i in ((0, 0), (7, 9), (3, 5)):
        assert Path(hf_hub_download(repo, f"t{t}/c{i}.txt")).read_bytes() == f"{t}-{i}".encode()


def test_stale_parent_commit_is_refused(api):
    repo = _name("parent")
    api.create_repo(repo)
    base = api.repo_info(repo).sha
    head = api.create_commit(repo, [CommitOperationAdd("a.txt", b"a")], commit_message="a", parent_commit=base).oid
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(repo, [CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=base)
    assert err.value.response.status_code == 412
    assert api.repo_info(repo).sha == head and not api.file_exists(repo, "b.txt")


def test_client_errors_are_the_hub_errors(api, tmp_path):
    repo = _name("errors")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "x.txt", revision="no-such-branch", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        api.repo_info(repo, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("org/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/does-not-exist", "x.txt", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo, [CommitOperationDelete("nope.txt")], commit_message="delete")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(repo)
    assert err.value.response.status_code == 409
    assert api.create_repo(repo, exist_ok=True).repo_id == repo


def test_bad_input_is_a_clear_4xx_and_writes_nothing(local_hub, api):
    repo = _name("bad")
    api.create_repo(repo)
    before = api.repo_info(repo).sha
    url = f"{local_hub.endpoint}/api/models/{repo}/commit/main"
    auth = {"Authorization": f"Bearer {local_hub.token}", "Content-Type": "application/x-ndjson"}
    header = b'{"key": "header", "value": {"summary": "evil"}}\n'

    def post(body: bytes, target: str = url) -> httpx.Response:
        return httpx.post(target, content=body, headers=auth, timeout=30)

    def add(path: str) -> bytes:
        return b'{"key": "file", "value": {"path": "%s", "content": "eA==", "encoding": "base64"}}\n' % path.encode()

    for path in ("../x", "/etc/passwd", "a/../../x", "a//b", ".git/config", "C:/x"):
        r = post(header + add(path))
        assert r.status_code == 400 and "path" in r.json()["error"], (path, r.text)
    r = post(header + b'{"key": "file", "value": {"path": "ok.txt", "content": "!!!"}}\n')
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = post(header + b"{not json\n")
    assert r.status_code == 400 and "line 2" in r.json()["error"]
    r = post(b'{"key": "file", "value": {}}\n')
    assert r.status_code == 400 and "header" in r.json()["error"]
    r = post(header + b'{"key": "rmrf", "value": {"path": "x"}}\n')
    assert r.status_code == 400 and "unknown operation" in r.json()["error"]
    big_header = b'{"key": "header", "value": {"summary": "' + b"x" * (70 * 1024) + b'"}}\n'
    r = post(big_header + add("ok.txt"))
    assert r.status_code == 413 and "header line" in r.json()["error"]
    r = post(header + add("ok.txt"), target=f"{local_hub.endpoint}/api/widgets/{repo}/commit/main")
    assert r.status_code == 400 and "repo type" in r.json()["error"]
    r = httpx.post(f"{local_hub.endpoint}/api/repos/create", headers=auth, json={"name": "x", "type": "widget"})
    assert r.status_code == 400 and "repo type" in r.json()["error"]
    r = post(header + b'{"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": "%s"}}\n'
             % (b"ab" * 32))
    assert r.status_code == 422
    r = httpx.get(f"{local_hub.endpoint}/{repo}/resolve/main/..%2F..%2Fhub.sqlite3", headers=auth)
    assert r.status_code == 400
    assert api.repo_info(repo).sha == before and api.list_repo_files(repo) == [".gitattributes"]


def test_branches_tags_tree_pagination_move_delete(local_hub, api, tmp_path):
    repo = _name("refs")
    api.create_repo(repo)
    first = api.upload_folder(folder_path=_write_tree(tmp_path / "f", {f"d/f{i}.txt": b"%d" % i for i in range(5)}),
                              repo_id=repo).oid
    api.create_branch(repo, branch="dev/exp", revision=first)
    api.create_branch(repo, branch="dev/exp", exist_ok=True)
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="dev.txt", repo_id=repo, revision="dev/exp")
    api.create_tag(repo, tag="v1.0", revision=first)
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", "dev/exp"} and [t.name for t in refs.tags] == ["v1.0"]
    assert [t.target_commit for t in refs.tags] == [first]
    assert api.file_exists(repo, "dev.txt", revision="dev/exp") and not api.file_exists(repo, "dev.txt")
    assert hf_hub_download(repo, "d/f3.txt", revision="v1.0", cache_dir=tmp_path / "c")
    with pytest.raises(HfHubHTTPError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo, revision="v1.0")

    tree = list(api.list_repo_tree(repo, recursive=True))
    assert {e.path for e in tree} == {".gitattributes", "d"} | {f"d/f{i}.txt" for i in range(5)}
    assert [e.path for e in api.list_repo_tree(repo, path_in_repo="d", expand=True)][:2] == ["d/f0.txt", "d/f1.txt"]
    pages, url = [], f"{local_hub.endpoint}/api/models/{repo}/tree/main/d?limit=2"
    while url:
        r = httpx.get(url, headers={"Authorization": f"Bearer {local_hub.token}"})
        pages.append([e["path"] for e in r.json()])
        url = r.links.get("next", {}).get("url")
    assert pages == [["d/f0.txt", "d/f1.txt"], ["d/f2.txt", "d/f3.txt"], ["d/f4.txt"]]

    api.delete_tag(repo, tag="v1.0")
    api.delete_branch(repo, branch="dev/exp")
    assert [b.name for b in api.list_repo_refs(repo).branches] == ["main"]
    moved = repo + "-moved"
    api.move_repo(repo, moved)
    assert api.repo_info(repo).id == moved  # the old name redirects (307), as on the Hub
    assert api.repo_info(moved).sha == first
    api.delete_repo(moved)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(moved)
    api.delete_repo(moved, missing_ok=True)


def test_space_variables_secrets_and_runtime(api):
    repo = _name("space")
    api.create_repo(repo, repo_type="space", space_sdk="gradio")
    api.add_space_variable(repo, "MODEL_ID", "org/adapter", description="adapter to load")
    api.add_space_secret(repo, "HF_TOKEN", "hf_secret_value")
    variables = api.get_space_variables(repo)
    assert variables["MODEL_ID"].value == "org/adapter" and variables["MODEL_ID"].description == "adapter to load"
    secrets = api.get_space_secrets(repo)
    assert list(secrets) == ["HF_TOKEN"] and "hf_secret_value" not in repr(secrets)
    runtime = api.get_space_runtime(repo)
    assert runtime.stage == "NO_APP_FILE"
    api.upload_file(path_or_fileobj=b"import gradio\n", path_in_repo="app.py", repo_id=repo, repo_type="space")
    info = api.space_info(repo)
    assert info.sdk == "gradio" and info.runtime.stage == "STOPPED" and "app.py" in {s.rfilename for s in info.siblings}
    api.delete_space_variable(repo, "MODEL_ID")
    api.delete_space_secret(repo, "HF_TOKEN")
    assert api.get_space_variables(repo) == {} and api.get_space_secrets(repo) == {}


def test_cli_token_create_prints_only_a_working_token(local_hub):
    out = subprocess.run(
        [sys.executable, "-m", "rag_de", "hub", "token", "create", "--data-dir", str(local_hub.data_dir),
         "--user", "student", "--role", "read", "--org", "uni"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    token = out.stdout.strip()
    assert token.startswith("hf_") and "\n" not in token
    me = HfApi(endpoint=local_hub.endpoint, token=token).whoami()
    assert me["name"] == "student" and me["auth"]["accessToken"]["role"] == "read"
    assert [o["name"] for o in me["orgs"]] == ["uni"]
    token_file = local_hub.data_dir / "token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    # Stored hashed: the database file never contains a token in clear.
    db = (local_hub.data_dir / "hub.sqlite3").read_bytes() + (local_hub.data_dir / "hub.sqlite3-wal").read_bytes()
    assert token.encode() not in db and local_hub.token.encode() not in db


class _SlowAfterHashing(io.BytesIO):
    """A file object whose reads become slow once the client has hashed it, so the upload is in flight long."""

    slow = False
    broken = False

    def read(self, size: int = -1) -> bytes:
        if self.broken:  # the client process "gives up": its retries cannot re-send the file
            raise OSError("upload aborted by the test")
        if self.slow:
            time.sleep(0.02)
            size = 256 * 1024 if size is None or size < 0 else min(size, 256 * 1024)
        return super().read(size)


@pytest.mark.timeout(120)
def test_sigkill_during_large_commit_keeps_previous_commit(tmp_path):
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = start_hub(data_dir, port)
    try:
        api = HfApi(endpoint=endpoint, token=(data_dir / "token").read_text().strip())
        repo = "org/crash"
        api.create_repo(repo)
        files = {"keep.txt": b"bleibt", "weights.bin": os.urandom(300_000)}
        for path, data in files.items():
            api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo)
        before = api.repo_info(repo).sha

        payload = _SlowAfterHashing(os.urandom(40 * 1024 * 1024))
        op = CommitOperationAdd("huge.bin", payload)
        payload.slow = True
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                api.create_commit(repo, [op, CommitOperationAdd("keep.txt", b"overwritten")],
                                  commit_message="never lands")
            except BaseException as e:  # noqa: BLE001 - expected: the server dies
                failure.append(e)

        uploader = threading.Thread(target=upload)
        uploader.start()
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until the big upload is streaming into the server
            partial = [p for p in (data_dir / "tmp").iterdir() if p.stat().st_size > 1024 * 1024]
            if partial:
                break
            time.sleep(0.02)
        assert partial, "the upload never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        payload.broken = True
        proc = start_hub(data_dir, port)
        uploader.join(60)
        assert failure, "the commit should have failed with the server killed"
        assert api.repo_info(repo).sha == before
        assert sorted(api.list_repo_files(repo)) == [".gitattributes", "keep.txt", "weights.bin"]
        snap = Path(snapshot_download(repo, cache_dir=tmp_path / "cache", token=api.token, endpoint=endpoint))
        got = _files(snap)
        got.pop(".gitattributes")
        assert got == files
        assert list((data_dir / "tmp").iterdir()) == []  # the half-written upload was swept at restart
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


_XET_SCRIPT = r"""
import hashlib, os, sys
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.utils._runtime import is_xet_available
repo, sha = sys.argv[1], sys.argv[2]
api = HfApi()
print("xet_available", is_xet_available())
# Downloads: the server never sends X-Xet-Hash, so the client uses plain HTTP even with Xet enabled.
path = hf_hub_download(repo, "w.bin")
print("download_ok", hashlib.sha256(open(path, "rb").read()).hexdigest() == sha)
data = os.urandom(3000)
api.upload_file(path_or_fileobj=data, path_in_repo="w2.bin", repo_id=repo)  # through Xet
info = api.get_paths_info(repo, ["w2.bin"])[0]
print("xet_upload", info.lfs is not None and info.lfs.sha256 == hashlib.sha256(data).hexdigest())
from local_hub.compat import prefer_lfs_uploads
print("compat", prefer_lfs_uploads())  # the explicit opt-out back to LFS still works
data = os.urandom(3000)
api.upload_file(path_or_fileobj=data, path_in_repo="w3.bin", repo_id=repo)
info = api.get_paths_info(repo, ["w3.bin"])[0]
print("compat_upload_lfs", info.lfs is not None and info.lfs.sha256 == hashlib.sha256(data).hexdigest())
"""


def test_xet_uploads_work_and_lfs_stays_an_opt_out(local_hub, api, tmp_path):
    """huggingface_hub 2.4 picks Xet for uploads on the client alone (hf_xet installed and
    HF_HUB_DISABLE_XET unset): the server takes them (local_hub/xet); downloads stay plain HTTP, as the
    server never sends X-Xet-Hash; `prefer_lfs_uploads()` remains an explicit opt-out to LFS."""
    repo = _name("xet")
    api.create_repo(repo)
    data = os.urandom(5000)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)  # HF_HUB_DISABLE_XET=1 here
    head = httpx.head(f"{local_hub.endpoint}/{repo}/resolve/main/w.bin")
    assert head.status_code == 200 and not any(h.lower().startswith("x-xet") for h in head.headers)
    assert "xet" not in httpx.get(f"{local_hub.endpoint}/api/models/{repo}/tree/main").text.lower()

    xet_files = local_hub.data_dir / "xet" / "files"
    n_xet_files = len(list(xet_files.glob("*.json")))
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"}
    env.update(HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", _XET_SCRIPT, repo, hashlib.sha256(data).hexdigest()],
                         env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    lines = [line for line in out.stdout.splitlines() if line.split(" ")[0] in
             ("xet_available", "download_ok", "xet_upload", "compat", "compat_upload_lfs")]
    xet_installed = "xet_available True" in lines
    assert xet_installed, "hf_xet (a default dependency of huggingface_hub) must be installed for this test"
    expected = ["download_ok True", "xet_upload True", "compat True", "compat_upload_lfs True"]
    assert [line for line in lines if not line.startswith("xet_available")] == expected, out.stdout + out.stderr
    # exactly one file (w2.bin) came through Xet; w3.bin went through LFS after the opt-out
    assert len(list(xet_files.glob("*.json"))) == n_xet_files + 1
