#!/usr/bin/env bash
# ftp-pinhole on a gateway, measured against the kernel's own FTP helper.
#
# Builds a client -- gateway -- server topology in network namespaces
# (documentation addresses only), serves a 1 MiB file with vsftpd, and
# downloads it TRANSFERS times with curl, cycling PASV, EPSV, PORT and EPRT
# over IPv4 and IPv6, twice:
#   1. gateway = `ftp-pinhole rules --profile gateway` + `ftp-pinhole run`
#      watching both gateway interfaces;
#   2. gateway = default drop + the kernel helper (`ct helper` "ftp").
# Prints, for each: transfers that passed; data SYNs that reached the gateway
# before their pinhole and were dropped (an nft counter after the pinhole
# rules: each such SYN costs the client a 1 s retransmission); curl's
# transfer time (p50, p99, max); and for ftp-pinhole the time from the
# packet that carried the 227/229/PORT/EPRT (kernel receive timestamp) to
# its pinhole being in the kernel (audit `latency_us`: p50, p99, max).
#
# Usage (root): benches/gateway.sh [TRANSFERS]     (default 200)
#   DAEMON_ARGS="--realtime-priority 50" benches/gateway.sh   adds daemon flags
# Needs what scripts/setup installs (vsftpd, curl, nftables, iproute2).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
[ "$(id -u)" -eq 0 ] || { echo "gateway.sh: needs root" >&2; exit 1; }

cargo build --release --quiet
BIN=$PWD/target/release/ftp-pinhole
C="fpb-c-$$"; G="fpb-g-$$"; S="fpb-s-$$"
RUN=$(mktemp -d /tmp/ftp-pinhole-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$C" "$G" "$S"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

for ns in "$C" "$G" "$S"; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "$ns" link set lo up
done
ip -n "$G" link add gc0 type veth peer name eth0 netns "$C"
ip -n "$G" link add gs0 type veth peer name eth0 netns "$S"
for l in "$G gc0" "$G gs0" "$C eth0" "$S eth0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$C" addr add 192.0.2.2/24 dev eth0;      ip -n "$C" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$G" addr add 192.0.2.1/24 dev gc0;       ip -n "$G" addr add 2001:db8:1::1/64 dev gc0 nodad
ip -n "$G" addr add 198.51.100.1/24 dev gs0;    ip -n "$G" addr add 2001:db8:2::1/64 dev gs0 nodad
ip -n "$S" addr add 198.51.100.2/24 dev eth0;   ip -n "$S" addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n "$C" route add default via 192.0.2.1;     ip -n "$C" -6 route add default via 2001:db8:1::1
ip -n "$S" route add default via 198.51.100.1;  ip -n "$S" -6 route add default via 2001:db8:2::1
ip netns exec "$G" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

mkdir -p "$RUN/root" "$RUN/empty"; chmod 755 "$RUN" "$RUN/root" "$RUN/empty"
head -c 1048576 /dev/urandom > "$RUN/root/1M.bin"; chmod 644 "$RUN/root/1M.bin"
SUM=$(sha256sum < "$RUN/root/1M.bin" | cut -d' ' -f1)
sed "s#@RUNDIR@#$RUN#g" tests/support/vsftpd.conf.in > "$RUN/vsftpd.conf"
ip netns exec "$S" /usr/sbin/vsftpd "$RUN/vsftpd.conf" </dev/null >"$RUN/vsftpd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$S" ss -Hltn 'sport = :21' | grep -q LISTEN && break; sleep 0.1; done

# The counter of data SYNs that nothing accepted (they meet the default drop).
count_late() {
  ip netns exec "$G" nft add rule "$1" forward tcp flags \& \(syn\|ack\) == syn counter comment \"late\"
}
late() { ip netns exec "$G" nft list chain "$1" forward | sed -n 's/.*counter packets \([0-9]*\).*comment "late".*/\1/p'; }

transfers() { # $1: label; appends "ok seconds" lines to $RUN/$1.times
  local i mode fam args host url out t
  for i in $(seq 0 $((N - 1))); do
    mode=$((i % 4)); fam=$(((i / 4) % 2))
    case $mode in 0) args="--ftp-pasv --disable-epsv";; 1) args="--ftp-pasv";; 2) args="-P - --disable-eprt";; 3) args="-P -";; esac
    if [ $fam -eq 0 ]; then url="ftp://198.51.100.2/1M.bin"; else url="ftp://[2001:db8:2::2]/1M.bin"; fi
    out="$RUN/out.bin"; rm -f "$out"
    # shellcheck disable=SC2086
    t=$(ip netns exec "$C" timeout 30 curl -sS --connect-timeout 5 -m 20 $args -o "$out" -w '%{time_total}' "$url" 2>/dev/null || echo fail)
    if [ "$t" != fail ] && [ "$(sha256sum < "$out" | cut -d' ' -f1)" = "$SUM" ]; then echo "1 $t"; else echo "0 ${t/fail/0}"; fi
  done > "$RUN/$1.times"
}

pct() { # stdin: numbers; prints p50 p99 max
  sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "- - -"; exit}
    p50=a[int((NR-1)*0.50)+1]; p99=a[int((NR-1)*0.99)+1]; print p50, p99, a[NR]}'
}

# --- 1. ftp-pinhole
"$BIN" rules --profile gateway | ip netns exec "$G" nft -f -
count_late "inet ftp_pinhole"
# shellcheck disable=SC2086
ip netns exec "$G" "$BIN" run -i gc0 -i gs0 --audit-log "$RUN/audit.jsonl" --log-level warn ${DAEMON_ARGS:-} 2>"$RUN/daemon.err" &
DPID=$!; PIDS+=("$DPID")
for _ in $(seq 100); do grep -q daemon-start "$RUN/audit.jsonl" 2>/dev/null && break; sleep 0.1; done
transfers pinhole
LATE_P=$(late "inet ftp_pinhole")
kill -TERM "$DPID"; wait "$DPID" || true
ip netns exec "$G" nft delete table inet ftp_pinhole

# --- 2. the kernel's FTP helper
ip netns exec "$G" nft -f - <<'NFT'
table inet helper {
  ct helper ftp-std { type "ftp" protocol tcp; l3proto inet; }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    tcp dport 21 ct state new ct helper set "ftp-std" accept
  }
}
NFT
count_late "inet helper"
transfers helper
LATE_H=$(late "inet helper")

report() { # label late
  local ok total times
  ok=$(awk '$1==1' "$RUN/$1.times" | wc -l); total=$(wc -l < "$RUN/$1.times")
  times=$(awk '$1==1 {printf "%.1f\n", $2*1000}' "$RUN/$1.times" | pct)
  printf '%-12s %5s/%-5s %16s   %s\n' "$1" "$ok" "$total" "$2" "$times"
}
echo
echo "$N transfers of 1 MiB (PASV, EPSV, PORT, EPRT x IPv4, IPv6), curl, vsftpd 3.0.3"
printf '%-12s %11s %16s   %s\n' gateway passed "SYNs before hole" "transfer ms: p50 p99 max"
report pinhole "$LATE_P"
report helper "$LATE_H"
echo
lat=$(grep '"event":"pinhole-open"' "$RUN/audit.jsonl" | sed -n 's/.*"latency_us":\([0-9]*\).*/\1/p' | pct)
opens=$(grep -c '"event":"pinhole-open"' "$RUN/audit.jsonl" || true)
consumed=$(grep -c '"event":"pinhole-consumed"' "$RUN/audit.jsonl" || true)
echo "ftp-pinhole: $opens pinholes opened, $consumed consumed"
echo "packet to pinhole in the kernel, us: p50 p99 max = $lat"
