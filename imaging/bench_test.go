package imaging

import (
	"bytes"
	"io"
	"testing"
)

func benchCT(b *testing.B) *Image {
	file := fixture{rows: 512, cols: 512, ba: 16, bs: 16, pr: 1, pixels: ctPixels(512, 512, 16, false),
		slope: "1", intercept: "-1024", wc: "40", ww: "400"}.build(b)
	im, err := Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		b.Fatal(err)
	}
	return im
}

// BenchmarkRenderJPEG renders a 512×512 16-bit CT and encodes it as JPEG
// (WADO-RS /rendered).
func BenchmarkRenderJPEG(b *testing.B) {
	im := benchCT(b)
	b.ReportAllocs()
	for b.Loop() {
		img, err := im.Render(1, RenderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := Encode(io.Discard, img, MediaJPEG, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender is Render alone (window, no encoding).
func BenchmarkRender(b *testing.B) {
	im := benchCT(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := im.Render(1, RenderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThumbnail renders the CT as a 128×128 JPEG (WADO-RS /thumbnail).
func BenchmarkThumbnail(b *testing.B) {
	im := benchCT(b)
	b.ReportAllocs()
	for b.Loop() {
		img, err := im.Render(1, RenderOptions{MaxWidth: 128, MaxHeight: 128})
		if err != nil {
			b.Fatal(err)
		}
		if err := Encode(io.Discard, img, MediaJPEG, 0); err != nil {
			b.Fatal(err)
		}
	}
}
