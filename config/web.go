package config

// Web configures the web application (filled in by the web app work).
type Web struct{}

func (c *Config) validateWeb() error { return nil }
