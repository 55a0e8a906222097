package config

// Worklist configures the reading worklist (filled in by the worklist work).
type Worklist struct{}

func (c *Config) validateWorklist() error { return nil }
