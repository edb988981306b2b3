"""A store outage through a real S3 server (issue 13, item 4): operations wait it out instead of failing the cell.

The S3 server (moto, in its own process) sits behind a loopback TCP proxy; "outage" closes the
proxy's listening socket and every open connection, so clients see connection refused/reset,
exactly as when an endpoint restarts.  The server keeps its data throughout.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import threading
import time
import uuid

import pytest

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import Cell, CellRef, Planner, Registry, Stage
from sparsepipe.pipeline.execute import execute_unit
from sparsepipe.pipeline.fingerprint import clear_cache as clear_fingerprint_cache
from sparsepipe.pipeline.runner import Runner
from sparsepipe.pipeline.store import CommitRecord, StoreError, StoreSpec


class PausableProxy:
    """Forwards 127.0.0.1:<port> to a target port; pause() refuses and drops connections until resume()."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def pause(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxied_s3(s3_env, monkeypatch):
    port = int(s3_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    proxy = PausableProxy(port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    yield proxy
    proxy.pause()


class _Outage(threading.Thread):
    """The proxy is down for `seconds` (or until end() is called)."""

    def __init__(self, proxy: PausableProxy, seconds: float):
        super().__init__(daemon=True)
        self.proxy, self.seconds, self.ended = proxy, seconds, threading.Event()
        proxy.pause()
        self.start()

    def run(self) -> None:
        self.ended.wait(self.seconds)
        self.proxy.resume()

    def end(self) -> None:
        self.ended.set()
        self.join()


def _outage(proxy: PausableProxy, seconds: float) -> _Outage:
    return _Outage(proxy, seconds)


def _record(key: str) -> CommitRecord:
    return CommitRecord(stage="demo", key=key, cell="", preimage={}, parents={}, started=1.0, finished=2.0)


def test_store_operations_wait_out_an_outage(proxied_s3, tmp_path):
    url = f"s3://sparsepipe-test/{uuid.uuid4().hex[:12]}"
    store = StoreSpec(url, retry_s=60).open()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("payload")
    key = "k" * 64

    outage = _outage(proxied_s3, 4.0)
    started = time.monotonic()
    manifest, won = store.commit(_record(key), tmp_path / "out", generation=0)  # starts while the store is down
    assert won and time.monotonic() - started >= 3.5
    outage.join()

    outage = _outage(proxied_s3, 3.0)
    found = store.lookup("demo", key)
    assert found is not None and found.digest == manifest.digest
    outage.join()
    assert (store.materialize(found, cache_root=tmp_path / "cache") / "a.txt").read_text() == "payload"


def test_outage_longer_than_the_budget_is_a_clear_store_error(proxied_s3, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries would outlast a short budget
    url = f"s3://sparsepipe-test/{uuid.uuid4().hex[:12]}"
    store = StoreSpec(url, retry_s=2).open()
    outage = _outage(proxied_s3, 20.0)
    started = time.monotonic()
    with pytest.raises(StoreError, match="after retrying for 2s"):
        store.lookup("demo", "k" * 64)
    assert time.monotonic() - started < 20
    outage.end()


STAGE_SOURCE = """
def run_source(ctx, params):
    (ctx.out_dir / "value.txt").write_text("42")

def run_double(ctx, params):
    (ctx.out_dir / "double.txt").write_text((ctx.input("source") / "value.txt").read_text() * 2)
"""


def test_a_cell_that_starts_during_a_10s_outage_still_commits(proxied_s3, tmp_path, monkeypatch):
    """The issue's case: a cell (its downstream one, which reads an input) starts while S3 is down for 10 s."""
    (tmp_path / "outage_demo.py").write_text(textwrap.dedent(STAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPARSEPIPE_CACHE", str(tmp_path / "cache"))
    sys.modules.pop("outage_demo", None)
    clear_fingerprint_cache()
    source = Stage(
        name="source", version="1", deps=(), cells=lambda c, u: [Cell("source", "", {})], run="outage_demo:run_source"
    )
    double = Stage(
        name="double",
        version="1",
        deps=("source",),
        cells=lambda c, u: [Cell("double", "", {}, {"source": CellRef("source")})],
        run="outage_demo:run_double",
    )
    registry = Registry([source, double])
    config = resolve_config("smoke", environ={})
    spec = StoreSpec(f"s3://sparsepipe-test/{uuid.uuid4().hex[:12]}", retry_s=60)
    store = spec.open()
    planner = Planner(registry, store)
    cells = registry.list_cells(config, registry.order)
    committed = {}
    plan = planner.plan_cell(cells["source"][0], committed, set(), set())
    raw, path, _ = execute_unit(spec, Runner(registry, store, config)._request(plan, committed, False))
    committed[CellRef("source")] = store.lookup("source", plan.key)
    plan = planner.plan_cell(cells["double"][0], committed, set(), set())
    request = Runner(registry, store, config)._request(plan, committed, False)

    outage = _outage(proxied_s3, 10.0)
    started = time.monotonic()
    raw, path, won = execute_unit(spec, request)  # opens the store, checks and fetches its input, commits
    assert won and time.monotonic() - started >= 9.0
    outage.join()
    sys.modules.pop("outage_demo", None)
    clear_fingerprint_cache()
    assert store.lookup("double", plan.key) is not None
