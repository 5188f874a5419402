#!/usr/bin/env bash
# scripts/spoof.sh: spoof-aware blocking in the live lab (make e2e runs it
# for each backend after e2e.sh): an attacker who forges source addresses
# must not get the framed blocked, while the real attacker still is.
#
# It reuses scripts/e2e.sh's set-up (as demo.sh and flood.sh do): the
# daemon built from the tree, running in the victim as the unprivileged
# user "scanwarden" with only CAP_NET_RAW and CAP_NET_ADMIN and JSON logs,
# labsrv serving HTTP and UDP on the victim, the benign client
# (198.51.100.20, fd00:77::20: HTTP and UDP every 300 ms), one fresh
# attacker address per scanner. Its lab (scripts/lab.sh, namespaces
# "swsp-*" unless SW_LAB_PREFIX says otherwise, so it never collides with
# e2e's) is the routed one (SW_LAB_ROUTED=1): a router at 198.51.100.1 on
# the LAN, a far client at 203.0.113.20 behind it (one router hop from the
# victim), which does HTTP to the victim every 300 ms throughout, and a far
# attacker at 192.0.2.66 behind a second router (two hops). The config is
# e2e's with the daemon's own BLOCK_RATE_LIMIT (not e2e's 600) and
# TRAP_SET_SIZE="256".
#
# Scenarios (each with its own asserts; the framed are watched every
# 0.2 s while the attack runs: a forged source must never be in the ban
# set or chain, not even for a moment, and a framed host that owns its
# address (the benign or the far client) must leave the kernel trap set
# at once: a stretch of more than SPOOF_RELEASE_MAX_MS (2000) in it fails;
# an unused address may stay until ARP has failed, which is reported):
#   1  nmap -sS -D 198.51.100.20,ME from a fresh address: the attacker is
#      blocked (a "blocked" line, the backend once, hosts.deny once, the
#      state, its next connection fails); 198.51.100.20 nowhere (ban set or
#      chain, trap set once TRAP_HOLD+2 s have passed, hosts.deny, history,
#      state, a "blocked" line), and a forged decision logged ("outcome":
#      "forged", "forged":true, "evidence") if it was alerted at all.
#   7  the same over IPv6: nmap -6 -sS -D fd00:77::20,fd00:77::201,ME
#      (the benign client and an address nobody owns: NDP fails): the
#      attacker blocked, neither decoy.
#   2  nmap -sS -D 198.51.100.201,.202,.203,ME (addresses nobody owns: ARP
#      fails): the attacker blocked, the decoys not (checked 6 s after the
#      scan at the earliest, and TRAP_HOLD+2 s for the trap sets).
#   3  hping3 -a 198.51.100.20 -S to three TCP trap ports and -2 to a UDP
#      trap port (3 probes each): 198.51.100.20 never in the ban set during
#      TRAP_HOLD+2 s, in no trap set afterwards, its HTTP works. (hping3
#      has no IPv6: this scenario is IPv4 only.) Note: a daemon that never
#      judges a source again once it alerted on it (while the source keeps
#      talking) raises no alert here after scenario 1; the kernel trap's
#      part is tested all the same.
#   5  off-link: the far attacker (two hops) sends hping3 -a 203.0.113.20
#      -S to trap ports and nmap -sS -S 203.0.113.20 (1-1000) in the far
#      client's name, whose established HTTP connections (one hop) the
#      daemon has seen: 203.0.113.20 never blocked, its HTTP works; then the
#      far attacker scans as itself and is blocked.
#   4  a forged flood: scripts/synflood sends SPOOF_FLOOD_SOURCES SYNs, one
#      from each forged IPv6 source of fd00:77::1:0:0/96, all to a TCP trap
#      port (the victim routes that /96 via the router, which drops it: the
#      sources are off-link, as a flood from the internet), while a real
#      attacker nmap -sS's from a fresh address. (Not hping3
#      --rand-source: it forges addresses from the whole IPv4 space, and
#      the lab uses only its own ranges.) The attacker blocked; with a set
#      backend the trap set never held more than TRAP_SET_SIZE, and
#      TRAP_HOLD+2 s after the flood holds nothing but real attackers, and
#      at most BLOCK_RATE_LIMIT forged sources were banned (printed with
#      iptables, not asserted). (Run after 5, so that the flood's use of
#      the rate limit cannot decide scenario 5.)
#   6  the control: plain nmap -sS from a fresh address, checked exactly
#      as e2e.sh checks a scan (check_scan).
# The clients are stopped and started again after each scenario (a gap of
# milliseconds) for their counts per scenario. At the end: the benign
# client and the far client had at least 99 % of their requests answered
# over the whole run; no address but the real attackers' (and the
# flood's, up to the rate limit) is in a ban or trap set or chain,
# hosts.deny, the history or the state; the daemon logged no error and
# still runs, and stops with status 0 on SIGTERM. A results table follows
# (scenario, attacker blocked, framed blocked, forged decisions logged, ms
# from the first probe to the block, the clients' requests answered). A framed address found blocked is
# unblocked (scanwarden unblock) so that the next scenarios start clean;
# it is reported again at the end. Any failed assertion makes the exit
# status non-zero after the daemon log's tail is printed; everything is
# torn down on exit.
#
# Needs what e2e.sh needs, and hping3. Environment: E2E_BACKEND (iptables,
# nftables or ipset), SW_LAB_PREFIX (default swsp-), SPOOF_FLOOD_SOURCES
# (20000), SPOOF_FLOOD_RATE (4000 a second), SPOOF_RATE_LIMIT
# (BLOCK_RATE_LIMIT; default the daemon's), SPOOF_RELEASE_MAX_MS (2000),
# SPOOF_MODES (the daemon's mode flags, e.g. "-atcp -audp"), KEEP_WORK=1,
# E2E_RACE=1 (as e2e.sh). TRAP_HOLD is read from the config,
# else conf/conf.go's DefaultTrapHold, else 5 s. About 95 s a backend.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swsp-}
# the routed lab: routers, far client, far attacker (scripts/lab.sh)
export SW_LAB_ROUTED=1
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
TAG=spoof
# SPOOF_MODES: the daemon's mode flags (e.g. "-atcp -audp": advanced mode,
# every unbound port below 1024 a trap); PortSentry's default stealth
# modes when empty.
read -r -a DAEMON_ARGS <<<"${SPOOF_MODES:-}"

NS_RTR=${SW_LAB_PREFIX}router
NS_FC=${SW_LAB_PREFIX}farclient
NS_FA=${SW_LAB_PREFIX}farattacker
ROUTER6=fd00:77::1
FARCLIENT4=203.0.113.20
FARATT4=192.0.2.66
DECOYS=(198.51.100.201 198.51.100.202 198.51.100.203)

# The flood's forged sources (scripts/synflood: a /96 of the lab's /64
# outside the hosts' fd00:77::/96); FLOOD_PFX starts every one of them as
# printed (and none of the lab's hosts).
FLOOD_BASE=fd00:77::1:0:0
FLOOD_NET=fd00:77::1:0:0/96
FLOOD_PFX=fd00:77::1:
FLOOD_SOURCES=${SPOOF_FLOOD_SOURCES:-20000}
FLOOD_RATE=${SPOOF_FLOOD_RATE:-4000}
SPOOF_RATE_LIMIT=${SPOOF_RATE_LIMIT:-}
# The trap set's bound in this config (the daemon's default too).
SPOOF_TRAP_SET_SIZE=256

# How long the daemon has to block a real attacker once its scan is over
# (it normally happens during it), and how long any attack process may
# run (nmap gives up on the host after HOST_TIMEOUT, 10 s, once blocked).
ATTACK_BLOCK_WAIT=10
ATTACK_DEADLINE=90
# A framed host that owns its address (the benign and the far client) must
# leave the kernel trap set at once once judged forged: a stretch longer
# than this in it fails (the trap sets are polled every 0.2 s; an address
# nobody owns may stay until ARP/NDP has failed, about 3 s, and is only
# reported).
RELEASE_MAX_MS=${SPOOF_RELEASE_MAX_MS:-2000}
RELEASE_CHECK=0
# The far client's pace (the benign client's is e2e's).
FAR_INTERVAL=300ms
# At least this share (%) of the clients' requests must be answered.
CLIENT_MIN_PCT=99

SYNFLOOD=""
FC_PID=""
TRAP_HOLD=5 TRAP_SET_SIZE=$SPOOF_TRAP_SET_SIZE RATE_LIMIT=60
TCP_TRAPS=() UDP_TRAP=""
MARK=0    # log lines before the scenario
REC0=""   # the history, blocked and state files before the scenario
TRAP_LEFT=() # what trap_wait found still trapped
SC_T0=0   # the scenario's start (ms)
declare -a REAL=()   # the real attackers' addresses
declare -a ROW_SC=() ROW_ATT=() ROW_ABLK=() ROW_FRAMED=() ROW_FBLK=() ROW_FORGED=() ROW_MS=() ROW_CL=()
S4_ROW="" S4_MARK="" # scenario 4's row and first log line, for its late forged decisions
declare -a EVER_FRAMED=() # framed addresses found blocked in a scenario
declare -A SEEN=()        # framed address -> when it was seen in the ban set/chain

# ---- small helpers ------------------------------------------------------

now_ms() {
	local t=$EPOCHREALTIME
	echo $((${t/./} / 1000))
}

# secs_since MS: seconds (one decimal) from MS to now.
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# secs_of VALUE: a TRAP_HOLD value ("5", "5s", "1m") in seconds, or
# nothing.
secs_of() {
	case $1 in
	*[0-9]m) echo $((${1%m} * 60)) ;;
	*[0-9]s) echo "${1%s}" ;;
	*[0-9]) echo "$1" ;;
	esac
}

# if_stat NS tx_packets|rx_packets: a counter of NS's veth0.
if_stat() {
	ip -n "$1" -s link show dev "$IFACE" | awk -v want="$2" '
		$1 == "RX:" { sect = "rx"; next }
		$1 == "TX:" { sect = "tx"; next }
		sect != "" { if (sect "_packets" == want) { print $2; found = 1 }; sect = "" }
		END { exit !found }'
}

# has LIST ADDR: ADDR is a line of LIST.
has() { grep -qxF -- "$2" <<<"$1"; }

# ban_members FAM: the addresses the backend bans in family FAM (4, 6),
# the kernel trap set left out: DROP rules of SCANWARDEN or the ban set.
ban_members() {
	local a=$VICTIM4
	[[ $1 == 6 ]] && a=$VICTIM6
	case $E2E_BACKEND in
	iptables) chain "$a" | sed -n 's#^-A SCANWARDEN -s \([^/ ]*\)/\(32\|128\)\( .*\)\{0,1\} -j DROP$#\1#p' ;;
	nftables) nft_elems "ban$1" ;;
	ipset) ipset_members "scanwarden-ban$1" ;;
	esac
}

# trap_members FAM: the kernel trap set of family FAM (none with
# iptables).
trap_members() {
	case $E2E_BACKEND in
	nftables) nft_elems "trap$1" ;;
	ipset) ipset_members "scanwarden-trap$1" ;;
	esac
	return 0
}

# trap_count FAM: how many sources the kernel trap set of family FAM
# holds: ipset's own count (one reading of the kernel's), or the elements
# nft lists (a dump of several messages: while the kernel adds and the
# daemon deletes elements, it may show a few more than were ever in the
# set at once).
trap_count() {
	case $E2E_BACKEND in
	ipset) ip netns exec "$NS_VIC" ipset list -t "scanwarden-trap$1" 2>/dev/null | sed -n 's/^Number of entries: *//p' | grep . || echo 0 ;;
	*) trap_members "$1" | grep -c . || true ;;
	esac
}

fam_of() { if [[ $1 == *:* ]]; then echo 6; else echo 4; fi; }

# log_mark: the scenario's log lines start after this one; since_mark
# prints them.
log_mark() { MARK=$(wc -l <"$DLOG"); }
since_mark() { tail -n +"$((MARK + 1))" "$DLOG"; }

# about ADDR: this scenario's log lines about source ADDR.
about() { since_mark | grep -F "\"src\":\"$1\"" || true; }

# works NS SRC: SRC's HTTP to the victim works (two tries: a provisional
# trap entry being lifted may cost one).
works() {
	reach_ns "$1" "$2" "http://$VICTIM4/" && return 0
	pause 1
	reach_ns "$1" "$2" "http://$VICTIM4/"
}

# ---- attacks ------------------------------------------------------------

declare -a ATT_PIDS=() ATT_NAMES=() ATT_CMDS=()

# attack NAME NS CMD...: CMD in namespace NS in the background (output in
# logs/NAME.out), recorded with the lab so that teardown ends it.
attack() {
	local name=$1 ns=$2 pid
	shift 2
	ip netns exec "$ns" "$@" </dev/null >"$WORK/logs/$name.out" 2>&1 &
	pid=$!
	BG_PIDS+=("$pid")
	bash "$LAB" adopt "$name" "$pid" >/dev/null 2>&1 || true
	ATT_PIDS+=("$pid") ATT_NAMES+=("$name") ATT_CMDS+=("$*")
}

attacks_running() {
	local p
	for p in "${ATT_PIDS[@]}"; do
		alive "$p" && return 0
	done
	return 1
}

# reap_attacks: wait for the attack processes (ATTACK_DEADLINE at most),
# check their exit status: 0, or 1 for hping3 (no reply: the probes were
# dropped, or went to a port nobody answers on).
reap_attacks() {
	local i pid rc name cmd deadline=$((SECONDS + ATTACK_DEADLINE))
	for i in "${!ATT_PIDS[@]}"; do
		pid=${ATT_PIDS[$i]} name=${ATT_NAMES[$i]} cmd=${ATT_CMDS[$i]}
		while alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		rc=0
		if alive "$pid"; then
			fail "$name: '$cmd' still running after ${ATTACK_DEADLINE}s: stopped"
			stop_pid "$pid" 5 || true
			continue
		fi
		wait "$pid" || rc=$?
		forget "$pid"
		if [[ $cmd == hping3* ]] && ((rc == 1)); then
			rc=0
		fi
		((rc == 0)) || fail "$name: '$cmd' exited $rc: $(tail -n 3 "$WORK/logs/$name.out" | tr '\n' ' ')"
	done
	ATT_PIDS=() ATT_NAMES=() ATT_CMDS=()
}

# watch MIN AFTER ADDR...: every 0.2 s while the attacks run, and until
# MIN s after the scenario began and AFTER s after the attacks ended:
# SEEN[ADDR] says when an ADDR was first in the ban set or chain;
# HELD[ADDR] is the longest stretch (ms) it was seen in a kernel trap set
# without a break, HELD_N[ADDR] how many stretches. With WATCH_TRAP=1 it
# keeps the largest trap set size in TRAP_MAX.
WATCH_TRAP=0 TRAP_MAX=0
declare -A HELD=() HELD_N=() HELD_FROM=()
watch() {
	local min=$1 after=$2 tend="" now a fams=() f list n traps
	shift 2
	for a in "$@"; do
		f=$(fam_of "$a")
		[[ " ${fams[*]} " == *" $f "* ]] || fams+=("$f")
	done
	while :; do
		now=$(now_ms)
		if ! attacks_running; then
			[[ -n $tend ]] || tend=$now
			((now - SC_T0 < min * 1000 || now - tend < after * 1000)) || break
		fi
		# (a hung attack is reap_attacks' to report)
		((now - SC_T0 < (ATTACK_DEADLINE + min + after) * 1000)) || break
		for f in "${fams[@]}"; do
			list=$(ban_members "$f")
			traps=$(trap_members "$f")
			now=$(now_ms)
			for a in "$@"; do
				[[ $(fam_of "$a") == "$f" ]] || continue
				if [[ -z ${SEEN[$a]:-} ]] && has "$list" "$a"; then
					SEEN[$a]="in the $E2E_BACKEND ban $(ban_word) $(secs_since "$SC_T0") s into the scenario"
				fi
				if has "$traps" "$a"; then
					if [[ -z ${HELD_FROM[$a]:-} ]]; then
						HELD_FROM[$a]=$now
						HELD_N[$a]=$((${HELD_N[$a]:-0} + 1))
					fi
					((now - HELD_FROM[$a] <= ${HELD[$a]:-0})) || HELD[$a]=$((now - HELD_FROM[$a]))
				else
					HELD_FROM[$a]=""
				fi
			done
		done
		if ((WATCH_TRAP)); then
			for f in 4 6; do
				n=$(trap_count "$f")
				((n <= TRAP_MAX)) || TRAP_MAX=$n
			done
		fi
		sleep 0.2
	done
}

ban_word() { if [[ $E2E_BACKEND == iptables ]]; then echo chain; else echo set; fi; }

# trap_wait SECS ADDR...: until none of ADDR is in a trap set, SECS at
# most; TRAP_LEFT lists those still there.
trap_wait() {
	local secs=$1 end a list
	shift
	end=$(($(now_ms) + secs * 1000))
	while :; do
		TRAP_LEFT=()
		list=$(trap_members 4)$'\n'$(trap_members 6)
		for a in "$@"; do
			has "$list" "$a" && TRAP_LEFT+=("$a")
		done
		((${#TRAP_LEFT[@]} > 0 && $(now_ms) < end)) || return 0
		sleep 0.2
	done
}

# ---- checks -------------------------------------------------------------

# unblock ADDR: scanwarden unblock as root, so that the next scenarios
# start without a block that was wrong.
unblock() {
	local rc=0
	run_wait_to "$WORK/logs/unblock.out" ip netns exec "$NS_VIC" "$SWBIN" unblock -c "$CONF" "$1" || rc=$?
	if ((rc == 0)); then
		say "  (unblocked $1, so that the next scenarios start clean)"
	else
		say "  warning: scanwarden unblock $1 exited $rc: $(tr '\n' ' ' <"$WORK/logs/unblock.out")"
	fi
}

# check_attacker SC SRC NS: the real attacker SRC (in namespace NS) is
# blocked: a "blocked" line, the backend once, one hosts.deny entry, the
# state, and its next connection fails. Sets ABLK (yes/no) and AMS.
check_attacker() {
	local sc=$1 src=$2 ns=$3 missing=() n line why
	REAL+=("$src")
	wait_blocked "$src" "$ATTACK_BLOCK_WAIT" || true
	line=$(blocked_lines "$src" | head -n 1)
	AMS="-"
	if [[ -z $line ]]; then
		missing+=("no 'blocked' log line (its decisions: $(daemon_lines "$src" | grep -F '"outcome":' | while IFS= read -r l; do jmsg "$l"; done | head -n 2 | tr '\n' ';'))")
	elif [[ $line == *'"kernel_trap":true'* ]]; then
		AMS=kernel
	else
		AMS=$(printf '%.1f' "$(jnum "$line" block_ms)" 2>/dev/null || echo "?")
	fi
	n=$(ban_count "$src")
	((n == 1)) || missing+=("blocked $n times by $E2E_BACKEND, want 1")
	n=$(count_lines "$(cat "$DDIR/hosts.deny")" "$(deny_entry "$src")")
	((n == 1)) || missing+=("$n hosts.deny entries, want 1")
	state_has "$src" || missing+=("no state entry")
	local url="http://$VICTIM4/"
	[[ $src != *:* ]] || url="http://[$VICTIM6]/"
	if reach_ns "$ns" "$src" "$url"; then
		missing+=("a new connection from it to the victim succeeded")
	elif [[ $REACH_OUT == *"cannot assign requested address"* ]]; then
		missing+=("could not bind $src for the connection check")
	fi
	if ((${#missing[@]} == 0)); then
		ABLK=yes
		if [[ $AMS == kernel ]]; then
			say "  attacker $src blocked (the kernel trap held it on its first probe)"
		else
			say "  attacker $src blocked (the block in place ${AMS} ms after its first probe)"
		fi
		return 0
	fi
	ABLK=no
	why=$(printf '%s; ' "${missing[@]}")
	fail "scenario $sc: the real attacker $src is not blocked as it must be: ${why%; }"
}

# check_framed SC ADDR...: after the attack (and watch), none of the
# framed ADDRs is blocked anywhere: not seen in the ban set or chain, in no
# trap set TRAP_HOLD+2 s after the attack at the latest, no hosts.deny
# entry, no mention in the history, blocked or state files, no "blocked"
# line; and one that was alerted has a forged decision logged. Sets FBLK
# (the blocked ones, or "no") and FORGED (forged decisions logged).
check_framed() {
	local sc=$1 a where lines deny rec n blocked=() fl l ev held=() forged=0
	shift
	trap_wait "$((TRAP_HOLD + 2))" "$@"
	deny=$(cat "$DDIR/hosts.deny")
	rec=$({ records_no_deny; } || true)
	for a in "$@"; do
		where=()
		[[ -z ${SEEN[$a]:-} ]] || where+=("${SEEN[$a]}")
		if has "$(ban_members "$(fam_of "$a")")" "$a" && [[ -z ${SEEN[$a]:-} ]]; then
			where+=("in the $E2E_BACKEND ban $(ban_word) at the end")
		fi
		if [[ " ${TRAP_LEFT[*]} " == *" $a "* ]]; then
			where+=("still in the kernel trap set $((TRAP_HOLD + 2)) s after the attack (TRAP_HOLD=$TRAP_HOLD)")
		fi
		n=$(mentions "$deny" "$a")
		((n == 0)) || where+=("$n hosts.deny entries")
		# (what an earlier scenario wrote stays in the history)
		n=$(($(mentions "$rec" "$a") - $(mentions "$REC0" "$a")))
		((n <= 0)) || where+=("$n new lines in the history/blocked/state files")
		lines=$(about "$a")
		n=$(grep -cF '"msg":"blocked ' <<<"$lines" || true)
		((n == 0)) || where+=("$n 'blocked' log lines ($(jmsg "$(grep -F '"msg":"blocked ' <<<"$lines" | head -n 1)" | cut -c1-120))")
		if [[ -n ${HELD_N[$a]:-} ]]; then
			n=${HELD[$a]:-0}
			say "  $a was held in the kernel trap set ${HELD_N[$a]} time(s), at most $(awk -v m="$n" 'BEGIN { printf "%.1f", m / 1000 }') s at a stretch (polled every 0.2 s; TRAP_HOLD=${TRAP_HOLD}s)"
			# (a framed address blocked outright is reported as such)
			if ((RELEASE_CHECK && n > RELEASE_MAX_MS && ${#where[@]} == 0)); then
				held+=("$a $(awk -v m="$n" 'BEGIN { printf "%.1f", m / 1000 }') s")
				fail "scenario $sc: the framed address $a was held in the kernel trap set (all its traffic dropped) for $(awk -v m="$n" 'BEGIN { printf "%.1f", m / 1000 }') s at a stretch: not released at once as a forged source must be (want at most $((RELEASE_MAX_MS / 1000)) s; TRAP_HOLD=${TRAP_HOLD}s)"
			fi
		fi
		if ((${#where[@]} > 0)); then
			blocked+=("$a")
			EVER_FRAMED+=("$a")
			fail "scenario $sc: the framed address $a was blocked: $(printf '%s; ' "${where[@]}" | sed 's/; $//')"
		fi
		# its forged decisions, when the daemon alerted on it at all
		fl=$(grep -F '"outcome":"forged"' <<<"$lines" || true)
		forged=$((forged + $(grep -c . <<<"$fl" || true)))
		if [[ -n ${lines//[[:space:]]/} && -z $fl ]]; then
			fail "scenario $sc: the daemon alerted on $a but logged no forged decision (\"outcome\":\"forged\"); it logged: $(while IFS= read -r l; do [[ -z $l ]] || jmsg "$l"; done <<<"$lines" | head -n 2 | cut -c1-160 | tr '\n' ';')"
		fi
		while IFS= read -r l; do
			[[ -n $l ]] || continue
			ev=$(sed -E -n 's/.*"evidence":"((\\.|[^"\\])*)".*/\1/p' <<<"$l")
			[[ $l == *'"forged":true'* ]] || fail "scenario $sc: a forged decision on $a without \"forged\":true: $l"
			[[ -n $ev ]] || fail "scenario $sc: a forged decision on $a without \"evidence\": $l"
			[[ $(jmsg "$l") == "not blocked $a: forged: "* ]] || fail "scenario $sc: a forged decision on $a whose message is not 'not blocked $a: forged: EVIDENCE': $(jmsg "$l")"
		done <<<"$fl"
	done
	FORGED=$forged
	if ((${#blocked[@]} == 0)); then
		FBLK=no
	else
		FBLK="YES: ${blocked[*]}"
		for a in "${blocked[@]}"; do
			unblock "$a"
		done
	fi
	((${#held[@]} == 0)) || FBLK+=" (trap held $(
		IFS=,
		echo "${held[*]}"
	))"
	say "  framed $*: blocked: $FBLK; forged decisions logged on them in this scenario: $FORGED; log lines about them: $(for a in "$@"; do about "$a"; done | grep -c . || true)"
}

# records_no_deny: the history, blocked and state files, concatenated.
records_no_deny() {
	local f
	for f in "$DDIR"/scanwarden.history "$DDIR"/scanwarden.blocked* "$DDIR"/state/*; do
		[[ -f $f ]] && cat "$f"
	done
	return 0
}

# row SC ATTACKER ABLK FRAMED FBLK FORGED MS: one line of the results,
# with the clients' counts of the scenario (cycle_clients; ROW_FINAL=final
# for the last one).
ROW_FINAL=""
row() {
	cycle_clients "$ROW_FINAL"
	ROW_SC+=("$1") ROW_ATT+=("$2") ROW_ABLK+=("$3") ROW_FRAMED+=("$4") ROW_FBLK+=("$5") ROW_FORGED+=("$6") ROW_MS+=("$7") ROW_CL+=("$CLIENTS")
}

# scenario N TITLE: the start of scenario N.
scenario() {
	say ""
	say "scenario $1: $2"
	log_mark
	REC0=$(records_no_deny)
	SEEN=() HELD=() HELD_N=() HELD_FROM=()
	SC_T0=$(now_ms)
}

# ---- the scenarios ------------------------------------------------------

# decoys SC N DECOY...: nmap -sS -D DECOYS,ME (1-1000) from fresh address N
# (nmap -6, and N's IPv6 address, for IPv6 decoys).
decoys() {
	local sc=$1 n=$2 list six=""
	shift 2
	list=$(
		IFS=,
		echo "$*"
	)
	[[ $1 != *:* ]] || six="-6 " # IPv6 decoys: an IPv6 scan
	scan_addrs "$n" "${six:--sS}"
	nmap_cmd "$six-sS -p 1-1000 -D $list,ME" "$SRC" "$DST" --host-timeout "$HOST_TIMEOUT"
	say "  ${NMAP[*]}"
	attack "s$sc-nmap" "$NS_ATT" "${NMAP[@]}"
}

scenario1() {
	scenario 1 "nmap decoys in the benign client's name (-D $BENIGN4,ME)"
	RELEASE_CHECK=1
	decoys 1 1 "$BENIGN4"
	local src=$SRC
	watch 0 2 "$BENIGN4"
	reap_attacks
	check_attacker 1 "$src" "$NS_ATT" || true
	check_framed 1 "$BENIGN4"
	row "1 decoys: benign's address" "$src" "$ABLK" "$BENIGN4" "$FBLK" "$FORGED" "$AMS"
}

scenario7() {
	local unused6=fd00:77::201
	scenario 7 "IPv6: nmap -6 decoys in the benign client's name and an unused address (-D $BENIGN6,$unused6,ME)"
	RELEASE_CHECK=0
	decoys 7 7 "$BENIGN6" "$unused6"
	local src=$SRC
	# 6 s after the scan: the unused address's NDP resolution has failed
	watch 0 6 "$BENIGN6" "$unused6"
	reap_attacks
	check_attacker 7 "$src" "$NS_ATT" || true
	check_framed 7 "$BENIGN6" "$unused6"
	row "7 IPv6 decoys: benign's, unused" "$src" "$ABLK" "$BENIGN6, ${unused6}" "$FBLK" "$FORGED" "$AMS"
}

scenario2() {
	scenario 2 "nmap decoys with unused addresses (-D ${DECOYS[*]},ME)"
	RELEASE_CHECK=0
	decoys 2 2 "${DECOYS[@]}"
	local src=$SRC
	# 6 s after the scan: their ARP resolution has failed, and any
	# provisional trap entry has run out
	watch 0 6 "${DECOYS[@]}"
	reap_attacks
	check_attacker 2 "$src" "$NS_ATT" || true
	check_framed 2 "${DECOYS[@]}"
	row "2 decoys: unused addresses" "$src" "$ABLK" "${DECOYS[0]}-${DECOYS[2]##*.}" "$FBLK" "$FORGED" "$AMS"
}

scenario3() {
	local p
	scenario 3 "single forged probes in the benign client's name (hping3 -a $BENIGN4: TCP ${TCP_TRAPS[*]}, UDP $UDP_TRAP)"
	RELEASE_CHECK=1
	# (hping3 has no IPv6: IPv4 only)
	for p in "${TCP_TRAPS[@]}"; do
		attack "s3-hping3-tcp$p" "$NS_ATT" hping3 -I "$IFACE" -a "$BENIGN4" -S -p "$p" -c 3 -i u300000 "$VICTIM4"
	done
	attack "s3-hping3-udp$UDP_TRAP" "$NS_ATT" hping3 -I "$IFACE" -2 -a "$BENIGN4" -p "$UDP_TRAP" -c 3 -i u300000 "$VICTIM4"
	watch "$((TRAP_HOLD + 2))" 1 "$BENIGN4"
	reap_attacks
	check_framed 3 "$BENIGN4"
	works "$NS_BEN" "$BENIGN4" || fail "scenario 3: $BENIGN4's HTTP to the victim fails after the forged probes: $REACH_OUT"
	row "3 forged trap probes (hping3 -a)" "-" "-" "$BENIGN4" "$FBLK" "$FORGED" "-"
}

scenario5() {
	local p
	scenario 5 "off-link: the far attacker ($FARATT4, two hops) forges the far client ($FARCLIENT4, one hop)"
	RELEASE_CHECK=1
	works "$NS_FC" "$FARCLIENT4" || fail "scenario 5: the far client $FARCLIENT4 cannot reach the victim before the scenario: $REACH_OUT"
	for p in "${TCP_TRAPS[@]}"; do
		attack "s5-hping3-tcp$p" "$NS_FA" hping3 -I "$IFACE" -a "$FARCLIENT4" -S -p "$p" -c 3 -i u300000 "$VICTIM4"
	done
	NMAP=(nmap -n -Pn -T4 -sS -p 1-1000 --max-retries 1 --host-timeout "$HOST_TIMEOUT" -e "$IFACE" -S "$FARCLIENT4" "$VICTIM4")
	say "  ${NMAP[*]}"
	attack s5-nmap-forged "$NS_FA" "${NMAP[@]}"
	watch "$((TRAP_HOLD + 2))" 2 "$FARCLIENT4"
	reap_attacks
	check_framed 5 "$FARCLIENT4"
	local fblk=$FBLK forged=$FORGED
	works "$NS_FC" "$FARCLIENT4" || fail "scenario 5: $FARCLIENT4's HTTP to the victim fails after the forged scan: $REACH_OUT"
	say "  the far attacker scans as itself"
	NMAP=(nmap -n -Pn -T4 -sS -p 1-1000 --host-timeout "$HOST_TIMEOUT" -e "$IFACE" "$VICTIM4")
	say "  ${NMAP[*]}"
	SC_T0=$(now_ms)
	SEEN=()
	attack s5-nmap-self "$NS_FA" "${NMAP[@]}"
	watch 0 1 "$FARCLIENT4"
	reap_attacks
	if [[ -n ${SEEN[$FARCLIENT4]:-} ]]; then
		fail "scenario 5: the framed address $FARCLIENT4 was blocked while the far attacker scanned as itself: ${SEEN[$FARCLIENT4]}"
		fblk="YES: $FARCLIENT4"
		unblock "$FARCLIENT4"
	fi
	check_attacker 5 "$FARATT4" "$NS_FA" || true
	row "5 off-link: far client's name (hop count)" "$FARATT4" "$ABLK" "$FARCLIENT4" "$fblk" "$forged" "$AMS"
}

scenario4() {
	local dmac tx0 src n4 n6 left forged_bans forged_log f list a sets=1 i end what
	[[ $E2E_BACKEND != iptables ]] || sets=0
	scenario 4 "a forged flood: $FLOOD_SOURCES SYNs from as many forged sources ($FLOOD_NET, off-link) to trap port ${TCP_TRAPS[0]}, and a real nmap -sS"
	# (the benign client is not framed here: it must not be trapped at all)
	RELEASE_CHECK=1 S4_MARK=$MARK S4_ROW=${#ROW_SC[@]}
	dmac=$(ip netns exec "$NS_VIC" cat "/sys/class/net/$IFACE/address")
	tx0=$(if_stat "$NS_ATT" tx_packets)
	attack s4-synflood "$NS_ATT" "$SYNFLOOD" -i "$IFACE" -dmac "$dmac" -dst "$VICTIM6" \
		-src-base "$FLOOD_BASE" -sources "$FLOOD_SOURCES" -n "$FLOOD_SOURCES" -rate "$FLOOD_RATE" \
		-trap-ports "${TCP_TRAPS[0]}" -trap-share 1
	# the scanner once a fifth of the flood is out (whatever the pace)
	for ((i = 0; i < 300; i++)); do
		attacks_running || break
		(($(if_stat "$NS_ATT" tx_packets) - tx0 < FLOOD_SOURCES / 5)) || break
		sleep 0.1
	done
	attacks_running || fail "scenario 4: the flood was over before the real attacker started"
	scan_addrs 4 -sS
	src=$SRC
	nmap_cmd "-sS -p 1-1000" "$src" "$VICTIM4" --host-timeout "$HOST_TIMEOUT"
	say "  after $(($(if_stat "$NS_ATT" tx_packets) - tx0)) flood packets: ${NMAP[*]}"
	attack s4-nmap "$NS_ATT" "${NMAP[@]}"
	WATCH_TRAP=$sets TRAP_MAX=0
	watch 0 0 "$BENIGN4" "$BENIGN6"
	WATCH_TRAP=0
	reap_attacks
	say "  synflood: $(grep '^synflood:' "$WORK/logs/s4-synflood.out" | sed 's/^synflood: //' || true)"
	n4=$(trap_count 4)
	n6=$(trap_count 6)
	check_attacker 4 "$src" "$NS_ATT" || true
	check_framed 4 "$BENIGN4" "$BENIGN6"
	local fblk=$FBLK
	# TRAP_HOLD+2 s after the flood: nothing but real attackers left in
	# the trap sets
	end=$(($(now_ms) + (TRAP_HOLD + 2) * 1000))
	while :; do
		left=()
		for f in 4 6; do
			list=$(trap_members "$f")
			while IFS= read -r a; do
				[[ -z $a ]] || [[ " ${REAL[*]} " == *" $a "* ]] || left+=("$a")
			done <<<"$list"
		done
		((${#left[@]} > 0 && $(now_ms) < end)) || break
		sleep 0.2
	done
	forged_bans=$(ban_members 6 | grep -c "^$FLOOD_PFX" || true)
	forged_log=$(since_mark | grep -F "\"src\":\"$FLOOD_PFX" | grep -cF '"outcome":"forged"' || true)
	if ((sets)); then
		say "  trap sets: at most $TRAP_MAX elements seen during the flood, $n4 IPv4 + $n6 IPv6 right after it (TRAP_SET_SIZE=$TRAP_SET_SIZE); $((TRAP_HOLD + 2)) s later: ${#left[@]} not real attackers"
	fi
	say "  forged flood sources banned: $forged_bans (BLOCK_RATE_LIMIT=$RATE_LIMIT); forged decisions logged for them: $forged_log"
	if ((sets)); then
		# (nft's listing may show a few more than the kernel's bound,
		# see trap_count: a bound that does not hold shows thousands)
		local bound=$TRAP_SET_SIZE
		[[ $E2E_BACKEND != nftables ]] || bound=$((TRAP_SET_SIZE + TRAP_SET_SIZE / 20))
		((TRAP_MAX <= bound)) || fail "scenario 4: a trap set held $TRAP_MAX elements during the flood, more than TRAP_SET_SIZE=$TRAP_SET_SIZE$([[ $bound == "$TRAP_SET_SIZE" ]] || echo " (+5 % for nft's listing)")"
		((n4 <= TRAP_SET_SIZE && n6 <= TRAP_SET_SIZE)) || fail "scenario 4: the trap sets held $n4 (IPv4) and $n6 (IPv6) elements after the flood, more than TRAP_SET_SIZE=$TRAP_SET_SIZE"
		((${#left[@]} == 0)) || fail "scenario 4: $((TRAP_HOLD + 2)) s after the flood (TRAP_HOLD=$TRAP_HOLD) the trap sets still hold ${#left[@]} sources the daemon did not promote (not real attackers), e.g. $(printf '%s ' "${left[@]:0:3}")"
		((forged_bans <= RATE_LIMIT)) || fail "scenario 4: $forged_bans forged flood sources are banned, more than BLOCK_RATE_LIMIT=$RATE_LIMIT"
	fi
	what="$forged_bans banned"
	((sets == 0)) || what+=", ${#left[@]} left in trap"
	[[ $fblk == no ]] || what+="; benign $fblk"
	row "4 forged flood + real nmap" "$src" "$ABLK" "$FLOOD_SOURCES forged v6" "$what" "$forged_log" "$AMS"
}

scenario6() {
	scenario 6 "control: plain nmap -sS from a fresh address, no forgery (checked as e2e.sh does)"
	scan_addrs 6 -sS
	local src=$SRC line ms="-" ok=yes
	nmap_cmd -sS "$SRC" "$DST" --host-timeout "$HOST_TIMEOUT"
	say "  ${NMAP[*]}"
	run_nmap control || true
	REAL+=("$src")
	printf '%s:   ' "$TAG"
	table_header
	check_scan control syn "$SRC" "$DST" || ok=no
	line=$(blocked_lines "$src" | head -n 1)
	if [[ $line == *'"kernel_trap":true'* ]]; then
		ms=kernel
	elif [[ -n $line ]]; then
		ms=$(printf '%.1f' "$(jnum "$line" block_ms)")
	fi
	[[ $ok == yes ]] || fail "scenario 6: the control scan from $src was not detected and blocked as in e2e (see the row above: $(grep -c . <<<"$(blocked_lines "$src")") 'blocked' lines, blocked $(ban_count "$src") times by $E2E_BACKEND)"
	ROW_FINAL=final
	row "6 control: plain nmap -sS" "$src" "$ok" "-" "-" "$(about "$src" | grep -cF '"outcome":"forged"' || true)" "$ms"
}

# ---- after the scenarios ------------------------------------------------

# The clients (the benign one e2e.sh's setup started, the far one) are
# stopped and started again after each scenario, for their counts per
# scenario (labsrv client prints them when it ends): the gap is a few
# milliseconds, the traffic goes on. CL_OK and CL_N hold the totals.
BEN_LOG="" FC_LOG="" CYCLE=0
declare -A CL_OK=() CL_N=()

start_benign() {
	BEN_LOG=$WORK/logs/client-benign.$CYCLE.log
	start_bg client-benign "$NS_BEN" "$BEN_LOG" "$LABSRV" client -n 0 \
		-interval "$BENIGN_INTERVAL" -timeout "$BENIGN_TIMEOUT" \
		-http "http://$VICTIM4/,http://[$VICTIM6]/" -udp "$VICTIM4:53,[$VICTIM6]:53"
	BEN_PID=$BG_PID
}

start_far() {
	FC_LOG=$WORK/logs/client-far.$CYCLE.log
	start_bg client-far "$NS_FC" "$FC_LOG" "$LABSRV" client -n 0 \
		-interval "$FAR_INTERVAL" -timeout "$BENIGN_TIMEOUT" -http "http://$VICTIM4/"
	FC_PID=$BG_PID
}

# client_counts NAME PID LOG: stop the client; its answered and total
# requests in OKN ("OK TOTAL"), added to CL_OK[NAME] and CL_N[NAME].
client_counts() {
	local name=$1 summary ok total
	# (a round of requests that time out takes up to 8 s)
	stop_pid "$2" 12 || true
	summary=$(grep -hE '^labsrv client: [0-9]+ rounds' "$3" || true)
	[[ -n $summary ]] || fail "the $name client printed no summary: $(tail -n 3 "$3" | tr '\n' ' ')"
	read -r ok total < <(grep -oE '(http|udp) [0-9]+/[0-9]+ ok' <<<"$summary" |
		awk '{ split($2, f, "/"); ok += f[1]; n += f[2] } END { print ok + 0, n + 0 }')
	CL_OK[$name]=$((${CL_OK[$name]:-0} + ok)) CL_N[$name]=$((${CL_N[$name]:-0} + total))
	OKN="$ok/$total"
	if ((ok < total)); then
		CL_LAST_ERR[$name]=$(sed -n 's/.*(last error: \(.*\)).*/\1/p' <<<"$summary" | head -n 1 | cut -c1-160)
	fi
}
declare -A CL_LAST_ERR=()

# cycle_clients [final]: the clients' counts since the last cycle in
# CLIENTS ("benign OK/N, far OK/N"); started again unless final.
cycle_clients() {
	local b
	kill -TERM "$BEN_PID" "$FC_PID" 2>/dev/null || true
	client_counts benign "$BEN_PID" "$BEN_LOG"
	b=$OKN
	client_counts far "$FC_PID" "$FC_LOG"
	CLIENTS="$b, $OKN"
	BEN_PID="" FC_PID=""
	say "  clients' requests answered in this scenario: benign $b, far $OKN"
	CYCLE=$((CYCLE + 1))
	if [[ ${1:-} != final ]]; then
		start_benign
		start_far
	fi
}

# client_verdict NAME WHO: at least CLIENT_MIN_PCT % of the client's
# requests answered over the whole run.
client_verdict() {
	local ok=${CL_OK[$1]:-0} n=${CL_N[$1]:-0} pct
	pct=$(awk -v a="$ok" -v b="$n" 'BEGIN { if (b) printf "%.1f", 100 * a / b; else print 0 }')
	say "$2: $ok of $n requests answered ($pct %)${CL_LAST_ERR[$1]:+; last error: ${CL_LAST_ERR[$1]}}"
	if ((n == 0)); then
		fail "$2 made no request"
	elif ((ok * 100 < CLIENT_MIN_PCT * n)); then
		fail "$2: $ok of $n requests answered ($pct %), want at least $CLIENT_MIN_PCT %"
	fi
}

# check_only_real: no address but the real attackers' (and the flood's
# forged sources, counted and bounded in scenario 4) is in a ban or trap
# set or chain, hosts.deny, the history, blocked or state files.
check_only_real() {
	local all a where n flood=0 bad=0
	local -A places=()
	while IFS= read -r a; do
		[[ -n $a ]] && places[$a]+="the $E2E_BACKEND ban/trap sets or chain, "
	done < <(banned "$VICTIM4"; banned "$VICTIM6")
	while IFS= read -r a; do
		[[ -n $a ]] && places[$a]+="hosts.deny, "
	done < <(sed -n 's/^ALL: \[\{0,1\}\([^] ]*\)\]\{0,1\} : DENY$/\1/p' "$DDIR/hosts.deny")
	while IFS= read -r a; do
		[[ -n $a ]] && places[$a]+="the history/blocked/state files, "
	done < <(records_no_deny | grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}|fd00:77:[0-9a-f:]*[0-9a-f]' | sort -u)
	for a in "${!places[@]}"; do
		if [[ " ${REAL[*]} " == *" $a "* ]]; then
			continue
		elif [[ $a == "$FLOOD_PFX"* ]]; then
			flood=$((flood + 1))
			continue
		fi
		bad=$((bad + 1))
		fail "$a is blocked or recorded though it never scanned: in ${places[$a]%, }"
	done
	for a in "${EVER_FRAMED[@]}"; do
		[[ -n ${places[$a]:-} ]] || fail "$a (framed) had been blocked during a scenario (unblocked since)"
	done
	say "blocked or recorded: $(printf '%s\n' "${!places[@]}" | grep -vc "^$FLOOD_PFX" || true) addresses besides $flood forged flood sources; real attackers: ${REAL[*]}; others: $bad"
}

print_table() {
	local i fmt='| %-41s | %-14s | %-7s | %-18s | %-34s | %-16s | %-11s | %-24s |\n'
	say "results (BLOCK_BACKEND=$E2E_BACKEND):"
	# shellcheck disable=SC2059
	{
		printf "$fmt" scenario attacker blocked framed "framed blocked" "forged logged" "ms to block" "clients ok (benign, far)"
		printf "$fmt" "---" "---" "---" "---" "---" "---" "---" "---"
		for i in "${!ROW_SC[@]}"; do
			printf "$fmt" "${ROW_SC[$i]}" "${ROW_ATT[$i]}" "${ROW_ABLK[$i]}" "${ROW_FRAMED[$i]}" "${ROW_FBLK[$i]}" "${ROW_FORGED[$i]}" "${ROW_MS[$i]}" "${ROW_CL[$i]}"
		done
	} | sed "s/^/$TAG:   /"
	say "(forged logged: the daemon's forged decisions on the framed (scenario 4: logged one by one + folded into its summary lines, over the rest of the run); ms: from the attacker's first probe to the block in place, as the daemon measured it (kernel: the kernel trap held it on its first probe); clients ok: requests answered during the scenario)"
}

# s4_forged: scenario 4's forged decisions on the flood's sources, over the
# rest of the run (they come as each source's neighbour resolution fails):
# logged one by one, and folded into the log's summary lines.
s4_forged() {
	local one folded
	one=$(tail -n +"$((S4_MARK + 1))" "$DLOG" | grep -F "\"src\":\"$FLOOD_PFX" | grep -cF '"outcome":"forged"' || true)
	folded=$(tail -n +"$((S4_MARK + 1))" "$DLOG" | grep -F '"msg":"adminalert: ' | grep -oE '[0-9]+ judged forged' | awk '{ n += $1 } END { print n + 0 }')
	echo "$one + $folded folded"
}

# pick_ports LIST N PREFER...: N ports of the comma list LIST, PREFER's
# first (those in LIST), never 53 or 80 (the victim's services).
pick_ports() {
	local list=",$1," n=$2 p out=()
	shift 2
	for p in "$@" ${list//,/ }; do
		((${#out[@]} < n)) || break
		[[ $list == *",$p,"* && $p != 53 && $p != 80 && " ${out[*]} " != *" $p "* ]] && out+=("$p")
	done
	echo "${out[*]}"
}

spoof_main() {
	local started=$SECONDS v tcp udp
	preflight
	command -v hping3 >/dev/null || die "hping3 is missing: run scripts/deps.sh as root"
	for v in FLOOD_SOURCES FLOOD_RATE; do
		if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} == 0)); then
			die "SPOOF_$v='${!v}': want a positive whole number"
		fi
	done
	setup 7
	say "building synflood"
	(cd "$REPO" && go build -o "$WORK/synflood" ./scripts/synflood)
	SYNFLOOD=$WORK/synflood

	# the config: the daemon's own rate limit, a trap set of 256
	sed -i -e '/^BLOCK_RATE_LIMIT=/d' -e '/^TRAP_SET_SIZE=/d' "$CONF"
	[[ -z $SPOOF_RATE_LIMIT ]] || printf 'BLOCK_RATE_LIMIT="%s"\n' "$SPOOF_RATE_LIMIT" >>"$CONF"
	printf 'TRAP_SET_SIZE="%s"\n' "$SPOOF_TRAP_SET_SIZE" >>"$CONF"
	RATE_LIMIT=$(conf_value BLOCK_RATE_LIMIT "$(go_default conf/conf.go DefaultBlockRateLimit)")
	RATE_LIMIT=${RATE_LIMIT:-60}
	TRAP_SET_SIZE=$(conf_value TRAP_SET_SIZE "$SPOOF_TRAP_SET_SIZE")
	v=$(secs_of "$(conf_value TRAP_HOLD "$(go_default conf/conf.go DefaultTrapHold)")")
	TRAP_HOLD=${v:-5}
	tcp=$(conf_value TCP_PORTS "$(sed -n 's/^TCP_PORTS="\([^"]*\)".*/\1/p' "$REPO/etc/scanwarden.conf")")
	udp=$(conf_value UDP_PORTS "$(sed -n 's/^UDP_PORTS="\([^"]*\)".*/\1/p' "$REPO/etc/scanwarden.conf")")
	read -ra TCP_TRAPS <<<"$(pick_ports "$tcp" 3 1 79 111)"
	UDP_TRAP=$(pick_ports "$udp" 1 1)
	if ((${#TCP_TRAPS[@]} == 0)) || [[ -z $UDP_TRAP ]]; then
		die "no TCP or UDP trap port in the config's TCP_PORTS/UDP_PORTS ('$tcp', '$udp')"
	fi
	say "config: BLOCK_BACKEND=$E2E_BACKEND BLOCK_RATE_LIMIT=$RATE_LIMIT TRAP_SET_SIZE=$TRAP_SET_SIZE TRAP_HOLD=${TRAP_HOLD}s (KERNEL_TRAP default); trap ports used: TCP ${TCP_TRAPS[*]}, UDP $UDP_TRAP"

	# the flood's sources are off-link: the victim reaches them via the
	# router, which drops what it sends them
	ip -n "$NS_VIC" -6 route add "$FLOOD_NET" via "$ROUTER6" dev "$IFACE"
	ip -n "$NS_RTR" -6 route add blackhole "$FLOOD_NET"
	reach_ns "$NS_FC" "$FARCLIENT4" "http://$VICTIM4/" || die "the far client cannot reach http://$VICTIM4/ from $FARCLIENT4 through the router: $REACH_OUT"
	reach_ns "$NS_FA" "$FARATT4" "http://$VICTIM4/" || die "the far attacker cannot reach http://$VICTIM4/ from $FARATT4 through two routers: $REACH_OUT"
	BEN_LOG=$WORK/logs/client-benign.log
	start_far
	start_daemon
	pause 2 # the clients' first rounds: established connections seen

	scenario1
	scenario7
	scenario2
	scenario3
	scenario5
	scenario4
	scenario6

	say ""
	say "after the scenarios"
	client_verdict benign "the benign client ($BENIGN4, $BENIGN6)"
	client_verdict far "the far client ($FARCLIENT4)"
	check_only_real
	check_no_errors
	if alive "$DPID"; then
		say "stopping scanwarden (SIGTERM)"
		stop_daemon
		((DAEMON_RC == 0)) || fail "scanwarden exited with status $DAEMON_RC on SIGTERM, want 0"
	else
		fail "scanwarden is no longer running"
	fi

	ROW_FORGED[S4_ROW]=$(s4_forged)
	print_table
	say "$FAILURES failed assertion(s); $((SECONDS - started))s"
	((FAILURES == 0)) || exit 1
	say "PASS"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	spoof_main "$@"
fi
