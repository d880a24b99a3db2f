#!/usr/bin/env bash
# Benchmark of the nftables backend against the running kernel (needs root).
#
# Builds the bench (benches/nftables.rs) in release, creates a throw-away
# network namespace, loads a table with the four pinhole sets into it, runs
# the bench inside with `ip netns exec`, and deletes the namespace on exit,
# even on failure. Prints elements/s for batches of 1,000 and 10,000 and the
# latency of one operation at a time (open, refresh, close).
#
# Usage: benches/nftables.sh [--reps N] [--single N] [--legacy]
#   --reps N     batched runs per size (default 5; the median is shown)
#   --single N   operations of each kind one at a time (default 5000)
#   --legacy     also measure the fallbacks used on kernels before 6.3
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "nftables.sh: needs root (network namespaces, CAP_NET_ADMIN)" >&2
  exit 1
fi

NS="fp-bench-$$"
TABLE="ftp_pinhole_bench"
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

cargo bench --bench nftables --no-run
bin=$(cargo bench --bench nftables --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d '"' -f 4)
if [ ! -x "$bin" ]; then
  echo "nftables.sh: cannot find the bench executable" >&2
  exit 1
fi

ip netns add "$NS"
ip netns exec "$NS" nft -f - <<EOF
table inet $TABLE {
  set passive4 { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }
  set active4  { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }
  set passive6 { type ipv6_addr . ipv6_addr . inet_service; flags timeout; }
  set active6  { type ipv6_addr . ipv6_addr . inet_service; flags timeout; }
}
EOF

# Bounded: the bench itself stops after a fixed number of operations.
timeout 600 ip netns exec "$NS" "$bin" --table "$TABLE" "$@"
