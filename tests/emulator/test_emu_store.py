"""The namespace itself: a model-based (hypothesis) check of case-insensitive, case-preserving,
duplicate-free semantics across mkdir/put/remove/copy/move, plus hash-sidecar safety."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from koofr_emulator.errors import ApiError
from koofr_emulator.sample import write_file
from koofr_emulator.store import PutOptions, Store

NAMES = st.sampled_from(["a", "A", "b", "B.txt", "b.TXT", "Ü", "ü"])
NEW_NAMES = st.sampled_from(["c", "C", "D.bin", "a", "b"])
PARENTS = st.sampled_from(["/", "/a", "/A/b", "/b", "/a/ü", "/missing"])


@dataclass
class Node:
    name: str
    data: bytes | None  # None for directories
    children: dict[str, Node] = field(default_factory=dict)


def _find(root: Node, path: str) -> Node | None:
    node = root
    for part in [p for p in path.split("/") if p]:
        if node.data is not None:
            return None
        nxt = node.children.get(part.lower())
        if nxt is None:
            return None
        node = nxt
    return node


def _copy(node: Node, name: str) -> Node:
    return Node(name, node.data, {k: _copy(v, v.name) for k, v in node.children.items()})


class NamespaceMachine(RuleBasedStateMachine):
    """Drives ``Store`` and a trivial in-memory model with the same operations."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="emu-model-"))
        self.store = Store(self.tmp / "files", self.tmp / ".emulator", 10240)
        self.root = Node("", None)
        # Start from a populated tree so removes/moves/copies mostly hit existing items.
        for parent, name, data in (
            ("/", "a", None),
            ("/a", "b", None),
            ("/", "b", None),
            ("/a", "Ü", b"u"),
            ("/a/b", "B.txt", b"bb"),
            ("/", "A.x", b""),
        ):
            if data is None:
                self.mkdir(parent, name)
            else:
                self.put(parent, name, data)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _parent_dir(self, parent: str) -> Node | None:
        node = _find(self.root, parent)
        return node if node is not None and node.data is None else None

    @rule(parent=PARENTS, name=NAMES)
    def mkdir(self, parent: str, name: str) -> None:
        node = self._parent_dir(parent)
        expect_ok = node is not None and name.lower() not in node.children
        try:
            self.store.mkdir(parent, name)
            ok = True
        except ApiError:
            ok = False
        assert ok == expect_ok
        if ok and node is not None:
            node.children[name.lower()] = Node(name, None)

    @rule(parent=PARENTS, name=NAMES, data=st.binary(max_size=20))
    def put(self, parent: str, name: str, data: bytes) -> None:
        node = self._parent_dir(parent)
        existing = node.children.get(name.lower()) if node is not None else None
        expect_ok = node is not None and (existing is None or existing.data is not None)
        staged = self.store.new_temp()
        staged.write_bytes(data)
        try:
            self.store.commit_put(
                parent,
                name,
                PutOptions(autorename=False, overwrite=True),
                staged,
                hashlib.md5(data).hexdigest(),
            )
            ok = True
        except ApiError:
            ok = False
        finally:
            staged.unlink(missing_ok=True)
        assert ok == expect_ok
        if ok and node is not None:
            node.children[name.lower()] = Node(name, data)

    @rule(parent=PARENTS, name=NAMES)
    def remove(self, parent: str, name: str) -> None:
        path = parent.rstrip("/") + "/" + name
        node = self._parent_dir(parent)
        expect_ok = node is not None and name.lower() in node.children
        try:
            self.store.remove(path)
            ok = True
        except ApiError:
            ok = False
        assert ok == expect_ok
        if ok and node is not None:
            del node.children[name.lower()]

    @rule(sp=PARENTS, sn=NAMES, dp=PARENTS, dn=NEW_NAMES | NAMES, move=st.booleans())
    def transfer(self, sp: str, sn: str, dp: str, dn: str, move: bool) -> None:
        src, dst = sp.rstrip("/") + "/" + sn, dp.rstrip("/") + "/" + dn
        sparent, dparent = self._parent_dir(sp), self._parent_dir(dp)
        snode = sparent.children.get(sn.lower()) if sparent else None
        same = src.lower() == dst.lower()
        inside = dst.lower().startswith(src.lower() + "/")
        exists = dparent is not None and dn.lower() in dparent.children
        if move and same:
            expect_ok = snode is not None and src != dst
        else:
            expect_ok = (
                snode is not None and dparent is not None and not exists and not same and not inside
            )
        try:
            if move:
                self.store.move(src, dst)
            else:
                self.store.copy(src, dst)
            ok = True
        except ApiError:
            ok = False
        assert ok == expect_ok, (move, src, dst)
        if not ok or snode is None or sparent is None or dparent is None:
            return
        if move:
            del sparent.children[sn.lower()]
            snode.name = dn
            dparent.children[dn.lower()] = snode
        else:
            dparent.children[dn.lower()] = _copy(snode, dn)

    @invariant()
    def store_matches_model(self) -> None:
        def check(node: Node, path: str) -> int:
            listed = {e.name: e for e in self.store.list(path)}
            assert sorted(listed) == sorted(c.name for c in node.children.values())
            total = 0
            for child in node.children.values():
                entry = listed[child.name]
                child_path = path.rstrip("/") + "/" + child.name
                if child.data is None:
                    assert entry.is_dir
                    total += check(child, child_path)
                else:
                    assert entry.md5 == hashlib.md5(child.data).hexdigest()
                    assert entry.size == len(child.data)
                    total += len(child.data)
            return total

        trashed = sum(item["size"] for item in self.store.trash_items())
        assert check(self.root, "/") + trashed == self.store.used_bytes  # the trash counts
        assert not any((self.tmp / ".emulator" / "tmp").iterdir())


TestNamespaceModel = NamespaceMachine.TestCase
TestNamespaceModel.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_hash_sidecar_never_reuses_stale_md5(tmp_path: Path) -> None:
    """Same size, same mtime, recycled inode: the sidecar must not serve the old hash."""
    store = Store(tmp_path / "files", tmp_path / ".emulator", 10240)
    try:
        for i in range(20):
            data = f"content-{i:04d}".encode()
            write_file(store, "/f.bin", data, modified_ms=1000)
            assert store.info("/f.bin").md5 == hashlib.md5(data).hexdigest()
            store.remove("/f.bin")
    finally:
        store.close()


def test_case_preserving_on_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "files", tmp_path / ".emulator", 10240)
    try:
        store.mkdir("/", "MiXeD")
        write_file(store, "/mixed/File.TXT", b"x")
        assert os.listdir(tmp_path / "files" / "MiXeD") == ["File.TXT"]
        assert store.info("/MIXED/file.txt").name == "File.TXT"
        assert store.info("/").name == ""
    finally:
        store.close()
