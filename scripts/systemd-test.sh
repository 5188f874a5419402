#!/usr/bin/env bash
# scripts/systemd-test.sh: make systemd-test: the Debian package under a
# real systemd. It builds a minimal Debian 12 root with debootstrap (cached
# in SYSTEMD_TEST_CACHE between runs), boots it with systemd-nspawn (its
# own network namespace, cgroup v2), installs the package with apt, and
# checks, printing each check:
#
#   - the service is active after the install, as the user scanwarden with
#     only cap_net_admin and cap_net_raw, NoNewPrivs, its seccomp filter;
#   - systemd-analyze security rates it 2.0 or better;
#   - nmap from a network namespace inside the container is blocked, and
#     scanwarden list shows it;
#   - systemctl reload with a broken config fails with the daemon's error
#     and the old config keeps running; a good one is in force when it
#     returns;
#   - a frozen daemon is restarted by the watchdog;
#   - systemctl restart and a package upgrade keep the bans;
#   - apt purge leaves no scanwarden table, chain, set, user or state.
#
# On a host whose PID 1 is not systemd (a container, CI) nspawn runs with
# --keep-unit --register=no and the checks enter the container with
# nsenter. Without root, debootstrap, systemd-nspawn or nsenter, or where
# the container cannot boot, it says why and exits 0 (skipped).
#
# Environment: SYSTEMD_TEST_CACHE (default /var/cache/scanwarden), the
# Debian mirror DEBIAN_MIRROR (default http://deb.debian.org/debian),
# SYSTEMD_TEST_KEEP=1 keeps the container's root on failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE=${SYSTEMD_TEST_CACHE:-/var/cache/scanwarden}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$CACHE/systemd-test-bookworm
# what the root needs besides the package's own dependencies: systemd
# itself, the firewall tools the checks look with, nmap for the scan
INCLUDE=systemd,systemd-sysv,dbus,libpcap0.8,adduser,iproute2,nftables,iptables,ipset,nmap,procps,libcap2-bin,apt
# the lab inside the container: the host (the container's own network
# namespace) and an attacker namespace on a veth pair
HOST4=198.51.100.1
ATT4=198.51.100.66
# the administrator's SSH session that runs the install (SSH_CONNECTION)
ADMIN4=198.51.100.70

WORK=""
NSPAWN_PID=""
PID1=""
FAILURES=0
CHECKS=0

log() { printf 'systemd-test: %s\n' "$*"; }
skip() {
	log "SKIPPED: $*"
	exit 0
}
die() {
	printf 'systemd-test: error: %s\n' "$*" >&2
	exit 1
}
# check NAME CMD...: run CMD; print ok or FAIL with NAME.
check() {
	local name=$1
	shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		printf '  ok    %s\n' "$name"
	else
		printf '  FAIL  %s\n' "$name"
		FAILURES=$((FAILURES + 1))
	fi
}

# inc CMD...: run CMD inside the container (all its namespaces, PID1's),
# with a service's PATH.
inc() {
	nsenter -t "$PID1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

preflight() {
	((EUID == 0)) || skip "needs root (debootstrap, systemd-nspawn, nsenter)"
	local c
	for c in debootstrap systemd-nspawn nsenter dpkg-deb; do
		command -v "$c" >/dev/null || skip "$c is missing (scripts/deps.sh installs it)"
	done
	[[ -d /sys/fs/cgroup ]] || skip "no /sys/fs/cgroup: systemd cannot run in a container here"
}

# rootfs: the cached Debian 12 root, made once.
rootfs() {
	if [[ -x $ROOTFS/lib/systemd/systemd && -f $ROOTFS/.scanwarden-include && $(cat "$ROOTFS/.scanwarden-include") == "$INCLUDE" ]]; then
		log "Debian 12 root: $ROOTFS (cached)"
		return
	fi
	log "debootstrap bookworm into $ROOTFS ($MIRROR; a few minutes, once)"
	mkdir -p "$CACHE"
	rm -rf "$ROOTFS.tmp"
	if ! debootstrap --variant=minbase --include="$INCLUDE" bookworm "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
		tail -n 5 "$CACHE/debootstrap.log" >&2
		skip "debootstrap failed (no access to $MIRROR?): $CACHE/debootstrap.log"
	fi
	printf '%s\n' "$INCLUDE" >"$ROOTFS.tmp/.scanwarden-include"
	rm -rf "$ROOTFS"
	mv "$ROOTFS.tmp" "$ROOTFS"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		# SIGTERM: nspawn asks the container's systemd to power off
		kill -TERM "$NSPAWN_PID" 2>/dev/null || true
		wait_for 30 bash -c "! kill -0 $NSPAWN_PID" || kill -KILL "$NSPAWN_PID" 2>/dev/null || true
		wait "$NSPAWN_PID" 2>/dev/null || true
	fi
	if [[ -n $WORK && -d $WORK ]]; then
		if ((rc != 0)) && [[ ${SYSTEMD_TEST_KEEP:-} == 1 ]]; then
			log "kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

# boot: a copy of the root, the packages in it, booted by nspawn.
boot() {
	WORK=$(mktemp -d /var/tmp/scanwarden-systemd-test.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	log "building the package (scripts/deb.sh), and a later version for the upgrade"
	DEB_OUT=$WORK DEB_VERSION=0.1.0+systemdtest1 bash scripts/deb.sh >"$WORK/deb1.log" 2>&1 || die "scripts/deb.sh failed: $(tail -n 5 "$WORK/deb1.log")"
	DEB_OUT=$WORK DEB_VERSION=0.1.0+systemdtest2 bash scripts/deb.sh >"$WORK/deb2.log" 2>&1 || die "scripts/deb.sh failed: $(tail -n 5 "$WORK/deb2.log")"
	cp -a "$ROOTFS" "$WORK/root"
	cp "$WORK"/scanwarden_*.deb "$WORK/root/root/"
	# no login prompt on the console: nothing reads it
	ln -sf /dev/null "$WORK/root/etc/systemd/system/console-getty.service"
	printf 'scanwarden-test\n' >"$WORK/root/etc/hostname"
	log "booting it with systemd-nspawn"
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid systemd-nspawn --keep-unit --register=no --private-network \
		--quiet -D "$WORK/root" -M scanwarden-test -b </dev/null >"$WORK/console.log" 2>&1 &
	NSPAWN_PID=$!
	# the container's PID 1: nspawn's child
	local i
	for ((i = 0; i < 100; i++)); do
		PID1=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
		[[ -n $PID1 ]] && [[ $(readlink "/proc/$PID1/exe" 2>/dev/null) == */systemd ]] && break
		PID1=""
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $PID1 ]] || skip "systemd-nspawn did not boot the container here: $(tail -n 5 "$WORK/console.log" | tr '\n' ' ')"
	# the checks' `bash -c` commands enter the container with inc too
	export PID1
	export -f inc in_journal
	if ! wait_for 60 inc systemctl is-system-running --wait; then
		local state
		state=$(inc systemctl is-system-running 2>/dev/null || true)
		[[ $state == degraded ]] || skip "the container's systemd did not come up (state '$state'): $(tail -n 5 "$WORK/console.log" | tr '\n' ' ')"
		log "the container's systemd is up, degraded: $(inc systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')"
	fi
	log "container up: PID 1 is $PID1 ($(inc systemctl --version | head -n 1))"
	# the lab: an attacker namespace on a veth pair
	inc ip link add veth0 type veth peer name att0
	inc ip addr add "$HOST4/24" dev veth0
	inc ip link set veth0 up
	inc ip netns add attacker
	inc ip link set att0 netns attacker
	inc ip -n attacker addr add "$ATT4/24" dev att0
	inc ip -n attacker addr add "$ADMIN4/24" dev att0
	inc ip -n attacker link set att0 up
	inc ip -n attacker link set lo up
}

main_pid() { inc systemctl show -p MainPID --value scanwarden.service; }
active() { [[ $(inc systemctl is-active scanwarden.service) == active ]]; }
# listed ADDR: scanwarden list names ADDR
listed() { inc scanwarden list 2>/dev/null | grep -qF "$1"; }
# in_firewall ADDR: the nftables ban set holds ADDR
in_firewall() { inc nft list set inet scanwarden ban4 2>/dev/null | grep -qF "$1"; }
# status_field PID FIELD: a line of /proc/PID/status
status_field() { inc sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }
# in_journal GREP-ARGS...: the service's journal has a matching line
# (grep reads it all: an early exit would fail journalctl under pipefail)
in_journal() { inc journalctl -u scanwarden.service --no-pager | grep "$@" >/dev/null; }

check_install() {
	log "apt install ./scanwarden_0.1.0+systemdtest1_*.deb, from an SSH session of $ADMIN4"
	inc env SSH_CONNECTION="$ADMIN4 50022 $HOST4 22" bash -c 'apt-get install -y -q /root/scanwarden_0.1.0+systemdtest1_*.deb' >"$WORK/install.log" 2>&1 ||
		die "apt install failed: $(tail -n 5 "$WORK/install.log")"
	grep -E '^scanwarden:' "$WORK/install.log" | sed 's/^/    /' || true
	check "the postinst put the installer's SSH address in the ignore file, and said so" \
		bash -c "inc grep -qx '$ADMIN4' /etc/scanwarden/scanwarden.ignore && grep -q 'never blocked (your SSH sessions.*$ADMIN4' '$WORK/install.log'"
	check "the service is active after the install" wait_for 20 active
	local pid caps
	pid=$(main_pid)
	check "it runs as the user scanwarden" test "$(inc ps -o user= -p "$pid" | tr -d ' ')" = scanwarden
	caps=$(inc capsh --decode="$(status_field "$pid" CapEff)" | sed 's/.*=//')
	check "its capabilities are cap_net_admin,cap_net_raw only (got $caps)" test "$caps" = cap_net_admin,cap_net_raw
	check "NoNewPrivs is set" test "$(status_field "$pid" NoNewPrivs)" = 1
	check "a seccomp filter is on (Seccomp: 2)" test "$(status_field "$pid" Seccomp)" = 2
	local exposure
	exposure=$(inc systemd-analyze security scanwarden.service 2>/dev/null | sed -n 's/.*Overall exposure level for scanwarden.service: \([0-9.]*\).*/\1/p')
	check "systemd-analyze security: exposure ${exposure:-?} <= 2.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'
}

check_scan() {
	# a KILL_RUN_CMD under the sandbox: a command with the service's two
	# capabilities, changing the routes over netlink
	# shellcheck disable=SC2016 # $TARGET$ is scanwarden's, not the shell's
	inc sed -i 's|^KILL_RUN_CMD=.*|KILL_RUN_CMD="/usr/sbin/ip route add blackhole $TARGET$/32"|' /etc/scanwarden/scanwarden.conf
	inc systemctl reload scanwarden.service
	log "nmap -sS from the attacker namespace ($ATT4) at $HOST4"
	inc ip netns exec attacker nmap -n -Pn -T4 -sS --max-retries 0 -p 1-1024 "$HOST4" >"$WORK/nmap.log" 2>&1 || true
	check "the scanner is blocked: scanwarden list shows it" wait_for 10 listed "$ATT4"
	check "the scanner is in the nftables ban set" in_firewall "$ATT4"
	check "KILL_RUN_CMD ran under the sandbox: a blackhole route for the scanner" \
		wait_for 10 bash -c "inc ip route show type blackhole | grep -qF '$ATT4'"
	inc scanwarden list 2>&1 | sed 's/^/    /'
	log "the same scan from the installer's address ($ADMIN4)"
	inc ip netns exec attacker nmap -n -Pn -T4 -sS --max-retries 0 -p 1-1024 -S "$ADMIN4" -e att0 "$HOST4" >"$WORK/nmap-admin.log" 2>&1 || true
	check "...is reported, and not blocked: it is in the ignore file" \
		wait_for 10 in_journal "Host: $ADMIN4/$ADMIN4 is in the ignore file: not blocked"
	check "...and is not in the ban set" bash -c "! inc nft list set inet scanwarden ban4 | grep -qF '$ADMIN4'"
}

check_reload() {
	local pid conf=/etc/scanwarden/scanwarden.conf out rc=0
	pid=$(main_pid)
	inc cp "$conf" "$conf.good"
	inc sed -i 's/^TCP_PORTS=.*/TCP_PORTS="1,http"/' "$conf"
	out=$(inc systemctl reload scanwarden.service 2>&1) || rc=$?
	check "systemctl reload with a broken config fails (exit $rc)" test "$rc" -ne 0
	printf '%s\n' "$out" | sed 's/^/    /'
	check "the journal has the daemon's reason, with file, line and key" \
		bash -c "in_journal 'refused the new config' && in_journal -E '$conf:[0-9]+: TCP_PORTS'"
	check "the old config keeps running (same daemon, active)" test "$(main_pid)" = "$pid"
	inc mv "$conf.good" "$conf"
	rc=0
	inc systemctl reload scanwarden.service || rc=$?
	check "systemctl reload with a good config succeeds" test "$rc" -eq 0
	check "...and the daemon had reloaded when it returned" \
		in_journal "configuration reloaded from $conf"
}

check_watchdog() {
	local pid
	pid=$(main_pid)
	log "freezing the daemon (SIGSTOP to PID $pid); WatchdogSec=30"
	inc kill -STOP "$pid"
	check "a frozen daemon is killed by the watchdog and started again" \
		wait_for 75 bash -c "p=\$(inc systemctl show -p MainPID --value scanwarden.service); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && [ \"\$(inc systemctl is-active scanwarden.service)\" = active ]"
	check "the journal says the watchdog fired" \
		in_journal -i 'watchdog timeout'
	check "the ban survived the watchdog's restart" wait_for 10 in_firewall "$ATT4"
}

check_restart_upgrade() {
	inc systemctl restart scanwarden.service
	check "systemctl restart: active again" wait_for 20 active
	check "systemctl restart keeps the ban" wait_for 10 in_firewall "$ATT4"
	log "apt install ./scanwarden_0.1.0+systemdtest2_*.deb (an upgrade)"
	inc bash -c 'apt-get install -y -q /root/scanwarden_0.1.0+systemdtest2_*.deb' >"$WORK/upgrade.log" 2>&1 ||
		die "the upgrade failed: $(tail -n 5 "$WORK/upgrade.log")"
	check "after the upgrade: the new version runs" \
		bash -c "[ \"\$(inc scanwarden version)\" = 'scanwarden 0.1.0+systemdtest2' ] && [ \"\$(inc systemctl is-active scanwarden.service)\" = active ]"
	check "the upgrade keeps the ban" wait_for 10 in_firewall "$ATT4"
	check "the upgrade keeps the ignore file" inc test -s /etc/scanwarden/scanwarden.ignore
}

check_purge() {
	log "apt purge scanwarden"
	inc apt-get purge -y -q scanwarden >"$WORK/purge.log" 2>&1 || die "apt purge failed: $(tail -n 5 "$WORK/purge.log")"
	check "no scanwarden nftables table" bash -c "! inc nft list tables | grep -q scanwarden"
	check "no SCANWARDEN iptables chain" bash -c "! inc iptables -t raw -S 2>/dev/null | grep -q SCANWARDEN && ! inc ip6tables -t raw -S 2>/dev/null | grep -q SCANWARDEN"
	check "no scanwarden ipset set" bash -c "! inc ipset list -n 2>/dev/null | grep -q scanwarden"
	check "no scanwarden user or group" bash -c "! inc getent passwd scanwarden && ! inc getent group scanwarden"
	check "no state, config or unit left" bash -c "! inc test -e /var/lib/scanwarden && ! inc test -e /etc/scanwarden && ! inc test -e /lib/systemd/system/scanwarden.service"
	check "no hosts.deny entry left" bash -c "! inc grep -qF $ATT4 /etc/hosts.deny"
}

main() {
	preflight
	rootfs
	boot
	check_install
	check_scan
	check_reload
	check_watchdog
	check_restart_upgrade
	check_purge
	if ((FAILURES > 0)); then
		log "$FAILURES of $CHECKS checks FAILED"
		inc journalctl -u scanwarden.service --no-pager 2>/dev/null | tail -n 40 | sed 's/^/    /' >&2 || true
		exit 1
	fi
	log "all $CHECKS checks passed"
}

main "$@"
