package nftables

// Block's element add, and Release's batch, over a netlink socket of
// their own.
//
// Why not github.com/google/nftables for this one message: its connection
// goes through the Go runtime's network poller, whose threads run at
// normal priority. On the daemon's real-time capture thread, under a scan
// that kept both CPUs busy, the library's Flush took 0.13-0.35 ms against
// 20 µs idle (the hand-overs between threads waiting for a CPU); a
// blocking socket of our own takes the round trip on the calling thread
// alone. The daemon's blocking thread, which calls Release, is real-time
// too. The batches are byte for byte what the library sends
// (TestAddBatchMatchesLibrary, TestDelBatchMatchesLibrary,
// TestOpsBatchMatchesLibrary), sequence numbers aside.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/nlmsg"
)

// addSock is Block's and Release's kept socket (fd -1: none), with its
// receive buffer. It is closed after any failure of an exchange (but the
// kernel's error answers, such as a delete's ENOENT: those are complete),
// so that nothing a failed exchange left unread is taken for a later
// answer, and by Close or, failing that, when the Backend is garbage.
type addSock struct {
	fd  int
	buf [4096]byte
}

func (k *addSock) close() {
	if k.fd >= 0 {
		unix.Close(k.fd)
		k.fd = -1
	}
}

// batchMsg encodes NFNL_MSG_BATCH_BEGIN or _END for nftables: nlMsg's
// header, with an nfgenmsg of family 0 and the nftables subsystem as the
// resource id (network order).
func batchMsg(typ uint16, seq uint32) []byte {
	b := nlMsg(typ, unix.NLM_F_REQUEST, seq)
	b[unix.NLMSG_HDRLEN] = 0
	binary.BigEndian.PutUint16(b[unix.NLMSG_HDRLEN+2:], unix.NFNL_SUBSYS_NFTABLES)
	return b
}

// elemOp is one element message of a batch: an add (NEWSETELEM) of key
// to set, with timeout when more than 0, or a delete (DELSETELEM) of key
// from set.
type elemOp struct {
	del     bool
	set     string
	key     []byte
	timeout time.Duration
}

// addBatch is the batch that adds key (with timeout, none when 0) to set
// of table, the add acknowledged: batch begin at seq, NEWSETELEM at seq+1,
// batch end at seq+2.
func addBatch(table, set string, key []byte, timeout time.Duration, seq uint32) []byte {
	return opsBatch(table, []elemOp{{set: set, key: key, timeout: timeout}}, seq)
}

// delBatch is the batch that deletes key from set of table, as addBatch
// (DELSETELEM, with the flags google/nftables gives it).
func delBatch(table, set string, key []byte, seq uint32) []byte {
	return opsBatch(table, []elemOp{{del: true, set: set, key: key}}, seq)
}

// opsBatch is the batch (one transaction) of ops on the sets of table,
// each acknowledged: batch begin at seq, the i-th op at seq+1+i, batch
// end at seq+1+len(ops).
func opsBatch(table string, ops []elemOp, seq uint32) []byte {
	out := batchMsg(unix.NFNL_MSG_BATCH_BEGIN, seq)
	for i, o := range ops {
		out = append(out, elemMsg(table, o, seq+1+uint32(i))...)
	}
	return append(out, batchMsg(unix.NFNL_MSG_BATCH_END, seq+1+uint32(len(ops)))...)
}

// elemMsg is the element message of o, at seq.
func elemMsg(table string, o elemOp, seq uint32) []byte {
	elem := nlAttr(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_KEY, nlAttr(unix.NFTA_DATA_VALUE, o.key))
	if o.timeout > 0 && !o.del {
		ms := make([]byte, 8)
		binary.BigEndian.PutUint64(ms, uint64(o.timeout.Milliseconds()))
		elem = append(elem, nlAttr(unix.NFTA_SET_ELEM_TIMEOUT, ms)...)
	}
	msg := uint16(unix.NFT_MSG_NEWSETELEM)
	if o.del {
		msg = unix.NFT_MSG_DELSETELEM
	}
	return nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE, seq,
		nlAttr(unix.NFTA_SET_ELEM_LIST_SET, cstr(o.set)),
		nlAttr(unix.NFTA_SET_ELEM_LIST_SET_ID, make([]byte, 4)),
		nlAttr(unix.NFTA_SET_ELEM_LIST_TABLE, cstr(table)),
		nlAttr(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, nlAttr(unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, elem)))
}

// getMsg is the message that asks for key's element in set of table
// (GETSETELEM, not a dump: one element, outside any transaction), at seq.
func getMsg(table, set string, key []byte, seq uint32) []byte {
	elem := nlAttr(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_KEY, nlAttr(unix.NFTA_DATA_VALUE, key))
	return nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSETELEM, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq,
		nlAttr(unix.NFTA_SET_ELEM_LIST_TABLE, cstr(table)),
		nlAttr(unix.NFTA_SET_ELEM_LIST_SET, cstr(set)),
		nlAttr(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, nlAttr(unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, elem)))
}

// has reports whether set holds key, asking the kernel over the kept
// socket: an element that is not there, or no such set or table, is
// false with the kernel's ENOENT; any other error is returned. Called
// with b.mu held.
func (b *Backend) has(set string, key []byte) (bool, error) {
	seq := nlSeq.Add(3) - 2 // the answer's at seq+1, as a batch's one message
	if b.sock.fd < 0 {
		fd, err := timedSocket(b.netns, addTimeout)
		if err != nil {
			return false, err
		}
		b.sock.fd = fd
	}
	errs, err := b.exchange(getMsg(b.table.Name, set, key, seq+1), seq, 1)
	if err != nil {
		b.sock.close()
		return false, err
	}
	if errs[0] != nil {
		return false, errs[0]
	}
	return true, nil
}

// errNoAnswer: the kernel's answer did not come within addTimeout.
var errNoAnswer = errors.New("no answer from the kernel")

// add adds key with timeout to the backend's set over the kept socket,
// opening it when there is none, and returns the kernel's error (a
// unix.Errno) or the socket's. Called with b.mu held.
func (b *Backend) add(set string, key []byte, timeout time.Duration) error {
	return b.one(elemOp{set: set, key: key, timeout: timeout})
}

// del deletes key from the backend's set over the kept socket, as add.
// The kernel's ENOENT (no such element, set or table) is a whole answer,
// the batch's only one: the socket is kept for it. Called with b.mu held.
func (b *Backend) del(set string, key []byte) error {
	return b.one(elemOp{del: true, set: set, key: key})
}

// one sends the batch of o alone (see apply) and returns its error.
func (b *Backend) one(o elemOp) error {
	errs, err := b.apply([]elemOp{o})
	if err == nil {
		err = errs[0]
	}
	return err
}

// apply sends ops as one batch (one transaction: all of them take effect,
// or, when one fails, none) over the kept socket, opened when there is
// none, and returns the kernel's answer to each, in order (nil: done, or
// would have been had the batch not failed; a unix.Errno otherwise), or
// the error of the exchange itself. The socket is closed after any
// failure but the kernel's answers: they are whole (the kernel answers
// every message of a batch, failed or not, then nothing more). Called
// with b.mu held.
func (b *Backend) apply(ops []elemOp) ([]error, error) {
	n := uint32(len(ops))
	seq := nlSeq.Add(n+2) - n - 1
	if b.sock.fd < 0 {
		fd, err := timedSocket(b.netns, addTimeout)
		if err != nil {
			return nil, err
		}
		b.sock.fd = fd
	}
	errs, err := b.exchange(opsBatch(b.table.Name, ops, seq), seq, len(ops))
	if err != nil {
		b.sock.close()
	}
	return errs, err
}

// exchange sends the batch req, begun at seq and of n element messages
// (seq+1 to seq+n, each acknowledged), and waits for the n answers. An
// error answer to the batch's begin or end (seq, seq+n+1: the kernel
// refused the batch whole) is the exchange's error.
func (b *Backend) exchange(req []byte, seq uint32, n int) ([]error, error) {
	if err := sendNL(b.sock.fd, req); err != nil {
		return nil, err
	}
	errs := make([]error, n)
	answered := make([]bool, n)
	left := n
	last := seq + uint32(n) + 1
	buf := b.sock.buf[:]
	for left > 0 {
		got, _, err := unix.Recvfrom(b.sock.fd, buf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil, errNoAnswer
		case err != nil:
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		err = nlmsg.Each(buf[:got], func(typ, _ uint16, mseq uint32, body []byte) error {
			if typ != unix.NLMSG_ERROR || mseq-seq > last-seq {
				return nil // not an answer to this batch
			}
			if len(body) < 4 {
				return errors.New("netlink receive: short error message")
			}
			var e error
			if v := int32(binary.NativeEndian.Uint32(body[:4])); v < 0 {
				e = unix.Errno(-v)
			}
			if mseq == seq || mseq == last {
				return e // the batch's begin or end: refused whole, or an odd acknowledgement
			}
			if i := mseq - seq - 1; !answered[i] {
				answered[i], errs[i] = true, e
				left--
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return errs, nil
}
