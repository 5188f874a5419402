package main

import (
	"fmt"
	"io"
	"log/syslog"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/detect"
)

// newDaemonLogger returns the daemon's logger: text (for journald) or JSON
// lines on w, and, with SYSLOG="1", every entry's message also to syslog
// under tag with facility daemon, as PortSentry logged (attackalert lines
// at notice, so that logwatch and tools that filter on the tag find them).
func newDaemonLogger(w io.Writer, format string, toSyslog bool, tag string) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch format {
	case "text", "":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableQuote: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: detect.TimeLayout, DisableHTMLEscape: true})
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json: %w", format, errUsage)
	}
	if toSyslog {
		sw, err := syslog.New(syslog.LOG_NOTICE|syslog.LOG_DAEMON, tag)
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		l.AddHook(syslogHook{sw})
	}
	return l, nil
}

// syslogHook sends each entry's message, without fields, to syslog.
type syslogHook struct{ w *syslog.Writer }

func (syslogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h syslogHook) Fire(e *logrus.Entry) error {
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		return h.w.Err(e.Message)
	case logrus.WarnLevel:
		return h.w.Notice(e.Message)
	case logrus.InfoLevel:
		return h.w.Info(e.Message)
	}
	return h.w.Debug(e.Message)
}
