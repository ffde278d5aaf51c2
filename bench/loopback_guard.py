"""Refuse every network connection that does not go to this machine's loopback.

The benchmark scripts install this before importing an engine, so that
nothing an engine does at import or at run time (model lists, cost maps,
telemetry) can reach an outside host. It works on any Python 3 and imports
nothing outside the standard library, so the anchor environments can use it.
"""

import ipaddress
import socket


class OutsideConnectionRefused(OSError):
    pass


def _is_loopback(host) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
refused: list[str] = []


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_loopback(name):
        refused.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, f"outside host {name!r} refused by the benchmark")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check_address(sock, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        refused.append(str(address[0]))
        raise OutsideConnectionRefused(f"connection to {address[0]!r} refused by the benchmark")


def _guarded_connect(self, address):
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real_connect_ex(self, address)


def install() -> None:
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
