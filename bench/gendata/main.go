// Command gendata writes one synthetic CT head study as DICOM Part 10 files
// (explicit VR little endian, 512x512 16-bit MONOCHROME2, ~525 KB each).
//
//	go run ./bench/gendata -out /tmp/ct -n 500
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/relais-health/relais/bench/internal/ctgen"
)

func main() {
	out := flag.String("out", "", "output directory (required; created if missing)")
	n := flag.Int("n", 500, "number of instances (slices)")
	pixrep := flag.Int("pixrep", 0, "pixel representation: 0 (unsigned, intercept -1024) or 1 (signed, intercept 0)")
	seed := flag.Uint64("seed", 1, "seed of the pixel noise (UIDs are always fresh)")
	spacing := flag.Float64("spacing", 0.5, "slice spacing and thickness in mm")
	noise := flag.Float64("noise", 6, "Gaussian noise standard deviation in HU (negative: none)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gendata: -out DIR is required")
		flag.Usage()
		os.Exit(2)
	}
	t0 := time.Now()
	paths, err := ctgen.Generate(*out, ctgen.Options{N: *n, PixelRep: *pixrep, Seed: *seed, SliceSpacing: *spacing, NoiseHU: *noise})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
	var total int64
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	fmt.Printf("wrote %d instances (%.1f MB) to %s in %v\n", len(paths), float64(total)/1e6, *out, time.Since(t0).Round(time.Millisecond))
}
