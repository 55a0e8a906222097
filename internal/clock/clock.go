// Package clock gives the node its clock: the system's, or an injected one
// that starts at a chosen instant and runs forward (RELAIS_CLOCK, for tests
// and demos: "a stroke CT at night" without waiting for the night).
package clock

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Env is the environment variable of the injected clock: an RFC 3339
// instant, e.g. 2026-11-24T03:00:00+01:00.
const Env = "RELAIS_CLOCK"

// Clock tells the time.
type Clock func() time.Time

// System is time.Now.
var System Clock = time.Now

// StartingAt returns a clock that reads start now and runs forward at the
// system clock's pace (monotonic).
func StartingAt(start time.Time) Clock {
	base := time.Now()
	return func() time.Time { return start.Add(time.Since(base)) }
}

// FromEnv returns the clock RELAIS_CLOCK asks for: (nil, zero, nil) when
// it is not set.
func FromEnv() (Clock, time.Time, error) {
	v := strings.TrimSpace(os.Getenv(Env))
	if v == "" {
		return nil, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s=%q: not an RFC 3339 instant (e.g. 2026-11-24T03:00:00+01:00): %w", Env, v, err)
	}
	return StartingAt(t), t, nil
}

// Fake is a clock tests move by hand. Safe for concurrent use.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// NewFake returns a fake clock reading t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now reads the fake clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the fake clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}
