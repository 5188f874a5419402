#!/usr/bin/env bash
# scripts/e2e.sh: end-to-end test of the live daemon in the namespace lab
# (make e2e; CI runs it).
#
# It builds bin/scanwarden and labsrv, brings up its own lab (scripts/lab.sh,
# namespaces "swe2e-*" unless SW_LAB_PREFIX says otherwise) with one fresh
# attacker address per scan, runs labsrv serve in the victim (HTTP :80, UDP
# :53, IPv4 and IPv6) and a benign client in the benign namespace (HTTP and
# UDP to the victim, IPv4 and IPv6, every 300 ms), and starts
#
#   scanwarden run -c CONF --log-format json
#
# in the victim namespace as the unprivileged system user "scanwarden"
# (created when missing) holding only CAP_NET_RAW and CAP_NET_ADMIN
# (setpriv: ambient, inheritable and bounding sets; no_new_privs), with a
# config whose state, hosts.deny, history and blocked files live in a
# temporary directory of that user.
#
# Then, for each scan (nmap -sS, -sF, -sN, -sX, -sU, -sT, -6 -sS), each from
# its own fresh attacker address, it asserts: the daemon logged an
# attackalert line and one "blocked" line for that address with the right
# scan type; the backend (E2E_BACKEND, default iptables) blocks it exactly
# once: with iptables, the victim's SCANWARDEN chain of the raw table
# (iptables or ip6tables, jumped to from raw PREROUTING) has exactly one
# DROP rule for it; with nftables or ipset, it is
# an element of the ban set of its family (or, trapped by the kernel, of
# the trap set: KERNEL_TRAP is on by default); the hosts.deny file exactly one entry; a new
# TCP connection from that address to the victim's :80 fails (while the
# attacker's unscanned address still connects). It prints one line per scan:
# probes until the block and milliseconds from the first probe to the rule
# being in place, as the daemon measured them.
#
# Afterwards: `scanwarden unblock` (as root, while the daemon runs as its
# user) lifts two scanners' blocks, one the kernel trap caught when there
# is one: no set element or rule, hosts.deny entry or state entry is left
# for them and they connect again, the others stay blocked. The benign
# client had every request answered and its addresses
# (and the victim's) appear in no rule, hosts.deny entry, history or state
# file; no address but the scanners' was blocked; the daemon logged no error
# and is still running; SIGTERM stops it with exit status 0, keeping the
# blocks; `scanwarden flush` (as root) then leaves nothing of the backend
# (no rule, chain or jump of scanwarden's in any iptables table; no table
# inet scanwarden; no scanwarden-* set) and hosts.deny as it was. Any failed assertion makes the exit status non-zero
# after the daemon log's tail is printed. Everything is torn down on exit.
#
# Needs root, nmap, iptables, iproute2, setpriv (util-linux) and Go; nft
# (nftables) or ipset to read the sets of those backends.
# Environment: SW_LAB_PREFIX (default swe2e-); E2E_BACKEND (iptables,
# nftables or ipset; make e2e runs each); E2E_RACE=1 builds the daemon
# with the race detector, and a data race it reports fails the run;
# KEEP_WORK=1 keeps the work directory (logs, config) of a failed run.
#
# demo.sh sources this file for its set-up and teardown: main runs only
# when the file is executed.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swe2e-}
LAB=$REPO/scripts/lab.sh
NS_ATT=${SW_LAB_PREFIX}attacker
NS_VIC=${SW_LAB_PREFIX}victim
NS_BEN=${SW_LAB_PREFIX}benign
IFACE=veth0

VICTIM4=198.51.100.10
VICTIM6=fd00:77::10
BENIGN4=198.51.100.20
BENIGN6=fd00:77::20
ATTACKER4=198.51.100.66 # the attacker's own address: never scans
ATTACKER6=fd00:77::66

# The unprivileged account the daemon runs as.
SW_USER=scanwarden
# The daemon's whole environment, as a systemd service would have it: the
# iptables commands live in /usr/sbin.
SERVICE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The benign client's pace and per-request timeout.
BENIGN_INTERVAL=300ms
BENIGN_TIMEOUT=2s
# How long the daemon may take to say it is listening.
START_TIMEOUT=30
# How long after nmap ends the daemon's "blocked" line may take to appear
# (it normally comes during the scan).
BLOCK_WAIT=5
# nmap gives up on the host after this long: once blocked, the rest of a
# scan is unanswered probes that nmap would wait out for 20-100 s.
HOST_TIMEOUT=10s
# The connection attempt that must fail once an address is blocked.
PROBE_TIMEOUT=2s

TAG=e2e
# The blocking backend under test (BLOCK_BACKEND of the daemon's config).
E2E_BACKEND=${E2E_BACKEND:-iptables}
WORK=""
DDIR=""    # the daemon's directory (owned by SW_USER)
CONF=""    # its config
DAEMON_ARGS=() # extra arguments of `scanwarden run` (mode flags)
DLOG=""    # its log (stderr)
SWBIN=""   # the binary it runs
LABSRV=""  # labsrv
DPID=""    # the daemon's PID
BEN_PID="" # the benign client's PID
LAB_UP=0
LOCK_RESTORE="" # "uid:gid mode" of /run/xtables.lock to put back, or "rm"
HOSTS_DENY_ORIG=""
declare -a BG_PIDS=()
FAILURES=0

say() { printf '%s: %s\n' "$TAG" "$*"; }
die() {
	printf '%s: error: %s\n' "$TAG" "$*" >&2
	exit 1
}
# fail WHAT: record a failed assertion and carry on.
fail() {
	printf '%s: FAIL: %s\n' "$TAG" "$*" >&2
	FAILURES=$((FAILURES + 1))
}

# ---- preflight, build ---------------------------------------------------

preflight() {
	((EUID == 0)) || die "needs root (network namespaces, iptables, a system user): run as root, e.g. sudo make ${TAG}"
	if ! command -v go >/dev/null; then
		[[ -x /usr/local/go/bin/go ]] || die "go is missing: run scripts/deps.sh as root"
		PATH=$PATH:/usr/local/go/bin
	fi
	local t
	local tools=(ip nmap iptables ip6tables iptables-save ip6tables-save setpriv timeout awk sed grep stat sort)
	case $E2E_BACKEND in
	iptables) ;;
	nftables) tools+=(nft) ;;
	ipset) tools+=(ipset) ;;
	*) die "E2E_BACKEND='$E2E_BACKEND': want iptables, nftables or ipset" ;;
	esac
	for t in "${tools[@]}"; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/deps.sh as root"
	done
	if ! id -u "$SW_USER" >/dev/null 2>&1; then
		command -v useradd >/dev/null || die "useradd is missing (package passwd), needed to create the user $SW_USER"
	fi
	local help
	help=$(setpriv --help 2>&1) || true
	[[ $help == *--ambient-caps* ]] ||
		die "this setpriv ($(setpriv --version 2>&1)) has no --ambient-caps: util-linux 2.32 or later is needed"
}

# build: bin/scanwarden (with a `run` command) and labsrv; the daemon's
# copy goes where SW_USER can read it whatever the repository's modes.
build() {
	local race=()
	[[ ${E2E_RACE:-} != 1 ]] || race=(-race)
	say "building bin/scanwarden${race:+ (with -race)} and labsrv"
	(cd "$REPO" && go build "${race[@]}" -o bin/scanwarden ./cmd/scanwarden && go build -o "$WORK/labsrv" ./scripts/labsrv)
	LABSRV=$WORK/labsrv
	local help
	help=$("$REPO/bin/scanwarden" help 2>&1) || true
	if ! grep -q '^ *run ' <<<"$help"; then
		die "bin/scanwarden has no 'run' command (the live daemon): nothing to test"
	fi
	SWBIN=$WORK/scanwarden
	install -m 0755 "$REPO/bin/scanwarden" "$SWBIN"
}

# ---- the daemon's account, files and xtables lock -----------------------

ensure_user() {
	if ! id -u "$SW_USER" >/dev/null 2>&1; then
		# as `make install` creates it
		useradd --system --user-group --home-dir /var/lib/scanwarden --no-create-home \
			--shell /usr/sbin/nologin --comment "scanwarden port scan detector" "$SW_USER"
		say "created the system user $SW_USER"
	fi
}

# write_config: the daemon's directory and config, owned by SW_USER; a
# hosts.deny with an administrator's line that must survive everything.
write_config() {
	DDIR=$WORK/daemon
	CONF=$DDIR/scanwarden.conf
	DLOG=$WORK/logs/daemon.log
	mkdir -p "$DDIR"
	# Literal $TARGET$ wanted in the config.
	# shellcheck disable=SC2016
	cat >"$CONF" <<EOF
# scanwarden config of scripts/$TAG.sh
STATE_DIR="$DDIR/state"
HOSTS_DENY_FILE="$DDIR/hosts.deny"
HISTORY_FILE="$DDIR/scanwarden.history"
BLOCKED_FILE="$DDIR/scanwarden.blocked"
IGNORE_FILE=""
BLOCK_BACKEND="$E2E_BACKEND"
KILL_HOSTS_DENY="ALL: \$TARGET\$ : DENY"
BLOCK_RATE_LIMIT="600"
EOF
	HOSTS_DENY_ORIG=$'# hosts.deny of the scanwarden lab\n# an administrator\'s own entry, which scanwarden must leave alone:\nin.telnetd: 198.51.100.250\n'
	printf '%s' "$HOSTS_DENY_ORIG" >"$DDIR/hosts.deny"
	chown -R "$SW_USER:$(id -gn "$SW_USER")" "$DDIR"
	chmod 0700 "$DDIR"
	chmod 0600 "$CONF"
	chmod 0644 "$DDIR/hosts.deny"
}

# prepare_xtables_lock: iptables-legacy opens /run/xtables.lock (O_CREAT,
# read-only, mode 0600 when it creates it) before every command and fails
# with "can't open lock file" for a user who may not read it: no
# capability but CAP_DAC_OVERRIDE gets past file modes. iptables-nft takes
# no lock. With a legacy iptables the lock file is made readable by
# SW_USER's group for the run (flock needs no write access), and put back
# afterwards.
prepare_xtables_lock() {
	local v f=/run/xtables.lock
	v=$(PATH=$SERVICE_PATH iptables -V 2>&1) || true
	[[ $v == *legacy* ]] || return 0
	if [[ -e $f ]]; then
		LOCK_RESTORE=$(stat -c '%u:%g %a' "$f")
	else
		install -m 0600 /dev/null "$f"
		LOCK_RESTORE="rm"
	fi
	chgrp "$(id -gn "$SW_USER")" "$f"
	chmod g+r "$f"
	say "iptables is $v: $f made readable by group $(id -gn "$SW_USER") for this run"
}

restore_xtables_lock() {
	local f=/run/xtables.lock owner mode
	case $LOCK_RESTORE in
	"") ;;
	rm) rm -f "$f" ;;
	*)
		read -r owner mode <<<"$LOCK_RESTORE"
		chown "$owner" "$f" && chmod "$mode" "$f"
		;;
	esac
	LOCK_RESTORE=""
}

# ---- processes ----------------------------------------------------------

# proc_start PID: start time of PID (field 22 of /proc/PID/stat), empty
# and false when it is gone or a zombie.
proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	awk '$1 != "Z" { print $20; ok = 1 } END { exit !ok }' <<<"$stat"
}

alive() { proc_start "$1" >/dev/null 2>&1; }

# start_bg NAME NS LOG CMD...: run CMD in namespace NS in the background,
# register it with the lab (lab.sh down ends it if this script dies) and
# set BG_PID.
start_bg() {
	local name=$1 ns=$2 logf=$3
	shift 3
	ip netns exec "$ns" "$@" </dev/null >"$logf" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
	bash "$LAB" adopt "$name" "$BG_PID" >/dev/null
}

forget() {
	local p keep=()
	for p in "${BG_PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
}

# stop_pid PID SECONDS: TERM, wait up to SECONDS, then KILL; reap it and
# return its exit status (a child of this shell).
stop_pid() {
	local pid=$1 secs=$2 i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		say "PID $pid ignored SIGTERM for ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	forget "$pid"
	return "$rc"
}

# run_wait CMD...: run CMD in the background and wait for it, so that an
# INT or TERM trap runs at once; returns CMD's exit status.
run_wait() {
	local rc=0
	"$@" &
	wait "$!" || rc=$?
	return "$rc"
}

# run_wait_to FILE CMD...: run_wait with CMD's output in FILE. (The
# redirection must not be on the function call: a trap that runs during
# the wait would inherit it, and cleanup's messages would land in FILE.)
run_wait_to() {
	local out=$1 rc=0
	shift
	"$@" >"$out" 2>&1 &
	wait "$!" || rc=$?
	return "$rc"
}

pause() { run_wait sleep "$1"; }

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	if [[ -n $DPID ]] && alive "$DPID"; then
		stop_pid "$DPID" 10 || true
	fi
	for pid in "${BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if ((LAB_UP)); then
		bash "$LAB" down >/dev/null 2>&1 ||
			say "warning: lab.sh down failed; run SW_LAB_PREFIX=$SW_LAB_PREFIX scripts/lab.sh down"
	fi
	restore_xtables_lock
	if ((rc != 0)) && [[ -n $DLOG && -s $DLOG ]]; then
		printf '%s: the daemon log, last 40 lines (%s):\n' "$TAG" "$DLOG" >&2
		tail -n 40 "$DLOG" | sed 's/^/    /' >&2
	fi
	if [[ -n $WORK && -d $WORK ]]; then
		if ((rc != 0)) && [[ -n ${KEEP_WORK:-} ]]; then
			say "work directory kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	((rc == 0)) || say "failed (exit $rc)"
	exit "$rc"
}

# setup NFRESH: work directory, build, account, lab with NFRESH fresh
# attacker addresses, servers, benign client.
setup() {
	local nfresh=$1 i
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d "/tmp/scanwarden-$TAG.XXXXXX")
	# SW_USER must reach its own directory and binary inside.
	chmod 0711 "$WORK"
	mkdir -m 0700 "$WORK/logs"
	build
	ensure_user
	write_config
	prepare_xtables_lock

	say "bringing up the lab (namespaces ${SW_LAB_PREFIX}*)"
	LAB_UP=1
	bash "$LAB" up >"$WORK/logs/lab.log" 2>&1 || die "lab.sh up failed: $(cat "$WORK/logs/lab.log")"
	# Every fresh address now (adding an IPv6 address sends MLD reports):
	# the attacker is quiet while the daemon starts and between scans.
	for ((i = 1; i <= nfresh; i++)); do
		bash "$LAB" attacker-addr "$i" >/dev/null
	done
	start_bg srv-victim "$NS_VIC" "$WORK/logs/srv-victim.log" "$LABSRV" serve \
		-http "$VICTIM4:80,[$VICTIM6]:80" -udp "$VICTIM4:53,[$VICTIM6]:53"
	wait_for_servers
	# The attacker's own (never scanning) address reaches the server: a
	# connection from a blocked address that fails later fails because of
	# the block.
	reach "$ATTACKER4" "http://$VICTIM4/" || die "the attacker namespace cannot reach http://$VICTIM4/ from $ATTACKER4: $REACH_OUT"
	reach "$ATTACKER6" "http://[$VICTIM6]/" || die "the attacker namespace cannot reach http://[$VICTIM6]/ from $ATTACKER6: $REACH_OUT"
	start_bg client-benign "$NS_BEN" "$WORK/logs/client-benign.log" "$LABSRV" client -n 0 \
		-interval "$BENIGN_INTERVAL" -timeout "$BENIGN_TIMEOUT" \
		-http "http://$VICTIM4/,http://[$VICTIM6]/" -udp "$VICTIM4:53,[$VICTIM6]:53"
	BEN_PID=$BG_PID
}

wait_for_servers() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(grep -c '^labsrv: \(http\|udp\) on' "$WORK/logs/srv-victim.log" || true) -ge 4 ]] && return 0
		sleep 0.05
	done
	die "labsrv serve did not start in the victim: $(cat "$WORK/logs/srv-victim.log")"
}

# reach SRC URL: one HTTP GET from SRC (an attacker address) to URL; true
# when it was answered. REACH_OUT is what the client said.
reach() { reach_ns "$NS_ATT" "$1" "$2"; }

# reach_ns NS SRC URL: reach from SRC in the namespace NS.
reach_ns() {
	local rc=0
	run_wait_to "$WORK/logs/reach.out" timeout 15 ip netns exec "$1" "$LABSRV" client -n 1 \
		-timeout "$PROBE_TIMEOUT" -src "$2" -http "$3" || rc=$?
	REACH_OUT=$(cat "$WORK/logs/reach.out")
	return "$rc"
}

# conf_value KEY DEFAULT: KEY's value in CONF, or DEFAULT.
conf_value() {
	local v
	v=$(sed -n 's/^'"$1"'="\([^"]*\)".*/\1/p' "$CONF" | head -n 1)
	printf '%s\n' "${v:-$2}"
}

# go_default FILE NAME: the number NAME's Go constant starts with in FILE
# (5 for "DefaultTrapHold = 5 * time.Second").
go_default() {
	sed -n 's/^[[:space:]]*'"$2"'[[:space:]]*=[[:space:]]*\([0-9_]*\).*/\1/p' "$REPO/$1" | head -n 1 | tr -d _
}

# ---- the daemon ---------------------------------------------------------

# start_daemon: try_start_daemon, or die.
start_daemon() {
	try_start_daemon || die "$START_ERR"
}

# try_start_daemon: scanwarden run in the victim namespace as SW_USER with
# only CAP_NET_RAW and CAP_NET_ADMIN (ambient, so that the iptables
# commands it runs have them too; the bounding set caps everything ever
# after; no_new_privs as systemd's NoNewPrivileges), with the unit's
# LimitRTPRIO=1 (CAPTURE_REALTIME; rt_grant gives CAP_SYS_NICE instead
# where root may not raise that limit), in a service's environment. ip
# netns exec, env, prlimit and setpriv each exec the next: $! is the
# daemon. A daemon that does not come up is no error: false, with the
# reason in START_ERR (for scripts that go on with other variants, as
# bench-nmap.sh does).
try_start_daemon() {
	local caps=-all,+net_raw,+net_admin i rc
	START_ERR=""
	rt_grant
	caps+=$RT_CAP
	say "starting scanwarden in $NS_VIC as $SW_USER with CAP_NET_RAW and CAP_NET_ADMIN only$RT_SAY"
	ip netns exec "$NS_VIC" env -i PATH="$SERVICE_PATH" LANG=C.UTF-8 \
		"${RT_PREFIX[@]}" setpriv --reuid="$SW_USER" --regid="$SW_USER" --init-groups \
		--inh-caps="$caps" --ambient-caps="$caps" --bounding-set="$caps" --no-new-privs \
		"$SWBIN" run -c "$CONF" --log-format json "${DAEMON_ARGS[@]}" </dev/null >"$WORK/logs/daemon.stdout" 2>"$DLOG" &
	DPID=$!
	# (adopt fails when the daemon has already exited: seen below)
	bash "$LAB" adopt scanwarden "$DPID" >/dev/null 2>&1 || true
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		if grep -qF '"msg":"adminalert: scanwarden is now active and listening."' "$DLOG"; then
			check_daemon_identity
			return 0
		fi
		if ! alive "$DPID"; then
			rc=0
			wait "$DPID" || rc=$?
			DPID=""
			START_ERR="scanwarden exited (status $rc) before it was listening: $(tail -n 3 "$DLOG" 2>/dev/null | tr '\n' ' ')"
			return 1
		fi
		sleep 0.1
	done
	stop_daemon || true
	START_ERR="scanwarden did not log 'adminalert: scanwarden is now active and listening.' within ${START_TIMEOUT}s"
	return 1
}

# rt_grant: how the daemon gets the unit's LimitRTPRIO=1, which
# CAPTURE_REALTIME needs: that limit itself (prlimit, RT_PREFIX), or, where
# even root may not raise it (a container without CAP_SYS_RESOURCE),
# CAP_SYS_NICE (RT_CAP, RT_CAPS_HEX), which permits the same; neither when
# root has neither (the daemon then says it runs at normal priority).
# RT_SAY is for the start line.
rt_grant() {
	local eff
	RT_PREFIX=() RT_CAP="" RT_CAPS_HEX=0000000000003000 RT_SAY=""
	eff=$(awk '$1 == "CapEff:" { print $2 }' /proc/self/status)
	if prlimit --rtprio=1 true 2>/dev/null; then
		RT_PREFIX=(prlimit --rtprio=1)
		RT_SAY=" and an RTPRIO limit of 1 (LimitRTPRIO=1)"
	elif [[ $eff =~ ^[0-9a-f]+$ ]] && (((16#$eff >> 23) & 1)); then
		RT_CAP=",+sys_nice" RT_CAPS_HEX=0000000000803000
		RT_SAY=" and CAP_SYS_NICE (in place of LimitRTPRIO=1, which root may not raise here)"
	else
		RT_SAY=" (no real-time priority: root may neither raise RTPRIO nor grant CAP_SYS_NICE here)"
	fi
}

# check_daemon_identity: the running daemon is SW_USER with exactly
# CAP_NET_ADMIN (bit 12) and CAP_NET_RAW (bit 13) effective, bounded (and
# CAP_SYS_NICE, bit 23, when rt_grant gave it).
check_daemon_identity() {
	local st uid want f v
	st=$(cat "/proc/$DPID/status") || die "no /proc/$DPID/status"
	uid=$(awk '/^Uid:/ { print $2 " " $3 " " $4 " " $5 }' <<<"$st")
	want=$(id -u "$SW_USER")
	[[ $uid == "$want $want $want $want" ]] || die "the daemon runs with uids $uid, not $SW_USER ($want)"
	for f in CapEff CapPrm CapBnd CapAmb; do
		v=$(awk -v f="$f:" '$1 == f { print $2 }' <<<"$st")
		[[ $v == "$RT_CAPS_HEX" ]] || die "the daemon's $f is $v, not $RT_CAPS_HEX (CAP_NET_ADMIN, CAP_NET_RAW${RT_CAP:+, CAP_SYS_NICE})"
	done
	say "scanwarden is listening: PID $DPID, uid $want ($SW_USER), capabilities cap_net_admin,cap_net_raw${RT_CAP:+,cap_sys_nice}"
}

# stop_daemon: SIGTERM; sets DAEMON_RC.
stop_daemon() {
	DAEMON_RC=0
	stop_pid "$DPID" 15 || DAEMON_RC=$?
	DPID=""
}

# daemon_lines ADDR [LOG]: the daemon's log lines about source ADDR (in
# LOG, default DLOG).
daemon_lines() {
	grep -F "\"src\":\"$1\"" "${2:-$DLOG}" || true
}

# blocked_lines ADDR: its "blocked" decision lines.
blocked_lines() {
	daemon_lines "$1" | grep -F '"msg":"blocked ' || true
}

# jstr LINE KEY / jnum LINE KEY: a string / number field of a JSON log
# line (logrus writes flat objects; the values we read hold no quotes).
jstr() { sed -n 's/.*"'"$2"'":"\([^"\\]*\)".*/\1/p' <<<"$1"; }
jnum() { sed -n 's/.*"'"$2"'":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p' <<<"$1"; }

# jmsg LINE: the msg field, unescaped.
jmsg() {
	sed -E -n 's/.*"msg":"((\\.|[^"\\])*)".*/\1/p' <<<"$1" | sed -e 's/\\"/"/g' -e 's/\\\\/\\/g'
}

# wait_blocked ADDR SECONDS: until the daemon logged a "blocked" line for
# ADDR.
wait_blocked() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ -n $(blocked_lines "$1") ]] && return 0
		sleep 0.1
	done
	return 1
}

# ---- firewall and files -------------------------------------------------

# ipt ADDR ARGS...: iptables or ip6tables (by ADDR's family) in the victim.
ipt() {
	local cmd=iptables
	[[ $1 == *:* ]] && cmd=ip6tables
	shift
	ip netns exec "$NS_VIC" "$cmd" -w 5 "$@"
}

# The firewall backends drop banned (and trap-held) sources at
# prerouting, in the raw table / at raw priority, before routing and
# connection tracking; only the kernel trap's catch is on the input path
# (filter INPUT, or the nftables table's input chain). See
# docs/backends.md.

# chain ADDR: the iptables backend's SCANWARDEN chain (raw table) of
# ADDR's family (empty when missing).
chain() { ipt "$1" -t raw -S SCANWARDEN 2>/dev/null || true; }

# prerouting ADDR: raw PREROUTING of ADDR's family.
prerouting() { ipt "$1" -t raw -S PREROUTING 2>/dev/null || true; }

# JUMP_RE: raw PREROUTING's jump to SCANWARDEN.
JUMP_RE='^-A PREROUTING( .*)? -j SCANWARDEN$'
# SETS_JUMP_RE: raw PREROUTING's jump to the ipset backend's chain.
SETS_JUMP_RE='^-A PREROUTING( .*)? -j SCANWARDEN-SETS$'
# TRAP_JUMP_RE: filter INPUT's jump to the ipset backend's kernel trap.
TRAP_JUMP_RE='^-A INPUT( .*)? -j SCANWARDEN-TRAP$'

# ipt_save ADDR: every table of ADDR's family (iptables-save or
# ip6tables-save) in the victim.
ipt_save() {
	local cmd=iptables-save
	[[ $1 == *:* ]] && cmd=ip6tables-save
	ip netns exec "$NS_VIC" "$cmd" 2>/dev/null || true
}

# nft_elems SET: the elements of SET in the victim's table inet
# scanwarden, one per line (none when the set or table is missing).
nft_elems() {
	ip netns exec "$NS_VIC" nft list set inet scanwarden "$1" 2>/dev/null | awk '
		/elements = \{/ { on = 1; sub(/.*elements = \{/, "") }
		on {
			n = split($0, part, ",")
			for (i = 1; i <= n; i++) {
				split(part[i], w, " ")
				if (w[1] != "" && w[1] != "}") print w[1]
			}
			if ($0 ~ /\}/) on = 0
		}' || true
}

# ipset_members SET: the members of the victim's ipset SET, one per line.
ipset_members() {
	ip netns exec "$NS_VIC" ipset list "$1" 2>/dev/null | awk 'on && NF { print $1 } /^Members:/ { on = 1 }' || true
}

# banned ADDR: the addresses E2E_BACKEND blocks in ADDR's family, one per
# line: with iptables, one per DROP rule of SCANWARDEN (so a duplicate
# rule shows twice); with a set backend, each address of the ban and trap
# sets once (the kernel trap's sources are in the trap set, and the
# daemon's record of them puts them in the ban set too).
banned() {
	local fam=4
	[[ $1 == *:* ]] && fam=6
	case $E2E_BACKEND in
	iptables) chain "$1" | sed -n 's#^-A SCANWARDEN -s \([^/ ]*\)/\(32\|128\)\( .*\)\{0,1\} -j DROP$#\1#p' ;;
	nftables) { nft_elems "ban$fam"; nft_elems "trap$fam"; } | sort -u ;;
	ipset) { ipset_members "scanwarden-ban$fam"; ipset_members "scanwarden-trap$fam"; } | sort -u ;;
	esac
}

# ban_count ADDR: how many times E2E_BACKEND blocks ADDR.
ban_count() { count_lines "$(banned "$1")" "$1"; }

# state_has ADDR: the daemon's state file holds a ban of ADDR.
state_has() { grep -qE '"addr": *"'"${1//./\\.}"'"' "$DDIR/state/state.json" 2>/dev/null; }

# victim_url ADDR: the victim's HTTP URL in ADDR's family.
victim_url() {
	if [[ $1 == *:* ]]; then echo "http://[$VICTIM6]/"; else echo "http://$VICTIM4/"; fi
}

# conn_blocked ADDR: a new connection from ADDR to the victim fails
# because ADDR is blocked; otherwise prints what happened and is false.
conn_blocked() {
	local url
	url=$(victim_url "$1")
	if reach "$1" "$url"; then
		echo "a new connection from $1 to $url succeeded"
		return 1
	elif [[ $REACH_OUT == *"cannot assign requested address"* ]]; then
		echo "could not bind $1 for the connection check: $REACH_OUT"
		return 1
	fi
}

# hooks ADDR: how many times the packet path of ADDR's family goes
# through E2E_BACKEND's drops (1 when in place: a jump from raw
# PREROUTING, or the nftables table's one prerouting-hook chain).
hooks() {
	case $E2E_BACKEND in
	iptables) count_re "$(prerouting "$1")" "$JUMP_RE" ;;
	nftables) count_re "$(ip netns exec "$NS_VIC" nft list table inet scanwarden 2>/dev/null)" 'hook prerouting' ;;
	ipset) count_re "$(prerouting "$1")" "$SETS_JUMP_RE" ;;
	esac
}

# catches ADDR: how many times the input path of ADDR's family goes
# through the kernel trap's catch (at most 1: filter INPUT's jump to
# SCANWARDEN-TRAP, or the nftables input chain's jump to trap; 0 without
# a trap, and with iptables).
catches() {
	case $E2E_BACKEND in
	iptables) echo 0 ;;
	nftables)
		ip netns exec "$NS_VIC" nft list chain inet scanwarden input 2>/dev/null | grep -cE '^[[:space:]]*jump trap([[:space:]]|$)' || true
		;;
	ipset) count_re "$(ipt "$1" -S INPUT 2>/dev/null || true)" "$TRAP_JUMP_RE" ;;
	esac
}

# leftovers ADDR: what of E2E_BACKEND is still in place in ADDR's family
# (empty: nothing).
leftovers() {
	local left=() rules
	case $E2E_BACKEND in
	iptables | ipset)
		# any chain, jump or rule of scanwarden's, in any table (raw
		# and filter; an earlier version's filter chains too)
		rules=$(ipt_save "$1" | grep -iE '^(:|-A ).*scanwarden' || true)
		[[ -z $rules ]] || left+=("rules: $(tr '\n' ';' <<<"$rules")")
		;;
	nftables)
		ip netns exec "$NS_VIC" nft list table inet scanwarden >/dev/null 2>&1 && left+=("table inet scanwarden")
		;;
	esac
	if [[ $E2E_BACKEND == ipset ]]; then
		local sets
		sets=$(ip netns exec "$NS_VIC" ipset list -n 2>/dev/null | grep '^scanwarden-' | tr '\n' ' ' || true)
		[[ -z $sets ]] || left+=("sets $sets")
	fi
	(($(hooks "$1") == 0)) || left+=("PREROUTING's jump")
	(($(catches "$1") == 0)) || left+=("the trap's jump from INPUT")
	((${#left[@]} == 0)) || printf '%s\n' "${left[*]}"
}

# count_re TEXT ERE: how many lines of TEXT match ERE.
count_re() { grep -cE -- "$2" <<<"$1" || true; }

deny_entry() {
	if [[ $1 == *:* ]]; then
		printf 'ALL: [%s] : DENY\n' "$1"
	else
		printf 'ALL: %s : DENY\n' "$1"
	fi
}

# addr_re ADDR: an extended regexp matching ADDR as a whole address.
addr_re() {
	local e=${1//./\\.}
	if [[ $1 == *:* ]]; then
		printf '(^|[^0-9a-fA-F:])%s([^0-9a-fA-F:]|$)' "$e"
	else
		printf '(^|[^0-9.])%s([^0-9]|$)' "$e"
	fi
}

# count_lines TEXT LINE: how many lines of TEXT are exactly LINE.
count_lines() { grep -cxF -- "$2" <<<"$1" || true; }

# mentions TEXT ADDR: how many lines of TEXT mention ADDR.
mentions() { grep -cE -- "$(addr_re "$2")" <<<"$1" || true; }

# records: every file the daemon writes about blocks (hosts.deny, history,
# blocked files, state), concatenated, readable by root.
records() {
	local f
	for f in "$DDIR/hosts.deny" "$DDIR"/scanwarden.history "$DDIR"/scanwarden.blocked* "$DDIR"/state/*; do
		[[ -f $f ]] && cat "$f"
	done
	return 0
}

# ---- scans --------------------------------------------------------------

# SCANS: name, expected type, fresh address number, nmap arguments. IPv6
# when the arguments start with -6. A connect scan cannot use -e (raw
# only): -S binds its sockets to the fresh address.
SCANS=(
	"syn|syn|1|-sS"
	"fin|fin|2|-sF"
	"null|null|3|-sN"
	"xmas|xmas|4|-sX"
	"udp|udp|5|-sU --top-ports 50 --max-retries 1"
	"connect|connect|6|-sT"
	"syn6|syn|7|-6 -sS"
)

# scan_addrs N ARGS: set SRC and DST for fresh address N and the scan's
# family.
scan_addrs() {
	if [[ $2 == -6* ]]; then
		SRC=fd00:77::$((100 + $1)) DST=$VICTIM6
	else
		SRC=198.51.100.$((100 + $1)) DST=$VICTIM4
	fi
}

# nmap_cmd ARGS SRC DST [EXTRA...]: set NMAP to the scan's command line.
nmap_cmd() {
	local args=$1 src=$2 dst=$3
	shift 3
	read -ra NMAP <<<"nmap -n -Pn -T4 $args"
	NMAP+=("$@")
	[[ $args == *-sT* ]] || NMAP+=(-e "$IFACE")
	NMAP+=(-S "$src" "$dst")
}

# run_nmap NAME: run NMAP in the attacker namespace, output in
# $WORK/logs/scan-NAME.nmap; nmap must exit 0.
run_nmap() {
	local out=$WORK/logs/scan-$1.nmap rc=0
	run_wait_to "$out" timeout 300 ip netns exec "$NS_ATT" "${NMAP[@]}" || rc=$?
	((rc == 0)) || {
		fail "$1: '${NMAP[*]}' exited $rc: $(tail -n 3 "$out")"
		return 1
	}
}

# nmap_classified FILE: the ports nmap classified (open, closed,
# unfiltered: what it learned) in its normal output FILE.
nmap_classified() {
	awk '
	/^Not shown: / {
		s = $0; sub(/^Not shown: /, "", s)
		n = split(s, part, /, /)
		for (i = 1; i <= n; i++) { split(part[i], w, " "); if (w[2] == "closed" || w[2] == "open" || w[2] == "unfiltered") k += w[1] }
	}
	/^[0-9]+\/(tcp|udp) +(open|closed|unfiltered) / { k++ }
	END { print k + 0 }' "$1"
}

declare -a ROWS=()

# check_scan NAME TYPE SRC DST: the assertions after one scan; prints and
# records its result row.
check_scan() {
	local name=$1 type=$2 src=$3 dst=$4 errs=() lines line n probes="-" ms="-" t deny by am bm
	wait_blocked "$src" "$BLOCK_WAIT" || true
	lines=$(daemon_lines "$src")
	# detected, with the right type, exactly one decision
	if ! grep -qF '"msg":"attackalert: ' <<<"$lines"; then
		errs+=("no attackalert line for $src")
	fi
	while IFS= read -r line; do
		[[ -n $line ]] || continue
		t=$(jstr "$line" type)
		[[ -z $t || $t == "$type" ]] || errs+=("logged as type '$t', want '$type': $(jmsg "$line")")
	done <<<"$lines"
	line=$(blocked_lines "$src")
	n=$(grep -c . <<<"$line" || true)
	if ((n != 1)); then
		errs+=("$n 'blocked' lines for $src, want 1")
	fi
	if ((n >= 1)); then
		line=$(head -n 1 <<<"$line")
		probes=$(jnum "$line" probes)
		bm=$(jnum "$line" block_ms)
		ms=$bm
		[[ -n $(jstr "$line" first_probe) ]] || errs+=("the 'blocked' line has no first_probe")
		if ! [[ $probes =~ ^[0-9]+$ ]] || ((probes == 0)); then
			errs+=("the 'blocked' line has probes='$probes'")
		fi
		if [[ $ms =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
			ms=$(printf '%.1f' "$ms")
		else
			errs+=("the 'blocked' line has block_ms='$ms'")
		fi
		# which thread put the rule in place, and when the alert was
		# raised (before the rule); a source the kernel trap blocked on
		# its first probe has neither
		if [[ $line == *'"kernel_trap":true'* ]]; then
			ms=kernel
		else
			by=$(jstr "$line" rule_by)
			[[ $by == capture || $by == blocking ]] || errs+=("the 'blocked' line has rule_by='$by'")
			am=$(jnum "$line" alert_ms)
			if ! [[ $am =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || ! awk -v a="$am" -v b="$bm" 'BEGIN { exit !(a <= b) }'; then
				errs+=("the 'blocked' line has alert_ms='$am' (block_ms $bm)")
			fi
		fi
	fi
	# blocked once by the backend (with iptables, one DROP rule and no
	# other rule naming it), one hosts.deny entry
	n=$(ban_count "$src")
	((n == 1)) || errs+=("$src blocked $n times by $E2E_BACKEND, want 1")
	if [[ $E2E_BACKEND == iptables ]]; then
		n=$(mentions "$(chain "$src")" "$src")
		((n <= 1)) || errs+=("$n rules of SCANWARDEN mention $src")
	fi
	deny=$(cat "$DDIR/hosts.deny")
	n=$(count_lines "$deny" "$(deny_entry "$src")")
	((n == 1)) || errs+=("$n hosts.deny entries '$(deny_entry "$src")', want 1")
	n=$(mentions "$deny" "$src")
	((n <= 1)) || errs+=("$n hosts.deny lines mention $src")
	# its next connection fails
	t=$(conn_blocked "$src") || errs+=("$t")
	local result=OK
	((${#errs[@]} == 0)) || result=FAIL
	ROWS+=("$(printf '%-8s %-8s %8s %10s  %s' "$name" "$type" "$probes" "$ms" "$result")")
	printf '%s: %-8s %-8s %8s %10s  %s   (%s)\n' "$TAG" "$name" "$type" "$probes" "$ms" "$result" "$src"
	for t in "${errs[@]}"; do
		fail "$name: $t"
	done
	[[ $result == OK ]]
}

table_header() { printf '%-8s %-8s %8s %10s  %s\n' scan type probes ms result; }

# ---- after the scans ----------------------------------------------------

# check_benign: stop the benign client; every request was answered; no
# benign or victim address was ever reported or blocked.
check_benign() {
	local rc=0 a all summary
	stop_pid "$BEN_PID" 5 || rc=$?
	BEN_PID=""
	summary=$(grep -h '^labsrv client:' "$WORK/logs/client-benign.log" || true)
	say "benign client: ${summary#labsrv client: }"
	((rc == 0)) || fail "the benign client failed (exit $rc): $(tail -n 3 "$WORK/logs/client-benign.log")"
	all=$(banned "$VICTIM4")$'\n'$(banned "$VICTIM6")$'\n'$(records)
	for a in "$BENIGN4" "$BENIGN6" "$VICTIM4" "$VICTIM6" "$ATTACKER4" "$ATTACKER6"; do
		(($(mentions "$all" "$a") == 0)) || fail "$a appears in the rules or the daemon's records: $(grep -E "$(addr_re "$a")" <<<"$all" | head -n 3)"
		[[ -z $(daemon_lines "$a") ]] || fail "the daemon logged about $a: $(daemon_lines "$a" | head -n 3)"
	done
}

# check_only_scanners WANT4 WANT6: the backend blocks exactly the
# scanners (with iptables: SCANWARDEN holds nothing but their DROP
# rules), the packet path goes through its drops once (raw PREROUTING's
# jump, or the nftables prerouting chain), and the input path through
# the kernel trap's catch at most once.
check_only_scanners() {
	local fam want rules n a
	for fam in 4 6; do
		want=$1
		[[ $fam == 6 ]] && want=$2
		if [[ $fam == 4 ]]; then a=$VICTIM4; else a=$VICTIM6; fi
		rules=$(banned "$a")
		n=$(grep -c . <<<"$rules" || true)
		((n == want)) || fail "IPv$fam: $E2E_BACKEND blocks $n addresses, want $want (the scanners): $(tr '\n' ';' <<<"$rules")"
		if [[ $E2E_BACKEND == iptables ]]; then
			n=$(grep -c '^-A SCANWARDEN ' <<<"$(chain "$a")" || true)
			((n == want)) || fail "IPv$fam SCANWARDEN has $n rules, want $want (one per scanner): $(chain "$a" | tr '\n' ';')"
		fi
		n=$(hooks "$a")
		# (a family without blocks may have no chain and jump yet)
		if ((n > 1 || (want > 0 && n == 0))); then
			fail "IPv$fam: the packet path (prerouting) goes through $E2E_BACKEND's drops $n times, want 1"
		fi
		n=$(catches "$a")
		((n <= 1)) || fail "IPv$fam: the input path goes through the kernel trap's catch $n times, want at most 1"
	done
}

check_no_errors() {
	local errs
	errs=$(grep -E '"level":"(error|fatal|panic)"' "$DLOG" || true)
	[[ -z $errs ]] || fail "the daemon logged errors: $(head -n 5 <<<"$errs")"
	! grep -q 'DATA RACE' "$DLOG" || fail "the race detector found a data race in the daemon: $(grep -A 12 -m 1 'DATA RACE' "$DLOG" | tr '\n' ' ')"
}

# check_flushed: after `scanwarden flush`, nothing of the backend (no
# chain, set, table or jump), hosts.deny as the administrator left it.
check_flushed() {
	local fam a left
	for fam in 4 6; do
		if [[ $fam == 4 ]]; then a=$VICTIM4; else a=$VICTIM6; fi
		left=$(leftovers "$a")
		[[ -z $left ]] || fail "IPv$fam: still there after flush: $left"
	done
	[[ $(cat "$DDIR/hosts.deny") == "${HOSTS_DENY_ORIG%$'\n'}" ]] ||
		fail "hosts.deny after flush differs from the original: $(cat "$DDIR/hosts.deny")"
}

# check_unblock ADDR: `scanwarden unblock ADDR` as root in the victim
# namespace while the daemon runs (as another user, on the same state):
# ADDR is then blocked by no backend set or rule, has no hosts.deny entry
# and no state entry, and connects again.
check_unblock() {
	local a=$1 rc=0 url
	url=$(victim_url "$a")
	state_has "$a" || fail "$a not in the state before unblock"
	run_wait_to "$WORK/logs/unblock.out" ip netns exec "$NS_VIC" "$SWBIN" unblock -c "$CONF" "$a" || rc=$?
	((rc == 0)) || {
		fail "scanwarden unblock $a exited $rc: $(cat "$WORK/logs/unblock.out")"
		return
	}
	say "  $(tr '\n' ' ' <"$WORK/logs/unblock.out")"
	(($(ban_count "$a") == 0)) || fail "$a still blocked by $E2E_BACKEND after unblock"
	(($(mentions "$(cat "$DDIR/hosts.deny")" "$a") == 0)) || fail "$a still in hosts.deny after unblock"
	! state_has "$a" || fail "$a still in the state after unblock"
	reach "$a" "$url" || fail "$a cannot connect after unblock: $REACH_OUT"
}

# flush: scanwarden flush as root in the victim namespace.
flush() {
	local out rc=0
	run_wait_to "$WORK/logs/flush.out" ip netns exec "$NS_VIC" "$SWBIN" flush -c "$CONF" || rc=$?
	out=$(cat "$WORK/logs/flush.out")
	((rc == 0)) || fail "scanwarden flush exited $rc: $out"
	local line
	while IFS= read -r line; do
		[[ -z $line ]] || say "  $line"
	done <<<"$out"
}

main() {
	local spec name type n args started=$SECONDS ok=0 n4=0 n6=0 row a first again
	preflight
	setup 7
	start_daemon
	pause 1 # some benign traffic before the first scan

	say "scans (probes: the scanner's probes until the alert; ms: from its first probe to the rule in place)"
	printf '%s: ' "$TAG"
	table_header
	for spec in "${SCANS[@]}"; do
		IFS='|' read -r name type n args <<<"$spec"
		scan_addrs "$n" "$args"
		nmap_cmd "$args" "$SRC" "$DST" --host-timeout "$HOST_TIMEOUT"
		if [[ $SRC == *:* ]]; then n6=$((n6 + 1)); else n4=$((n4 + 1)); fi
		run_nmap "$name" || true
		check_scan "$name" "$type" "$SRC" "$DST" && ok=$((ok + 1))
	done

	say "after the scans"
	check_only_scanners "$n4" "$n6"
	# two scanners are unblocked while the daemon runs: the first, and
	# another one the kernel trap caught when there is one (a set
	# backend's trap set holds it too; which scan starts on a trap port is
	# nmap's chance), else the fifth
	say "scanwarden unblock"
	scan_addrs 1 -sS
	first=$SRC
	again=$(grep -F '"kernel_trap":true' "$DLOG" | grep -vF '"src":"'"$first"'"' | head -n 1 || true)
	again=$(jstr "$again" src)
	if [[ -z $again ]]; then
		scan_addrs 5 -sU
		again=$SRC
	fi
	for a in "$first" "$again"; do
		check_unblock "$a"
		if [[ $a == *:* ]]; then n6=$((n6 - 1)); else n4=$((n4 - 1)); fi
	done
	check_only_scanners "$n4" "$n6"
	# the attacker's own address, which never scanned, still gets through
	reach "$ATTACKER4" "http://$VICTIM4/" || fail "$ATTACKER4 (never scanned) can no longer connect: $REACH_OUT"
	check_benign
	check_no_errors
	[[ $(stat -c '%U %a' "$DDIR/hosts.deny") == "$SW_USER 644" ]] ||
		fail "hosts.deny lost its owner or mode: $(stat -c '%U %a' "$DDIR/hosts.deny"), want $SW_USER 644"
	alive "$DPID" || fail "scanwarden is no longer running"

	say "stopping scanwarden (SIGTERM)"
	stop_daemon
	((DAEMON_RC == 0)) || fail "scanwarden exited with status $DAEMON_RC on SIGTERM, want 0"
	# the blocks are kept
	check_only_scanners "$n4" "$n6"
	n=$(grep -c '^ALL: .* : DENY$' "$DDIR/hosts.deny" || true)
	((n == n4 + n6)) || fail "hosts.deny holds $n entries after the daemon stopped, want $((n4 + n6))"
	say "scanwarden flush"
	flush
	check_flushed

	say "results:"
	table_header | sed "s/^/$TAG:   /"
	for row in "${ROWS[@]}"; do
		printf '%s:   %s\n' "$TAG" "$row"
	done
	say "$ok/${#SCANS[@]} scans detected and blocked; $FAILURES failed assertion(s); $((SECONDS - started))s"
	((FAILURES == 0)) || exit 1
	say "PASS"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
