package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/scanwarden/scanwarden/daemon"
)

// configFlag adds -c to fs and returns a function telling the path and
// whether it was given.
func configFlag(fs *flag.FlagSet) func() (string, bool) {
	path := fs.String("c", defaultConfig, "config `file`")
	return func() (string, bool) {
		explicit := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "c" {
				explicit = true
			}
		})
		return *path, explicit
	}
}

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: scanwarden check-config [-c CONF]

Reads the config and its ignore file, checks the command and hosts.deny
templates and applies the daemon's checks to the files the config names
(the config and ignore files and the KILL_ROUTE/KILL_RUN_CMD programs:
owned by root or this user, not writable by others; hosts.deny and
STATE_DIR: no symbolic link, nothing world-writable), without touching
the firewall. With BLOCK_BACKEND="auto" it asks the kernel, as the daemon
does, which backend that is (nf_tables and ip_set answer only a process
with CAP_NET_ADMIN: otherwise it says what it could not ask, and that is
no error). It reports every problem it finds, each with file, line and
key, and every warning; the exit status is 1 when there is an error. Who
may change the files depends on the user scanwarden runs as: those
problems are warnings here, and "scanwarden run" refuses to start with
them (a reload is refused too).

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	path, _ := cfgPath()
	r, err := daemon.Check(path, newCLILogger(stderr))
	if err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(stderr, "error: %v\n", e)
	}
	if len(r.Errors) > 0 {
		return &statusError{code: 1, err: fmt.Errorf("%s: %d error(s)", path, len(r.Errors))}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(stdout, n)
	}
	return nil
}
