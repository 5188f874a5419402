# scanwarden entry points. Every target that needs system packages runs
# scripts/deps.sh first, so a fresh Debian machine needs nothing by hand.

GO      ?= go
BIN     := bin/scanwarden
PKGS    := ./...

.PHONY: all build deps test bench pcaps demo e2e clean deb

all: build

deps:
	@bash scripts/deps.sh

# VERSION is stamped into the binary (scanwarden version, the start-up line).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: deps
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/scanwarden

# The README's test command: formatting, vet, staticcheck, then every test
# (root-only kernel tests run when make test runs as root, and skip with a
# reason otherwise).
test: deps
	bash scripts/test.sh

# The Debian package, scanwarden_VERSION_ARCH.deb in this directory
# (scripts/deb.sh: a staged install, the maintainer scripts of
# packaging/deb, dpkg-deb; lintian must find nothing unexplained). Install
# it with apt install ./scanwarden_*.deb.
deb: deps
	bash scripts/deb.sh

# The package under a real systemd (scripts/systemd-test.sh): a Debian 12
# root made by debootstrap (cached in /var/cache/scanwarden), booted with
# systemd-nspawn; install, scan, reload, watchdog, restart, upgrade and
# purge are checked. Skips, saying why, where the host cannot run it.
.PHONY: systemd-test
systemd-test: deps
	bash scripts/systemd-test.sh

# The benchmarks (scripts/bench.sh; its header describes each part): 1 the
# Go benchmarks, 2 replay speed against tcpdump and a C libpcap loop with
# issue #14's targets beside it, 3 memory under forged sources, 4 ban
# speed and 5 firewall cost per backend, 6 nmap against the daemon, 7 the
# live daemon's sustained probe rate under a forged flood. Parts 4 to 7
# need root. BENCH_PARTS="2 7" picks parts; BENCH_SIZES=1M:10k BENCH_RUNS=1
# makes part 2 quick.
bench: build
	bash scripts/bench.sh

pcaps: build
	bash scripts/record-pcaps.sh

# The lab: network namespaces (attacker, victim, benign client), the daemon
# in the victim as an unprivileged user with only CAP_NET_RAW and
# CAP_NET_ADMIN, nmap scans from the attacker. demo is the short, readable
# tour; e2e asserts every scan is detected with its type and blocked while
# the benign client keeps working, with each blocking backend in turn
# (E2E_BACKENDS="nftables" for one); after e2e.sh, each backend also runs
# scripts/spoof.sh: decoys, forged probes and a forged flood in the name of
# others (on-link and, through routers, off-link) must not get the framed
# blocked, while the real attackers are; with nftables, in advanced mode
# too (E2E_SPOOF=0 skips it); then scripts/forward.sh: the daemon on a
# router, a scan through it and one of its DNAT-published port cut off,
# the clients behind it never reported (E2E_FORWARD=0 skips it).
E2E_BACKENDS ?= iptables nftables ipset
demo: deps
	bash scripts/demo.sh

e2e: deps
	@[ -n "$(strip $(E2E_BACKENDS))" ] || { echo "make e2e: E2E_BACKENDS is empty (iptables, nftables, ipset)" >&2; exit 2; }
	@set -e; for b in $(E2E_BACKENDS); do \
		echo "== e2e with BLOCK_BACKEND=$$b"; E2E_BACKEND=$$b bash scripts/e2e.sh; \
		if [ "$(E2E_SPOOF)" != 0 ]; then echo "== spoof with BLOCK_BACKEND=$$b"; E2E_BACKEND=$$b bash scripts/spoof.sh; fi; \
		if [ "$(E2E_SPOOF)" != 0 ] && [ $$b = nftables ]; then echo "== spoof with BLOCK_BACKEND=$$b, advanced mode"; \
			E2E_BACKEND=$$b SPOOF_MODES="-atcp -audp" bash scripts/spoof.sh; fi; \
		if [ "$(E2E_FORWARD)" != 0 ]; then echo "== forward with BLOCK_BACKEND=$$b"; E2E_BACKEND=$$b bash scripts/forward.sh; fi; \
	done

# issue #4's check: the daemon in the lab under a flood of SYNs from
# 1,000,000 forged IPv6 sources (scripts/synflood); two real nmap scans
# during it (one of them starting on a trap port) must be blocked, the
# benign client keep working and the daemon's peak
# RSS stay bounded. Prints the figures (rate, RSS, capture drops, blocks).
.PHONY: flood
flood: deps
	bash scripts/flood.sh

# The soak (CI runs a shortened one, 90 s): the daemon in the lab for SOAK_SECONDS (600)
# with RESOLVE_HOST and a resolver that never answers, under a forged-source
# flood (SOAK_RATE SYNs a second), SOAK_RELOADS SIGHUPs and unblocks, a real
# nmap scan every SOAK_SCAN_EVERY seconds that must be blocked within 15 s,
# the benign client throughout. Prints RSS, fds, threads, drops and
# decisions every SOAK_SAMPLE seconds; fails on a missed or late block, a
# benign failure, the daemon dying, unbounded growth or (SOAK_RACE=1, a
# -race build) a data race.
.PHONY: soak
soak: deps
	bash scripts/soak.sh

clean:
	rm -rf bin scanwarden_*.deb

# install / uninstall: the program, the systemd unit, the config and the
# manual page. `make install DESTDIR=/tmp/root` stages the files only; without
# DESTDIR it also creates the scanwarden system user, its state directory,
# lets it write /etc/hosts.deny (group scanwarden, mode g+w: the unit runs
# unprivileged and rewrites that file in place) and reloads systemd when it
# runs. An existing config or ignore file is never overwritten: the shipped
# one goes next to it as .dist.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(SYSCONFDIR)/systemd/system
MANDIR     ?= $(PREFIX)/share/man
SW_USER    := scanwarden
HOSTS_DENY := $(SYSCONFDIR)/hosts.deny

.PHONY: install uninstall

install: build
	install -d -m 0755 $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR)/scanwarden $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/scanwarden
	@set -e; for f in scanwarden.conf scanwarden.ignore; do \
		dst=$(DESTDIR)$(SYSCONFDIR)/scanwarden/$$f; \
		if [ ! -e "$$dst" ]; then \
			echo "install -m 0644 etc/$$f $$dst"; install -m 0644 etc/$$f "$$dst"; \
		elif cmp -s etc/$$f "$$dst"; then \
			echo "$$dst: unchanged"; rm -f "$$dst.dist"; \
		else \
			echo "$$dst: exists, kept; the shipped one is $$dst.dist"; install -m 0644 etc/$$f "$$dst.dist"; \
		fi; \
	done
	sed -e 's|/usr/local/sbin/scanwarden|$(PREFIX)/sbin/scanwarden|g' \
	    -e 's|/etc/scanwarden/scanwarden.conf|$(SYSCONFDIR)/scanwarden/scanwarden.conf|g' \
	    etc/scanwarden.service >$(DESTDIR)$(UNITDIR)/scanwarden.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/scanwarden.service
	install -m 0644 docs/scanwarden.8 $(DESTDIR)$(MANDIR)/man8/scanwarden.8
	@set -e; if [ -n "$(DESTDIR)" ]; then \
		echo "DESTDIR set: not creating the $(SW_USER) user nor touching $(HOSTS_DENY) or systemd"; exit 0; \
	fi; \
	if ! getent passwd $(SW_USER) >/dev/null; then \
		echo "useradd --system --user-group $(SW_USER)"; \
		useradd --system --user-group --home-dir /var/lib/scanwarden --no-create-home \
			--shell /usr/sbin/nologin --comment "scanwarden port scan detector" $(SW_USER); \
	fi; \
	if [ -d /var/lib/scanwarden ]; then \
		echo "chown -R $(SW_USER): /var/lib/scanwarden (state written by root runs)"; \
		chown -R $(SW_USER):$(SW_USER) /var/lib/scanwarden; \
	else \
		install -d -m 0700 -o $(SW_USER) -g $(SW_USER) /var/lib/scanwarden; \
	fi; \
	if [ ! -e $(HOSTS_DENY) ]; then \
		echo "creating an empty $(HOSTS_DENY)"; install -m 0644 /dev/null $(HOSTS_DENY); \
	fi; \
	if [ -f $(HOSTS_DENY) ] && [ ! -L $(HOSTS_DENY) ]; then \
		echo "$(HOSTS_DENY): group $(SW_USER), group-writable (the service writes it as $(SW_USER))"; \
		chgrp $(SW_USER) $(HOSTS_DENY); chmod g+w $(HOSTS_DENY); \
	fi; \
	if [ -d /run/systemd/system ]; then \
		echo "systemctl daemon-reload"; systemctl daemon-reload; \
		echo "start it with: systemctl enable --now scanwarden"; \
	else \
		echo "systemd is not running: not reloading it"; \
	fi

# uninstall removes what install put in place, except a config or ignore
# file that differs from the shipped one, the state directory and the user.
# Without DESTDIR it first stops the service and lifts every block
# (`scanwarden flush`): with the program gone, nothing could ever lift them.
uninstall:
	@set -e; if [ -z "$(DESTDIR)" ]; then \
		if [ -d /run/systemd/system ] && [ -e $(UNITDIR)/scanwarden.service ]; then \
			echo "systemctl disable --now scanwarden"; systemctl disable --now scanwarden.service || true; \
		fi; \
		if [ -x $(PREFIX)/sbin/scanwarden ] && [ -e $(SYSCONFDIR)/scanwarden/scanwarden.conf ]; then \
			echo "$(PREFIX)/sbin/scanwarden flush"; \
			$(PREFIX)/sbin/scanwarden flush -c $(SYSCONFDIR)/scanwarden/scanwarden.conf || \
				echo "uninstall: warning: flush failed: remove scanwarden's blocks by hand (iptables chain SCANWARDEN, $(HOSTS_DENY))" >&2; \
		fi; \
	fi
	rm -f $(DESTDIR)$(PREFIX)/sbin/scanwarden $(DESTDIR)$(UNITDIR)/scanwarden.service $(DESTDIR)$(MANDIR)/man8/scanwarden.8
	@set -e; for f in scanwarden.conf scanwarden.ignore; do \
		dst=$(DESTDIR)$(SYSCONFDIR)/scanwarden/$$f; \
		rm -f "$$dst.dist"; \
		if [ -e "$$dst" ] && cmp -s etc/$$f "$$dst"; then \
			echo "rm $$dst"; rm -f "$$dst"; \
		elif [ -e "$$dst" ]; then \
			echo "$$dst: changed by the administrator, kept"; \
		fi; \
	done; \
	rmdir $(DESTDIR)$(SYSCONFDIR)/scanwarden 2>/dev/null || true; \
	if [ -z "$(DESTDIR)" ]; then \
		if [ -f $(HOSTS_DENY) ] && [ "$$(stat -c %G $(HOSTS_DENY))" = $(SW_USER) ]; then \
			echo "$(HOSTS_DENY): back to group root, not group-writable"; \
			chgrp root $(HOSTS_DENY); chmod g-w $(HOSTS_DENY); \
		fi; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo "kept: /var/lib/scanwarden and the $(SW_USER) user (userdel $(SW_USER); rm -r /var/lib/scanwarden)"; \
	fi
