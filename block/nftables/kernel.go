package nftables

// Reading the table from the kernel, and writing changes in transactions
// of bounded size.

import (
	"context"
	"errors"
	"fmt"
	"time"

	nft "github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// conn returns a netlink connection to the backend's namespace. Each is
// opened per operation (the library dials a socket per request and per
// Flush), so that nothing an earlier failure left unread is ever taken for
// a later answer (Block has a socket of its own, see add.go).
func (b *Backend) conn() (*nft.Conn, error) {
	var opts []nft.ConnOption
	if b.netns != 0 {
		opts = append(opts, nft.WithNetNSFd(b.netns))
	}
	c, err := nft.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return c, nil
}

// isNotExist reports whether err says that an object (table, set, chain,
// element) does not exist.
func isNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }

// tableExists reports whether the backend's table is there.
func (b *Backend) tableExists(c *nft.Conn) (bool, error) {
	_, err := c.ListTableOfFamily(b.table.Name, nft.TableFamilyINet)
	switch {
	case err == nil:
		return true, nil
	case isNotExist(err):
		return false, nil
	}
	return false, fmt.Errorf("reading table inet %s: %w", b.table.Name, err)
}

// snapshot is the table as the kernel has it.
type snapshot struct {
	exists  bool
	sets    map[string]*nft.Set
	chains  map[string]*nft.Chain
	rules   map[string][]string // chain: the comments of its rules, in order
	rulesOK map[string]bool     // chain: its rules could be read
	counter bool
}

// read takes a snapshot of the table.
func (b *Backend) read(c *nft.Conn) (*snapshot, error) {
	s := &snapshot{sets: map[string]*nft.Set{}, chains: map[string]*nft.Chain{},
		rules: map[string][]string{}, rulesOK: map[string]bool{}}
	var err error
	if s.exists, err = b.tableExists(c); err != nil || !s.exists {
		return s, err
	}
	sets, err := c.GetSets(b.table)
	if err != nil {
		return nil, fmt.Errorf("reading the sets of inet %s: %w", b.table.Name, err)
	}
	for _, st := range sets {
		s.sets[st.Name] = st
	}
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("reading the chains of inet %s: %w", b.table.Name, err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == b.table.Name {
			s.chains[ch.Name] = ch
		}
	}
	for _, name := range []string{chainPrerouting, chainInput, chainTrap} {
		if s.chains[name] == nil {
			continue
		}
		rules, err := c.GetRules(b.table, s.chains[name])
		if err != nil {
			// A rule the library cannot decode is not one of ours:
			// the chain is rewritten.
			continue
		}
		s.rulesOK[name] = true
		for _, r := range rules {
			s.rules[name] = append(s.rules[name], ruleTag(r))
		}
	}
	objs, err := c.GetObjects(b.table)
	if err != nil {
		return nil, fmt.Errorf("reading the objects of inet %s: %w", b.table.Name, err)
	}
	for _, o := range objs {
		if co, ok := o.(*nft.CounterObj); ok && co.Name == counterOverflow {
			s.counter = true
		}
	}
	return s, nil
}

// elements returns the elements of set name (see dumpSet). A dump is made
// again when the ruleset changed during it, and when it lists an element
// twice: the kernel resumes a set dump by position in the set's hash
// table, so a dump that overlaps a resize of the table (which follows
// large loads, within milliseconds) lists some elements twice and as many
// not at all. After dumpAttempts, the last dump is returned without its
// duplicates.
func (b *Backend) elements(name string) ([]nft.SetElement, error) {
	for attempt := 1; ; attempt++ {
		es, err := b.dumpSet(name)
		if errors.Is(err, errDumpInterrupted) && attempt < dumpAttempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading set inet %s %s: %w", b.table.Name, name, err)
		}
		uniq := dedupElems(es)
		if len(uniq) == len(es) || attempt == dumpAttempts {
			return uniq, nil
		}
		time.Sleep(time.Duration(attempt) * dumpRetryPause)
	}
}

// dedupElems returns es without the elements whose key (and interval end
// flag) came before.
func dedupElems(es []nft.SetElement) []nft.SetElement {
	seen := make(map[elemKey]bool, len(es))
	out := es[:0:0]
	for _, e := range es {
		k := elemKey{string(e.Key), e.IntervalEnd}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// batch queues set changes on a connection and sends them as
// transactions of at most msgsPerBatch element messages, each of at most
// elemsPerMsg elements. Changes that must be atomic together (a delete and
// the add that replaces it) are queued as one group and never split.
type batch struct {
	ctx  context.Context
	c    *nft.Conn
	msgs int // element messages queued
	sent int // transactions sent
}

// op is one element message: add or delete elems in set s.
type op struct {
	del   bool
	s     *nft.Set
	elems []nft.SetElement
}

// group queues ops (each of at most elemsPerMsg elements) in one
// transaction, flushing what was queued before when they would not fit.
func (q *batch) group(ops ...op) error {
	if q.msgs > 0 && q.msgs+len(ops) > msgsPerBatch {
		if err := q.flush(); err != nil {
			return err
		}
	}
	for _, o := range ops {
		var err error
		if o.del {
			err = q.c.SetDeleteElements(o.s, o.elems)
		} else {
			err = q.c.SetAddElements(o.s, o.elems)
		}
		if err != nil {
			return fmt.Errorf("encoding elements of %s: %w", o.s.Name, err)
		}
		q.msgs++
	}
	return nil
}

// each queues elems in s in messages of elemsPerMsg, as separate groups.
func (q *batch) each(del bool, s *nft.Set, elems []nft.SetElement) error {
	for len(elems) > 0 {
		n := min(len(elems), elemsPerMsg)
		if err := q.group(op{del, s, elems[:n]}); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}

// flush sends what is queued as one transaction.
func (q *batch) flush() error {
	if err := q.ctx.Err(); err != nil {
		return err
	}
	q.msgs = 0
	q.sent++
	return q.c.Flush()
}

// errFull is the kernel's answer to an add into a set that holds its
// size already.
var errFull = unix.ENFILE
