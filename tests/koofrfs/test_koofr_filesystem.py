"""KoofrFileSystem against the emulator: the fsspec surface a user of any filesystem expects."""

from __future__ import annotations

import hashlib
import os
import pickle
import unicodedata
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest

from koofr_emulator import KoofrEmulator
from koofrfs.errors import InvalidName, KoofrAuthError, KoofrMountError
from koofrfs.filesystem import KoofrFileSystem

MTIME = 1614834367123


def test_fsspec_entry_and_root(kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator) -> None:
    assert fsspec.get_filesystem_class("koofr") is KoofrFileSystem
    assert kfs.mount_id == koofr_emulator.mount_id
    root = kfs.info("/")
    assert root["name"] == "" and root["type"] == "directory"
    assert kfs.ls("") == [] and kfs.ls("koofr://", detail=False) == []
    with pytest.raises(FileNotFoundError):
        kfs.info("missing.txt")
    with pytest.raises(FileNotFoundError):
        kfs.ls("missing")
    assert not kfs.exists("missing") and kfs.exists("")


def test_pipe_ls_info_cat(kfs: KoofrFileSystem) -> None:
    data = os.urandom(100_000)
    kfs.pipe_file("/Photos/2024/a.jpg", data, modified=MTIME)
    entries = kfs.ls("koofr://Photos/2024")
    assert [e["name"] for e in entries] == ["Photos/2024/a.jpg"]
    info = kfs.info("Photos/2024/a.jpg")
    assert info["size"] == len(data) and info["type"] == "file"
    assert info["modified"] == MTIME and info["mtime"] == MTIME / 1000
    assert info["md5"] == hashlib.md5(data).hexdigest()
    assert info["content_type"] == "image/jpeg"
    assert kfs.ls("Photos")[0] == kfs.info("Photos/2024", refresh=True)
    assert kfs.modified("Photos/2024/a.jpg").timestamp() == MTIME / 1000
    assert kfs.cat_file("Photos/2024/a.jpg") == data
    assert kfs.cat_file("Photos/2024/a.jpg", 10, 20) == data[10:20]
    assert kfs.cat_file("Photos/2024/a.jpg", -5) == data[-5:]
    assert kfs.cat_file("Photos/2024/a.jpg", 5, -5) == data[5:-5]
    assert kfs.cat_file("Photos/2024/a.jpg", len(data) + 10) == b""
    assert kfs.cat_file("Photos/2024/a.jpg", 7, 7) == b""
    with pytest.raises(IsADirectoryError):
        kfs.cat_file("Photos")


def test_cat_file_is_one_ranged_get(kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator) -> None:
    kfs.pipe_file("f.bin", bytes(range(256)) * 100)
    koofr_emulator.reset_counters()
    assert kfs.cat_file("f.bin", 300, 310) == (bytes(range(256)) * 2)[300:310]
    assert koofr_emulator.counters["files/get"] == 1 and koofr_emulator.counters["total"] == 1


def test_open_read_seek_readahead(
    make_kfs: Callable[..., KoofrFileSystem], kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator
) -> None:
    data = os.urandom(3 * 2**20 + 17)
    kfs.pipe_file("r/big.bin", data)
    fs = make_kfs(readahead=2**20)
    koofr_emulator.reset_counters()
    with fs.open("r/big.bin", "rb") as f:
        assert f.seekable() and f.size == len(data)
        assert f.read(10) == data[:10]
        assert f.read(100) == data[10:110]  # served by the readahead buffer
        gets = koofr_emulator.counters["files/get"]
        assert gets == 1
        f.seek(-17, 2)
        assert f.read() == data[-17:]
        f.seek(2**20 + 5)
        assert f.read(2**20) == data[2**20 + 5 : 2**21 + 5]
        assert f.tell() == 2**21 + 5
    with fs.open("r/big.bin", "rb") as f:
        assert f.read() == data
    with kfs.open("r/big.bin", "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == kfs.info("r/big.bin")["md5"]
    with kfs.open("r/big.bin", "rt", encoding="latin-1") as t:
        assert len(t.read(5)) == 5


def test_put_and_get_file_keep_mtime(kfs: KoofrFileSystem, tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_bytes(b"content")
    os.utime(local, ns=(MTIME * 1_000_000 + 456_789, MTIME * 1_000_000 + 456_789))
    kfs.put_file(str(local), "up/a.txt")
    assert kfs.info("up/a.txt")["modified"] == MTIME  # truncated to ms, like rclone
    kfs.put_file(str(local), "up/b.txt", modified=1_000)
    assert kfs.info("up/b.txt")["modified"] == 1_000
    out = tmp_path / "out.txt"
    kfs.get_file("up/a.txt", str(out))
    assert out.read_bytes() == b"content"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.bin").write_bytes(b"x" * 10)
    kfs.put(str(tree), "up/tree", recursive=True)
    assert kfs.cat_file("up/tree/sub/x.bin") == b"x" * 10
    kfs.get("up/tree", str(tmp_path / "back"), recursive=True)
    assert (tmp_path / "back" / "sub" / "x.bin").read_bytes() == b"x" * 10


def test_upload_fileobj(kfs: KoofrFileSystem, tmp_path: Path) -> None:
    import io

    info = kfs.upload_fileobj("o/seek.bin", io.BytesIO(b"abc" * 1000), modified_ms=MTIME)
    assert info["size"] == 3000 and info["modified"] == MTIME

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 5 * 2**20

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left, 65536)
            b[:n] = b"p" * n
            self.left -= n
            return n

    info = kfs.upload_fileobj("o/pipe.bin", Pipe(), modified_ms=MTIME)
    assert info["size"] == 5 * 2**20 and kfs.info("o/pipe.bin")["modified"] == MTIME


def test_open_write_small_and_large(kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator) -> None:
    with kfs.open("w/small.txt", "wb", modified=MTIME) as f:
        f.write(b"tiny")
    assert kfs.cat_file("w/small.txt") == b"tiny"
    assert kfs.info("w/small.txt")["modified"] == MTIME
    data = os.urandom(9 * 2**20 + 3)
    koofr_emulator.reset_counters()
    with kfs.open("w/large.bin", "wb", modified=MTIME) as f:
        for i in range(0, len(data), 300_000):
            f.write(data[i : i + 300_000])
    assert koofr_emulator.counters["files/put"] == 1  # one streamed request
    info = kfs.info("w/large.bin")
    assert info["md5"] == hashlib.md5(data).hexdigest() and info["modified"] == MTIME
    with kfs.open("w/text.txt", "w") as t:
        t.write("héllo")
    assert kfs.cat_file("w/text.txt") == "héllo".encode()
    with pytest.raises(FileExistsError):
        kfs.open("w/text.txt", "xb")
    with kfs.open("w/text.txt", "ab") as a:  # Koofr has no append: the file is sent again
        a.write(b" world")
    assert kfs.cat_file("w/text.txt") == "héllo world".encode()
    with pytest.raises(ValueError, match="mode 'r\\+b'"):
        kfs.open("w/text.txt", "r+b")


def test_transaction_commits_on_exit_only(kfs: KoofrFileSystem) -> None:
    with kfs.transaction:
        with kfs.open("t/a.txt", "wb") as f:
            f.write(b"one")
        assert not kfs.exists("t/a.txt")
    assert kfs.cat_file("t/a.txt") == b"one"
    assert kfs.ls("t", detail=False) == ["t/a.txt"]


def test_mkdir_makedirs(
    make_kfs: Callable[..., KoofrFileSystem], kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator
) -> None:
    koofr_emulator.reset_counters()
    kfs.makedirs("a/b/c")
    assert koofr_emulator.counters["files/folder"] == 3
    assert kfs.isdir("a/b/c")
    kfs.makedirs("a/b/c", exist_ok=True)
    with pytest.raises(FileExistsError):
        kfs.makedirs("a/b/c")
    with pytest.raises(FileExistsError):
        kfs.mkdir("a/b")
    kfs.mkdir("a/new", create_parents=False)
    with pytest.raises(FileNotFoundError):
        kfs.mkdir("nope/x", create_parents=False)
    kfs.pipe_file("a/file", b"")
    fresh = make_kfs()
    with pytest.raises(FileExistsError, match="is a file"):
        fresh.makedirs("a/file", exist_ok=True)
    assert fresh.makedirs("A/B/C", exist_ok=True) is None  # case-insensitive: exists
    assert kfs.ls("", detail=False) == ["a"]


def test_rm_variants(kfs: KoofrFileSystem) -> None:
    kfs.pipe_file("d/x/1.txt", b"1")
    kfs.pipe_file("d/x/2.txt", b"2")
    kfs.pipe_file("d/3.txt", b"3")
    kfs.makedirs("d/empty")
    with pytest.raises(IsADirectoryError):
        kfs.rm_file("d/x")
    with pytest.raises(OSError, match="not empty"):
        kfs.rmdir("d/x")
    with pytest.raises(OSError, match="not empty"):
        kfs.rm("d/x")
    kfs.rm_file("d/3.txt")
    kfs.rmdir("d/empty")
    kfs.rm(["d/x/1.txt"])
    assert kfs.ls("d", detail=False) == ["d/x"]
    kfs.rm("d", recursive=True)
    assert not kfs.exists("d")
    with pytest.raises(FileNotFoundError):
        kfs.rm("d", recursive=True)
    with pytest.raises(PermissionError):
        kfs.rm("/", recursive=True)
    kfs.pipe_file("again/f", b"x")  # known-folder cache forgot the deleted folders
    assert kfs.cat_file("again/f") == b"x"


def test_mv_and_cp(kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator) -> None:
    kfs.pipe_file("src/a.txt", b"A", modified=MTIME)
    kfs.pipe_file("src/sub/b.txt", b"B")
    koofr_emulator.reset_counters()
    kfs.cp_file("src/a.txt", "dst/a-copy.txt")
    assert koofr_emulator.counters["files/copy"] == 1 and koofr_emulator.counters["files/get"] == 0
    assert kfs.info("dst/a-copy.txt")["modified"] == MTIME
    kfs.pipe_file("dst/a-copy.txt", b"old")
    kfs.cp_file("src/a.txt", "dst/a-copy.txt")  # replaces
    assert kfs.cat_file("dst/a-copy.txt") == b"A"
    kfs.mv("src/a.txt", "dst/moved.txt")
    assert not kfs.exists("src/a.txt") and kfs.cat_file("dst/moved.txt") == b"A"
    kfs.mv("dst/moved.txt", "dst/Moved.txt")  # case-only rename
    assert kfs.ls("dst", detail=False) == ["dst/a-copy.txt", "dst/Moved.txt"]
    kfs.mv("src", "dst")  # folder into an existing folder, one server call
    assert kfs.cat_file("dst/src/sub/b.txt") == b"B"
    kfs.mv("dst/src", "renamed", recursive=True)
    assert kfs.find("renamed") == ["renamed/sub/b.txt"]
    kfs.copy("renamed", "copied", recursive=True)
    assert kfs.cat_file("copied/sub/b.txt") == b"B"
    assert kfs.du("copied") == 1 and kfs.du("") == 1 + 1 + 1 + 1


def test_find_walk_du_and_listing_cache(
    kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator
) -> None:
    for name in ["t/a", "t/b/c", "t/b/d/e", "t/f/g"]:
        kfs.pipe_file(name, name.encode())
    assert kfs.find("t") == ["t/a", "t/b/c", "t/b/d/e", "t/f/g"]
    assert kfs.find("t", withdirs=True, maxdepth=1) == ["t", "t/a", "t/b", "t/f"]
    walked = list(kfs.walk("t"))
    assert walked[0] == ("t", ["b", "f"], ["a"])
    assert kfs.du("t") == sum(len(n) for n in ["t/a", "t/b/c", "t/b/d/e", "t/f/g"])
    koofr_emulator.reset_counters()
    kfs.ls("t")
    kfs.info("t/a")
    assert koofr_emulator.counters["total"] == 0  # served from the listing cache
    kfs.pipe_file("t/new", b"n")
    assert "t/new" in kfs.ls("t", detail=False)  # invalidated by the write
    assert kfs.ls("t/a", detail=False) == ["t/a"]  # ls of a file gives the file


def test_quota(kfs: KoofrFileSystem) -> None:
    q = kfs.quota()
    assert q["total"] == 10240 * 2**20 and q["used"] + q["free"] == q["total"]


ODD = [
    "100% sure.txt",
    "#tag",
    "why?.txt",
    "a+b=c",
    'it\'s "q".txt',
    "sp  ace .txt",
    "emoji-\U0001f600",
    "Ümlaut",
    "[br] {x} & ;",
    "tab-like\u3000ideographic",
]


@pytest.mark.parametrize("name", ODD)
def test_odd_names_roundtrip(kfs: KoofrFileSystem, name: str) -> None:
    kfs.pipe_file(f"odd/{name}", name.encode())
    assert kfs.ls("odd", detail=False) == [f"odd/{name}"]
    assert kfs.cat_file(f"odd/{name}") == name.encode()
    kfs.mv(f"odd/{name}", f"odd2/{name}")
    kfs.cp_file(f"odd2/{name}", f"odd3/{name}")
    kfs.rm_file(f"odd2/{name}")
    assert kfs.cat_file(f"odd3/{name}", 0, 3) == name.encode()[:3]


def test_nfc_and_nfd_are_kept_apart(kfs: KoofrFileSystem) -> None:
    nfc = unicodedata.normalize("NFC", "café.txt")
    nfd = unicodedata.normalize("NFD", "café.txt")
    kfs.pipe_file(f"n/{nfc}", b"nfc")
    kfs.pipe_file(f"n/{nfd}", b"nfd")
    assert sorted(kfs.ls("n", detail=False)) == sorted([f"n/{nfc}", f"n/{nfd}"])
    assert kfs.cat_file(f"n/{nfc}") == b"nfc" and kfs.cat_file(f"n/{nfd}") == b"nfd"


def test_invalid_names_rejected_before_the_wire(
    kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator
) -> None:
    koofr_emulator.reset_counters()
    for bad in ["a\\b", "x/../y", "ctl\x07", "./z"]:
        with pytest.raises(InvalidName):
            kfs.pipe_file(bad, b"")
    with pytest.raises(ValueError):
        kfs.makedirs("ok/..", exist_ok=True)
    assert koofr_emulator.counters["total"] == 0


def test_pickle_and_json_roundtrip(kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator) -> None:
    kfs.pipe_file("p.txt", b"pickled")
    blob = pickle.dumps(kfs)
    assert b"httpx" not in blob
    KoofrFileSystem.clear_instance_cache()
    clone = pickle.loads(blob)
    assert clone.cat_file("p.txt") == b"pickled"
    again = fsspec.AbstractFileSystem.from_json(kfs.to_json())
    assert again.cat_file("p.txt") == b"pickled"


def test_pickled_fs_works_in_another_process(kfs: KoofrFileSystem) -> None:
    import multiprocessing

    kfs.pipe_file("mp.txt", b"from parent")
    kfs.cat_file("mp.txt")  # the parent's client is live: the child must not reuse its sockets
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply(_child_read, (kfs,)) == b"from parent"


def _child_read(fs: KoofrFileSystem) -> bytes:
    return fs.cat_file("mp.txt")


def test_wrong_password_and_unknown_mount(
    make_kfs: Callable[..., KoofrFileSystem], koofr_emulator: KoofrEmulator
) -> None:
    bad = make_kfs(password="wrong")
    with pytest.raises(KoofrAuthError) as err:
        bad.ls("")
    assert str(err.value) == (
        f"Koofr rejected the credentials for user {koofr_emulator.user} "
        f"at {koofr_emulator.url}: use an application password"
    )
    other = make_kfs(mountid="nope")
    with pytest.raises(KoofrMountError, match=r"mount 'nope' not found.*mounts: Koofr \("):
        other.ls("")
    good = make_kfs(mountid=koofr_emulator.mount_id)
    assert good.ls("") == []
    with pytest.raises(ValueError, match="endpoint"):
        KoofrFileSystem(user="u", password="p", endpoint="", provider="other")


def test_use_tree_walks_with_one_request(
    make_kfs: Callable[..., KoofrFileSystem], koofr_emulator: KoofrEmulator
) -> None:
    fs = make_kfs(use_tree=True)
    for name in ["t/a", "t/b/c", "t/b/d/e", "t/f/g", "other/x"]:
        fs.pipe_file(name, name.encode(), modified=MTIME)
    fs.invalidate_cache()
    koofr_emulator.reset_counters()
    found = fs.find("t", detail=True)
    assert sorted(found) == ["t/a", "t/b/c", "t/b/d/e", "t/f/g"]
    assert found["t/b/d/e"]["modified"] == MTIME and found["t/a"]["md5"]
    assert koofr_emulator.counters["files/tree"] == 1
    assert koofr_emulator.counters["files/list"] == 0
    assert fs.du("t") == 3 + 5 + 7 + 5
    assert fs.find("missing") == []
