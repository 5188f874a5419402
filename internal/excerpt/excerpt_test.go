package excerpt

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOf(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{long[:Max], long[:Max]},
		{long[:Max+1], long[:Max] + "..."},
		{long, long[:Max] + "..."},
		// a 3-byte character across the cut: kept whole or left out
		{long[:Max-1] + "€" + long, long[:Max-1] + "..."},
		{long[:Max-3] + "€" + long, long[:Max-3] + "€" + "..."},
	} {
		got := Of(tc.in)
		if got != tc.want {
			t.Errorf("Of(%d bytes) = %q, want %q", len(tc.in), got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Of(%d bytes) = %q: not valid UTF-8", len(tc.in), got)
		}
	}
}
