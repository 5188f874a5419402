package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/daemon"
)

func newCLILogger(w io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
	return l
}

// blockCommand parses the common flags of list, unblock and flush.
func blockCommand(name, synopsis string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*conf.Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: scanwarden %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	path, _ := cfgPath()
	c, err := conf.Load(path)
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

func runList(args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, pos, err := blockCommand("list", "list [-c CONF] [--json]", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the bans as a JSON array")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: %w", pos[0], errUsage)
	}
	st, err := block.OpenState(c.StateDir)
	if err != nil {
		return err
	}
	bans, err := st.Load()
	if err != nil {
		return err
	}
	if asJSON {
		if bans == nil {
			bans = []block.Ban{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(bans)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSCAN\tPORT\tSINCE\tUNTIL\tREASON")
	for _, b := range bans {
		until := "never"
		if !b.Until.IsZero() {
			until = b.Until.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%s\n", b.Addr, b.Type, b.Proto, b.Port,
			b.Since.Local().Format(time.DateTime), until, b.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d blocked source(s) in %s\n", len(bans), st.Path())
	return nil
}

func runUnblock(args []string, stdout, stderr io.Writer) error {
	c, pos, err := blockCommand("unblock", "unblock [-c CONF] ADDR...", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("no address given: %w", errUsage)
	}
	var addrs []netip.Addr
	for _, s := range pos {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an IPv4 or IPv6 address: %w", s, errUsage)
		}
		addrs = append(addrs, a.Unmap())
	}
	m, closeFn, err := daemon.OpenManager(c, newCLILogger(stderr))
	if err != nil {
		return err
	}
	defer closeFn()
	notBanned, err := m.Unblock(context.Background(), addrs...)
	for _, a := range notBanned {
		fmt.Fprintf(stderr, "%s had no ban (removed from the backends anyway)\n", a)
	}
	return err
}

func runFlush(args []string, stdout, stderr io.Writer) error {
	c, pos, err := blockCommand("flush", "flush [-c CONF]", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: %w", pos[0], errUsage)
	}
	m, closeFn, err := daemon.OpenManager(c, newCLILogger(stderr))
	if err != nil {
		return err
	}
	defer closeFn()
	n, err := m.Flush(context.Background())
	fmt.Fprintf(stdout, "flushed: %d ban(s) lifted; %s\n", n, strings.Join(m.BackendNames(), ", "))
	return err
}
