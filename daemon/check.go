package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

// CheckReport is what `scanwarden check-config` finds in a config.
type CheckReport struct {
	// Errors are the problems, one each (a joined error is split), each
	// naming its file and line, or its key.
	Errors []error
	// Warnings are the config's warnings, and the file-safety problems
	// that depend on the user scanwarden runs as (the daemon refuses to
	// start with them).
	Warnings []string
	// Notes say what the config asks for: given only when there is no
	// error.
	Notes []string
}

// Check reads the config at path and checks everything the daemon would
// at start, without touching the firewall: the config and its ignore file
// (every problem, with file and line), the engine's settings, the
// hosts.deny and command templates (CheckActions) and the files the config
// names (CheckFiles). With BLOCK_BACKEND="auto" it asks the kernel, as the
// daemon does (backends.Choose, which only reads), which backend that is;
// a question the kernel refuses (check-config run without CAP_NET_ADMIN)
// is said in the notes and is no error. It returns an error only when the
// config file cannot be read at all.
func Check(path string, log logrus.FieldLogger) (CheckReport, error) {
	return check(path, log, backends.Choose)
}

// check is Check, with choose picking the backend of "auto".
func check(path string, log logrus.FieldLogger, choose chooser) (CheckReport, error) {
	var r CheckReport
	c, err := conf.Load(path)
	if err != nil {
		var errs conf.Errors
		if !errors.As(err, &errs) {
			return r, err // the file could not be read
		}
		r.add(err)
		return r, nil
	}
	r.Warnings = append(r.Warnings, c.Warnings...)
	ignored := -1
	if c.IgnoreFile != "" {
		ig, err := conf.LoadIgnore(c.IgnoreFile)
		var errs conf.Errors
		switch {
		case errors.As(err, &errs):
			r.add(err) // each names the ignore file and its line
		case err != nil:
			r.add(c.KeyError("IGNORE_FILE", err.Error()))
		default:
			ignored = ig.Len()
		}
	}
	if _, err := detect.New(EngineConfig(c)); err != nil {
		r.add(err)
	}
	// the daemon's choice, recorded only when it is sure to be the
	// daemon's: the notes say what could not be asked otherwise
	ch, auto := chooseBackend(context.Background(), c, choose)
	if auto && ch.Certain() {
		if err := c.ResolveBackend(conf.Backend(ch.Kind), ch.Reason); err != nil {
			r.add(keyErr(c, "BLOCK_BACKEND", err))
		}
	}
	r.add(CheckActions(c, log))
	warnings, err := CheckFiles(c)
	r.Warnings = append(r.Warnings, warnings...)
	var fileErrs FileErrors
	errors.As(err, &fileErrs)
	for _, fe := range fileErrs {
		if fe.Trust {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%v (scanwarden run as %s refuses to start with this, and refuses a reload)", fe, currentUser()))
		} else {
			r.add(fe)
		}
	}
	if len(r.Errors) == 0 {
		var unknown *backends.Choice
		if auto && !ch.Certain() {
			unknown = &ch
		}
		r.Notes = notes(path, c, ignored, unknown)
	}
	return r, nil
}

// add adds err, or each of the errors it joins (conf.Errors,
// errors.Join, FileErrors), to the report's errors.
func (r *CheckReport) add(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			r.add(e)
		}
		return
	}
	r.Errors = append(r.Errors, err)
}

// notes say what a config without errors asks for; ignored is the ignore
// file's entries (-1: no ignore file). unknown is the choice of a
// BLOCK_BACKEND="auto" that could not be made here for want of privilege
// (nil otherwise: c is resolved then, or names its backend).
func notes(path string, c *conf.Config, ignored int, unknown *backends.Choice) []string {
	var out []string
	if ignored >= 0 {
		out = append(out, fmt.Sprintf("%s: ignore file %s: %d entries", path, c.IgnoreFile, ignored))
	}
	out = append(out, fmt.Sprintf("%s: OK: %d TCP and %d UDP trap ports, window %v, threshold %d, SCAN_TRIGGER %d",
		path, c.TCPPorts.Len(), c.UDPPorts.Len(), c.DetectWindow, c.DetectThreshold, c.ScanTrigger))
	if unknown != nil {
		out = append(out, fmt.Sprintf("%s: BLOCK_BACKEND auto: not known here: %s; the daemon, which may ask, chooses %s (run check-config as root to see its choice)",
			path, strings.Join(unknown.Unprobed, "; "), preference(c)))
		// the kernel trap as it would be with a set backend, which is
		// what auto chooses wherever one works
		set := *c
		set.BlockBackend = conf.BackendNftables
		if tr, why := TrapPlan(&set); tr.Enabled() {
			out = append(out, fmt.Sprintf("%s: blocking with the backend auto chooses; kernel trap on the first probe to a trap port if that is nftables or ipset (holding its source %v until judged; at most %d held per family)", path, tr.Hold, tr.Size))
		} else {
			out = append(out, fmt.Sprintf("%s: blocking with the backend auto chooses; no kernel trap: %s", path, why))
		}
	} else {
		if line := autoLine(c); line != "" {
			out = append(out, path+": "+line)
		}
		// the kernel trap of the default stealth modes, before bound ports
		if tr, why := TrapPlan(c); tr.Enabled() {
			out = append(out, fmt.Sprintf("%s: blocking with %s; kernel trap on the first probe to a trap port (holding its source %v until judged; at most %d held per family)", path, c.BlockBackend, tr.Hold, tr.Size))
		} else {
			out = append(out, fmt.Sprintf("%s: blocking with %s; no kernel trap: %s", path, c.BlockBackend, why))
		}
	}
	if c.CaptureRealtime {
		out = append(out, fmt.Sprintf("%s: capture and blocking at real-time priority where the daemon may (CAPTURE_REALTIME; its user needs an RTPRIO limit of 1, as the unit's LimitRTPRIO=1, or CAP_SYS_NICE)", path))
	} else {
		out = append(out, fmt.Sprintf("%s: capture and blocking at normal priority (CAPTURE_REALTIME=\"0\")", path))
	}
	return out
}

// currentUser names the user running the command, for messages.
func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Geteuid())
}
