"""
Glob patterns that stay where they point: matches inside the pattern's base folder only, and loops end.

``glob.glob`` follows every symbolic link. A link in the folder being uploaded to a file elsewhere (a config file,
a key) is uploaded with the samples, and ``**`` over a link to a parent folder recurses until the path is too long
for the OS, which with a few such links takes practically forever. This walker matches the same patterns (``*``,
``?``, ``[...]``; ``**`` as a whole part for any depth, itself included; a name starting with a dot only when the
pattern's part does) but keeps to the base folder, the part of the pattern before the first wildcard: a link is
followed only when its target lies inside that folder (by real path), and a folder is walked at most once per
pattern position, so ``**`` ends whatever links there are.

Over object storage (an ``ObjectStoragePath`` pattern) there are no links to follow: ``glob_objects`` asks the
store's own glob (fsspec's, the same wildcards) in one listing and keeps the same rules for files and dot names.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GlobMatches:
    files: list[Any] = field(default_factory=list)  # as matched (the link's path, not its target's)
    outside: list[str] = field(default_factory=list)  # matches that lead outside the base folder, left out
    base: str = ""


def split_pattern(pattern: str) -> tuple[str, list[str]]:
    """The base folder of ``pattern`` and the parts after it: ``/data/in/**/*.wav`` -> ``/data/in``, ``**, *.wav``."""
    parts = pattern.split(os.sep)
    first_magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    head = parts[:first_magic]
    base = os.sep if head == [""] else (os.sep.join(head) or os.curdir)
    rest: list[str] = []
    for part in parts[first_magic:]:
        if part == "**" and rest and rest[-1] == "**":
            continue  # "**/**" is "**"
        rest.append(part)
    return base, rest


def glob_files(pattern: str) -> GlobMatches:
    """Regular files matching ``pattern``, sorted, without leaving its base folder (see the module's text)."""
    base, rest = split_pattern(pattern)
    matches = GlobMatches(base=base)
    if not rest or rest[-1] == "" or not os.path.isdir(base):
        return matches  # no wildcard, a pattern for folders only, or nothing to search
    rest = [part for part in rest if part]  # "a//b" is "a/b"
    root = os.path.realpath(base)

    def inside(path: str) -> bool:
        real = os.path.realpath(path)
        return real == root or os.path.commonpath([root, real]) == root

    walked: set[tuple[int, int, int]] = set()
    todo: list[tuple[str, int]] = [(base, 0)]
    while todo:
        directory, index = todo.pop()
        try:
            info = os.stat(directory)
        except OSError:
            continue
        key = (info.st_dev, info.st_ino, index)
        if key in walked:
            continue  # reached again through a link: its matches are already found
        walked.add(key)
        part, last = rest[index], index == len(rest) - 1

        if part == "**":
            if not last:
                todo.append((directory, index + 1))  # "**" matching no folder at all
            for entry in _entries(directory):
                if entry.name.startswith("."):
                    continue
                if _is_dir(entry):
                    if inside(entry.path):
                        todo.append((entry.path, index))
                    else:
                        matches.outside.append(entry.path)
                elif last and _is_file(entry):
                    _add(matches, entry.path, inside(entry.path))
            continue

        if glob.has_magic(part):
            names = [
                entry.name
                for entry in _entries(directory)
                if fnmatch.fnmatch(entry.name, part) and (part.startswith(".") or not entry.name.startswith("."))
            ]
        else:
            names = [part] if os.path.lexists(os.path.join(directory, part)) else []
        for name in names:
            path = os.path.join(directory, name)
            if last:
                if os.path.isfile(path):
                    _add(matches, path, inside(path))
            elif os.path.isdir(path):
                if inside(path):
                    todo.append((path, index + 1))
                else:
                    matches.outside.append(path)
    matches.files.sort()
    matches.outside.sort()
    return matches


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []  # unreadable: as glob does, it simply has no matches


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _add(matches: GlobMatches, path: str, is_inside: bool) -> None:
    (matches.files if is_inside else matches.outside).append(path)


def glob_objects(pattern: Any) -> GlobMatches:
    """Objects (files, not prefixes) matching the ``ObjectStoragePath`` ``pattern``, sorted, as paths of its store."""
    base, rest = pattern, list[str]()
    while glob.has_magic(base.path) and base.parent != base:
        rest.insert(0, base.name)
        base = base.parent
    matches = GlobMatches(base=str(base))
    root = base.path.rstrip("/")
    try:
        found = base.fs.glob(f"{root}/{'/'.join(rest)}", detail=True)
    except FileNotFoundError:
        return matches
    for name, info in sorted(found.items()):
        relative = name[len(root) :].strip("/").split("/")
        if info.get("type") != "file" or not name.startswith(root):
            continue
        if any(part.startswith(".") for part in relative) and not any(p.startswith(".") for p in rest):
            continue  # a dot name only where the pattern asks for one, as locally
        matches.files.append(base.joinpath(*relative))
    return matches
