"""Outbound HTTP (schedule webhooks) only to hosts the operator allows, never inward.

A webhook URL comes from whoever holds a submit token, and the worker that POSTs it sits
inside the network: left alone it reaches loopback services, the cloud metadata
endpoint (169.254.169.254) and private hosts. So a URL must be http(s), its host must
match `outbound_hosts`, and every address the name resolves to must be public (or in
`outbound_private_networks`). The POST then goes to the address that was checked (the
name stays in the Host header and TLS SNI), so a second DNS answer cannot redirect it.
Redirects are not followed, and response bodies are never read into events or errors.
"""

import fnmatch
import ipaddress
import socket
from typing import Any

import httpx

from config.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(ValueError):
    """The operator does not allow this destination."""


def check_url(url: str, settings: Settings) -> None:
    """What can be checked without DNS (at submit): scheme, host pattern, literal IPs."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise OutboundRefused(f"{url!r}: only http(s) URLs with a host are allowed")
    host = parsed.host
    if not any(fnmatch.fnmatchcase(host.lower(), p.lower()) for p in settings.outbound_hosts):
        raise OutboundRefused(
            f"host {host!r} is not among the operator's allowed hosts {settings.outbound_hosts}"
        )
    literal = _literal(host)
    if literal is not None:
        _check_address(host, literal, settings)
    elif host.lower() == "localhost" or host.lower().endswith(".localhost"):
        _check_address(host, ipaddress.ip_address("127.0.0.1"), settings)


def resolve(url: str, settings: Settings) -> IPAddress:
    """Check `url` and every address its host resolves to; the first one to connect to."""
    check_url(url, settings)
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OutboundRefused(f"host {parsed.host!r} does not resolve ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        _check_address(parsed.host, address, settings)
    return addresses[0]


def post_json(url: str, payload: Any, settings: Settings, timeout: float) -> int:
    """POST `payload` to the checked address of `url`; its status code (2xx) or raises
    `OutboundRefused` / `httpx.HTTPError`."""
    address = resolve(url, settings)
    parsed = httpx.URL(url)
    pinned = parsed.copy_with(host=str(address))
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request(
            "POST",
            pinned,
            json=payload,
            headers={"Host": parsed.netloc.decode("ascii")},
            extensions=extensions,
        )
        response = client.send(request)
    response.raise_for_status()
    return response.status_code


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_EMBEDS_IPV4 = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, still routed by some stacks)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64, local-use prefix (RFC 8215)
)


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one reaches (mapped, compatible or NAT64), else itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in net for net in _EMBEDS_IPV4):  # `::1` becomes 0.0.0.1: refused too
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _check_address(host: str, address: IPAddress, settings: Settings) -> None:
    address = _embedded_ipv4(address)
    if address.is_global and not address.is_multicast:
        return
    if any(
        address in ipaddress.ip_network(net, strict=False)
        for net in settings.outbound_private_networks
    ):
        return
    raise OutboundRefused(
        f"host {host!r} is (or resolves to) {address}, a loopback, private, link-local or "
        "otherwise non-public address; the operator must allow it in "
        "DGPO_OUTBOUND_PRIVATE_NETWORKS"
    )
