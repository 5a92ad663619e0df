package imageproc

import (
	"runtime"
	"sync"
)

// minWorkPerGoroutine is the number of multiply-adds below which splitting a
// pass across goroutines costs more than it saves.
const minWorkPerGoroutine = 1 << 17

// parallelRows calls fn on disjoint row ranges [y0, y1) covering [0, rows),
// concurrently when the work (rows × workPerRow multiply-adds) is large enough.
// Results never depend on the split: every output row is computed from the
// input alone.
func parallelRows(rows, workPerRow int, fn func(y0, y1 int)) {
	workers := runtime.GOMAXPROCS(0)
	if byWork := rows * workPerRow / minWorkPerGoroutine; byWork < workers {
		workers = byWork
	}
	if workers > rows {
		workers = rows
	}
	if workers <= 1 {
		fn(0, rows)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		y0, y1 := rows*i/workers, rows*(i+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(y0, y1)
		}()
	}
	wg.Wait()
}
