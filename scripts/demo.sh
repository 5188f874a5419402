#!/usr/bin/env bash
# scripts/demo.sh: make demo: scanwarden at work, readably.
#
# In its own namespace lab (scripts/lab.sh, namespaces "swdemo-*" unless
# SW_LAB_PREFIX says otherwise) it starts a web and DNS-like server and the
# daemon on the victim (as the unprivileged user "scanwarden" with only
# CAP_NET_RAW and CAP_NET_ADMIN, exactly as scripts/e2e.sh does, whose
# set-up and teardown it reuses), benign traffic from a client namespace,
# then three nmap scans from fresh attacker addresses: a SYN scan, a FIN
# scan and an IPv6 SYN scan. For each it shows the nmap command, how many
# ports nmap could still classify, and what scanwarden logged; then the
# victim's SCANWARDEN chains, the hosts.deny file and `scanwarden list`,
# and that the benign client was never disturbed. Everything is removed on
# exit. The exit status is non-zero when a scan was not blocked, the benign
# client saw a failure, or the daemon did not run or stop cleanly.
#
# Needs root, nmap, iptables, iproute2, setpriv (util-linux) and Go.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swdemo-}
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
# the tour starts with iptables (its DROP rules), whatever the caller's
# E2E_BACKEND, and switches to nftables itself
E2E_BACKEND=iptables
TAG=demo

if [[ -t 1 ]]; then
	BOLD=$'\e[1m' DIM=$'\e[2m' RESET=$'\e[0m'
else
	BOLD="" DIM="" RESET=""
fi

say() { printf '  %s\n' "$*"; }
heading() { printf '\n%s== %s ==%s\n' "$BOLD" "$*" "$RESET"; }
# shown CMD...: print a command as typed.
shown() { printf '  %s$ %s%s\n' "$BOLD" "$*" "$RESET"; }
# indented: standard input, indented.
indented() { sed 's/^/      /'; }

# DEMO_SCANS: title, expected type, fresh address number, nmap arguments.
DEMO_SCANS=(
	"a TCP SYN scan (half-open, the nmap default as root)|syn|1|-sS"
	"a TCP FIN scan (stealth: no SYN at all)|fin|2|-sF"
	"an IPv6 TCP SYN scan|syn|3|-6 -sS"
)

# nmap_verdict FILE: how many ports nmap classified, from its normal
# output ("Not shown: N STATE tcp ports (...), ..." and the port lines).
nmap_verdict() {
	awk '
	/^Not shown: / {
		s = $0; sub(/^Not shown: /, "", s)
		n = split(s, part, /, /)
		for (i = 1; i <= n; i++) { split(part[i], w, " "); c[w[2]] += w[1] }
	}
	/^[0-9]+\/(tcp|udp) / { c[$2]++ }
	END {
		for (k in c) {
			total += c[k]
			if (k == "open" || k == "closed" || k == "unfiltered") { known += c[k]; kl = kl sep c[k] " " k; sep = ", " }
			else { unknown += c[k]; ul = ul usep c[k] " " k; usep = ", " }
		}
		if (total == 0) { print "nmap reported no port states"; exit }
		printf "nmap could classify %d of %d ports", known, total
		if (kl != "") printf " (%s)", kl
		if (unknown) printf "; %d got no answer (%s)", unknown, ul
		else printf "\n  (every probe had gone out before the DROP rule was in place: see the time below)"
		printf "\n"
	}' "$1"
}

# show_alerts SRC: the daemon's attackalert lines for SRC (message text)
# and its decision, with probes and time to the block.
show_alerts() {
	local src=$1 line probes ms
	wait_blocked "$src" "$BLOCK_WAIT" || true
	printf '  scanwarden logged:\n'
	while IFS= read -r line; do
		[[ -n $line ]] && printf '      %s\n' "$(jmsg "$line")"
	done < <(daemon_lines "$src" | grep -F '"msg":"attackalert: ' || true)
	line=$(blocked_lines "$src" | head -n 1)
	if [[ -z $line ]]; then
		fail "$src was not blocked"
		return
	fi
	probes=$(jnum "$line" probes)
	ms=$(jnum "$line" block_ms)
	if [[ $line == *'"kernel_trap":true'* ]]; then
		printf '  %s=> blocked by the kernel itself on its first probe to a trap port%s\n' "$BOLD" "$RESET"
	else
		local unit=probes
		[[ $probes != 1 ]] || unit=probe
		printf '  %s=> blocked after %s %s, %.1f ms from its first probe to the DROP rule%s\n' \
			"$BOLD" "$probes" "$unit" "$ms" "$RESET"
	fi
}

# demo_trap: the same daemon with the nftables backend, the kernel trap and
# advanced mode (-atcp: every unbound port below 1024 is a trap), against
# one more SYN scan from a fresh address.
demo_trap() {
	local n=$((${#DEMO_SCANS[@]} + 1)) out=$WORK/logs/scan-trap.nmap
	heading "Scan $n: the kernel trap (BLOCK_BACKEND=\"nftables\", KERNEL_TRAP=\"1\", run -atcp)"
	stop_daemon
	shown "scanwarden flush    ${DIM}# the iptables blocks of the scans above${RESET}"
	flush
	sed -i 's/^BLOCK_BACKEND=.*/BLOCK_BACKEND="nftables"\nKERNEL_TRAP="1"/' "$CONF"
	DAEMON_ARGS=(-atcp -audp)
	start_daemon
	say "with a set backend, kernel rules add the source of the first probe to any trap port to a set"
	say "and drop it before scanwarden has even seen it; scanwarden then records the block as its own"
	scan_addrs "$n" -sS
	nmap_cmd -sS "$SRC" "$DST" --max-retries 0
	shown "${NMAP[*]}"
	if run_nmap trap; then
		grep -E '^(Not shown|All [0-9]+ scanned|[0-9]+/(tcp|udp) )' "$out" | head -n 4 | indented
		printf '  %s\n' "$(nmap_verdict "$out")"
	fi
	show_alerts "$SRC"
	local what
	for what in "set inet scanwarden trap4" "set inet scanwarden ban4" "chain inet scanwarden input"; do
		shown "nft list $what"
		# shellcheck disable=SC2086 # what is three words
		ip netns exec "$NS_VIC" nft list $what 2>&1 | grep -vE '^\s*(table|\}|type|flags|size)' | indented || true
	done
}

demo_scan() {
	local i=$1 title type n args
	IFS='|' read -r title type n args <<<"${DEMO_SCANS[$i]}"
	scan_addrs "$n" "$args"
	heading "Scan $((i + 1)) of ${#DEMO_SCANS[@]}: $title from $SRC"
	nmap_cmd "$args" "$SRC" "$DST" --max-retries 0
	shown "${NMAP[*]}"
	local out=$WORK/logs/scan-demo$i.nmap
	if run_nmap "demo$i"; then
		if grep -qE '^(Not shown|[0-9]+/(tcp|udp) )' "$out"; then
			# the summary line and at most five port lines
			grep -E '^(Not shown|[0-9]+/(tcp|udp) )' "$out" |
				awk 'NR <= 6 { print; next } { more++ } END { if (more) print "... and " more " more ports" }' |
				indented
		else
			tail -n 3 "$out" | indented
		fi
		printf '  %s\n' "$(nmap_verdict "$out")"
	fi
	show_alerts "$SRC"
	local t
	t=$(daemon_lines "$SRC" | head -n 1)
	t=$(jstr "$t" type)
	[[ $t == "$type" ]] || fail "$SRC was reported as '$t', expected '$type'"
}

demo_state() {
	local url
	heading "What scanwarden changed on the victim"
	shown "iptables -S SCANWARDEN"
	ipt "$VICTIM4" -S SCANWARDEN 2>&1 | indented || true
	shown "ip6tables -S SCANWARDEN"
	ipt "$VICTIM6" -S SCANWARDEN 2>&1 | indented || true
	shown "cat $DDIR/hosts.deny    ${DIM}# HOSTS_DENY_FILE: /etc/hosts.deny outside the demo${RESET}"
	indented <"$DDIR/hosts.deny"
	shown "scanwarden list"
	ip netns exec "$NS_VIC" "$SWBIN" list -c "$CONF" 2>&1 | indented || fail "scanwarden list failed"

	heading "The scanners are shut out, everyone else is not"
	scan_addrs 1 -sS
	url=http://$VICTIM4/
	if reach "$SRC" "$url"; then
		fail "$SRC (blocked) could still connect to $url"
	else
		if [[ $REACH_OUT == *Timeout* || $REACH_OUT == *deadline* ]]; then
			say "$SRC (the first scanner) -> $url: no answer within $PROBE_TIMEOUT (its packets are dropped)"
		else
			say "$SRC (the first scanner) -> $url: fails: $(sed -n 's/.*(last error: \(.*\)), udp .*/\1/p' <<<"$REACH_OUT")"
		fi
	fi
	if reach "$ATTACKER4" "$url"; then
		say "$ATTACKER4 (same attacker host, never scanned) -> $url: answered"
	else
		fail "$ATTACKER4 (never scanned) could not connect to $url: $REACH_OUT"
	fi
	check_benign
	say "the benign client ($BENIGN4, $BENIGN6) was never reported nor blocked"
}

demo_teardown() {
	heading "Cleaning up"
	stop_daemon
	if ((DAEMON_RC == 0)); then
		say "scanwarden stopped on SIGTERM (exit status 0); its blocks stay in place"
	else
		fail "scanwarden exited with status $DAEMON_RC on SIGTERM"
	fi
	shown "scanwarden flush"
	flush
	check_flushed
	say "the lab's namespaces are removed on exit"
}

demo_main() {
	local i
	preflight
	heading "scanwarden demo"
	cat <<EOF
  A lab of network namespaces on one bridge (198.51.100.0/24, fd00:77::/64,
  no route out): a victim ($VICTIM4, $VICTIM6) with a web and a
  DNS-like server, a benign client ($BENIGN4, $BENIGN6) making HTTP
  and DNS requests to it every $BENIGN_INTERVAL, and an attacker that scans it with
  nmap, each scan from a fresh address. scanwarden watches the victim's
  interface and blocks each scanner.
EOF
	cat <<EOF

  The scans use nmap -T4 --max-retries 0: one probe per port. On a LAN nmap
  sends hundreds of probes in the few milliseconds scanwarden needs to
  block it, so it still classifies some ports; every probe after the block
  is dropped, and without --max-retries 0 nmap would spend minutes
  retrying them.
EOF
	heading "Setting up"
	setup "$((${#DEMO_SCANS[@]} + 1))"
	say "lab up; labsrv serving on the victim; benign client running"
	start_daemon
	local caps=-all,+net_raw,+net_admin$RT_CAP
	say "command: ${RT_PREFIX[*]}${RT_PREFIX[*]:+ }setpriv --reuid=$SW_USER --regid=$SW_USER --init-groups --inh-caps=$caps --ambient-caps=$caps --bounding-set=$caps --no-new-privs scanwarden run -c CONF --log-format json"
	pause 1
	for i in "${!DEMO_SCANS[@]}"; do
		demo_scan "$i"
	done
	demo_state
	alive "$DPID" || fail "scanwarden is no longer running"
	demo_trap
	alive "$DPID" || fail "scanwarden is no longer running"
	demo_teardown
	if ((FAILURES > 0)); then
		heading "The demo FAILED: $FAILURES problem(s), listed above"
		exit 1
	fi
	heading "Done"
	say "make e2e runs the full check: seven scan types, IPv4 and IPv6, each blocking backend, unblock and flush, with timings"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	demo_main "$@"
fi
