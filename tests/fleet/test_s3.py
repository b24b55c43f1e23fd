"""The S3 seam's settings: bucket URLs, credentials and policy files, and ``probe upload``'s
bad input (one line naming the setting or file, exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.errors import SettingsError
from probe.fleet import batch, s3
from tests.runs import run_cli


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://127.0.0.1:8333/fleet", (False, "127.0.0.1:8333", "fleet", "")),
        ("https://s3.example.org/fleet/vn/2026/", (True, "s3.example.org", "fleet", "vn/2026/")),
    ],
)
def test_bucket_urls_are_taken_apart(url: str, parts: tuple[object, ...]) -> None:
    b = s3.parse_bucket_url(url)
    assert (b.secure, b.host, b.bucket, b.prefix) == parts


@pytest.mark.parametrize(
    "url",
    [
        "s3://fleet",
        "http://host",
        "http://host/",
        "http://user:secret@host/fleet",
        "http://host/Fleet_Bucket",
        "http://host/fleet?x=1",
        "ftp://host/fleet",
    ],
)
def test_bad_bucket_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        s3.parse_bucket_url(url)


def test_the_destination_names_what_is_missing_or_broken(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/fleet"
    with pytest.raises(SettingsError, match="needs upload_credentials or upload_presigned"):
        s3.destination(url)
    with pytest.raises(SettingsError, match="upload_url: "):
        s3.destination("http://host", credentials_file="x")
    bad = tmp_path / "creds.json"
    for text, problem in (
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"access_key": "a"}', "needs access_key and secret_key"),
    ):
        bad.write_text(text)
        with pytest.raises(SettingsError, match=problem) as e:
            s3.destination(url, credentials_file=str(bad))
        assert str(bad) in str(e.value)
    with pytest.raises(SettingsError, match="not a pre-signed POST policy"):
        s3.destination(url, presigned_file=str(bad))
    with pytest.raises(SettingsError, match="cannot read"):
        s3.destination(url, credentials_file=str(tmp_path / "none.json"))
    bad.write_text(json.dumps({"access_key": "a", "secret_key": "b"}))
    d = s3.destination(url, credentials_file=str(bad), proxy="socks5h://127.0.0.1:9050")
    assert (d.access_key, d.secret_key, d.policy) == ("a", "b", None)
    assert type(d.http).__name__ == "SOCKSProxyManager"


def test_probe_upload_refuses_bad_settings_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("")
    db = tmp_path / "p.db"
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": "a", "secret_key": "b"}))
    _, public = batch.collective_keypair()
    base = ["upload", "--config", str(config), "--db", str(db)]
    cases = [
        ([], "upload_url: not set"),
        (["--upload-url", "http://127.0.0.1:1/fleet"], "needs collective_key"),
        (
            ["--upload-url", "http://127.0.0.1:1/fleet", "--collective-key", "nonsense"],
            "collective_key: not an X25519 public key",
        ),
        (
            [
                "--upload-url",
                "http://127.0.0.1:1/Bad",
                "--collective-key",
                public,
                "--upload-credentials",
                str(creds),
            ],
            "upload_url: ",
        ),
        (
            [
                "--upload-url",
                "http://127.0.0.1:1/fleet",
                "--collective-key",
                public,
                "--keep-uploaded",
                "30",
            ],
            "keep",
        ),
    ]
    for extra, problem in cases:
        code, _, err = run_cli([*base, *extra], capsys)
        assert code == 2, (extra, err)
        assert problem in err and len(err.strip().splitlines()) == 1, err
    assert not db.exists()


def test_probe_upload_with_the_store_away_says_so_and_keeps_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.store import Store
    from tests.dbs import measurement
    from tests.servers.tcp import free_port

    db = tmp_path / "p.db"
    store = Store.open(db)
    store.save(measurement("dns_nxdomain", "m1"))
    store.close()
    config = tmp_path / "settings.toml"
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": "a", "secret_key": "b"}))
    _, public = batch.collective_keypair()
    config.write_text(
        f'upload_url = "http://127.0.0.1:{free_port(["127.0.0.1"])}/fleet"\n'
        f'collective_key = "{public}"\nupload_credentials = "{creds}"\n'
    )
    code, out, _ = run_cli(["upload", "--config", str(config), "--db", str(db)], capsys)
    assert code == 0
    assert "1 batches made, 0 sent (0 measurements, " in out and "1 waiting" in out
    assert "the store did not take a batch: connection_refused" in out
