"""URL -> route name table, shared by the server (dispatch), counters and fault rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

ROUTE_NAMES = frozenset(
    {
        "mounts",
        "mount",
        "files/info",
        "files/list",
        "files/folder",
        "files/remove",
        "files/copy",
        "files/move",
        "files/get",
        "files/put",
        "files/tree",
        "links",
        "token",
        "user",
        "places",
        "shared",
        "trash",
    }
)

# (regex, route, allowed methods). Downloads are served with and without the ``/content``
# prefix (rclone uses it, OpenDAL does not) [C]; uploads only under ``/content`` [C].
_TABLE: list[tuple[re.Pattern[str], str, frozenset[str]]] = [
    (re.compile(r"^/token$"), "token", frozenset({"POST", "GET"})),
    (re.compile(r"^/api/v2/user$"), "user", frozenset({"GET"})),
    (re.compile(r"^/api/v2/places$"), "places", frozenset({"GET"})),
    (re.compile(r"^/api/v2/shared$"), "shared", frozenset({"GET"})),
    (re.compile(r"^/api/v2/trash$"), "trash", frozenset({"GET"})),
    (re.compile(r"^/api/v2/mounts$"), "mounts", frozenset({"GET"})),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)$"), "mount", frozenset({"GET"})),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/info$"), "files/info", frozenset({"GET"})),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/list$"), "files/list", frozenset({"GET"})),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/tree$"), "files/tree", frozenset({"GET"})),
    (
        re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/folder$"),
        "files/folder",
        frozenset({"POST"}),
    ),
    (
        re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/remove$"),
        "files/remove",
        frozenset({"DELETE"}),
    ),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/copy$"), "files/copy", frozenset({"PUT"})),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/files/move$"), "files/move", frozenset({"PUT"})),
    (
        re.compile(r"^(?:/content)?/api/v2/mounts/(?P<m>[^/]+)/files/get$"),
        "files/get",
        frozenset({"GET", "HEAD"}),
    ),
    (
        re.compile(r"^/content/api/v2/mounts/(?P<m>[^/]+)/files/put$"),
        "files/put",
        frozenset({"POST"}),
    ),
    (re.compile(r"^/api/v2/mounts/(?P<m>[^/]+)/links$"), "links", frozenset({"POST"})),
]


@dataclass(frozen=True)
class RouteMatch:
    name: str
    mount_id: str | None
    methods: frozenset[str]


def match_route(url_path: str) -> RouteMatch | None:
    """Route for a raw (still percent-encoded) URL path, or None for unknown URLs."""
    for pattern, name, methods in _TABLE:
        m = pattern.match(url_path)
        if m:
            mount = m.groupdict().get("m")
            return RouteMatch(name, unquote(mount) if mount is not None else None, methods)
    return None
