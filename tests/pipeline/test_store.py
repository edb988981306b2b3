"""The artifact protocol against a local folder and a real S3-protocol server."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from sparsepipe.pipeline.store import CommitRecord, StoreError, StoreSpec


def _record(key: str = "k" * 64, stage: str = "demo") -> CommitRecord:
    return CommitRecord(
        stage=stage,
        key=key,
        cell="",
        preimage={"stage": stage},
        parents={},
        metrics={"value": 1},
        started=1.0,
        finished=2.0,
    )


def _data(folder: Path, text: str = "hello") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(text)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01" * 1000)
    return folder


def test_commit_then_lookup_hits(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    assert store.lookup("demo", "k" * 64) is None
    manifest, won = store.commit(_record(), _data(tmp_path / "out"), generation=0)
    assert won
    found = store.lookup("demo", "k" * 64)
    assert found is not None and found.digest == manifest.digest
    assert set(found.files) == {"a.txt", "sub/b.bin"}
    assert found.files["sub/b.bin"]["size"] == 2000
    assert found.metrics == {"value": 1}
    assert found.data["provenance"]["host"]
    local = store.materialize(found, cache_root=tmp_path / "cache")
    assert (local / "a.txt").read_text() == "hello"


def test_the_cache_keeps_no_partial_copy_after_a_lost_race_or_a_bad_download(s3_url, tmp_path, monkeypatch):
    store = StoreSpec(s3_url).open()
    store.commit(_record(), _data(tmp_path / "out"), generation=0)
    found = store.lookup("demo", "k" * 64)
    cache = tmp_path / "cache"
    first = store.materialize(found, cache_root=cache)
    (first / ".complete").unlink()  # as if another process were still fetching: this one fetches too and loses
    assert store.materialize(found, cache_root=cache) == first
    assert sorted(path.name for path in cache.iterdir()) == [found.digest]

    shutil.rmtree(first)
    monkeypatch.setattr("sparsepipe.pipeline.store.sha256_file", lambda path: "0" * 64)
    with pytest.raises(StoreError, match="does not match its manifest"):
        store.materialize(found, cache_root=cache)
    assert list(cache.iterdir()) == []


def test_racing_writers_give_exactly_one_commit(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    results = []
    barrier = threading.Barrier(4)

    def write(number: int) -> None:
        folder = _data(tmp_path / f"w{number}", text=f"writer {number}")
        barrier.wait()
        results.append(StoreSpec(store_url).open().commit(_record(), folder, generation=0))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(won for _, won in results) == 1
    assert len({manifest.digest for manifest, _ in results}) == 1  # losers adopt the winner's artifact
    committed = store.lookup("demo", "k" * 64)
    winner_text = (store.materialize(committed, cache_root=tmp_path / "c") / "a.txt").read_text()
    assert winner_text.startswith("writer ")
    assert len(store.garbage()) == 3  # the losers' attempts are invisible garbage


def test_crash_between_data_and_manifest_leaves_nothing_visible(store_url, tmp_path, monkeypatch):
    store = StoreSpec(store_url).open()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before the manifest")

    monkeypatch.setattr(store, "create_exclusive", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit(_record(), _data(tmp_path / "out"), generation=0)
    monkeypatch.undo()
    assert store.lookup("demo", "k" * 64) is None
    assert list(store.iter_manifests()) == []
    orphans = store.garbage()
    assert len(orphans) == 1
    store.remove(orphans[0])
    assert store.garbage() == []


def test_force_commits_a_new_generation_and_keeps_the_old(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    first, _ = store.commit(_record(), _data(tmp_path / "one", "one"), generation=0)
    assert store.next_generation("demo", "k" * 64) == 1
    second, won = store.commit(_record(), _data(tmp_path / "two", "two"), generation=1)
    assert won and second.generation == 1 and second.digest != first.digest
    assert store.lookup("demo", "k" * 64).digest == second.digest
    assert len(list(store.iter_manifests())) == 2


def test_verify_detects_a_corrupted_file(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    manifest, _ = store.commit(_record(), _data(tmp_path / "out"), generation=0)
    assert store.verify(manifest) == []
    damaged = f"{store.artifact_dir('demo', 'k' * 64)}/attempts/{manifest.attempt}/a.txt"
    with store.fs.open(damaged, "wb") as handle:
        handle.write(b"tampered")
    problems = store.verify(manifest)
    assert len(problems) == 1 and problems[0].startswith("a.txt")


def test_progress_area_round_trip(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    area = store.progress_area("demo", "k" * 64, 0)
    source = tmp_path / "state.bin"
    source.write_bytes(b"step 1")
    area.put("ckpt/state.bin", source)
    source.write_bytes(b"step 2")
    area.put("ckpt/state.bin", source)
    assert area.exists("ckpt/state.bin") and area.list() == ["ckpt/state.bin"]
    target = tmp_path / "back.bin"
    assert area.get("ckpt/state.bin", target) and target.read_bytes() == b"step 2"
    assert not area.get("missing", tmp_path / "none")


def test_unreachable_s3_store_is_a_clear_error(monkeypatch):
    from sparsepipe.pipeline.store import StoreError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreError, match="cannot reach the store"):
        StoreSpec("s3://nowhere/prefix", endpoint_url="http://127.0.0.1:9", retry_s=1).open()
