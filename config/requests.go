package config

import (
	"fmt"
	"time"
)

// Requests configures telemedicine requests and consent.
type Requests struct {
	// SweepInterval is how often the requests still waiting for their
	// study are matched against the index (besides every stored instance
	// as it arrives, and at start): what the hand-off dropped under load
	// is found by the next sweep. 0 means DefaultRequestSweep.
	SweepInterval Duration `yaml:"sweep_interval"`
	// Buffer is the capacity of the hand-off from ingest to the matcher
	// (instances of studies a request waits for); 0 means 4096.
	Buffer int `yaml:"buffer"`
}

// DefaultRequestSweep is the default requests.sweep_interval.
const DefaultRequestSweep = time.Minute

// Sweep returns the sweep interval with its default.
func (r Requests) Sweep() time.Duration {
	if r.SweepInterval == 0 {
		return DefaultRequestSweep
	}
	return time.Duration(r.SweepInterval)
}

func (c *Config) validateRequests() error {
	r := c.Requests
	if d := time.Duration(r.SweepInterval); d != 0 && (d < time.Second || d > 24*time.Hour) {
		return &KeyError{Key: "requests.sweep_interval", Msg: fmt.Sprintf("%s outside 1s..24h", d)}
	}
	if r.Buffer < 0 || r.Buffer > 1<<20 {
		return &KeyError{Key: "requests.buffer", Msg: fmt.Sprintf("%d outside 0..1048576", r.Buffer)}
	}
	return nil
}
