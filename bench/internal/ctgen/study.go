package ctgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Size is the image matrix (rows = columns).
const Size = 512

// Options describe the study to generate.
type Options struct {
	N            int     // number of instances (slices)
	PixelRep     int     // 0: unsigned, intercept -1024; 1: signed, intercept 0
	Seed         uint64  // pixel noise seed (UIDs are always random)
	SliceSpacing float64 // mm between slices; 0 means 0.5 mm
	NoiseHU      float64 // standard deviation of the Gaussian noise in HU; <0 means none
}

// ellipsoid is one region of the head phantom, in normalised coordinates:
// x (patient left), y (posterior) in [-1,1] across the field of view, z
// (superior) in [-1,1] across the study. Later ellipsoids overwrite earlier ones.
type ellipsoid struct {
	cx, cy, cz float64
	a, b, c    float64 // semi-axes
	theta      float64 // rotation in the axial plane, degrees
	hu         float64
}

// phantom is a loosely Shepp-Logan-like head: scalp, skull, brain, white
// matter, ventricles, a sinus, a calcification and a small haemorrhage.
var phantom = []ellipsoid{
	{0, 0, 0, 0.74, 0.92, 0.97, 0, 30},             // scalp / soft tissue
	{0, 0, 0, 0.70, 0.88, 0.93, 0, 1100},           // skull
	{0, 0.01, 0, 0.65, 0.83, 0.88, 0, 38},          // grey matter
	{0, 0.02, 0.1, 0.50, 0.66, 0.62, 0, 27},        // white matter
	{-0.11, 0.05, 0.12, 0.06, 0.24, 0.28, -18, 6},  // left lateral ventricle
	{0.11, 0.05, 0.12, 0.06, 0.24, 0.28, 18, 6},    // right lateral ventricle
	{0, 0.02, -0.05, 0.025, 0.07, 0.10, 0, 6},      // third ventricle
	{0, -0.84, -0.45, 0.14, 0.045, 0.16, 0, -950},  // frontal sinus (air)
	{0, 0.30, 0.10, 0.018, 0.018, 0.03, 0, 320},    // pineal calcification
	{-0.32, -0.28, 0.32, 0.07, 0.10, 0.09, 25, 72}, // haemorrhage
	{0.38, 0.20, -0.20, 0.10, 0.08, 0.12, 0, 18},   // hypodense lesion
}

// section is the cross-section of an ellipsoid with one axial plane.
type section struct {
	cx, cy, a2inv, b2inv, cos, sin, hu float64
}

func sections(z float64) []section {
	var out []section
	for _, e := range phantom {
		dz := (z - e.cz) / e.c
		s := 1 - dz*dz
		if s <= 0 {
			continue
		}
		k := math.Sqrt(s)
		a, b := e.a*k, e.b*k
		t := e.theta * math.Pi / 180
		out = append(out, section{e.cx, e.cy, 1 / (a * a), 1 / (b * b), math.Cos(t), math.Sin(t), e.hu})
	}
	return out
}

// Slice renders slice i of n as stored pixel values (little endian 16-bit).
func Slice(o Options, i int, buf []byte) {
	z := 1 - 2*(float64(i)+0.5)/float64(o.N) // first slice is the most superior
	secs := sections(z)
	rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
	noise := o.NoiseHU
	if noise == 0 {
		noise = 6
	}
	for r := 0; r < Size; r++ {
		y := 2*(float64(r)+0.5)/Size - 1
		for c := 0; c < Size; c++ {
			x := 2*(float64(c)+0.5)/Size - 1
			hu := -1000.0
			for _, s := range secs {
				dx, dy := x-s.cx, y-s.cy
				u := dx*s.cos + dy*s.sin
				v := -dx*s.sin + dy*s.cos
				if u*u*s.a2inv+v*v*s.b2inv <= 1 {
					hu = s.hu
				}
			}
			if noise > 0 {
				hu += rng.NormFloat64() * noise
			}
			var px uint16
			if o.PixelRep == 1 {
				v := math.Round(hu) // intercept 0
				v = math.Max(-2048, math.Min(2047, v))
				px = uint16(int16(v)) // sign-extended into 16 bits
			} else {
				v := math.Round(hu + 1024) // intercept -1024
				v = math.Max(0, math.Min(4095, v))
				px = uint16(v)
			}
			binary.LittleEndian.PutUint16(buf[2*(r*Size+c):], px)
		}
	}
}

// ds formats a decimal string value (at most 16 characters).
func ds(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if len(s) > 16 {
		s = strconv.FormatFloat(v, 'g', 10, 64)
	}
	return s
}

// Generate writes o.N files named CT000001.dcm... into dir (created if needed)
// and returns their paths in instance order.
func Generate(dir string, o Options) ([]string, error) {
	if o.N <= 0 {
		return nil, fmt.Errorf("n must be positive")
	}
	if o.PixelRep != 0 && o.PixelRep != 1 {
		return nil, fmt.Errorf("pixel representation must be 0 or 1")
	}
	if o.SliceSpacing == 0 {
		o.SliceSpacing = 0.5
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now()
	date, tm := now.Format("20060102"), now.Format("150405")
	study, series, frame := NewUID(), NewUID(), NewUID()
	intercept := "-1024"
	if o.PixelRep == 1 {
		intercept = "0"
	}
	const fov = 250.0 // mm
	pixel := fov / Size
	common := []Element{
		Str(0x00080005, "CS", "ISO_IR 100"),
		Str(0x00080008, "CS", "ORIGINAL", "PRIMARY", "AXIAL"),
		Str(0x00080012, "DA", date),
		Str(0x00080013, "TM", tm),
		Str(0x00080016, "UI", CTImageStorage),
		Str(0x00080020, "DA", date),
		Str(0x00080021, "DA", date),
		Str(0x00080022, "DA", date),
		Str(0x00080023, "DA", date),
		Str(0x00080030, "TM", tm),
		Str(0x00080031, "TM", tm),
		Str(0x00080032, "TM", tm),
		Str(0x00080033, "TM", tm),
		Str(0x00080050, "SH", "BENCH"+date),
		Str(0x00080060, "CS", "CT"),
		Str(0x00080070, "LO", "Relais Bench"),
		Str(0x00080080, "LO", "Synthetic Hospital"),
		Str(0x00080090, "PN", ""),
		Str(0x00081030, "LO", "CT HEAD WITHOUT CONTRAST"),
		Str(0x0008103E, "LO", "AXIAL BRAIN 0.5"),
		Str(0x00081090, "LO", "Synthetic Phantom"),
		Str(0x00100010, "PN", "BENCH^SYNTHETIC^HEAD"),
		Str(0x00100020, "LO", "BENCH0001"),
		Str(0x00100030, "DA", "19700101"),
		Str(0x00100040, "CS", "O"),
		Str(0x00180015, "CS", "HEAD"),
		Str(0x00180050, "DS", ds(o.SliceSpacing)),
		Str(0x00180060, "DS", "120"),
		Str(0x00181020, "LO", "relais-bench-gendata"),
		Str(0x00181100, "DS", ds(fov)),
		Str(0x00185100, "CS", "HFS"),
		Str(0x0020000D, "UI", study),
		Str(0x0020000E, "UI", series),
		Str(0x00200010, "SH", "1"),
		Str(0x00200011, "IS", "2"),
		Str(0x00200012, "IS", "1"),
		Str(0x00200037, "DS", "1", "0", "0", "0", "1", "0"),
		Str(0x00200052, "UI", frame),
		Str(0x00201040, "LO", ""),
		US(0x00280002, 1),
		Str(0x00280004, "CS", "MONOCHROME2"),
		US(0x00280010, Size),
		US(0x00280011, Size),
		Str(0x00280030, "DS", ds(pixel), ds(pixel)),
		US(0x00280100, 16),
		US(0x00280101, 12),
		US(0x00280102, 11),
		US(0x00280103, uint16(o.PixelRep)),
		Str(0x00281050, "DS", "40"),
		Str(0x00281051, "DS", "80"),
		Str(0x00281052, "DS", intercept),
		Str(0x00281053, "DS", "1"),
	}
	paths := make([]string, o.N)
	jobs := make(chan int)
	errs := make(chan error, o.N)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, Size*Size*2)
			for i := range jobs {
				Slice(o, i, buf)
				zpos := 0 - float64(i)*o.SliceSpacing // not -x: that would print "-0"
				sop := NewUID()
				elems := append([]Element(nil), common...)
				elems = append(elems,
					Str(0x00080018, "UI", sop),
					Str(0x00200013, "IS", strconv.Itoa(i+1)),
					Str(0x00200032, "DS", ds(-fov/2+pixel/2), ds(-fov/2+pixel/2), ds(zpos)),
					Str(0x00201041, "DS", ds(zpos)),
					Bytes(0x7FE00010, "OW", buf),
				)
				p := filepath.Join(dir, fmt.Sprintf("CT%06d.dcm", i+1))
				paths[i] = p
				errs <- writeFile(p, sop, elems)
			}
		}()
	}
	for i := 0; i < o.N; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func writeFile(path, sop string, elems []Element) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WritePart10(f, CTImageStorage, sop, elems); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
