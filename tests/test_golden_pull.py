"""`mweval golden pull` against a local HTTP server laying out ../shared/upstream/golden (no other network)."""

import functools
import hashlib
import http.server
import shutil
import threading

import pytest
from click.testing import CliRunner
from conftest import GOLDEN_ROOT, need_shared

from mailwoman_eval.cli import main
from mailwoman_eval.golden import resolve_golden, user_data_dir


@pytest.fixture
def server(tmp_path):
    need_shared()
    root = tmp_path / "srv"
    shutil.copytree(GOLDEN_ROOT, root / "data" / "eval" / "golden")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_pull_installs_verified_files_where_golden_names_resolve(server):
    _root, url = server
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", url])
    assert r.exit_code == 0, r.output
    dest = user_data_dir() / "v0.1.2"
    assert (dest / "us.jsonl").is_file() and (dest / "test" / "us.jsonl").is_file()
    path, name = resolve_golden("v0.1.2/test")
    assert path == dest / "test" and name == "v0.1.2/test"
    listing = CliRunner().invoke(main, ["golden", "list"])
    assert "user data dir" in listing.output and "4561" in listing.output
    # every file is upstream's (the pins), and upstream's dev/fr.jsonl is not what its SPLIT-MANIFEST
    # says: said once here, where "sha256 ok" on each file read as if the splits were clean
    assert "dev/fr.jsonl: 549345 bytes, sha256 matches the pinned upstream file" in r.output
    notes = [line.strip() for line in r.output.splitlines() if "note:" in line]
    assert notes == ["note: v0.1.2/dev does not match its manifest, as upstream has it: fr.jsonl: sha256 baed3f4ed6de… "
                     "!= manifest 10cc66131f1c…; fr.jsonl: 1546 rows != manifest 1396"]


def test_pull_refuses_a_file_whose_sha256_differs_and_installs_nothing(server):
    root, url = server
    f = root / "data" / "eval" / "golden" / "v0.1.2" / "fr.jsonl"
    f.write_bytes(f.read_bytes() + b'{"raw":"x","components":{}}\n')
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", url])
    assert r.exit_code == 2
    got = hashlib.sha256(f.read_bytes()).hexdigest()
    # the URL it read (not "base fr.jsonl"), and both sha256s by their first 12 hex digits
    assert r.output.strip().splitlines()[-1] == (f"mweval: error: {url}/data/eval/golden/v0.1.2/fr.jsonl: sha256 {got[:12]}… "
                                                 "does not match the pinned 29d72dcd34ea… for v0.1.2")
    assert not (user_data_dir() / "v0.1.2").exists()


def test_v040_era_files_are_pinned_separately(server):
    """The shared copy holds today's files, so the 4535-row v0.4.0 pin must refuse it."""
    root, _url = server
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2@v0.4.0", "--from", str(root)])
    assert r.exit_code == 2 and ("us.jsonl" in r.output or "fr.jsonl" in r.output)


def test_unknown_version():
    r = CliRunner().invoke(main, ["golden", "pull", "v9"])
    assert r.exit_code == 2 and "known: v0.1.2, v0.1.2@v0.4.0" in r.output


def test_pull_replaces_an_installed_set_and_an_unwritable_data_dir_is_a_one_line_error(server, tmp_path, monkeypatch):
    root, _url = server
    assert CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(root)]).exit_code == 0
    dest = user_data_dir() / "v0.1.2"
    (dest / "stale.txt").write_text("from an older pull")
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(root)])
    assert r.exit_code == 0, r.output
    assert (dest / "us.jsonl").is_file() and not (dest / "stale.txt").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v0.1.2"]  # no staging or backup left behind

    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "file"))
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(root)])
    assert r.exit_code == 2, r.output
    assert "cannot create the golden data directory" in r.output and str(tmp_path / "file") in r.output
    assert "Traceback" not in r.output


def test_a_local_source_in_another_layout_says_which_layouts_it_takes(tmp_path, shared):
    (tmp_path / "elsewhere" / "v0.1").mkdir(parents=True)
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(tmp_path / "elsewhere")])
    assert r.exit_code == 2
    assert r.output.strip() == (f"mweval: error: {tmp_path / 'elsewhere'}: no v0.1.2/ directory: --from takes an upstream checkout "
                                "(<base>/data/eval/golden/v0.1.2/) or a directory holding v0.1.2/ or golden/v0.1.2/")
    # a copy of the version that lacks a file: that file is named, not the layout
    shutil.copytree(GOLDEN_ROOT / "v0.1.2", tmp_path / "part" / "v0.1.2", ignore=shutil.ignore_patterns("dev"))
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(tmp_path / "part")])
    assert r.exit_code == 2 and f"{tmp_path / 'part' / 'v0.1.2' / 'dev'}/" in r.output and "cannot read: No such file" in r.output
    assert not (user_data_dir() / "v0.1.2").exists()


@pytest.mark.parametrize("layout", ["golden", "version"])
def test_a_copy_of_the_golden_sets_is_a_source_too(tmp_path, shared, layout):
    """--from needed an upstream checkout's data/eval/golden/; a copy of golden/ (as ../shared/upstream
    has it) or of the version directories was refused. The sha256s are checked all the same."""
    src = shared if layout == "golden" else GOLDEN_ROOT
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(src)])
    assert r.exit_code == 0, r.output
    assert resolve_golden("v0.1.2")[0] == user_data_dir() / "v0.1.2"


def test_a_failed_download_says_what_to_do_without_network():
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "download failed" in r.output and "pass --from a directory that holds the golden sets (their sha256s are checked" in r.output


def test_the_installed_path_is_printed_as_the_one_golden_names_resolve_to(server):
    _root, url = server
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", url])
    assert r.exit_code == 0, r.output
    dest = user_data_dir() / "v0.1.2"
    assert r.stdout.strip() == f"v0.1.2 installed at {dest} (use --golden v0.1.2)"


def test_a_source_that_is_neither_a_directory_nor_a_url_is_named_as_such(tmp_path, shared):
    """A mistyped --from directory went to urllib, which said "unknown url type"; it is said as it is."""
    missing = tmp_path / "no-such-checkout"
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2", "--from", str(missing)])
    assert r.exit_code == 2
    assert r.output.strip() == f"mweval: error: {missing}: --from is neither a directory nor a URL"
    assert list(user_data_dir().iterdir()) == []  # nothing installed, no staging left


def test_without_from_the_pinned_upstream_commit_is_fetched(monkeypatch, shared):
    """No network here: a proxy that refuses connections makes urllib's own request fail, and the
    error names the URL it tried: the pinned commit's raw file, not a branch."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(main, ["golden", "pull", "v0.1.2@v0.4.0"])
    assert r.exit_code == 2, r.output
    url = ("https://raw.githubusercontent.com/sister-software/mailwoman/c7e5ae7f847275140c88e6828fd704e3db3cb838"
           "/data/eval/golden/v0.1.2/adversarial.jsonl")
    assert r.output.startswith(f"mweval: error: {url}: download failed (")
    assert list(user_data_dir().iterdir()) == []
