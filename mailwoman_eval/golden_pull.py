"""`mweval golden pull NAME`: fetch an upstream golden version, verify it against pinned sha256s,
install it in the user data dir (where `--golden NAME` finds it). upstream-formats.md §10.5."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import replace_dir_atomically, sha256_bytes, staging_dir, unstaged
from mailwoman_eval.golden import load_golden, user_data_dir

UPSTREAM_RAW = "https://raw.githubusercontent.com/sister-software/mailwoman/{commit}"
HEAD = "722861e0b51d0531d5d279c9b3a74a265c609705"
V040 = "c7e5ae7f847275140c88e6828fd704e3db3cb838"

# name -> (upstream version dir, commit, {relative file: sha256}). Pinned; a mismatch is an error.
PINNED: dict[str, tuple[str, str, dict[str, str]]] = {
    "v0.1.2": (
        "v0.1.2",
        HEAD,
        {
            "MANIFEST.json": "c512278f6f2fa44e606634de94f189cebd3e32ec9441df4cbdb1e4cfb3c12c48",
            "SPLIT-MANIFEST.json": "5d09bd511992083a60b54e0598de1f9eb259231ed2abb198437fce45c75cdbe4",
            "adversarial.jsonl": "90b4b61355bdc7283917940edc9fd75b53f0660e04251a20c5f8430525070742",
            "fr.jsonl": "29d72dcd34ea2a576459b78be57ba3c0febd353d4b88bf801772ccdb415f46f6",
            "us.jsonl": "8cad55caed20e4998543e1bf09faf8da5d6dec8bcc9e4384805da760f950e50f",
            "dev/adversarial.jsonl": "aaa290942ef6726b1102391b14e7ad9886c19799100a296bdb82fc3400cea23e",
            "dev/fr.jsonl": "baed3f4ed6de90f243983927e77933bef5c364a3b7f3447d7b07643e7c61589b",
            "dev/us.jsonl": "c83388663ee03418d0d126f823d3ccc4af6ab4dd7f7c4f2be0597674b547b9de",
            "test/adversarial.jsonl": "fb78fb4f36780a595215c35314eeea89996b876507d32b2b5727a9e71470e686",
            "test/fr.jsonl": "b02addc783e83d7a243b8e68598c50e4f97098db39ab69e6129379083460ea96",
            "test/us.jsonl": "386ed5a549b82a23b446b331e8c33ae8421df5c74107122a7a8f92886db83e6c",
        },
    ),
    # The files as they were at the v0.4.0 release (4535 rows): the model card's eval set.
    "v0.1.2@v0.4.0": (
        "v0.1.2",
        V040,
        {
            "adversarial.jsonl": "90b4b61355bdc7283917940edc9fd75b53f0660e04251a20c5f8430525070742",
            "fr.jsonl": "9c6609e0d7c56cbc4b337523f2e8dd211d9b4384ab7df8e6e14a90701a39a113",
            "us.jsonl": "fe9e4bb5cbd492b04ae5936fbbbef6d50b453f00bd0714208ce3d33b7d9ddef3",
        },
    ),
}


def _fetch(base: str, version: str, rel: str) -> tuple[bytes, str]:
    """The bytes of `rel` (a file of golden `version`) under `base` (a directory or a URL laid out
    as upstream, data/eval/golden/<version>/<rel>), and the path or URL they came from."""
    local = Path(base)
    if local.is_dir():
        # an upstream checkout, or a copy of its golden/ or of the version directories: the sha256s
        # are checked against the pinned ones either way
        roots = [local / "data" / "eval" / "golden" / version, local / "golden" / version, local / version]
        root = next((r for r in roots if r.is_dir()), None)
        if root is None:
            raise MwevalError(f"no {version}/ directory: --from takes an upstream checkout (<base>/data/eval/golden/{version}/) "
                              f"or a directory holding {version}/ or golden/{version}/", where=base)
        p = root / rel
        try:
            return p.read_bytes(), str(p)
        except OSError as e:
            raise MwevalError(f"cannot read: {e.strerror}", where=str(p)) from None
    if "://" not in base:  # not a URL: a directory that is not there (urllib said "unknown url type")
        raise MwevalError("--from is neither a directory nor a URL", where=base)
    url = f"{base.rstrip('/')}/data/eval/golden/{version}/{rel}"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - http(s) from the user or pinned
            return r.read(), url
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise MwevalError(f"download failed ({getattr(e, 'reason', e)}); without network, pass --from a directory that holds "
                          "the golden sets (their sha256s are checked as a download's)", where=url) from None


def pull(name: str, source: str | None = None, log=lambda s: None) -> Path:
    if name not in PINNED:
        raise MwevalError(f"no pinned golden version {name!r}; known: {', '.join(PINNED)}")
    version, commit, files = PINNED[name]
    base = source or UPSTREAM_RAW.format(commit=commit)
    dest = user_data_dir() / name
    staging = staging_dir(dest, "the golden data directory")
    try:
        for rel, want in files.items():
            data, origin = _fetch(base, version, rel)
            got = sha256_bytes(data)
            if got != want:
                raise MwevalError(f"sha256 {got[:12]}… does not match the pinned {want[:12]}… for {name}", where=origin)
            out = staging / rel
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            except OSError as e:
                raise MwevalError(f"cannot write: {e.strerror}", where=str(out)) from None
            log(f"{rel}: {len(data)} bytes, sha256 matches the pinned upstream file")
        # parses every row (a pulled set must load), and says up front where upstream's own
        # manifests disagree with its files (v0.1.2/dev/fr.jsonl: 150 rows appended after the
        # split, upstream-formats.md §6), which every run on that set will warn about
        for sub in sorted({Path(rel).parent for rel in files if rel.endswith(".jsonl")}):
            label = name if sub == Path(".") else f"{name}/{sub}"
            check = load_golden(staging / sub, label).manifest
            if check.status == "mismatch":
                log(f"note: {label} does not match its manifest, as upstream has it: " + "; ".join(check.problems))
        try:
            replace_dir_atomically(staging, dest)  # two renames: the old set is not deleted before the new one is in place
        except OSError as e:
            raise MwevalError(f"cannot install the golden set: {e.strerror or e}", where=str(dest)) from None
    except BaseException as e:
        raise unstaged(e, staging, dest) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
