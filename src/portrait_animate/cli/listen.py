"""The address a server front end (``serve``, ``app``) is to listen on, checked before it
starts: a port in use or an address that is not this machine's is one line, not a trace."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence

from ..errors import InputError

__all__ = ["check_listen"]


def check_listen(hosts: Sequence[str], port: int, host_option: str, port_option: str) -> None:
    """Fail unless ``port`` can be bound on each of ``hosts`` (the first is the user's).

    Raises:
        InputError: not a port, an address not of this machine, or a port taken; naming
            ``host_option`` or ``port_option`` and the fix.
    """
    if not 1 <= port <= 65535:
        raise InputError(f"{port_option} {port} is not a port; give a number from 1 to 65535")
    given = hosts[0].removeprefix("[").removesuffix("]")
    not_here = InputError(f"{host_option} {given} is not an address of this machine; give "
                          "127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one "
                          "of its addresses")
    for host in dict.fromkeys(h.removeprefix("[").removesuffix("]") for h in hosts):
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM)[0]
        except (socket.gaierror, UnicodeError):
            raise not_here from None
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise not_here from None
                raise InputError(f"{port_option} {port}: cannot listen on {host}:{port} "
                                 f"({exc.strerror or type(exc).__name__}); pick another port "
                                 f"with {port_option}, or stop the program that uses this "
                                 "one") from None
