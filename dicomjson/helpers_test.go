package dicomjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
)

// scanFile scans a Part 10 file as the WADO-RS metadata path would.
func scanFile(t testing.TB, file []byte, opt dicom.ScanOptions) *dicom.ScanResult {
	t.Helper()
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	ts, ok := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		t.Fatalf("unknown syntax %s", meta.TransferSyntaxUID)
	}
	res, err := dicom.ScanWith(bytes.NewReader(file[off:]), ts, dicom.DefaultLimits(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// writeJSON runs WriteDataset and checks the output is valid JSON.
func writeJSON(t testing.TB, res *dicom.ScanResult, opt Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteDataset(&b, res, opt); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) {
		t.Fatalf("invalid JSON: %s", b.Bytes())
	}
	checkModel(t, b.Bytes())
	return b.Bytes()
}

// decode parses JSON keeping numbers as json.Number.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	return v
}

// diff compares two decoded JSON values semantically (numbers by value,
// exactly, whatever their spelling) and returns the differences found.
func diff(path string, a, b any) []string { return diffVR(path, "", a, b) }

func diffVR(path, vr string, a, b any) []string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: object vs %T", path, b)}
		}
		var out []string
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		if v, ok := x["vr"].(string); ok {
			vr = v
		}
		for _, k := range sorted {
			av, aok := x[k]
			bv, bok := y[k]
			switch {
			case !aok:
				out = append(out, fmt.Sprintf("%s/%s: only in second: %v", path, k, bv))
			case !bok:
				out = append(out, fmt.Sprintf("%s/%s: only in first: %v", path, k, av))
			default:
				out = append(out, diffVR(path+"/"+k, vr, av, bv)...)
			}
		}
		return out
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return []string{fmt.Sprintf("%s: %v vs %v", path, a, b)}
		}
		var out []string
		for i := range x {
			out = append(out, diffVR(fmt.Sprintf("%s[%d]", path, i), vr, x[i], y[i])...)
		}
		return out
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return []string{fmt.Sprintf("%s: number %v vs %T %v", path, x, b, b)}
		}
		switch vr {
		case "FL", "FD":
			// Binary floating point: equal if they denote the same value
			// in the VR's precision. dcm2json 3.6.7 prints FD with 16
			// significant digits, which does not always round-trip
			// (6.02214076e23 → 6.022140759999997e23): FD values may
			// differ by 1e-15 relatively; ours are the shortest exact form.
			bits := 64
			if vr == "FL" {
				bits = 32
			}
			fa, err1 := strconv.ParseFloat(string(x), bits)
			fb, err2 := strconv.ParseFloat(string(y), bits)
			if err1 != nil || err2 != nil || (fa != fb && (bits == 32 || math.Abs(fa-fb) > 1e-15*math.Abs(fa))) {
				return []string{fmt.Sprintf("%s: %v vs %v", path, x, y)}
			}
			return nil
		}
		fa, _, err1 := big.ParseFloat(string(x), 10, 200, big.ToNearestEven)
		fb, _, err2 := big.ParseFloat(string(y), 10, 200, big.ToNearestEven)
		if err1 != nil || err2 != nil || fa.Cmp(fb) != 0 {
			return []string{fmt.Sprintf("%s: %v vs %v", path, x, y)}
		}
		return nil
	default:
		if a != b {
			return []string{fmt.Sprintf("%s: %#v vs %#v", path, a, b)}
		}
		return nil
	}
}

func diffString(diffs []string) string { return strings.Join(diffs, "\n") }
