#!/usr/bin/env bash
# scripts/lab.sh: scanwarden's network-namespace lab.
#
#   lab.sh up [--routed] [--fleet]  build the lab (tears down leftovers
#                                first); --routed (or SW_LAB_ROUTED=1) adds
#                                routers and far hosts, --fleet (or
#                                SW_LAB_FLEET=1) a second victim and a
#                                CrowdSec LAPI host (below)
#   lab.sh down                  stop the lab's recorded processes, remove it
#   lab.sh status                show it; exit 0 when complete, 1 otherwise
#   lab.sh attacker-addr N       add 198.51.100.(100+N) and fd00:77::(100+N)
#                                to the attacker (N in 1..49) and print them
#   lab.sh ns ROLE               print the namespace of ROLE (lan,
#                                attacker, victim, benign; routed: router,
#                                router2, farclient, farattacker; fleet:
#                                victim2, lapi)
#   lab.sh spawn ROLE NAME CMD...  run CMD in ROLE's namespace in the
#                                background (log: RUNDIR/NAME.log), record
#                                its PID so that stop/down end it; prints it
#   lab.sh adopt NAME PID        record a process the caller started in one
#                                of the lab's namespaces, so down ends it too
#   lab.sh stop NAME             end a recorded process (TERM, then KILL)
#
# Layout: namespace PREFIX+lan holds the bridge br0; PREFIX+attacker,
# PREFIX+victim and PREFIX+benign each have a veth "veth0" whose peer (named
# after the role) is a port of br0.
#
#   victim    198.51.100.10/24 fd00:77::10/64, and 198.51.100.11-.14/24
#             (sweep targets)
#   benign    198.51.100.20/24 fd00:77::20/64
#   attacker  198.51.100.66/24 fd00:77::66/64, plus attacker-addr's
#
# The fleet lab (up --fleet; make demo's CrowdSec scene) adds two more
# hosts on br0, set up as the others:
#
#   victim2   198.51.100.30/24 fd00:77::30/64 (a second protected host)
#   lapi      198.51.100.40/24 fd00:77::40/64 (a CrowdSec Local API)
#
# Nothing is routed: no default route, no address outside 198.51.100.0/24
# and fd00:77::/64, no link to the host's namespace. (The routed lab
# below adds routes, all inside the lab's own namespaces.) IPv6 duplicate address
# detection is off and no link-local addresses are made, so IPv6 is usable
# at once and the only IPv6 sources on the wire are the lab's addresses.
# Addresses 198.51.100.150-254 are never assigned (decoys, unreachables).
#
# The routed lab (lab.sh up --routed, or SW_LAB_ROUTED=1; scripts/spoof.sh)
# adds far networks behind routers, for off-link sources and hop counts:
#
#   router       on br0: 198.51.100.1/24 fd00:77::1/64 ("veth0"); the far
#                network 203.0.113.0/24 on "far0" (203.0.113.1/24); a
#                transit link "r2" to router2 (192.0.2.253/30); routes
#                192.0.2.0/24 via router2
#   farclient    203.0.113.20/24 behind router (one router hop from the
#                victim), default route via 203.0.113.1
#   router2      "r1" 192.0.2.254/30 to router, "far0" 192.0.2.1/25;
#                default route via router
#   farattacker  192.0.2.66/25 behind router2 (two router hops from the
#                victim), default route via 192.0.2.1
#
# The victim gets routes to 203.0.113.0/24 and 192.0.2.0/24 via
# 198.51.100.1. Only the two routers forward, and their rp_filter is off
# (no source filtering, as on the internet), so forged sources pass them.
# IPv4 only beyond the LAN: the far namespaces have IPv6 disabled, and the
# router's only IPv6 is fd00:77::1 on the LAN (it forwards IPv6 too, for
# routes a caller adds). No namespace has a link to the host's.
#
# Environment: SW_LAB_PREFIX (default "sw-") prefixes the namespace names so
# several labs can run at once; SW_LAB_RUNDIR (default
# /run/scanwarden-lab/PREFIX) holds the recorded PIDs and logs.
set -euo pipefail

PREFIX=${SW_LAB_PREFIX:-sw-}
RUNDIR=${SW_LAB_RUNDIR:-/run/scanwarden-lab/${PREFIX%-}}
ROLES=(attacker victim benign)
# The routed lab's namespaces (up --routed). down, adopt and spawn know
# them whether or not this invocation asked for them.
ROUTED_ROLES=(router router2 farclient farattacker)
ROUTED=${SW_LAB_ROUTED:-0}
# The fleet lab's namespaces (up --fleet), on the bridge as ROLES are.
FLEET_ROLES=(victim2 lapi)
FLEET=${SW_LAB_FLEET:-0}
LAN=${PREFIX}lan
IFACE=veth0

# Addresses of each role: IPv4 and IPv6 lists.
declare -A V4=(
	[victim]="198.51.100.10 198.51.100.11 198.51.100.12 198.51.100.13 198.51.100.14"
	[benign]="198.51.100.20"
	[attacker]="198.51.100.66"
	[victim2]="198.51.100.30"
	[lapi]="198.51.100.40"
)
declare -A V6=(
	[victim]="fd00:77::10"
	[benign]="fd00:77::20"
	[attacker]="fd00:77::66"
	[victim2]="fd00:77::30"
	[lapi]="fd00:77::40"
)

log() { printf 'lab: %s\n' "$*"; }
die() {
	printf 'lab: error: %s\n' "$*" >&2
	exit 1
}

ns_of() {
	case $1 in
	lan | attacker | victim | benign | router | router2 | farclient | farattacker | victim2 | lapi) printf '%s%s\n' "$PREFIX" "$1" ;;
	*) die "unknown role '$1' (want lan, attacker, victim, benign, router, router2, farclient, farattacker, victim2 or lapi)" ;;
	esac
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

# inx NS CMD...: run CMD in namespace NS.
inx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

need_root() {
	((EUID == 0)) || die "the lab needs root (network namespaces): run as root"
	command -v ip >/dev/null || die "ip (iproute2) is missing: run scripts/deps.sh as root"
}

check_prefix() {
	[[ $PREFIX =~ ^[A-Za-z0-9_.-]{1,12}$ ]] ||
		die "SW_LAB_PREFIX='$PREFIX': use 1-12 letters, digits, '.', '_' or '-'"
}

# ---- recorded processes -------------------------------------------------

pid_file() { printf '%s/%s.pid\n' "$RUNDIR" "$1"; }

# in_lab PID: true when PID lives in one of this lab's namespaces.
in_lab() {
	local pid=$1 ino r
	ino=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || return 1
	for r in lan "${ROLES[@]}" "${ROUTED_ROLES[@]}" "${FLEET_ROLES[@]}"; do
		if ns_exists "$PREFIX$r" && [[ $(stat -L -c %i "/run/netns/$PREFIX$r") == "$ino" ]]; then
			return 0
		fi
	done
	return 1
}

# stop_recorded NAME: end the process recorded as NAME, if it is still the
# one we started (alive, same start time, in one of the lab's namespaces).
stop_recorded() {
	local name=$1 f pid start now i
	f=$(pid_file "$name")
	[[ -f $f ]] || return 0
	read -r pid start <"$f" || true
	rm -f "$f"
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	now=$(proc_start "$pid") || return 0
	if [[ -n $start && $now != "$start" ]]; then
		log "not stopping $name: PID $pid is now another process"
		return 0
	fi
	if ! in_lab "$pid"; then
		log "not stopping $name: PID $pid is not in the lab's namespaces"
		return 0
	fi
	log "stopping $name (PID $pid)"
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		[[ $(proc_start "$pid" 2>/dev/null) == "$now" ]] || return 0
		sleep 0.1
	done
	log "$name (PID $pid) ignored SIGTERM for 5s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

# proc_start PID: the process's start time in clock ticks (field 22 of
# /proc/PID/stat), which tells a PID's reuse apart.
proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# After "comm)", fields start at 3 (state); starttime is field 22. A
	# zombie has already ended.
	awk '$1 != "Z" { print $20; ok = 1 } END { exit !ok }' <<<"$stat"
}

record() {
	local name=$1 pid=$2 start
	[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad process name '$name'"
	start=$(proc_start "$pid") || die "no process $pid"
	mkdir -p "$RUNDIR"
	printf '%s %s\n' "$pid" "$start" >"$(pid_file "$name")"
}

cmd_spawn() {
	(($# >= 3)) || die "usage: lab.sh spawn ROLE NAME CMD..."
	local ns name=$2 pid
	ns=$(ns_of "$1")
	shift 2
	ns_exists "$ns" || die "namespace $ns does not exist: run lab.sh up"
	[[ ! -f $(pid_file "$name") ]] || stop_recorded "$name"
	mkdir -p "$RUNDIR"
	# setsid: the process outlives this script and gets no terminal signals.
	setsid ip netns exec "$ns" "$@" </dev/null >"$RUNDIR/$name.log" 2>&1 &
	pid=$!
	record "$name" "$pid"
	printf '%s\n' "$pid"
}

cmd_adopt() {
	(($# == 2)) || die "usage: lab.sh adopt NAME PID"
	[[ $2 =~ ^[0-9]+$ ]] || die "bad PID '$2'"
	local i
	# A process just started with `ip netns exec` may not have entered its
	# namespace yet: give it two seconds. One that has already exited
	# (gone, or a zombie its parent has not reaped: a short nmap run on a
	# loaded machine) leaves nothing to end: it is not recorded.
	for ((i = 0; i < 40; i++)); do
		if in_lab "$2"; then
			record "$1" "$2"
			return
		fi
		proc_start "$2" >/dev/null 2>&1 || return 0
		sleep 0.05
	done
	die "PID $2 is not in one of the lab's namespaces"
}

cmd_stop() {
	(($# == 1)) || die "usage: lab.sh stop NAME"
	stop_recorded "$1"
}

# ---- up / down ----------------------------------------------------------

cmd_down() {
	local f name r ns pids
	if [[ -d $RUNDIR ]]; then
		for f in "$RUNDIR"/*.pid; do
			[[ -e $f ]] || continue
			name=$(basename "$f" .pid)
			stop_recorded "$name"
		done
	fi
	for r in "${FLEET_ROLES[@]}" "${ROUTED_ROLES[@]}" "${ROLES[@]}" lan; do
		ns=$PREFIX$r
		ns_exists "$ns" || continue
		pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		if [[ -n ${pids// /} ]]; then
			log "warning: processes not started through lab.sh remain in $ns: ${pids}(not stopped; end them yourself)"
		fi
		ip netns del "$ns"
		log "deleted namespace $ns"
	done
	if [[ -d $RUNDIR ]]; then
		rm -f "$RUNDIR"/*.log "$RUNDIR"/*.pid
		rmdir "$RUNDIR" 2>/dev/null || true
		rmdir "$(dirname "$RUNDIR")" 2>/dev/null || true
	fi
}

# sysctl_ns NS KEY=VALUE...
sysctl_ns() {
	local ns=$1
	shift
	inx "$ns" sysctl -q -w "$@" >/dev/null
}

cmd_up() {
	local r ns a lan_ns
	cmd_down
	mkdir -p "$RUNDIR"
	lan_ns=$LAN
	ip netns add "$lan_ns"
	log "created namespace $lan_ns"
	ip -n "$lan_ns" link set lo up
	# The bridge needs no IPv6 of its own: none, so it never talks.
	sysctl_ns "$lan_ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$lan_ns" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
	ip -n "$lan_ns" link set br0 up

	local roles=("${ROLES[@]}")
	[[ $FLEET != 1 ]] || roles+=("${FLEET_ROLES[@]}")
	for r in "${roles[@]}"; do
		ns=$PREFIX$r
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# No DAD, no link-local addresses, no router solicitations: the
		# lab's addresses are usable at once and are the only sources.
		sysctl_ns "$ns" \
			net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.default.addr_gen_mode=1 \
			net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
		ip -n "$lan_ns" link add "$r" type veth peer name "$IFACE" netns "$ns"
		sysctl_ns "$ns" "net.ipv6.conf.$IFACE.addr_gen_mode=1" "net.ipv6.conf.$IFACE.accept_dad=0" \
			"net.ipv6.conf.$IFACE.router_solicitations=0"
		ip -n "$lan_ns" link set "$r" master br0 up
		for a in ${V4[$r]}; do
			ip -n "$ns" addr add "$a/24" dev "$IFACE"
		done
		for a in ${V6[$r]}; do
			ip -n "$ns" addr add "$a/64" dev "$IFACE" nodad
		done
		ip -n "$ns" link set "$IFACE" up
		log "created namespace $ns: $IFACE ${V4[$r]// /,} ${V6[$r]}"
	done
	if [[ $ROUTED == 1 ]]; then
		up_routed
	fi
	wait_ready
	log "up (namespaces ${LAN}, ${PREFIX}attacker, ${PREFIX}victim, ${PREFIX}benign$([[ $ROUTED != 1 ]] || printf ', %s' "${ROUTED_ROLES[@]/#/$PREFIX}")$([[ $FLEET != 1 ]] || printf ', %s' "${FLEET_ROLES[@]/#/$PREFIX}"); run dir $RUNDIR)"
}

# new_ns NAME V6: create namespace NAME with lo up; V6=0 disables IPv6 in
# it altogether, V6=1 keeps it for interfaces that enable it themselves
# (none by default): no DAD, no link-local addresses, no router
# solicitations or advertisements, as the LAN roles have.
new_ns() {
	ip netns add "$1"
	ip -n "$1" link set lo up
	if [[ $2 == 0 ]]; then
		sysctl_ns "$1" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	else
		sysctl_ns "$1" net.ipv6.conf.default.disable_ipv6=1 \
			net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.default.addr_gen_mode=1 \
			net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
	fi
}

# as_router NS IFACE...: NS forwards (IPv4 and IPv6) without source
# filtering (rp_filter off on every interface) and sends no redirects.
as_router() {
	local ns=$1 i
	shift
	sysctl_ns "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
	for i in "$@"; do
		sysctl_ns "$ns" "net.ipv4.conf.$i.rp_filter=0" "net.ipv4.conf.$i.send_redirects=0"
	done
}

# up_routed: the routed lab's namespaces, links, addresses and routes.
up_routed() {
	local rt=${PREFIX}router rt2=${PREFIX}router2 fc=${PREFIX}farclient fa=${PREFIX}farattacker
	# router: on the LAN (bridge port "router"), the only namespace of
	# the routed part with IPv6 (fd00:77::1 on veth0)
	new_ns "$rt" 1
	ip -n "$LAN" link add router type veth peer name "$IFACE" netns "$rt"
	sysctl_ns "$rt" "net.ipv6.conf.$IFACE.addr_gen_mode=1" "net.ipv6.conf.$IFACE.accept_dad=0" \
		"net.ipv6.conf.$IFACE.router_solicitations=0" "net.ipv6.conf.$IFACE.accept_ra=0"
	sysctl_ns "$rt" "net.ipv6.conf.$IFACE.disable_ipv6=0"
	ip -n "$LAN" link set router master br0 up
	ip -n "$rt" addr add 198.51.100.1/24 dev "$IFACE"
	ip -n "$rt" addr add fd00:77::1/64 dev "$IFACE" nodad
	ip -n "$rt" link set "$IFACE" up
	new_ns "$fc" 0
	new_ns "$rt2" 0
	new_ns "$fa" 0
	# router <-> farclient (203.0.113.0/24)
	ip -n "$rt" link add far0 type veth peer name "$IFACE" netns "$fc"
	ip -n "$rt" addr add 203.0.113.1/24 dev far0
	ip -n "$fc" addr add 203.0.113.20/24 dev "$IFACE"
	# router <-> router2 (transit 192.0.2.252/30)
	ip -n "$rt" link add r2 type veth peer name r1 netns "$rt2"
	ip -n "$rt" addr add 192.0.2.253/30 dev r2
	ip -n "$rt2" addr add 192.0.2.254/30 dev r1
	# router2 <-> farattacker (192.0.2.0/25)
	ip -n "$rt2" link add far0 type veth peer name "$IFACE" netns "$fa"
	ip -n "$rt2" addr add 192.0.2.1/25 dev far0
	ip -n "$fa" addr add 192.0.2.66/25 dev "$IFACE"
	ip -n "$rt" link set far0 up
	ip -n "$rt" link set r2 up
	ip -n "$rt2" link set r1 up
	ip -n "$rt2" link set far0 up
	ip -n "$fc" link set "$IFACE" up
	ip -n "$fa" link set "$IFACE" up
	as_router "$rt" "$IFACE" far0 r2
	as_router "$rt2" r1 far0
	ip -n "$rt" route add 192.0.2.0/24 via 192.0.2.254 dev r2
	ip -n "$rt2" route add default via 192.0.2.253 dev r1
	ip -n "$fc" route add default via 203.0.113.1 dev "$IFACE"
	ip -n "$fa" route add default via 192.0.2.1 dev "$IFACE"
	ip -n "${PREFIX}victim" route add 203.0.113.0/24 via 198.51.100.1 dev "$IFACE"
	ip -n "${PREFIX}victim" route add 192.0.2.0/24 via 198.51.100.1 dev "$IFACE"
	log "created namespace $rt: $IFACE 198.51.100.1,fd00:77::1; far0 203.0.113.1; r2 192.0.2.253 (forwarding, rp_filter off)"
	log "created namespace $fc: $IFACE 203.0.113.20 (default via 203.0.113.1)"
	log "created namespace $rt2: r1 192.0.2.254; far0 192.0.2.1 (forwarding, rp_filter off; default via 192.0.2.253)"
	log "created namespace $fa: $IFACE 192.0.2.66 (default via 192.0.2.1)"
	log "the victim routes 203.0.113.0/24 and 192.0.2.0/24 via 198.51.100.1"
}

# wait_ready: every veth has carrier and no IPv6 address is tentative.
wait_ready() {
	local r ns i ok roles=("${ROLES[@]}")
	[[ $ROUTED != 1 ]] || roles+=("${ROUTED_ROLES[@]}")
	[[ $FLEET != 1 ]] || roles+=("${FLEET_ROLES[@]}")
	for ((i = 0; i < 100; i++)); do
		ok=1
		for r in "${roles[@]}"; do
			ns=$PREFIX$r
			if [[ $r == router2 ]]; then
				[[ $(ip -n "$ns" link show dev r1) == *LOWER_UP* && $(ip -n "$ns" link show dev far0) == *LOWER_UP* ]] || ok=0
				continue
			fi
			if [[ $(ip -n "$ns" link show dev "$IFACE") != *LOWER_UP* ]]; then
				ok=0
			elif [[ -n $(ip -n "$ns" -6 addr show dev "$IFACE" tentative) ]]; then
				ok=0
			fi
		done
		((ok)) && return 0
		sleep 0.05
	done
	die "the lab's links or IPv6 addresses did not become ready in 5s"
}

cmd_attacker_addr() {
	if ! (($# == 1)) || ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 49)); then
		die "usage: lab.sh attacker-addr N (N in 1..49)"
	fi
	local ns=${PREFIX}attacker n=$((100 + $1)) v4 v6 i
	ns_exists "$ns" || die "namespace $ns does not exist: run lab.sh up"
	v4=198.51.100.$n
	v6=fd00:77::$n
	ip -n "$ns" addr replace "$v4/24" dev "$IFACE"
	ip -n "$ns" addr replace "$v6/64" dev "$IFACE" nodad
	for ((i = 0; i < 100; i++)); do
		[[ -z $(ip -n "$ns" -6 addr show dev "$IFACE" tentative) ]] && break
		sleep 0.05
	done
	printf '%s %s\n' "$v4" "$v6"
}

cmd_status() {
	local r ns complete=1 f name pid start roles=(lan "${ROLES[@]}")
	# a routed lab (its router exists) is complete with all of its parts
	if ns_exists "${PREFIX}router"; then
		roles+=("${ROUTED_ROLES[@]}")
	fi
	# and a fleet lab (its LAPI host exists) with its hosts
	if ns_exists "${PREFIX}lapi"; then
		roles+=("${FLEET_ROLES[@]}")
	fi
	for r in "${roles[@]}"; do
		ns=$PREFIX$r
		if ! ns_exists "$ns"; then
			printf '%-16s missing\n' "$ns"
			complete=0
			continue
		fi
		if [[ $r == lan ]]; then
			printf '%-16s bridge br0: %s\n' "$ns" \
				"$(ip -n "$ns" -br link show master br0 2>/dev/null | awk '{printf "%s(%s) ", $1, $2}')"
			continue
		fi
		if [[ $r == router2 ]]; then
			printf '%-16s %s\n' "$ns" "$(ip -n "$ns" -br addr show 2>/dev/null | awk '$1 != "lo" { printf "%s %s ", $1, $3 }')"
			ip -n "$ns" -br addr show dev r1 >/dev/null 2>&1 || complete=0
			continue
		fi
		printf '%-16s %s\n' "$ns" \
			"$(ip -n "$ns" -br addr show dev "$IFACE" 2>/dev/null | cut -c17- || echo "no $IFACE")"
		ip -n "$ns" -br addr show dev "$IFACE" >/dev/null 2>&1 || complete=0
		# (the far hosts' default routes lead to their router, in the lab)
		if [[ $r != far* ]] && [[ -n $(ip -n "$ns" route show default) || -n $(ip -n "$ns" -6 route show default) ]]; then
			printf '%-16s warning: has a default route\n' "$ns"
		fi
	done
	if [[ -d $RUNDIR ]]; then
		for f in "$RUNDIR"/*.pid; do
			[[ -e $f ]] || continue
			name=$(basename "$f" .pid)
			read -r pid start <"$f" || true
			if [[ $(proc_start "$pid" 2>/dev/null) == "$start" ]]; then
				printf 'process %-20s PID %s running\n' "$name" "$pid"
			else
				printf 'process %-20s PID %s exited\n' "$name" "$pid"
			fi
		done
	fi
	if ((complete)); then
		echo "lab is up"
		return 0
	fi
	echo "lab is down or incomplete"
	return 1
}

main() {
	(($# >= 1)) || die "usage: lab.sh up [--routed] [--fleet]|down|status|attacker-addr N|ns ROLE|spawn ROLE NAME CMD...|adopt NAME PID|stop NAME"
	check_prefix
	local cmd=$1
	shift
	case $cmd in
	ns)
		(($# == 1)) || die "usage: lab.sh ns ROLE"
		ns_of "$1"
		return
		;;
	up | down | status | attacker-addr | spawn | adopt | stop) need_root ;;
	*) die "unknown command '$cmd' (want up, down, status, attacker-addr, ns, spawn, adopt or stop)" ;;
	esac
	case $cmd in
	up)
		local a
		for a in "$@"; do
			case $a in
			--routed) ROUTED=1 ;;
			--fleet) FLEET=1 ;;
			*) die "usage: lab.sh up [--routed] [--fleet]" ;;
			esac
		done
		cmd_up
		;;
	down) cmd_down ;;
	status) cmd_status ;;
	attacker-addr) cmd_attacker_addr "$@" ;;
	spawn) cmd_spawn "$@" ;;
	adopt) cmd_adopt "$@" ;;
	stop) cmd_stop "$@" ;;
	esac
}

main "$@"
