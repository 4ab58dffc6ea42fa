"""The rest of the fsspec surface, side by side with fsspec's reference filesystems.

Every operation runs on koofrfs (against the emulator) and on ``LocalFileSystem`` over the same
small tree, and must give the same result or raise the same standard exception. Where the
local filesystem departs from fsspec's general behaviour (its ``rm`` refuses any folder without
``recursive``, even an empty one, with ``ValueError``, and its recursive ``rm`` of a glob that
matches a folder and its contents trips over what it already deleted), ``MemoryFileSystem`` is
the reference instead, as noted per case. Listing order is not part of the contract (local disk
lists in directory order), so listings are compared sorted. fsspec's own abstract suite
(``test_fsspec_abstract.py``) covers get, put, copy, open and pipe in more depth.
"""

from __future__ import annotations

import errno
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem

from koofr_emulator import KoofrEmulator

STANDARD = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

Op = Callable[[AbstractFileSystem, str], Any]


def _write(fs: AbstractFileSystem, path: str, data: bytes, mode: str = "wb") -> bytes:
    with fs.open(path, mode) as f:
        f.write(data)
    return bytes(fs.cat_file(path))


def _seeks(fs: AbstractFileSystem, r: str) -> list[Any]:
    with fs.open(f"{r}/a.txt", "rb") as f:
        out = [f.read(2), f.seek(3), f.read(2), f.tell(), f.seek(-2, 2), f.read()]
        out += [f.seek(2, 1), f.read(), f.seek(100), f.read(), f.seek(0), f.read(3)]
    return out


def _closed_read(fs: AbstractFileSystem, r: str) -> bytes:
    f = fs.open(f"{r}/a.txt", "rb")
    f.close()
    return bytes(f.read())


def _walk(fs: AbstractFileSystem, r: str, **kw: Any) -> list[Any]:
    return [(p, sorted(d), sorted(f)) for p, d, f in fs.walk(r, **kw)]


#: name -> (operation, reference). The tree: a.txt, b.bin, dir.txt, dir/c.txt,
#: dir/sub/d.txt, empty/ (a folder and a file share the prefix "dir").
CASES: dict[str, tuple[Op, str]] = {
    "ls folder": (lambda fs, r: sorted(fs.ls(f"{r}/dir", detail=False)), "local"),
    "ls folder/": (lambda fs, r: sorted(fs.ls(f"{r}/dir/", detail=False)), "local"),
    "ls file": (lambda fs, r: fs.ls(f"{r}/a.txt", detail=False), "local"),
    "ls missing": (lambda fs, r: fs.ls(f"{r}/nope"), "local"),
    "info file": (lambda fs, r: [fs.info(f"{r}/a.txt")[k] for k in ("type", "size")], "local"),
    "info folder/": (lambda fs, r: fs.info(f"{r}/dir/")["type"], "local"),
    "info missing": (lambda fs, r: fs.info(f"{r}/nope"), "local"),
    "find": (lambda fs, r: fs.find(r), "local"),
    "find withdirs": (lambda fs, r: fs.find(r, withdirs=True), "local"),
    "find maxdepth": (lambda fs, r: fs.find(r, maxdepth=1), "local"),
    "find detail": (lambda fs, r: sorted(fs.find(r, detail=True)), "local"),
    "find file": (lambda fs, r: fs.find(f"{r}/a.txt"), "local"),
    "find missing": (lambda fs, r: fs.find(f"{r}/nope"), "local"),
    "glob *": (lambda fs, r: fs.glob(f"{r}/*"), "local"),
    "glob **": (lambda fs, r: fs.glob(f"{r}/**"), "local"),
    "glob **/*.txt": (lambda fs, r: fs.glob(f"{r}/**/*.txt"), "local"),
    "glob ?": (lambda fs, r: fs.glob(f"{r}/?.txt"), "local"),
    "glob [..]": (lambda fs, r: fs.glob(f"{r}/[ab].*"), "local"),
    "glob prefix": (lambda fs, r: fs.glob(f"{r}/dir*"), "local"),
    "glob maxdepth": (lambda fs, r: fs.glob(f"{r}/**", maxdepth=2), "local"),
    "glob detail": (lambda fs, r: sorted(fs.glob(f"{r}/*.txt", detail=True)), "local"),
    "glob nothing": (lambda fs, r: fs.glob(f"{r}/zz*"), "local"),
    "walk": (lambda fs, r: _walk(fs, r), "local"),
    "walk maxdepth": (lambda fs, r: _walk(fs, r, maxdepth=1), "local"),
    "walk bottom-up": (lambda fs, r: _walk(fs, r, topdown=False), "local"),
    "du": (lambda fs, r: fs.du(r), "local"),
    "du per file": (lambda fs, r: fs.du(r, total=False), "local"),
    "du file": (lambda fs, r: fs.du(f"{r}/a.txt"), "local"),
    "exists": (
        lambda fs, r: [fs.exists(f"{r}/{p}") for p in ("a.txt", "dir", "dir/", "nope")],
        "local",
    ),
    "isdir isfile": (
        lambda fs, r: [
            (fs.isdir(f"{r}/{p}"), fs.isfile(f"{r}/{p}")) for p in ("a.txt", "dir", "x")
        ],
        "local",
    ),
    "cat glob": (lambda fs, r: fs.cat(f"{r}/*.txt"), "local"),
    "cat list": (lambda fs, r: fs.cat([f"{r}/a.txt", f"{r}/b.bin"]), "local"),
    "cat ranges": (
        lambda fs, r: [
            fs.cat_file(f"{r}/a.txt", 2, 5),
            fs.cat_file(f"{r}/a.txt", -5),
            fs.cat_file(f"{r}/a.txt", 3, 100),
            fs.cat_file(f"{r}/a.txt", 20, 30),
            fs.cat_ranges([f"{r}/a.txt", f"{r}/b.bin"], [0, 5], [2, 8]),
        ],
        "local",
    ),
    "cat folder": (lambda fs, r: fs.cat_file(f"{r}/dir"), "local"),
    "cat missing": (lambda fs, r: fs.cat_file(f"{r}/nope"), "local"),
    "head tail": (lambda fs, r: [fs.head(f"{r}/a.txt", 3), fs.tail(f"{r}/a.txt", 3)], "local"),
    "size sizes": (
        lambda fs, r: [fs.size(f"{r}/a.txt"), fs.sizes([f"{r}/a.txt", f"{r}/b.bin"])],
        "local",
    ),
    "pipe dict": (
        lambda fs, r: [fs.pipe({f"{r}/p/1": b"1", f"{r}/p/2": b"2"}), fs.find(f"{r}/p")],
        "local",
    ),
    "pipe_file under a file": (lambda fs, r: fs.pipe_file(f"{r}/a.txt/x", b"x"), "local"),
    "makedirs existing": (lambda fs, r: fs.makedirs(f"{r}/dir"), "local"),
    "makedirs over a file": (lambda fs, r: fs.makedirs(f"{r}/a.txt", exist_ok=True), "local"),
    "makedirs under a file": (lambda fs, r: fs.makedirs(f"{r}/a.txt/x", exist_ok=True), "local"),
    "mkdir existing": (lambda fs, r: fs.mkdir(f"{r}/dir"), "local"),
    "mkdir without parent": (lambda fs, r: fs.mkdir(f"{r}/q/w", create_parents=False), "local"),
    "rm file": (lambda fs, r: [fs.rm(f"{r}/a.txt"), fs.exists(f"{r}/a.txt")], "local"),
    "rm empty folder": (lambda fs, r: [fs.rm(f"{r}/empty"), fs.exists(f"{r}/empty")], "memory"),
    "rm folder": (lambda fs, r: fs.rm(f"{r}/dir"), "memory"),
    "rm recursive": (
        lambda fs, r: [fs.rm(f"{r}/dir", recursive=True), fs.find(r, withdirs=True)],
        "local",
    ),
    "rm glob": (lambda fs, r: [fs.rm(f"{r}/*.txt"), sorted(fs.ls(r, detail=False))], "memory"),
    "rm glob recursive": (
        lambda fs, r: [fs.rm(f"{r}/d*", recursive=True), fs.find(r, withdirs=True)],
        "memory",
    ),
    "rm list": (
        lambda fs, r: [fs.rm([f"{r}/a.txt", f"{r}/b.bin"]), sorted(fs.ls(r, detail=False))],
        "local",
    ),
    "rm missing": (lambda fs, r: fs.rm(f"{r}/nope"), "local"),
    "rm_file folder": (lambda fs, r: fs.rm_file(f"{r}/dir"), "local"),
    "rmdir non-empty": (lambda fs, r: fs.rmdir(f"{r}/dir"), "local"),
    "rmdir file": (lambda fs, r: fs.rmdir(f"{r}/a.txt"), "local"),
    "rmdir missing": (lambda fs, r: fs.rmdir(f"{r}/nope"), "local"),
    "cp_file": (
        lambda fs, r: [fs.cp_file(f"{r}/a.txt", f"{r}/dir/a2"), fs.cat_file(f"{r}/dir/a2")],
        "local",
    ),
    "cp_file new parents": (
        lambda fs, r: [fs.cp_file(f"{r}/a.txt", f"{r}/n/x/a"), fs.cat_file(f"{r}/n/x/a")],
        "local",
    ),
    "cp_file onto a folder": (lambda fs, r: fs.cp_file(f"{r}/a.txt", f"{r}/dir"), "local"),
    "cp_file missing": (lambda fs, r: fs.cp_file(f"{r}/nope", f"{r}/x"), "local"),
    "copy file into folder": (
        lambda fs, r: [fs.copy(f"{r}/a.txt", f"{r}/dir"), sorted(fs.ls(f"{r}/dir", detail=False))],
        "local",
    ),
    "copy folder to new": (
        lambda fs, r: [fs.copy(f"{r}/dir", f"{r}/d2", recursive=True), fs.find(f"{r}/d2")],
        "local",
    ),
    "copy folder into existing": (
        lambda fs, r: [fs.copy(f"{r}/dir", f"{r}/empty", recursive=True), fs.find(f"{r}/empty")],
        "local",
    ),
    "copy folder/ into existing": (
        lambda fs, r: [fs.copy(f"{r}/dir/", f"{r}/empty", recursive=True), fs.find(f"{r}/empty")],
        "local",
    ),
    "copy folder not recursive": (
        lambda fs, r: [fs.copy(f"{r}/dir", f"{r}/d3"), fs.exists(f"{r}/d3")],
        "local",
    ),
    "mv file": (
        lambda fs, r: [fs.mv(f"{r}/a.txt", f"{r}/z"), fs.exists(f"{r}/a.txt"), fs.cat(f"{r}/z")],
        "local",
    ),
    "mv file into folder": (
        lambda fs, r: [fs.mv(f"{r}/a.txt", f"{r}/dir"), sorted(fs.ls(f"{r}/dir", detail=False))],
        "local",
    ),
    "mv file onto file": (
        lambda fs, r: [fs.mv(f"{r}/a.txt", f"{r}/b.bin"), fs.cat_file(f"{r}/b.bin")],
        "local",
    ),
    "mv folder to new": (
        lambda fs, r: [fs.mv(f"{r}/dir", f"{r}/m", recursive=True), fs.find(r, withdirs=True)],
        "local",
    ),
    "mv folder into existing": (
        lambda fs, r: [fs.mv(f"{r}/dir", f"{r}/empty", recursive=True), fs.find(r)],
        "local",
    ),
    "mv missing": (lambda fs, r: fs.mv(f"{r}/nope", f"{r}/x"), "local"),
    "open seek read tell": (_seeks, "local"),
    "open lines": (
        lambda fs, r: [fs.pipe_file(f"{r}/l", b"1\n22\n333") and None, list(fs.open(f"{r}/l"))],
        "local",
    ),
    "open text": (
        lambda fs, r: [fs.write_text(f"{r}/t", "héllo"), fs.read_text(f"{r}/t")],
        "local",
    ),
    "open missing": (lambda fs, r: fs.open(f"{r}/nope", "rb"), "local"),
    "open folder": (lambda fs, r: fs.open(f"{r}/dir", "rb"), "local"),
    "open xb existing": (lambda fs, r: fs.open(f"{r}/a.txt", "xb"), "local"),
    "open ab existing": (lambda fs, r: _write(fs, f"{r}/a.txt", b"!", "ab"), "local"),
    "open ab new": (lambda fs, r: _write(fs, f"{r}/new", b"new", "ab"), "local"),
    "open wb new parents": (lambda fs, r: _write(fs, f"{r}/np/q/n", b"x"), "local"),
    "open wb on a folder": (lambda fs, r: _write(fs, f"{r}/dir", b"x"), "local"),
    "open wb under a file": (lambda fs, r: _write(fs, f"{r}/a.txt/x", b"x"), "local"),
    "read after close": (_closed_read, "local"),
    "touch": (
        lambda fs, r: [
            fs.touch(f"{r}/n"),
            fs.cat(f"{r}/n"),
            fs.touch(f"{r}/a.txt"),
            fs.cat(f"{r}/a.txt"),
        ],
        "local",
    ),
    "expand_path": (lambda fs, r: fs.expand_path(f"{r}/dir", recursive=True), "local"),
}


def _tree(fs: AbstractFileSystem, r: str) -> None:
    fs.makedirs(f"{r}/dir/sub", exist_ok=True)
    fs.makedirs(f"{r}/empty", exist_ok=True)
    for path, data in {
        "a.txt": b"hello world",
        "b.bin": b"0123456789",
        "dir.txt": b"prefix",
        "dir/c.txt": b"c",
        "dir/sub/d.txt": b"dd",
    }.items():
        fs.pipe_file(f"{r}/{path}", data)


def _outcome(fs: AbstractFileSystem, r: str, op: Op) -> Any:
    """The result with ``r`` taken out of every path, or the standard exception raised."""
    try:
        value = op(fs, r)
    except STANDARD as exc:
        return next(c.__name__ for c in STANDARD if isinstance(exc, c))
    except OSError as exc:
        return f"OSError({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    except ValueError:
        return "ValueError"
    return _relative(value, r)


def _relative(value: Any, r: str) -> Any:
    if isinstance(value, str):
        if value == r:
            return "<root>"
        return value[len(r) + 1 :] if value.startswith(r + "/") else value
    if isinstance(value, dict):
        return {_relative(k, r): _relative(v, r) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_relative(v, r) for v in value]
    return value


@pytest.fixture(scope="module")
def koofr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AbstractFileSystem]:
    with KoofrEmulator(tmp_path_factory.mktemp("surface")) as emu:
        yield fsspec.filesystem("koofr", **emu.storage_options(), skip_instance_cache=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_as_the_reference_filesystem(
    name: str, koofr: AbstractFileSystem, tmp_path: Path
) -> None:
    op, reference = CASES[name]
    if reference == "local":
        ref: AbstractFileSystem = LocalFileSystem(auto_mkdir=True)
        ref_root = str(tmp_path / "ref")
    else:
        ref = MemoryFileSystem(skip_instance_cache=True)
        ref_root = f"/ref-{uuid.uuid4().hex}"
    k_root = f"surface-{uuid.uuid4().hex[:10]}"
    _tree(ref, ref_root)
    _tree(koofr, k_root)
    assert _outcome(koofr, k_root, op) == _outcome(ref, ref_root, op)


def _local_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("source", "target", "recursive"),
    [
        ("dir", "new", True),  # fs.get("Photos", "/tmp/new-dir", recursive=True)
        ("dir/", "new", True),
        ("a.txt", "new/", False),
        ("*.txt", "new", False),
        ("dir/**", "new", False),
        (["a.txt", "dir/c.txt"], "new", False),
    ],
)
def test_get_into_a_new_local_folder(
    koofr: AbstractFileSystem, tmp_path: Path, source: Any, target: str, recursive: bool
) -> None:
    """``get`` creates the local target folders, like every fsspec filesystem."""
    k_root = f"get-{uuid.uuid4().hex[:10]}"
    _tree(koofr, k_root)
    ref = MemoryFileSystem(skip_instance_cache=True)
    ref_root = f"/ref-{uuid.uuid4().hex}"
    _tree(ref, ref_root)

    def src(root: str) -> Any:
        return [f"{root}/{s}" for s in source] if isinstance(source, list) else f"{root}/{source}"

    koofr.get(src(k_root), str(tmp_path / "k" / target), recursive=recursive)
    ref.get(src(ref_root), str(tmp_path / "m" / target), recursive=recursive)
    assert _local_files(tmp_path / "k") == _local_files(tmp_path / "m") != []
    for rel in _local_files(tmp_path / "k"):
        assert (tmp_path / "k" / rel).read_bytes() == (tmp_path / "m" / rel).read_bytes()


def test_get_file_into_a_file_object(koofr: AbstractFileSystem) -> None:
    k_root = f"fo-{uuid.uuid4().hex[:10]}"
    _tree(koofr, k_root)
    buf = io.BytesIO()
    koofr.get_file(f"{k_root}/a.txt", buf)
    assert buf.getvalue() == b"hello world"
    assert not os.path.exists(f"{k_root}/a.txt")  # nothing written locally under that name
