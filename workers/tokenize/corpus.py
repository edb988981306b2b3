"""Finding the documents of a corpus: Python files, folders, globs, .jsonl and .parquet tables.

The default corpus is the `.py` files of the running interpreter's standard
library (real Python code, on every machine, no network), the same in every
environment of one Python build; `site_packages=True` adds the environment's
site-packages, which differ between environments. `idioms.py` adds generated
simple-idiom programs.

`corpus_record` is the corpus.json the tokenize artifact keeps as a record: the
digest of the real documents used and the environment they were read in.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import fsspec
import pyarrow.parquet as pq

TABLE_SUFFIXES = (".jsonl", ".parquet")
_THIRD_PARTY_DIRS = {"site-packages", "dist-packages"}


class CorpusError(ValueError):
    """The corpus cannot be read or holds no usable document."""


@dataclass(frozen=True)
class Document:
    source: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass
class CorpusStats:
    searched: list[str] = field(default_factory=list)
    files: int = 0
    skipped_binary: int = 0
    skipped_non_utf8: int = 0
    skipped_empty: int = 0

    @property
    def skipped_files(self) -> int:
        return self.skipped_binary + self.skipped_non_utf8 + self.skipped_empty


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files() -> Iterator[str]:
    root = stdlib_root()
    for path in sorted(root.rglob("*.py")):
        if _THIRD_PARTY_DIRS.isdisjoint(path.relative_to(root).parts):
            yield str(path)


def _decode(raw: bytes, stats: CorpusStats) -> str | None:
    if not raw.strip():
        stats.skipped_empty += 1
        return None
    if b"\x00" in raw:
        stats.skipped_binary += 1
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        stats.skipped_non_utf8 += 1
        return None


def _expand(spec: str) -> list[str]:
    """A folder (all .py files below it), a glob, or a single file; local or remote."""
    fs, _, paths = fsspec.get_fs_token_paths(spec)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    found: list[str] = []
    for path in paths:
        if fs.isdir(path):
            found.extend(prefix + p for p in sorted(fs.find(path)) if p.endswith(".py") or p.endswith(TABLE_SUFFIXES))
        elif fs.exists(path):
            found.append(prefix + path)
    return found


def _table_texts(path: str, column: str) -> Iterator[str | None]:
    if path.endswith(".jsonl"):
        with fsspec.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CorpusError(f"{path}:{number} is not valid JSON ({error})") from None
                if column not in record:
                    raise CorpusError(f"{path}:{number} has no {column!r} field; set tokenize.corpus.text_column")
                yield record[column]
    else:
        with fsspec.open(path, "rb") as handle:
            table = pq.read_table(handle)
        if column not in table.column_names:
            raise CorpusError(
                f"{path} has no column {column!r} (columns: {table.column_names}); set tokenize.corpus.text_column"
            )
        yield from table.column(column).to_pylist()


def site_packages_roots() -> list[Path]:
    """The running environment's site-packages folders (a venv's own, when run from one)."""
    paths = sysconfig.get_paths()
    return sorted({Path(paths[key]) for key in ("purelib", "platlib") if Path(paths[key]).is_dir()})


def _site_packages_files() -> Iterator[str]:
    seen: set[Path] = set()
    for root in site_packages_roots():
        for path in sorted(root.rglob("*.py")):
            if path not in seen and path.is_file():
                seen.add(path)
                yield str(path)


def corpus_files(paths: list[str], site_packages: bool = False) -> list[str]:
    if paths:
        return [f for spec in paths for f in _expand(spec)]
    return list(_stdlib_files()) + (list(_site_packages_files()) if site_packages else [])


def corpus_fingerprint(paths: list[str], files: list[str] | None = None) -> str:
    """A cheap identity of the corpus (names, sizes, modification times or ETags): part of the tokenize key.

    `files`: the result of `corpus_files(paths)` when the caller already listed them (the listing
    walks all of site-packages by default, seconds).
    """
    digest = hashlib.sha256()
    for path in corpus_files(paths) if files is None else files:
        if "://" not in path:  # local: os.stat is ~10x cheaper than fsspec's info over 18k site-packages files
            info = os.stat(path)
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime}\n".encode())
            continue
        fs, _, (local,) = fsspec.get_fs_token_paths(path)
        info = fs.info(local)
        stamp = info.get("mtime") or info.get("ETag") or info.get("LastModified") or ""
        digest.update(f"{path}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()


def iter_documents(
    paths: list[str], text_column: str, stats: CorpusStats, site_packages: bool = False
) -> Iterator[Document]:
    stats.searched = list(paths) or [f"{stdlib_root()}/**/*.py (the standard library)"] + [
        f"{root}/**/*.py" for root in (site_packages_roots() if site_packages else [])
    ]
    for path in corpus_files(paths, site_packages):
        stats.files += 1
        if path.endswith(TABLE_SUFFIXES):
            for number, text in enumerate(_table_texts(path, text_column)):
                if isinstance(text, str) and text.strip():
                    yield Document(f"{path}#{number}", text)
                else:
                    stats.skipped_empty += 1
            continue
        with fsspec.open(path, "rb") as handle:
            raw = handle.read()
        text = _decode(raw, stats)
        if text is not None:
            yield Document(path, text)


def load_documents(
    paths: list[str], text_column: str = "text", max_documents: int | None = None, site_packages: bool = False
) -> tuple[list[Document], CorpusStats, int]:
    """Unique documents in a deterministic order, the scan statistics, and the number of duplicates dropped."""
    stats = CorpusStats()
    seen: set[str] = set()
    documents: list[Document] = []
    duplicates = 0
    for document in iter_documents(paths, text_column, stats, site_packages):
        digest = document.digest
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        documents.append(document)
        if max_documents is not None and len(documents) >= max_documents:
            break
    if not documents:
        raise CorpusError(
            f"the corpus is empty: searched {', '.join(stats.searched)}; {stats.files} files found, "
            f"{stats.skipped_binary} binary, {stats.skipped_non_utf8} not UTF-8, {stats.skipped_empty} empty. "
            "Point tokenize.corpus.paths at folders or files of Python code."
        )
    return documents, stats, duplicates


def corpus_digest(documents: list[Document]) -> str:
    """sha256 over the sorted content digests of `documents`: equal for the same texts, whatever their paths."""
    return hashlib.sha256("\n".join(sorted(d.digest for d in documents)).encode()).hexdigest()


def corpus_record(documents: list[Document], stats: CorpusStats | None) -> dict[str, Any]:
    """What corpus.json records: the real documents' digest, count and bytes, and where they were read."""
    return {
        "digest": corpus_digest(documents),
        "documents": len(documents),
        "bytes": sum(len(d.text.encode("utf-8")) for d in documents),
        "searched": stats.searched if stats else [],
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "platform": platform.platform(),
        },
    }
