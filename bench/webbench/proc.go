package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"github.com/relais-health/relais/bench/internal/machine"
	"golang.org/x/sys/unix"
)

// vmHWM is machine.PeakRSS.
func vmHWM(pid int) int64 { return machine.PeakRSS(pid) }

// resetHWM sets VmHWM back to the current RSS (Linux ≥ 4.0: "5" in
// /proc/PID/clear_refs), so the next vmHWM is the peak of what follows.
// It reports whether the kernel accepted it.
func resetHWM(pid int) bool {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// cpuTicks is the utime+stime of pid in clock ticks, or -1.
func cpuTicks(pid int) int64 { return machine.CPUTicks(pid, false) }

// evict drops the clean page-cache pages of every regular file under dir
// (posix_fadvise DONTNEED): the next read of those files goes to the disk.
// Unlike writing /proc/sys/vm/drop_caches it touches only these files, so
// other work on the machine keeps its cache. Dirty pages are written back
// first (fdatasync) or they would stay. Returns the bytes of the files.
func evict(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil // a file removed meanwhile (Badger, SQLite journal)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			total += st.Size()
		}
		_ = unix.Fdatasync(int(f.Fd()))
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	return total, err
}

// cachedBytes returns how many bytes of the regular files under dir are in
// the page cache (mincore over a read-only mapping), to check evict.
func cachedBytes(dir string) int64 {
	var total int64
	page := int64(os.Getpagesize())
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			return nil
		}
		m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil
		}
		defer unix.Munmap(m)
		vec := make([]byte, (st.Size()+page-1)/page)
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return nil
		}
		for _, v := range vec {
			if v&1 != 0 {
				total += page
			}
		}
		return nil
	})
	return total
}
