package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPlainOutputPrintsOneLinePerTenPercent(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	b := New(&out, "gen", 1000)
	b.now = func() time.Time { return clock }
	b.start = clock
	for i := 0; i < 100; i++ {
		clock = clock.Add(10 * time.Millisecond)
		b.Add(10)
	}
	b.Finish()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Len(t, lines, 10) // 10%, 20%, ..., 100%
	assert.Contains(t, lines[len(lines)-1], "100%")
	assert.Contains(t, lines[len(lines)-1], "1.00 kB/1.00 kB  1.00 kB/s")
	assert.Contains(t, lines[4], "50%")
}

func TestNilWriterDrawsNothing(t *testing.T) {
	b := New(nil, "x", 10)
	b.Add(5)
	b.Finish()
	var nilBar *Bar
	nilBar.Add(1)
	nilBar.Finish()
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.00 kB"}, {1_500_000, "1.50 MB"}, {15_490_000_000, "15.49 GB"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, FormatBytes(tc.in))
	}
}
