"""Signed report-view links: valid only for their report, until they expire, with this key."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from fhir_ai.reports.links import KEY_FILE, ReportLinks, open_report_url
from fhir_ai.settings import Settings


def _parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.rsplit("/", 1)[1], query["exp"][0], query["sig"][0]


def test_a_link_opens_its_report_until_it_expires() -> None:
    now = [1_000_000.0]
    links = ReportLinks(b"k" * 32, ttl_s=600, clock=lambda: now[0])
    url = links.url("https://ai.example", "r1")
    assert url.startswith("https://ai.example/reports/r1?exp=1000600&sig=")
    report, expires, signature = _parts(url)
    assert links.valid(report, expires, signature)
    now[0] += 601
    assert not links.valid(report, expires, signature)


def test_a_card_opens_the_signed_view_or_else_the_fhir_resource() -> None:
    links = ReportLinks(b"k" * 32, ttl_s=600, clock=lambda: 1_000_000.0)
    assert open_report_url(links, "https://ai.example", "r1") == links.url(
        "https://ai.example", "r1"
    )
    assert (
        open_report_url(None, "https://ai.example", "r1")
        == "https://ai.example/fhir/DiagnosticReport/r1"
    )


def test_a_link_is_not_valid_for_another_report_a_later_expiry_or_another_key() -> None:
    links = ReportLinks(b"k" * 32, ttl_s=600)
    report, expires, signature = _parts(links.url("https://ai.example", "r1"))
    assert not links.valid("r2", expires, signature)
    assert not links.valid(report, str(int(expires) + 3600), signature)
    assert not ReportLinks(b"x" * 32, ttl_s=600).valid(report, expires, signature)
    assert not links.valid(report, expires, signature[:-1] + ("A" if signature[-1] != "A" else "B"))
    for bad in (None, "", "-1", "1e9", "9" * 40):
        assert not links.valid(report, bad, signature)
    assert not links.valid(report, expires, None)


def test_the_default_key_is_created_once_readable_by_its_owner(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first, second = ReportLinks.from_settings(settings), ReportLinks.from_settings(settings)
    report, expires, signature = _parts(first.url("https://ai.example", "r1"))
    assert second.valid(report, expires, signature)  # another process, the same key
    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600


def test_a_configured_key_is_used(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, report_link_key=SecretStr("configured-secret"))
    url = ReportLinks.from_settings(settings).url("https://ai.example", "r1")
    assert ReportLinks(b"configured-secret", ttl_s=1800).valid(*_parts(url))
    assert not (tmp_path / KEY_FILE).exists()
