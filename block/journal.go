package block

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sync"

	"github.com/scanwarden/scanwarden/block/records"
)

// FileJournal writes PortSentry's history file and blocked files.
type FileJournal struct {
	mu          sync.Mutex
	historyPath string
	blockedBase string
	history     *records.History
}

var _ Journal = (*FileJournal)(nil)

// NewJournal returns a journal writing to historyPath (HISTORY_FILE) and
// blockedBase.MODE (BLOCKED_FILE); an empty path turns that record off.
// Files are opened on first use.
func NewJournal(historyPath, blockedBase string) *FileJournal {
	return &FileJournal{historyPath: historyPath, blockedBase: blockedBase}
}

// History appends line to the history file.
func (j *FileJournal) History(line string) error {
	if j.historyPath == "" {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.history == nil {
		h, err := records.OpenHistory(j.historyPath)
		if err != nil {
			return err
		}
		j.history = h
	}
	return j.history.Append(line)
}

// Blocked appends line to the blocked file of mode.
func (j *FileJournal) Blocked(mode, line string) error {
	if j.blockedBase == "" {
		return nil
	}
	h, err := records.OpenHistory(records.BlockedPath(j.blockedBase, mode))
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Append(line)
}

// Unblocked removes addr's lines from every blocked file.
func (j *FileJournal) Unblocked(addr netip.Addr) error {
	if j.blockedBase == "" {
		return nil
	}
	var errs []error
	for _, m := range records.Modes() {
		err := records.RemoveFromBlocked(records.BlockedPath(j.blockedBase, m), addr)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("blocked file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the history file.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.history == nil {
		return nil
	}
	err := j.history.Close()
	j.history = nil
	return err
}
