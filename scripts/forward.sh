#!/usr/bin/env bash
# scripts/forward.sh: scanwarden on a router and a DNAT host, in the live
# lab (make e2e runs it for each backend after spoof.sh): a scanner must
# be cut off from everything behind the router, and from a port the
# router publishes by DNAT, while the clients of the services behind it
# keep working and are never reported.
#
# It reuses scripts/e2e.sh's set-up (as spoof.sh does) in the routed lab
# (scripts/lab.sh, namespaces "swfw-*" unless SW_LAB_PREFIX says
# otherwise): the router at 198.51.100.1 on the LAN forwards to the far
# network 203.0.113.0/24, where the far client namespace plays a server
# behind the router (203.0.113.20: HTTP on tcp/80, and an HTTP server on
# tcp/143, a port of the default TCP_PORTS, standing for a mail server's
# IMAP). The router publishes 198.51.100.1:8080 by DNAT to 203.0.113.20:80
# (as Docker publishes a container's port). The attacker and the benign
# client reach 203.0.113.0/24 via the router.
#
# The daemon runs in the ROUTER namespace (as e2e runs it: the user
# scanwarden, CAP_NET_RAW and CAP_NET_ADMIN only), capturing on its LAN
# interface, with HOME_NETWORKS="203.0.113.0/24,198.51.100.1" (the hosts
# behind it and itself) and the config's other defaults (BLOCK_BACKEND from
# E2E_BACKEND, the kernel trap by default).
#
# Throughout, the benign client (198.51.100.20) makes HTTP requests to
# 203.0.113.20:80, 203.0.113.20:143 and 198.51.100.1:8080 every 300 ms.
# Scenarios:
#   1  the router case: nmap -sS (ports 1-1000) from a fresh address
#      against 203.0.113.20, behind the router: the daemon reports and
#      blocks it; the scanner's next connections to 203.0.113.20:80 and to
#      198.51.100.1:8080 fail.
#   2  the DNAT case: nmap -sS (1-1000) from another fresh address against
#      the router's own 198.51.100.1: blocked; its next connections to the
#      published 198.51.100.1:8080 and to 203.0.113.20:80 fail.
#   3  a flood of the banned scanner (2000 SYNs to 198.51.100.1:8080 and
#      to 203.0.113.20:80) makes no connection-tracking entry in the
#      router (/proc/net/nf_conntrack; skipped with a reason without it).
# At the end: the benign client had at least 99 % of its requests
# answered, was never reported nor blocked, and no source but the two
# scanners is blocked; the daemon logged no error and stops with status 0,
# and `scanwarden flush` leaves nothing of it in the router's firewall.
# A table of the scans (probes before the rule, ms from the first probe to
# the rule, ports nmap classified) is printed.
#
# Needs what e2e.sh needs, and hping3. Environment: E2E_BACKEND,
# SW_LAB_PREFIX (default swfw-), KEEP_WORK=1, E2E_RACE=1 (as e2e.sh).
# About 40 s a backend.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swfw-}
export SW_LAB_ROUTED=1
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
TAG=forward

NS_RTR=${SW_LAB_PREFIX}router
NS_SRV=${SW_LAB_PREFIX}farclient
ROUTER4=198.51.100.1
SERVER4=203.0.113.20
FAR_NET=203.0.113.0/24
PUBLISHED=8080
# The benign client's pace through the router, and the share of its
# requests that must be answered.
FW_INTERVAL=300ms
CLIENT_MIN_PCT=99
FLOOD_COUNT=2000

FW_BEN_PID="" FW_BEN_LOG=""
declare -a ROWS_FW=()

# fw_client: the benign client's requests through the router, in the
# background.
fw_client() {
	FW_BEN_LOG=$WORK/logs/client-fw.log
	start_bg client-fw "$NS_BEN" "$FW_BEN_LOG" "$LABSRV" client -n 0 -src "$BENIGN4" \
		-interval "$FW_INTERVAL" -timeout "$BENIGN_TIMEOUT" \
		-http "http://$SERVER4/,http://$SERVER4:143/,http://$ROUTER4:$PUBLISHED/"
	FW_BEN_PID=$BG_PID
}

# fw_setup: the routes to the far network, the server behind the router,
# the DNAT rule, the daemon's config for the router.
fw_setup() {
	local ns
	for ns in "$NS_ATT" "$NS_BEN"; do
		ip -n "$ns" route add "$FAR_NET" via "$ROUTER4" dev "$IFACE"
	done
	start_bg srv-far "$NS_SRV" "$WORK/logs/srv-far.log" "$LABSRV" serve -http "$SERVER4:80,$SERVER4:143"
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(grep -c '^labsrv: http on' "$WORK/logs/srv-far.log" || true) -ge 2 ]] && break
		sleep 0.05
	done
	ip netns exec "$NS_RTR" iptables -t nat -A PREROUTING -d "$ROUTER4" -p tcp --dport "$PUBLISHED" \
		-j DNAT --to-destination "$SERVER4:80"
	reach "$ATTACKER4" "http://$SERVER4/" || die "the attacker cannot reach http://$SERVER4/ through the router: $REACH_OUT"
	reach "$ATTACKER4" "http://$ROUTER4:$PUBLISHED/" || die "the attacker cannot reach the published http://$ROUTER4:$PUBLISHED/: $REACH_OUT"
	reach_ns "$NS_BEN" "$BENIGN4" "http://$SERVER4:143/" || die "the benign client cannot reach http://$SERVER4:143/: $REACH_OUT"
	cat >>"$CONF" <<EOF
INTERFACES="$IFACE"
HOME_NETWORKS="$FAR_NET,$ROUTER4"
EOF
	# every daemon operation of e2e.sh's (start, flush, the ban checks)
	# is in the router from here on
	NS_VIC=$NS_RTR
}

# fw_scan NAME N TARGET: nmap -sS of ports 1-1000 of TARGET from the
# attacker's fresh address N; then the checks: blocked once, and cut off
# from the server behind the router and from the published port.
fw_scan() {
	local name=$1 n=$2 target=$3 src line probes=- ms=- classified=- url
	src=198.51.100.$((100 + n))
	say "scenario $name: nmap -sS -p 1-1000 $target from $src"
	nmap_cmd -sS "$src" "$target" -p 1-1000 --max-retries 0 --min-rate 1000
	if run_nmap "$name"; then
		classified=$(nmap_classified "$WORK/logs/scan-$name.nmap")
	fi
	wait_blocked "$src" "$BLOCK_WAIT" || true
	line=$(blocked_lines "$src" | head -n 1)
	if [[ -z $line ]]; then
		fail "$name: $src was not blocked (its lines: $(daemon_lines "$src" | head -n 3 | tr '\n' ' '))"
	else
		say "  scanwarden: $(jmsg "$line")$(sed -n 's/.*"origin":"\([^"]*\)".*/ (origin: \1)/p' <<<"$line")"
		[[ -z ${FW_DEBUG:-} ]] || say "  $line"
		probes=$(jnum "$line" probes)
		ms=$(printf '%.1f' "$(jnum "$line" block_ms)")
		[[ $line != *'"kernel_trap":true'* ]] || ms=kernel
	fi
	(($(ban_count "$src") == 1)) || fail "$name: $src is blocked $(ban_count "$src") times by $E2E_BACKEND, want 1"
	for url in "http://$SERVER4/" "http://$ROUTER4:$PUBLISHED/"; do
		if reach "$src" "$url"; then
			fail "$name: the blocked $src could still connect to $url"
		fi
	done
	reach "$ATTACKER4" "http://$SERVER4/" || fail "$name: $ATTACKER4 (never scanned) could not reach http://$SERVER4/: $REACH_OUT"
	ROWS_FW+=("$(printf '%-28s %-15s %7s %9s %11s' "$name" "$src" "$probes" "$ms" "$classified")")
}

# conntrack_of ADDR: the router's connection-tracking entries from ADDR.
conntrack_of() {
	ip netns exec "$NS_RTR" cat /proc/net/nf_conntrack 2>/dev/null | grep -c " src=$1 " || true
}

# fw_flood N: the banned scanner N sends FLOOD_COUNT SYNs to the published
# port and to the server behind: no conntrack entry may appear.
fw_flood() {
	local src=198.51.100.$((100 + $1)) before after
	if ! ip netns exec "$NS_RTR" test -r /proc/net/nf_conntrack; then
		say "scenario 3 skipped: no /proc/net/nf_conntrack in this kernel (CONFIG_NF_CONNTRACK_PROCFS)"
		return
	fi
	before=$(conntrack_of "$src")
	say "scenario 3: $FLOOD_COUNT SYNs from the banned $src to $ROUTER4:$PUBLISHED and $SERVER4:80 ($before conntrack entries of it before)"
	run_wait timeout 60 ip netns exec "$NS_ATT" hping3 -q -S -a "$src" -p "$PUBLISHED" -i u200 -c "$FLOOD_COUNT" "$ROUTER4" >/dev/null 2>&1 || true
	run_wait timeout 60 ip netns exec "$NS_ATT" hping3 -q -S -a "$src" -p 80 -i u200 -c "$FLOOD_COUNT" "$SERVER4" >/dev/null 2>&1 || true
	after=$(conntrack_of "$src")
	say "  conntrack entries of $src after the flood: $after"
	((after <= before)) || fail "scenario 3: the banned $src made $((after - before)) connection-tracking entries in the router (the ban must act before conntrack)"
}

fw_main() {
	local started=$SECONDS summary ok total
	preflight
	command -v hping3 >/dev/null || die "hping3 is missing: run scripts/deps.sh as root"
	setup 2
	fw_setup
	say "config: BLOCK_BACKEND=$E2E_BACKEND INTERFACES=$IFACE HOME_NETWORKS=$FAR_NET,$ROUTER4; daemon in $NS_RTR"
	fw_client
	start_daemon
	pause 2 # some rounds of the client before the first scan

	fw_scan "1 router: behind it" 1 "$SERVER4"
	fw_scan "2 DNAT: the router itself" 2 "$ROUTER4"
	fw_flood 2

	kill -TERM "$FW_BEN_PID" 2>/dev/null || true
	stop_pid "$FW_BEN_PID" 12 || true
	summary=$(grep -hE '^labsrv client: [0-9]+ rounds' "$FW_BEN_LOG" || true)
	read -r ok total < <(grep -oE 'http [0-9]+/[0-9]+ ok' <<<"$summary" | awk '{ split($2, f, "/"); print f[1] + 0, f[2] + 0 }')
	say "the benign client through the router: ${summary#labsrv client: }"
	if ((${total:-0} == 0)); then
		fail "the benign client made no request through the router: $(tail -n 3 "$FW_BEN_LOG" | tr '\n' ' ')"
	elif ((ok * 100 < CLIENT_MIN_PCT * total)); then
		fail "the benign client through the router: $ok of $total requests answered, want at least $CLIENT_MIN_PCT %"
	fi
	[[ -z $(daemon_lines "$BENIGN4") ]] || fail "the daemon logged about the benign client $BENIGN4: $(daemon_lines "$BENIGN4" | head -n 2)"
	(($(ban_count "$BENIGN4") == 0)) || fail "the benign client $BENIGN4 is blocked"
	local others
	others=$(banned "$ROUTER4" | grep -vxF -e 198.51.100.101 -e 198.51.100.102 || true)
	[[ -z $others ]] || fail "blocked besides the two scanners: $(tr '\n' ' ' <<<"$others")"
	check_no_errors
	stop_daemon
	((DAEMON_RC == 0)) || fail "scanwarden exited with status $DAEMON_RC on SIGTERM, want 0"
	flush
	check_flushed

	say ""
	say "$(printf '%-28s %-15s %7s %9s %11s' scenario scanner probes ms classified)"
	local r
	for r in "${ROWS_FW[@]}"; do
		say "$r"
	done
	say "$FAILURES failed assertion(s); $((SECONDS - started))s"
	((FAILURES == 0)) || exit 1
	say "PASS"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	fw_main "$@"
fi
