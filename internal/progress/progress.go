// Package progress draws a byte-progress bar for long writes (checkpoint generation and conversion): a
// redrawn line with rate and ETA on a terminal, and a plain line per 10% otherwise so logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar reports progress towards a total number of bytes. Safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64
	done     int64
	start    time.Time
	lastDraw time.Time
	lastStep int64 // last 10% step printed (1..10), for non-terminal output
	terminal bool
	now      func() time.Time
}

// New starts a bar. A nil writer gives a bar that draws nothing.
func New(w io.Writer, label string, total int64) *Bar {
	b := &Bar{w: w, label: label, total: total, now: time.Now}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.terminal = true
		}
	}
	b.start = b.now()
	return b
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.draw(false)
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(true)
	if b.terminal {
		fmt.Fprintln(b.w)
	}
}

func (b *Bar) draw(final bool) {
	now := b.now()
	if b.terminal {
		if !final && now.Sub(b.lastDraw) < 100*time.Millisecond {
			return
		}
		b.lastDraw = now
		fmt.Fprintf(b.w, "\r%s", b.line(now))
		return
	}
	step := int64(10)
	if b.total > 0 {
		step = b.done * 10 / b.total
	}
	if step > b.lastStep || (final && b.lastStep < 10) {
		b.lastStep = step
		fmt.Fprintln(b.w, b.line(now))
	}
}

// line renders "label [=====>    ]  45%  6.97/15.49 GB  310.2 MB/s  ETA 28s".
func (b *Bar) line(now time.Time) string {
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	elapsed := now.Sub(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	eta := "--"
	if rate > 0 && b.done < b.total {
		eta = (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%%  %s/%s  %s/s  ETA %s", b.label, bar, frac*100,
		FormatBytes(b.done), FormatBytes(b.total), FormatBytes(int64(rate)), eta)
}

// FormatBytes renders a byte count with a decimal unit: "512 B", "1.50 MB", "15.49 GB".
func FormatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
