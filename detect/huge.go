package detect

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// makeTable returns a table of n zero T, allocated once as every table of
// the engine is. With huge set, a table of a huge page or more
// (hugePad) is laid out for transparent huge pages (hugePage): the
// table starts right after a huge page boundary and the allocation
// reaches past the boundary after its end, the whole span advised
// MADV_HUGEPAGE. The first touch of each huge
// page then costs one page fault instead of 512, and a fault costs
// microseconds on a virtual machine, more than the packets that cause it
// (a replay of a million packets touches a 14 MiB table: some 3,400
// faults, a fifth of its time). The padding before the table is never
// touched, so never resident; what is resident is the table rounded up
// to whole huge pages. The advice is only that: where the kernel
// refuses it (transparent huge pages "never", or none free), the table
// works as any other, in small pages.
//
// T must hold no pointers: the padding is part of one allocation the
// garbage collector would otherwise scan.
func makeTable[T any](n int, huge bool) []T {
	size := unsafe.Sizeof(*new(T))
	pad := int(hugePad(int64(n), size, huge))
	if pad == 0 {
		return make([]T, n)
	}
	all := make([]T, pad+n+pad)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(all)))
	boundary := (base + hugePage - 1) &^ (hugePage - 1)
	k := int((boundary - base + size - 1) / size)
	t := all[k : k+n : k+n]
	end := (uintptr(unsafe.Pointer(unsafe.SliceData(t))) + uintptr(n)*size + hugePage - 1) &^ (hugePage - 1)
	// a raw system call: [boundary, end) lies inside all, but no Go
	// pointer is made to it
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, boundary, end-boundary, unix.MADV_HUGEPAGE)
	return t
}

// hugePad is the padding, in elements of size bytes, that makeTable puts
// on each side of a table of n for huge pages: one huge page's worth, or
// 0 when it makes a plain allocation (not asked huge, or a table smaller
// than one huge page, which gains nothing from the layout).
func hugePad(n int64, size uintptr, huge bool) int64 {
	if !huge || n == 0 || uintptr(n)*size < hugePage {
		return 0
	}
	return int64((hugePage + size - 1) / size)
}

// tableBytes is what makeTable(n, huge) allocates for a T of size bytes.
func tableBytes(n int64, size uintptr, huge bool) int64 {
	return (n + 2*hugePad(n, size, huge)) * int64(size)
}
