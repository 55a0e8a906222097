package dimse_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

// discardSink consumes the data set and answers success.
var discardSink = dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	io.Copy(io.Discard, r.Data)
	w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
})

// BenchmarkStore measures C-STORE client → server on loopback with a
// 525 KB data set (a typical CT slice), one association.
func BenchmarkStore(b *testing.B) {
	for _, maxPDU := range []uint32{16 << 10, 1 << 20} {
		b.Run(map[uint32]string{16 << 10: "pdu16K", 1 << 20: "pdu1M"}[maxPDU], func(b *testing.B) {
			srv := dimsetest.NewServer(b, &dimse.Server{AETitle: "RELAIS", Handler: newMux(discardSink), MaxPDULength: maxPDU})
			as := dial(b, srv.Addr, maxPDU)
			defer as.Release(context.Background())
			pc, _ := as.FindContext(ctImageStorage, "")
			data := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 525_000/5)
			r := bytes.NewReader(data)
			ctx := context.Background()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Reset(data)
				st, err := as.Store(ctx, pc, ctImageStorage, "1.2.3.4", r)
				if err != nil || st.Code != 0 {
					b.Fatalf("Store: %v %v", st, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
		})
	}
}
