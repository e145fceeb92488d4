"""Domain identity (`pipelines.domains`): one normaliser for the command line, the API and the dispatcher."""

from __future__ import annotations

import pytest

from pipelines.domains import DomainError, parse_site


@pytest.mark.parametrize(
    ("text", "name", "first_origin"),
    [
        ("example.com", "example.com", "https://example.com"),
        ("Example.COM.", "example.com", "https://example.com"),
        ("  example.com \n", "example.com", "https://example.com"),
        ("https://www.example.com/path?q", "example.com", "https://www.example.com"),
        ("https://www.example.com/path?q=1#frag", "example.com", "https://www.example.com"),
        ("HTTP://Example.com", "example.com", "http://example.com"),
        ("http://example.com:8080/x", "example.com:8080", "http://example.com:8080"),
        ("example.com/some/path", "example.com", "https://example.com"),
        ("http://user:secret@example.com/", "example.com", "http://example.com"),
        ("bücher.de", "xn--bcher-kva.de", "https://xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de", "https://xn--bcher-kva.de"),
        ("https://bücher.de/straße", "xn--bcher-kva.de", "https://xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de", "https://xn--bcher-kva.de"),
        ("127.0.0.1:8080", "127.0.0.1:8080", "https://127.0.0.1:8080"),
        ("127.0.0.1", "127.0.0.1", "https://127.0.0.1"),
        ("localhost", "localhost", "https://localhost"),
        ("sub-domain.example.co.uk", "sub-domain.example.co.uk", "https://sub-domain.example.co.uk"),
        ("a" * 63 + ".com", "a" * 63 + ".com", "https://" + "a" * 63 + ".com"),
    ],
)
def test_valid_domains(text: str, name: str, first_origin: str) -> None:
    site = parse_site(text)
    assert site.name == name
    assert site.origins()[0] == first_origin
    assert parse_site(site.target) == site  # what the dispatcher hands the crawl means the same site


@pytest.mark.parametrize("spellings", [
    ["example.com", "www.example.com", "HTTPS://WWW.Example.com/about", "http://example.com/x", "example.com:443"],
    ["bücher.de", "xn--bcher-kva.de", "www.BÜCHER.de", "https://xn--bcher-kva.de/"],
])
def test_one_site_however_it_is_spelled(spellings: list[str]) -> None:
    """One `domains` row per site: the CLI policy and the API policy give the same name."""
    names = {parse_site(text).name for text in spellings} | {parse_site(text, strict=True).name for text in spellings}
    assert len(names) == 1


def test_origins_start_as_typed_then_try_the_www_or_apex_counterpart() -> None:
    assert parse_site("example.com").origins() == [
        "https://example.com", "http://example.com", "https://www.example.com", "http://www.example.com"]
    assert parse_site("www.example.com").origins()[:2] == ["https://www.example.com", "http://www.example.com"]
    assert parse_site("http://www.example.com/x").origins() == [
        "http://www.example.com", "https://www.example.com", "http://example.com", "https://example.com"]
    assert parse_site("blog.example.com").origins() == ["https://blog.example.com", "http://blog.example.com"]
    assert parse_site("http://127.0.0.1:8080").origins() == ["http://127.0.0.1:8080"]
    assert parse_site("http://example.com:8080").origins() == ["http://example.com:8080"]  # exactly this origin


def test_idna_2008_with_uts46_mapping() -> None:
    assert parse_site("faß.de").name == "xn--fa-hia.de"  # IDNA 2003 would have made it fass.de
    assert parse_site("FASS.de").name == "fass.de"


def test_public_suffixes_are_refused_and_www_under_a_suffix_is_a_name() -> None:
    for text in ("co.uk", "com", "https://co.uk/", "www.co.uk."):
        if text.startswith("www."):
            assert parse_site(text).name == "www.co.uk"
            continue
        with pytest.raises(DomainError, match="public suffix"):
            parse_site(text)


@pytest.mark.parametrize(
    "text",
    [
        "ftp://x", "ftp://example.com", "file:///etc/passwd", "a..b", "", "   ", None, "-bad-.com", "bad-.com",
        "-bad.com", "a" * 300, "a" * 300 + ".com", "a" * 64 + ".com", ".".join(["a" * 63] * 4) + ".com",
        "exa mple.com", "exa_mple.com", "ex!.com", "https://", "http://", ".", "http://.", "example.com:99999",
        "example.com:abc", "javascript:alert(1)", "https:/example.com", "https//example.com",
    ],
)
def test_invalid_domains_raise_with_a_reason(text) -> None:
    with pytest.raises(DomainError) as info:
        parse_site(text)
    assert str(info.value).strip()
    assert isinstance(info.value, ValueError)


def test_strict_policy_is_a_flag_of_the_same_normaliser() -> None:
    for text in ("127.0.0.1:8080", "localhost", "example.com:8080", "[::1]"):
        parse_site(text)  # the command line scans local sites
        with pytest.raises(DomainError):
            parse_site(text, strict=True)
