"""Which addresses webhooks may go to: only public ones, in whatever spelling the address comes."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

import pytest

from rebill.webhooks.destinations import address_refusal, is_localhost, literal_address, url_refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "shared address space 100.64.0.0/10"),
        ("100.127.255.254", "shared address space 100.64.0.0/10"),
        ("198.18.0.1", "benchmarking range 198.18.0.0/15"),
        ("198.19.255.1", "benchmarking range 198.18.0.0/15"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # documentation
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback, as 127.0.0.1"),
        ("::ffff:169.254.169.254", "link-local, as 169.254.169.254"),
        ("::ffff:10.0.0.5", "private, as 10.0.0.5"),
        ("2002:7f00:1::1", "loopback, as 127.0.0.1"),  # 6to4
        ("64:ff9b::a00:5", "private, as 10.0.0.5"),  # NAT64
        ("::7f00:1", "reserved"),  # IPv4-compatible (deprecated)
        ("93.184.215.14", None),
        ("8.8.8.8", None),
        ("100.128.0.1", None),  # just past 100.64/10
        ("198.20.0.1", None),  # just past 198.18/15
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_only_globally_routable_addresses_are_destinations(address, reason):
    assert address_refusal(ip_address(address)) == reason


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0x7f.1", "127.0.0.1"),  # hex, short form
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),  # a trailing dot
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("partner.example", None),
        ("hooks.example.test", None),
        ("1.2.3.4.example", None),
    ],
)
def test_every_spelling_of_an_address_is_read_as_the_resolver_reads_it(host, address):
    assert literal_address(host) == (ip_address(address) if address else None)


def test_localhost_names_are_loopback_whatever_dns_says():
    assert is_localhost("localhost") and is_localhost("LOCALHOST.") and is_localhost("db.localhost")
    assert not is_localhost("localhost.example") and not is_localhost("mylocalhost")


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://partner.example/hooks", False),
        ("HTTP://partner.example/hooks", False),
        ("ftp://partner.example/hooks", True),
        ("gopher://127.0.0.1:6379/_", True),
        ("file:///etc/passwd", True),
        ("https://user:pass@partner.example/hooks", True),
        ("https://user@partner.example/hooks", True),
        ("https://@partner.example/hooks", True),
    ],
)
def test_other_schemes_and_credentials_are_refused_whatever_the_host(url, refused):
    assert (url_refusal(urlsplit(url)) is not None) is refused
