#!/usr/bin/env python3
"""Python ftplib client for the ftp-pinhole end-to-end tests.

usage: ftpclient.py HOST PORT KIND REMOTE OUTFILE [TIMEOUT]
  KIND = pasv | epsv | port | eprt | auto-passive | auto-active

ftplib on its own picks the command by address family of the control
connection: passive -> PASV on IPv4, EPSV on IPv6; active -> PORT on IPv4,
EPRT on IPv6 (set_pasv(False)).  The explicit kinds force the command:
  epsv on IPv4 : makepasv() overridden to send EPSV
  eprt on IPv4 : makeport() overridden to send EPRT |1|...
  pasv on IPv6 : PASV is sent; ftplib ignores the host in the 227 reply
                 (trust_server_pasv_ipv4_address=False) and connects to the
                 control peer, so it works if the server answers 227 at all
  port on IPv6 : impossible (PORT cannot carry an IPv6 address) -> error
Prints every command sent and reply received (lines '>' / '<').
"""
import ftplib
import socket
import sys
import time


class LabFTP(ftplib.FTP):
    force = None

    def putline(self, line):
        print("> " + line.rstrip("\r\n"), flush=True)
        super().putline(line)

    def getresp(self):
        resp = super().getresp()
        print("< " + resp, flush=True)
        return resp

    def makepasv(self):
        if self.force == "epsv":
            host, port = ftplib.parse229(self.sendcmd("EPSV"),
                                         self.sock.getpeername())
            return host, port
        if self.force == "pasv":
            untrusted_host, port = ftplib.parse227(self.sendcmd("PASV"))
            return self.sock.getpeername()[0], port
        return super().makepasv()

    def makeport(self):
        if self.force == "eprt":
            sock = socket.create_server(("", 0), family=self.af, backlog=1)
            port = sock.getsockname()[1]
            host = self.sock.getsockname()[0]
            self.sendeprt(host, port)
            if self.timeout is not ftplib._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            return sock
        if self.force == "port":
            if self.af != socket.AF_INET:
                raise SystemExit("PORT cannot carry an IPv6 address")
        return super().makeport()


def main():
    host, port, kind, remote, out = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    f = LabFTP()
    f.force = kind if kind in ("pasv", "epsv", "port", "eprt") else None
    t0 = time.monotonic()
    f.connect(host, int(port), timeout=timeout)
    print("< " + f.welcome, flush=True)
    f.login()
    f.set_pasv(kind in ("pasv", "epsv", "auto-passive"))
    with open(out, "wb") as fp:
        f.retrbinary("RETR " + remote, fp.write)
    f.quit()
    print("elapsed %.3f s" % (time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    main()
