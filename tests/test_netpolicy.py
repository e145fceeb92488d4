"""pipelines.netpolicy: IP literals in every spelling, refused addresses, internal names, the switch."""

from __future__ import annotations

import ipaddress

import pytest
from scrapy.settings import Settings

from pipelines.domains import DomainError, parse_site
from pipelines.netpolicy import address_reason, allow_private, host_reason, internal_name_reason, ip_literal


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.000.000.001", "127.0.0.1"), ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("10.1", "10.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"), ("１２７．０．０．１", "127.0.0.1"), ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("::ffff:7f00:1", "::ffff:7f00:1"), ("[fe80::1%25eth0]", "fe80::1%eth0"),
    ("169.254.169.254", "169.254.169.254"), ("8.8.8.8", "8.8.8.8"),
])
def test_ip_literal_reads_every_spelling(host, expected):
    assert ip_literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "0x7f.example.com", "1.2.3.4.5", "09.1", "", "a.test", "xn--bcher-kva.de"])
def test_ip_literal_leaves_names_alone(host):
    assert ip_literal(host) is None


@pytest.mark.parametrize("ip,word", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("::ffff:10.0.0.5", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "shared"),
    ("100.127.255.255", "shared"), ("224.0.0.251", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
    ("::", "unspecified"), ("fd12:3456::1", "unique local"), ("fc00::1", "unique local"), ("fec0::1", "site-local"),
    ("240.0.0.1", "private"), ("255.255.255.255", "private"), ("192.0.2.1", "private"),
    ("64:ff9b::a00:5", "private"), ("2002:7f00:1::", "loopback"),
])
def test_address_reason_names_the_kind(ip, word):
    reason = address_reason(ipaddress.ip_address(ip))
    assert reason and word in reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(ip):
    assert address_reason(ip) is None


@pytest.mark.parametrize("host", [
    "localhost", "LOCALHOST.", "foo.localhost", "localhost.localdomain", "printer.local", "db.svc.cluster.local",
    "metadata.google.internal", "ip-10-0-0-1.ec2.internal", "kubernetes.default.svc", "nas.lan", "router.home.arpa",
    "wiki.intranet", "mail.corp", "kubernetes", "metadata",
])
def test_internal_names(host):
    assert internal_name_reason(host)


@pytest.mark.parametrize("host", ["example.com", "a.test", "local.example.com", "internal.example.org", "svc.io",
                                  "127.0.0.1"])
def test_public_names_pass(host):
    assert internal_name_reason(host) is None


def test_host_reason_reads_as_one_line():
    assert host_reason("10.0.0.5") == "10.0.0.5 is a private address"
    assert host_reason("0x7f000001") == "0x7f000001 (127.0.0.1) is a loopback address"
    assert host_reason("8.8.8.8") == "8.8.8.8 is an IP address, not a domain name"
    assert host_reason("metadata.google.internal") == "metadata.google.internal is an internal name (.internal)"
    assert host_reason("example.com") is None


def test_allow_private_switch(monkeypatch):
    monkeypatch.delenv("SCRAPERSKY_ALLOW_PRIVATE", raising=False)
    assert not allow_private()
    assert not allow_private(Settings())
    assert allow_private(Settings({"SCRAPERSKY_ALLOW_PRIVATE": "1"}))
    assert allow_private(Settings({"SCRAPERSKY_ALLOW_PRIVATE": True}))
    assert not allow_private(Settings({"SCRAPERSKY_ALLOW_PRIVATE": "0"}))
    assert allow_private({"SCRAPERSKY_ALLOW_PRIVATE": "true"})
    assert not allow_private({"SCRAPERSKY_ALLOW_PRIVATE": "no"})
    monkeypatch.setenv("SCRAPERSKY_ALLOW_PRIVATE", "1")
    assert allow_private() and allow_private(Settings())


@pytest.mark.parametrize("given", [
    "metadata.google.internal", "foo.localhost", "localhost.localdomain", "printer.local", "kubernetes.default.svc",
    "db.default.svc.cluster.local", "nas.lan", "router.home.arpa", "http://metadata.google.internal/x", "0x7f.0x1",
    "ｍｅｔａｄａｔａ.ｇｏｏｇｌｅ.ｉｎｔｅｒｎａｌ",
])
def test_api_refuses_internal_names_up_front(given):
    with pytest.raises(DomainError) as err:
        parse_site(given, strict=True)
    assert "internal name" in err.value.reason or "loopback" in err.value.reason


def test_api_still_accepts_public_names():
    assert parse_site("https://www.Example.COM/about", strict=True).name == "example.com"
    assert parse_site("internal.example.org", strict=True).name == "internal.example.org"
