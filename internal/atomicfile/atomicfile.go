// Package atomicfile replaces small files atomically and durably: the
// stores that keep one JSON record per file (reports, requests, the
// directory, UPS subscriptions) must leave after a crash either the old
// content or the new one, never a torn file, and never lose an
// acknowledged change.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces dir/name with b: a temporary file in dir is written,
// fsynced, given perm and renamed over name, then dir is fsynced so the
// rename itself survives a crash. On error the old file is left as it was.
func Write(dir, name string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("atomicfile: write %s: %w", filepath.Join(dir, name), err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory (after creating, renaming or removing an
// entry in it).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", dir, err)
	}
	return nil
}
