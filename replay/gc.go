package replay

import (
	"runtime/debug"
	"runtime/metrics"

	"github.com/scanwarden/scanwarden/detect"
)

// gcHeadroom is what a replay may allocate beyond its engines before the
// garbage collector runs (see QuietGC): far more than the replay's own
// allocations (the alerts' output buffers, a file's reader), small next
// to a machine's memory.
const gcHeadroom = 32 << 20

// QuietGC sets the process's garbage collector for a replay of opt, and
// returns the function that puts the earlier settings back.
//
// A replay's memory is its engines' tables, allocated when each starts,
// and nothing after: packets and alerts allocate nothing. A collection
// then finds nothing to free, and costs: the first one, which the
// tables' allocation sets off, scans the globals too, gopacket's decoder
// tables among them, faulting in some 5 MiB (about 3 ms, a few percent
// of a replay of a million packets). So the collector runs only when the
// memory in use grows past what the process holds now, plus two engines
// (a replay of several files makes an engine for each; the one before is
// garbage), plus gcHeadroom: never in a replay of one file, every other
// file or so in a replay of many, whose memory stays bounded. A lower
// memory limit the process already has (GOMEMLIMIT) is kept: the
// collector then runs when the memory in use reaches it.
func QuietGC(opt Options) (restore func()) {
	limit := memoryInUse() + 2*detect.Footprint(engineConfig(opt)) + gcHeadroom
	limit = min(limit, debug.SetMemoryLimit(-1)) // -1 reads it
	oldLimit := debug.SetMemoryLimit(limit)
	oldPercent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}

// memoryInUse is the Go runtime's memory as its memory limit counts it:
// all it has mapped, less what it has given back to the kernel.
func memoryInUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	var n int64
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		n = int64(s[0].Value.Uint64() - s[1].Value.Uint64())
	}
	return n
}
