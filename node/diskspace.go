package node

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// diskGuard tells whether the data disk has room for new instances: below
// routing.min_free_space Relais stops accepting new associations (A-ASSOCIATE-RJ,
// transient, local limit exceeded) and answers C-STOREs A700, before a
// full disk can put anything acknowledged at risk. statfs is cached for a
// second: it is called for every association and instance.
type diskGuard struct {
	dir     string
	min     uint64
	mu      sync.Mutex
	checked time.Time
	low     atomic.Bool
	free    atomic.Uint64
	statfs  func(path string, st *unix.Statfs_t) error
	warned  atomic.Bool
	onLow   func(free, min uint64)
	onClear func(free uint64)
}

func (g *diskGuard) refresh() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.min == 0 {
		return
	}
	if time.Since(g.checked) < time.Second {
		return
	}
	g.checked = time.Now()
	var st unix.Statfs_t
	stat := g.statfs
	if stat == nil {
		stat = unix.Statfs
	}
	if err := stat(g.dir, &st); err != nil {
		return // cannot tell: do not refuse on a guess
	}
	free := st.Bavail * uint64(st.Bsize)
	g.free.Store(free)
	low := free < g.min
	if low != g.low.Load() {
		g.low.Store(low)
		if low && g.onLow != nil {
			g.onLow(free, g.min)
		} else if !low && g.onClear != nil {
			g.onClear(free)
		}
	}
}

// full reports whether free space is below the minimum.
func (g *diskGuard) full() bool {
	if g == nil {
		return false
	}
	g.refresh()
	return g.low.Load()
}

// recheck forgets the cached reading (tests, and after an operator frees
// space and wants an immediate answer).
func (g *diskGuard) recheck() {
	g.mu.Lock()
	g.checked = time.Time{}
	g.mu.Unlock()
}
