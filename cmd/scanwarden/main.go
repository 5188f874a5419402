// Command scanwarden catches port scans from raw packets. This package is
// the command line only: flags, command dispatch and output formatting;
// the live pipeline is package daemon, the offline one package replay.
//
//	scanwarden run [-c CONF] [--log-format text|json] [--control-socket PATH] [-stcp -sudp -atcp -audp -tcp -udp]
//	scanwarden reload [--control-socket PATH]
//	scanwarden replay [-c CONF] [--home CIDR]... [--json] [--merge] FILE...
//	scanwarden check-config [-c CONF]
//	scanwarden list [-c CONF] [--json]
//	scanwarden unblock [-c CONF] ADDR...
//	scanwarden flush [-c CONF]
//	scanwarden version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// defaultConfig is where the packaged config lives.
const defaultConfig = "/etc/scanwarden/scanwarden.conf"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks an error whose message is a usage problem: the caller
// prints it with the command's usage and exits 2.
var errUsage = errors.New("usage")

// errReported is a usage error the flag package has already printed,
// together with the usage.
var errReported = errors.New("usage error already reported")

// statusError makes the command exit with code (replay's 130 or 143 after
// SIGINT or SIGTERM), printing err when it is not nil.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return fmt.Sprintf("exit status %d: %v", e.code, e.err) }

type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []subcommand {
	return []subcommand{
		{"run", "the daemon: capture, detect and block", runRun},
		{"reload", "make the running daemon re-read its config, and wait for its verdict", runReload},
		{"replay", "run the detection engine over capture files and print the alerts", runReplay},
		{"check-config", "read the config and ignore files and report problems", runCheckConfig},
		{"list", "list the blocked sources, why, since and until when", runList},
		{"unblock", "lift the block of the given addresses everywhere", runUnblock},
		{"flush", "remove every block scanwarden made, and nothing else", runFlush},
		{"version", "print the version", func(_ []string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintf(stdout, "scanwarden %s\n", version)
			return err
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: scanwarden COMMAND [options]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nscanwarden COMMAND -h shows a command's options.\n")
}

// ownProcess is set when the command runs as the process itself, whose
// end follows: a process-wide setting it makes (replay's garbage
// collector) then needs no undoing, which would cost a collection. Tests
// run commands inside their own process and leave it false.
var ownProcess bool

func main() {
	ownProcess = true
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs one command and returns the exit status: 0 done, 1 failed,
// 2 bad usage, or a statusError's.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch strings.TrimPrefix(name, "-") {
	case "tcp", "udp", "stcp", "sudp", "atcp", "audp":
		// PortSentry's command line: portsentry -tcp
		if !strings.HasPrefix(name, "--") {
			name, args = "run", append([]string{"run"}, args...)
		}
	}
	if name == "-h" || name == "--help" || name == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var st *statusError
		switch {
		case errors.As(err, &st):
			if st.err != nil {
				fmt.Fprintf(stderr, "scanwarden %s: %v\n", name, st.err)
			}
			return st.code
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errReported):
			return 2
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "scanwarden %s: %v\n", name, strings.TrimSuffix(err.Error(), ": "+errUsage.Error()))
			return 2
		default:
			fmt.Fprintf(stderr, "scanwarden %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "scanwarden: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments (`replay a.pcap --json b.pcap`); "--" ends the
// flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseFlags is fs.Parse with its errors (already printed by fs, with the
// usage) turned into errReported.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errReported
	}
	return err
}
