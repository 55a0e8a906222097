package stow

import (
	"log/slog"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
)

func TestHangTmp(t *testing.T) {
	study := testdicom.UID()
	a := newCT(t, study, nil)
	b := newCT(t, study, func(c *testdicom.CT) { c.Instance = 2 })
	full := multipartBody(dcm(a.file), dcm(b.file))
	dir := t.TempDir()
	j, _ := journal.Open(filepath.Join(dir, "journal"), journal.Options{NoSync: true})
	quiet := slog.New(slog.DiscardHandler)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		body := append([]byte(nil), full...)
		for k := rng.Intn(4); k >= 0; k-- {
			switch rng.Intn(3) {
			case 0:
				body[rng.Intn(len(body))] = byte(rng.Intn(256))
			case 1:
				body = body[:rng.Intn(len(body))]
			case 2:
				x := rng.Intn(len(body))
				body = append(body[:x], body[min(len(body), x+rng.Intn(50)):]...)
			}
			if len(body) == 0 {
				break
			}
		}
		fuzzStore(t, j, quiet, study, body, i%2 == 0)
	}
}
