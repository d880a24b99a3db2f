#!/usr/bin/env python3
"""Send one hand-made TCP segment as a raw Ethernet frame (tests only).

usage: inject.py IFACE DST_MAC SRC_IP DST_IP SPORT DPORT SEQ PAYLOAD

Builds Ethernet + IPv4 + TCP (flags ACK|PSH, valid checksums) around
PAYLOAD (\\r\\n escapes allowed) and sends it on IFACE with an AF_PACKET
socket: a forged control segment, without any handshake.
"""
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    iface, dst_mac, src, dst, sport, dport, seq, payload = sys.argv[1:9]
    payload = payload.encode().decode("unicode_escape").encode("latin-1")
    src_b, dst_b = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", int(sport), int(dport), int(seq), 1, 5 << 4, 0x18, 65535, 0, 0)
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    csum = checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 6, 0, src_b, dst_b)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = open("/sys/class/net/%s/address" % iface).read().strip()
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
    s.send(eth + ip + tcp + payload)


if __name__ == "__main__":
    main()
