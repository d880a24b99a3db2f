#!/usr/bin/env python3
"""pyftpdlib server for the ftp-pinhole end-to-end tests.

Anonymous read-only FTP on a dual-stack socket ([::]:PORT with
IPV6_V6ONLY=0, so IPv4 clients arrive as ::ffff:a.b.c.d and are still
answered with a correct 227 reply), passive port range, refuses foreign
PORT/EPRT addresses and privileged ports (pyftpdlib defaults).

usage: pyftpd.py ROOT PORT PASV_MIN PASV_MAX LOGFILE
"""
import logging
import socket
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    root, port, pmin, pmax, logfile = sys.argv[1:6]
    logging.basicConfig(filename=logfile, level=logging.DEBUG,
                        format="%(asctime)s %(message)s")
    auth = DummyAuthorizer()
    auth.add_anonymous(root, perm="elr")
    handler = FTPHandler
    handler.authorizer = auth
    handler.banner = "pyftpdlib lab server ready."
    handler.passive_ports = range(int(pmin), int(pmax) + 1)
    handler.permit_foreign_addresses = False
    handler.permit_privileged_ports = False
    handler.timeout = 60

    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", int(port)))
    server = FTPServer(sock, handler)
    server.max_cons = 64
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
