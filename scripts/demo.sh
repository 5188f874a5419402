#!/usr/bin/env bash
# scripts/demo.sh: make demo: scanwarden at work, readably.
#
# In its own namespace lab (scripts/lab.sh, namespaces "swdemo-*" unless
# SW_LAB_PREFIX says otherwise) it starts a web and DNS-like server and the
# daemon on the victim (as the unprivileged user "scanwarden" with only
# CAP_NET_RAW and CAP_NET_ADMIN, exactly as scripts/e2e.sh does, whose
# set-up and teardown it reuses), benign traffic from a client namespace,
# then three nmap scans from fresh attacker addresses against the daemon
# with its DEFAULT configuration (BLOCK_BACKEND="auto": nftables where the
# kernel has it, the kernel trap on, stealth mode): a SYN scan, a FIN scan
# and an IPv6 SYN scan. For each it shows the nmap command, how many ports
# nmap could still classify, and what scanwarden logged; then what the
# backend holds, the hosts.deny file and `scanwarden list`, and that the
# benign client was never disturbed. Then, for comparison, the same SYN
# scan against the per-address iptables backend (BLOCK_BACKEND="iptables",
# what PortSentry's KILL_ROUTE did) and against the default backend in
# advanced mode (-atcp: every unbound port below 1024 a trap); then a
# fleet (lab.sh up --fleet): a second victim and a CrowdSec Local API
# (Debian's crowdsec), each victim's scanwarden pushing its blocks to it
# and enforcing its decisions; a scan of the first victim is blocked on the
# second within the pull interval, and `cscli decisions delete` lifts it on
# both; and a table of the figures. Everything is removed on exit. The exit
# status is non-zero when a scan was not blocked, the benign client saw a
# failure, the fleet did not share or lift a block, or the daemon did not
# run or stop cleanly.
#
# Needs root, nmap, iptables, iproute2, setpriv (util-linux), crowdsec and
# Go (scripts/deps.sh installs them).
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swdemo-}
# the fleet scene's second victim and CrowdSec LAPI (lab.sh up --fleet)
export SW_LAB_FLEET=1
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
# the tour starts with the default config (no BLOCK_BACKEND line: "auto");
# E2E_BACKEND, which e2e.sh's helpers read to look at the firewall, is set
# to what the daemon chose once it has started (demo_backend)
E2E_BACKEND=nftables
TAG=demo
# the figures of every scan, for the table at the end
declare -a DEMO_ROWS=()

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

# show_alerts SRC LABEL CLASSIFIED: the daemon's attackalert lines for SRC
# (message text) and its decision, with probes and time to the block; a
# row of the final table (LABEL, CLASSIFIED ports).
show_alerts() {
	local src=$1 label=${2:-} classified=${3:--} line probes ms
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
		DEMO_ROWS+=("$(printf '%-32s %-9s %9s %8s %11s' "$label" "$E2E_BACKEND" kernel "$probes" "$classified")")
	else
		DEMO_ROWS+=("$(printf '%-32s %-9s %9.1f %8s %11s' "$label" "$E2E_BACKEND" "$ms" "$probes" "$classified")")
		local unit=probes
		[[ $probes != 1 ]] || unit=probe
		printf '  %s=> blocked after %s %s, %.1f ms from its first probe to the DROP rule%s\n' \
			"$BOLD" "$probes" "$unit" "$ms" "$RESET"
	fi
}

# demo_backend: what BLOCK_BACKEND="auto" chose, from the daemon's
# start-up line; E2E_BACKEND follows it (e2e.sh's helpers read it).
demo_backend() {
	local line
	line=$(grep -F '"msg":"adminalert: BLOCK_BACKEND auto: ' "$DLOG" | tail -n 1 || true)
	if [[ -z $line ]]; then
		fail "the daemon did not say which backend BLOCK_BACKEND=\"auto\" chose"
		return
	fi
	say "scanwarden: $(jmsg "$line")"
	case $line in
	*'auto: nftables'*) E2E_BACKEND=nftables ;;
	*'auto: ipset'*) E2E_BACKEND=ipset ;;
	*'auto: iptables'*) E2E_BACKEND=iptables ;;
	*) fail "unknown choice in: $(jmsg "$line")" ;;
	esac
}

# demo_stop_flush: the daemon stopped and the blocks so far lifted, with
# the config as it is, before the next variant's config.
demo_stop_flush() {
	stop_daemon
	shown "scanwarden flush    ${DIM}# the blocks of the scans above${RESET}"
	flush
}

# demo_one_scan N LABEL ARGS: one scan from fresh address N, shown with
# its verdict and the daemon's.
demo_one_scan() {
	local n=$1 label=$2 args=$3 out=$WORK/logs/scan-extra$1.nmap
	scan_addrs "$n" "$args"
	nmap_cmd "$args" "$SRC" "$DST" --max-retries 0
	shown "${NMAP[*]}"
	local classified=-
	if run_nmap "extra$n"; then
		grep -E '^(Not shown|All [0-9]+ scanned|[0-9]+/(tcp|udp) )' "$out" | head -n 4 | indented
		printf '  %s\n' "$(nmap_verdict "$out")"
		classified=$(nmap_classified "$out")
	fi
	show_alerts "$SRC" "$label" "$classified"
}

# demo_compare: the same SYN scan against the per-address iptables backend
# (what PortSentry's KILL_ROUTE did), then against the default backend in
# advanced mode (-atcp: every unbound port below 1024 a trap, so that the
# kernel trap fires on the first probe or nearly).
demo_compare() {
	local n=$((${#DEMO_SCANS[@]} + 1)) def=$E2E_BACKEND
	heading "For comparison: BLOCK_BACKEND=\"iptables\" (one DROP rule per source, as PortSentry's KILL_ROUTE)"
	demo_stop_flush
	printf 'BLOCK_BACKEND="iptables"\n' >>"$CONF"
	E2E_BACKEND=iptables
	start_daemon
	say "an iptables rule is made by running iptables (milliseconds), after the alert, by the blocking thread"
	demo_one_scan "$n" "SYN scan, iptables backend" -sS
	shown "iptables -t raw -S SCANWARDEN"
	ipt "$VICTIM4" -t raw -S SCANWARDEN 2>&1 | indented || true

	heading "The default backend ($def) in advanced mode (scanwarden run -atcp -audp)"
	demo_stop_flush
	sed -i '/^BLOCK_BACKEND=/d' "$CONF"
	E2E_BACKEND=$def
	DAEMON_ARGS=(-atcp -audp)
	start_daemon
	say "in advanced mode every unbound port below 1024 is a trap: the kernel holds the source of"
	say "the first probe to any of them and drops it before scanwarden has even seen it"
	demo_one_scan "$((n + 1))" "SYN scan, $def, advanced mode" -sS
	if [[ $def == nftables ]]; then
		local what
		for what in "set inet scanwarden trap4" "set inet scanwarden ban4"; do
			shown "nft list $what"
			# shellcheck disable=SC2086 # what is three words
			ip netns exec "$NS_VIC" nft list $what 2>&1 | grep -vE '^\s*(table|\}|type|flags|size)' | indented || true
		done
	fi
}

# The fleet scene's hosts (lab.sh --fleet) and its pull interval.
NS_VIC2=${SW_LAB_PREFIX}victim2
NS_LAPI=${SW_LAB_PREFIX}lapi
VICTIM2_4=198.51.100.30
LAPI4=198.51.100.40
FLEET_PULL=2s

# cscli_lab ARGS...: cscli on the fleet's LAPI, in its namespace.
cscli_lab() { ip netns exec "$NS_LAPI" cscli -c "$WORK/lapi/config.yaml" --error "$@"; }

# fleet_line LOG ADDR TEXT: the message of the first line of daemon log
# LOG about ADDR whose message holds TEXT.
fleet_line() {
	local l
	l=$(daemon_lines "$2" "$1" | grep -F -- "$3" | head -n 1) || true
	[[ -n $l ]] && jmsg "$l"
}

# wait_line LOG ADDR TEXT SECONDS: until fleet_line finds it.
wait_line() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		[[ -n $(fleet_line "$1" "$2" "$3") ]] && return 0
		sleep 0.1
	done
	return 1
}

# demo_fleet N: two hosts share their blocks through CrowdSec's Local API
# (Debian's crowdsec, the Central API left out, in the lab's lapi
# namespace): a scan of the victim from fresh address N is blocked on
# victim2 within the pull interval; `cscli decisions delete` lifts it on
# both.
demo_fleet() {
	local n=$1 lapi=$WORK/lapi url=http://$LAPI4:8080 m i
	local ddir2=$WORK/daemon2 conf2 dlog2=$WORK/logs/daemon2.log dpid2
	heading "A fleet: two hosts share their blocks through CrowdSec's Local API"
	if ! command -v crowdsec >/dev/null || ! command -v cscli >/dev/null; then
		fail "crowdsec is missing (scripts/deps.sh installs Debian's)"
		return
	fi
	demo_stop_flush
	mkdir -p "$lapi/data"
	chmod 0711 "$lapi" "$lapi/data"
	sed -e "s|@DIR@|$lapi|g" -e "s|@LISTEN@|$LAPI4:8080|g" "$REPO/scripts/lab-lapi.yaml" >"$lapi/config.yaml"
	cscli_lab machines add demo-cli --auto --url "$url" -f "$lapi/cscli.yaml" >/dev/null
	for m in victim victim2; do
		cscli_lab machines add "scanwarden-$m" --auto --url "$url" -f "$lapi/$m.yaml" >/dev/null
		cscli_lab bouncers add "scanwarden-$m" -o raw >"$lapi/$m.key"
		chown "$SW_USER" "$lapi/$m.yaml" "$lapi/$m.key"
		chmod 0600 "$lapi/$m.yaml" "$lapi/$m.key"
	done
	start_bg lapi "$NS_LAPI" "$WORK/logs/lapi.log" crowdsec -c "$lapi/config.yaml" -no-cs
	for ((i = 0; i < 200; i++)); do
		grep -qF "CrowdSec Local API listening" "$WORK/logs/lapi.log" && break
		sleep 0.1
	done
	if ! grep -qF "CrowdSec Local API listening" "$WORK/logs/lapi.log"; then
		fail "the LAPI did not start: $(tail -n 3 "$WORK/logs/lapi.log")"
		return
	fi
	say "a CrowdSec Local API on $LAPI4 (Debian's crowdsec, run as crowdsec -c CONFIG -no-cs,"
	say "without the Central API). Each host's scanwarden is a CrowdSec machine that pushes its"
	say "blocks, and a bouncer that enforces the fleet's decisions:"
	shown "cscli machines add scanwarden-victim --auto -f /etc/scanwarden/crowdsec-credentials.yaml"
	shown "cscli bouncers add scanwarden-victim -o raw > /etc/scanwarden/crowdsec-bouncer.key"
	# the victim: its config so far, with the LAPI; victim2: the same, in
	# its own directory
	sed -i '/^BLOCK_BACKEND=/d' "$CONF"
	DAEMON_ARGS=()
	printf 'CROWDSEC_CREDENTIALS="%s"\nCROWDSEC_BOUNCER_KEY_FILE="%s"\nCROWDSEC_PULL_INTERVAL="%s"\n' \
		"$lapi/victim.yaml" "$lapi/victim.key" "$FLEET_PULL" >>"$CONF"
	mkdir "$ddir2"
	chmod 0700 "$ddir2"
	conf2=$ddir2/scanwarden.conf
	sed -e "s|$DDIR/|$ddir2/|g" -e "s|$lapi/victim\.|$lapi/victim2.|g" "$CONF" >"$conf2"
	printf '%s' "$HOSTS_DENY_ORIG" >"$ddir2/hosts.deny"
	chown -R "$SW_USER:$(id -gn "$SW_USER")" "$ddir2"
	chmod 0600 "$conf2"
	chmod 0644 "$ddir2/hosts.deny"
	say "the config of both hosts: the defaults, and"
	grep '^CROWDSEC_' "$CONF" | sed "s|$lapi/|/etc/scanwarden/|" | indented
	start_daemon
	# victim2's daemon: start_daemon with victim2's namespace, config and log
	local keep=("$NS_VIC" "$CONF" "$DLOG" "$DPID")
	NS_VIC=$NS_VIC2 CONF=$conf2 DLOG=$dlog2
	start_daemon
	dpid2=$DPID
	BG_PIDS+=("$dpid2")
	NS_VIC=${keep[0]} CONF=${keep[1]} DLOG=${keep[2]} DPID=${keep[3]}
	start_bg srv-victim2 "$NS_VIC2" "$WORK/logs/srv-victim2.log" "$LABSRV" serve -http "$VICTIM2_4:80"
	pause 1

	demo_one_scan "$n" "SYN scan, fleet (victim)" -sS
	if wait_line "$dlog2" "$SRC" "decision of the CrowdSec fleet" 15; then
		say "victim2 ($VICTIM2_4), never scanned, blocked it too, within the pull interval ($FLEET_PULL) of the victim's block:"
		fleet_line "$dlog2" "$SRC" "decision of the CrowdSec fleet" | indented
	else
		fail "victim2 did not block $SRC on the fleet's decision within 15 s"
	fi
	shown "cscli decisions list"
	cscli_lab decisions list 2>&1 | indented || true
	if reach "$SRC" "http://$VICTIM2_4/"; then
		fail "$SRC could still connect to victim2 (http://$VICTIM2_4/)"
	else
		say "$SRC -> http://$VICTIM2_4/: no answer: blocked on victim2 too"
	fi

	shown "cscli decisions delete -i $SRC    ${DIM}# lifts it on every host${RESET}"
	cscli_lab decisions delete -i "$SRC" 2>&1 | indented || true
	if wait_line "$dlog2" "$SRC" "has been unblocked" 15 && wait_line "$DLOG" "$SRC" "has been unblocked" 15; then
		say "lifted on both hosts:"
		fleet_line "$DLOG" "$SRC" "has been unblocked" | sed 's/^/victim:  /' | indented
		fleet_line "$dlog2" "$SRC" "has been unblocked" | sed 's/^/victim2: /' | indented
	else
		fail "the deletion did not lift the ban of $SRC on both hosts within 15 s"
	fi
	if reach "$SRC" "http://$VICTIM2_4/" && reach "$SRC" "http://$VICTIM4/"; then
		say "$SRC reaches both hosts again"
	else
		fail "$SRC does not reach both hosts after the deletion: $REACH_OUT"
	fi
	stop_pid "$dpid2" 15 || fail "victim2's scanwarden did not stop cleanly"
}

# demo_table: the figures of every scan.
demo_table() {
	local r
	heading "The figures"
	say "$(printf '%-32s %-9s %9s %8s %11s' scan backend 'ms*' probes classified)"
	for r in "${DEMO_ROWS[@]}"; do
		say "$r"
	done
	say "* from the scan's first probe to the rule in place (\"kernel\": the kernel trap, on its first trap hit)"
	say "  probes: what scanwarden saw before its decision; classified: ports nmap still learned (open/closed)"
	say "  (make bench measures these over many runs, with PortSentry 1.2 as a reference)"
}

demo_scan() {
	local i=$1 title type n args
	IFS='|' read -r title type n args <<<"${DEMO_SCANS[$i]}"
	scan_addrs "$n" "$args"
	heading "Scan $((i + 1)) of ${#DEMO_SCANS[@]}: $title from $SRC"
	nmap_cmd "$args" "$SRC" "$DST" --max-retries 0
	shown "${NMAP[*]}"
	local out=$WORK/logs/scan-demo$i.nmap classified=-
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
		classified=$(nmap_classified "$out")
	fi
	local short="${type^^} scan"
	[[ $args != -6* ]] || short="IPv6 $short"
	show_alerts "$SRC" "$short" "$classified"
	local t
	t=$(daemon_lines "$SRC" | head -n 1)
	t=$(jstr "$t" type)
	[[ $t == "$type" ]] || fail "$SRC was reported as '$t', expected '$type'"
}

demo_state() {
	local url
	heading "What scanwarden changed on the victim"
	case $E2E_BACKEND in
	nftables)
		shown "nft list table inet scanwarden    ${DIM}# the ban sets (and the kernel trap), matched before routing${RESET}"
		ip netns exec "$NS_VIC" nft list table inet scanwarden 2>&1 | indented || true
		;;
	ipset)
		shown "ipset list scanwarden-ban4; ipset list scanwarden-ban6"
		ip netns exec "$NS_VIC" ipset list scanwarden-ban4 2>&1 | indented || true
		ip netns exec "$NS_VIC" ipset list scanwarden-ban6 2>&1 | indented || true
		;;
	iptables)
		shown "iptables -t raw -S SCANWARDEN"
		ipt "$VICTIM4" -t raw -S SCANWARDEN 2>&1 | indented || true
		;;
	esac
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
  interface and blocks each scanner, with its default configuration.
EOF
	cat <<EOF

  The scans use nmap -T4 --max-retries 0: one probe per port. On a LAN nmap
  sends hundreds of probes in the few milliseconds scanwarden needs to
  block it, so it still classifies some ports; every probe after the block
  is dropped, and without --max-retries 0 nmap would spend minutes
  retrying them.
EOF
	heading "Setting up"
	setup "$((${#DEMO_SCANS[@]} + 3))"
	say "lab up; labsrv serving on the victim; benign client running"
	# the default config: no BLOCK_BACKEND line (auto), KERNEL_TRAP and the
	# modes as shipped; only the lab's paths and a roomy rate limit
	sed -i '/^BLOCK_BACKEND=/d' "$CONF"
	say "config: scanwarden's defaults (BLOCK_BACKEND=\"auto\", KERNEL_TRAP=\"1\", stealth mode), the lab's paths"
	start_daemon
	demo_backend
	local caps=-all,+net_raw,+net_admin$RT_CAP
	say "command: ${RT_PREFIX[*]}${RT_PREFIX[*]:+ }setpriv --reuid=$SW_USER --regid=$SW_USER --init-groups --inh-caps=$caps --ambient-caps=$caps --bounding-set=$caps --no-new-privs scanwarden run -c CONF --log-format json"
	pause 1
	for i in "${!DEMO_SCANS[@]}"; do
		demo_scan "$i"
	done
	demo_state
	alive "$DPID" || fail "scanwarden is no longer running"
	demo_compare
	alive "$DPID" || fail "scanwarden is no longer running"
	demo_fleet "$((${#DEMO_SCANS[@]} + 3))"
	alive "$DPID" || fail "scanwarden is no longer running"
	demo_table
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
