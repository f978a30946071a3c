"""Golden sets in the upstream schema: entries, manifests, splits, name resolution.

A set is the top-level `*.jsonl` of one directory in sorted order (upstream `load_golden_dir`);
`NAME/dev` and `NAME/test` select the split directories. Rows need a non-empty `raw` string and a
`components` object of strings; everything else is optional and kept (design.md Decisions).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file, sha256_bytes
from mailwoman_eval.gcpause import gc_paused

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
BUNDLED_GOLDEN = REPO_ROOT / "golden"
ADVERSARIAL_PREFIXES = ("kryptonite/", "graceful/")

# A letter whose script is not Latin/Common/Inherited (design.md: non_latin is script-based).
_NON_LATIN_LETTER = regex.compile(r"[\p{L}&&[^\p{Script=Latin}\p{Script=Common}\p{Script=Inherited}]]", regex.V1)


def has_non_latin_letters(text: str) -> bool:
    return _NON_LATIN_LETTER.search(text) is not None


@dataclass(frozen=True, slots=True)
class GoldenEntry:
    id: str  # "file:line", stable across runs
    file: str
    line: int
    raw: str
    components: dict[str, str]
    country: str | None = None
    source: str | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, str) or not self.raw.strip():
            raise MwevalError("`raw` must be a non-empty string", where=self.id)
        for k, v in self.components.items():
            if not isinstance(v, str):
                raise MwevalError(f"component {k!r} is not a string", where=self.id)

    @property
    def adversarial(self) -> bool:
        return _is_adversarial_file(self.file) or self.notes.startswith(ADVERSARIAL_PREFIXES)

    @property
    def non_latin(self) -> bool:
        return not self.raw.isascii() and has_non_latin_letters(self.raw)  # ASCII letters are Latin


@functools.lru_cache(maxsize=256)
def _is_adversarial_file(file: str) -> bool:  # a Path per entry cost 2 us; a golden set has a few files
    return Path(file).stem == "adversarial"


@dataclass(frozen=True)
class GoldenFile:
    name: str
    sha256: str
    entries: int


@dataclass(frozen=True)
class ManifestCheck:
    status: str  # "ok" | "mismatch" | "absent"
    manifest: str | None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"status": self.status, "manifest": self.manifest, "problems": list(self.problems)}


@dataclass(frozen=True)
class GoldenSet:
    name: str
    path: Path
    entries: tuple[GoldenEntry, ...]
    files: tuple[GoldenFile, ...]
    manifest: ManifestCheck
    duplicates: int  # rows whose (raw, components) repeat an earlier row

    @property
    def sha256(self) -> str:
        """One hash over the per-file hashes: what compare/gate check for 'same golden'."""
        text = "".join(f"{f.name}:{f.sha256}\n" for f in self.files)
        return sha256_bytes(text.encode())

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "files": {f.name: {"sha256": f.sha256, "entries": f.entries} for f in self.files},
            "rows": len(self.entries),
            "duplicates": self.duplicates,
            "manifest": self.manifest.to_json(),
        }


def _json_kind(value: Any) -> str:
    """A parsed value's JSON type, for messages: "an array" (not "a list"), "null" (not "a NoneType")."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    """Any string in the decoded row (keys too) that is not encodable: a walk with a stack, since a
    row nested deeper than the recursion limit (json decodes 600 levels) must not raise here."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


_ROW_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
MAX_RAW_CHARS = 100_000


def parse_row(text: str, file: str, line: int, where: str | None = None) -> GoldenEntry:
    """One row; errors name `where` (default `file:line`; read_jsonl passes the full path)."""
    where = where or f"{file}:{line}"
    try:
        obj = _ROW_DECODER.decode(text)  # what json.loads(text, parse_constant=…) does, minus a decoder per row
    except (json.JSONDecodeError, ValueError, RecursionError) as e:  # json recurses per nesting level
        if isinstance(e, json.JSONDecodeError) and e.msg == "Extra data" and "\r" in text[: e.pos + 1]:
            raise MwevalError(f"malformed JSON ({e}): rows end in a bare CR; JSONL rows end in LF (or CRLF)", where=where) from None
        raise MwevalError(f"malformed JSON ({e})", where=where) from None
    if not isinstance(obj, dict):
        raise MwevalError(f"row is {_json_kind(obj)}, not a JSON object", where=where)
    # a lone surrogate can only come from a \\uD8xx-\\uDFxx escape (the text itself is strict UTF-8)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(obj):
        raise MwevalError("unpaired UTF-16 surrogate in a JSON string escape", where=where)
    if "raw" not in obj:
        raise MwevalError("row has no `raw`", where=where)
    raw = obj["raw"]
    if not isinstance(raw, str):
        raise MwevalError(f"`raw` is {_json_kind(raw)}, not a string", where=where)
    if not raw.strip():
        raise MwevalError("`raw` is empty or whitespace only", where=where)
    if len(raw) > MAX_RAW_CHARS:  # one 20 MB row took 3 GB: every piece of it is kept, though 128 are scored
        raise MwevalError(f"`raw` is {len(raw)} characters; a postal address is at most {MAX_RAW_CHARS}", where=where)
    if "components" not in obj:
        raise MwevalError("row has no `components`", where=where)
    comps = obj["components"]
    if not isinstance(comps, dict):
        raise MwevalError(f"`components` is {_json_kind(comps)}, not an object", where=where)
    for k, v in comps.items():
        if not isinstance(v, str):
            raise MwevalError(f"component {k!r} is {_json_kind(v)}, not a string", where=where)
    notes = obj.get("notes") or ""
    if not isinstance(notes, str):
        notes = json.dumps(notes, ensure_ascii=False)
    country = obj.get("country")
    source = obj.get("source")
    extra = {k: v for k, v in obj.items() if k not in ("raw", "components", "country", "source", "notes")}
    return GoldenEntry(
        id=f"{file}:{line}",  # stable across machines: never the full path
        file=file,
        line=line,
        raw=raw,
        components=dict(comps),
        country=country if isinstance(country, str) else None,
        source=source if isinstance(source, str) else None,
        notes=notes,
        extra=extra,
    )


def read_jsonl(path: Path) -> tuple[list[GoldenEntry], bytes]:
    """Rows of one file. Lines are stripped, blank lines skipped (as upstream); BOM and CRLF accepted."""
    refuse_special_file(path)  # a FIFO named *.jsonl would be opened and waited on forever
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MwevalError(f"cannot read golden file: {e.strerror}", where=str(path)) from None
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    entries: list[GoldenEntry] = []
    for lineno, bline in enumerate(body.split(b"\n"), start=1):
        try:
            text = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MwevalError(f"not UTF-8 (byte {e.start})", where=f"{path}:{lineno}") from None
        text = text.strip()
        if not text:
            continue
        entries.append(parse_row(text, path.name, lineno, where=f"{path}:{lineno}"))
    return entries, data


def _load_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is accepted, as in the .jsonl files
    except (OSError, ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, an int over 4300 digits, UnicodeDecodeError
        raise MwevalError(f"unreadable manifest ({e})", where=str(path)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("files"), dict):
        raise MwevalError("manifest has no `files` object", where=str(path))
    return obj


def check_manifest(directory: Path, files: list[GoldenFile]) -> ManifestCheck:
    """Top-level files against MANIFEST.json; split files against the parent's SPLIT-MANIFEST.json."""
    problems: list[str] = []
    own = directory / "MANIFEST.json"
    directory = directory.resolve()  # `.` inside v0.1.2/dev is the dev split too (its name as typed is "")
    split_manifest = directory.parent / "SPLIT-MANIFEST.json"
    if own.is_file():
        manifest = _load_json(own)
        expected = {n: (m.get("sha256"), m.get("entries")) for n, m in manifest["files"].items() if isinstance(m, dict)}
        where = own
    elif directory.name in ("dev", "test") and split_manifest.is_file():
        manifest = _load_json(split_manifest)
        split = directory.name
        expected = {
            n: (m.get(f"{split}_sha256"), m.get(split)) for n, m in manifest["files"].items() if isinstance(m, dict)
        }
        where = split_manifest
    else:
        return ManifestCheck("absent", None)
    by_name = {f.name: f for f in files}
    for name, (sha, count) in sorted(expected.items()):
        f = by_name.get(name)
        if f is None:
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        if sha is None and count is None:  # an entry that checks nothing does not vouch for the file
            problems.append(f"{name}: the manifest gives neither its sha256 nor its row count")
        if sha is not None and sha != f.sha256:
            problems.append(f"{name}: sha256 {f.sha256[:12]}… != manifest {str(sha)[:12]}…")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):  # true == 1 vouched for a 1-row file
            problems.append(f"{name}: the manifest's row count {count!r} is not an integer")
        elif count is not None and count != f.entries:
            problems.append(f"{name}: {f.entries} rows != manifest {count}")
    for name in sorted(set(by_name) - set(expected)):
        problems.append(f"{name}: not listed in the manifest")
    return ManifestCheck("mismatch" if problems else "ok", str(where), tuple(problems))


@gc_paused()
def load_golden(path: Path, name: str | None = None) -> GoldenSet:
    path = Path(path)
    if not path.exists():
        raise MwevalError("golden directory does not exist", where=str(path))
    if not path.is_dir():
        raise MwevalError("golden path is not a directory", where=str(path))
    files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if not files:
        raise MwevalError("golden directory has no *.jsonl files", where=str(path))
    entries: list[GoldenEntry] = []
    gfiles: list[GoldenFile] = []
    for f in files:
        rows, data = read_jsonl(f)
        entries.extend(rows)
        # rows = the non-blank lines as read_jsonl strips them (Unicode whitespace, a leading BOM):
        # counting bytes.strip() lines counted a line of only NBSP or BOM as a row that never loads
        gfiles.append(GoldenFile(f.name, sha256_bytes(data), len(rows)))
    if not entries:
        raise MwevalError("golden set has no rows (every *.jsonl is empty)", where=str(path))
    seen: set[tuple] = set()
    dups = 0
    for e in entries:
        key = (e.raw, tuple(sorted(e.components.items())))
        if key in seen:
            dups += 1
        seen.add(key)
    return GoldenSet(
        name=name or path.name,
        path=path,
        entries=tuple(entries),
        files=tuple(gfiles),
        manifest=check_manifest(path, gfiles),
        duplicates=dups,
    )


# ---------------------------------------------------------------------------------------------
# Name resolution (design.md Decisions, "Names")


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "mweval" / "golden"


def golden_search_levels() -> list[tuple[str, list[Path]]]:
    """The search levels in order; the first level with a match wins."""
    env = [Path(p) for p in os.environ.get("MWEVAL_GOLDEN_PATH", "").split(os.pathsep) if p]
    return [
        ("MWEVAL_GOLDEN_PATH", env),
        ("./data/eval/golden", [Path("data/eval/golden")]),
        ("user data dir", [user_data_dir()]),
        ("bundled", [BUNDLED_GOLDEN]),
    ]


def _is_set_dir(p: Path) -> bool:
    return p.is_dir() and any(p.glob("*.jsonl"))


def available_golden() -> list[tuple[str, Path, str]]:
    """(name, path, level) for every set found under the search roots, splits included."""
    out: list[tuple[str, Path, str]] = []
    for level, roots in golden_search_levels():
        for root in roots:
            if not root.is_dir():
                continue
            for d in sorted(root.iterdir()):
                if _is_set_dir(d):
                    out.append((d.name, d, level))
                for split in ("dev", "test"):
                    if _is_set_dir(d / split):
                        out.append((f"{d.name}/{split}", d / split, level))
    return out


def resolve_golden(spec: str) -> tuple[Path, str]:
    """`--golden NAME|PATH` -> (directory, display name)."""
    p = Path(spec).expanduser()
    if p.exists():
        r = p.resolve()  # `.` or `../dev` are named as the directory they are
        name = f"{r.parent.name}/{r.name}" if r.name in ("dev", "test") else r.name
        return p, name
    if spec.startswith(("/", "./", "../", "~")):  # a path, not a name (as --ckpt)
        raise MwevalError("golden directory does not exist", where=spec)
    for _level, roots in golden_search_levels():
        for root in roots:
            cand = root / spec
            if cand.is_dir():
                return cand, spec
    names = sorted({n for n, _, _ in available_golden()})
    listing = ", ".join(names) if names else "none found"
    from mailwoman_eval.golden_pull import PINNED  # what to do next: where sets are looked for, or fetch one

    head, _, split = spec.partition("/")
    if split and head in names:  # `demo-v1/dev`: the set is there, the split is not
        raise MwevalError(f"golden set {head} has no {split!r} split (a split is a {split}/ directory of *.jsonl inside the set); "
                          f"available: {listing}")
    fetch = f"; `mweval golden pull {head}` fetches it" if head in PINNED else ""
    env = os.environ.get("MWEVAL_GOLDEN_PATH")
    searched = [f"MWEVAL_GOLDEN_PATH ({env})" if env else None, "./data/eval/golden", str(user_data_dir()), "bundled golden/"]
    raise MwevalError(f"unknown golden set {spec!r}; available: {listing} (searched {', '.join(x for x in searched if x)}; "
                      f"or pass a directory{fetch})")


def substring_problems(gset: GoldenSet) -> list[dict]:
    """Component values that are not an exact substring of their row's raw, each marked
    `case_only` when raw holds it in another case (upstream-eval can never match those; the
    runtime profile compares case-folded and can)."""
    out = []
    for e in gset.entries:
        for tag, value in e.components.items():
            if value and value not in e.raw:
                out.append({"id": e.id, "tag": tag, "value": value, "raw": e.raw, "case_only": value.lower() in e.raw.lower()})
    return out
