"""Target lists: targets.yaml validation with file:line:field errors, Citizen Lab CSV import."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from probe.targets import TargetsError, import_citizenlab_csv, load_targets

VN = Path(__file__).parent / "fixtures" / "test-lists" / "vn.csv"


def test_default_targets_file_is_valid(repo_root: Path) -> None:
    tl = load_targets(repo_root / "targets.yaml")
    names = {t.name for t in tl.targets}
    assert {"facebook", "facebook-static-cdn", "youtube"} <= names
    assert len(tl.targets) >= 15 and all(t.category for t in tl.targets)
    assert len(tl.controls) >= 3 and all(c.is_control for c in tl.controls)
    hosts = {t.url.split("/")[2] for t in tl.controls}
    assert len(hosts) >= 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "targets:\n  - name: a\n    url: ftp://x/\n",
            "t.yaml:2: targets[0].url: 'ftp://x/' must start",
        ),
        (
            "targets:\n  - name: a\n    url: https://x/\n    category: NOPE\n",
            "t.yaml:2: targets[0].category: unknown Citizen Lab category code 'NOPE'",
        ),
        (
            "targets:\n  - name: a\n    url: https://x/\n  - name: b\n    colour: red\n    url: https://y/\n",
            "t.yaml:4: targets[1].colour: unknown field (allowed: name, url",
        ),
        ("targets:\n  - name: a\n", "t.yaml:2: targets[0].url: missing"),
        ("targets:\n  - name: a\n    url: 3\n", "targets[0].url: Expected 'str', got 'int'"),
        (
            "targets:\n  - name: a\n    url: https://x/\ncontrols:\n  - name: a\n    url: https://y/\n",
            "name 'a' is used twice",
        ),
        ("targets:\n  - name: a\n  url: [\n", "t.yaml:3"),
        ("targets: []\n", "'targets:' is empty"),
        ("hello: 1\n", "unknown top-level key 'hello'"),
        ("targets:\n  - https://x/\n", "each entry must be a mapping"),
        ("targets:\n  - name: 'bad name!'\n    url: https://x/\n", "targets[0].name"),
    ],
)
def test_bad_targets(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TargetsError) as err:
        load_targets(p)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_import_vn_test_list(repo_root: Path, tmp_path: Path) -> None:
    entries, skipped = import_citizenlab_csv(VN, load_targets(repo_root / "targets.yaml"))
    urls = [e["url"] for e in entries]
    assert len(urls) == len(set(urls)) and skipped >= 10  # default targets come from this list
    assert "https://www.rfa.org/vietnamese/" not in urls
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    assert all(e.get("category") for e in entries)
    # the output is a valid targets file
    out = tmp_path / "imported.yaml"
    out.write_text(yaml.safe_dump({"targets": entries}, allow_unicode=True), encoding="utf-8")
    assert len(load_targets(out).targets) == len(entries)


def test_import_rejects_a_bad_row(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("url,category_code\nhttps://a.example/,NEWS\nnot a url,NEWS\n")
    with pytest.raises(TargetsError, match=r"l.csv:3: url:"):
        import_citizenlab_csv(p)
