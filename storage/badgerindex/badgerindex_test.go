package badgerindex

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/indextest"
)

func open(t testing.TB, dir string) *Index {
	t.Helper()
	ix, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) storage.Index { return open(t, t.TempDir()) })
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ix := open(t, dir)
	for i := 1; i <= 10; i++ {
		if err := ix.PutInstance(ctx, indextest.NewInstance("P", "1.2.3", "1.2.3.1", i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir)
	defer ix.Close()
	if seq, err := ix.AppliedSeq(ctx); err != nil || seq != 10 {
		t.Fatalf("AppliedSeq after reopen = %d, %v", seq, err)
	}
	st, err := ix.Stats(ctx)
	if err != nil || st.Instances != 10 || st.Studies != 1 {
		t.Fatalf("Stats after reopen = %+v, %v", st, err)
	}
	if _, err := ix.GetInstance(ctx, "1.2.3.1.7"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPutInstance measures one PutInstance (new instance, ~25 attrs,
// 50 instances per series, 4 series per study).
func BenchmarkPutInstance(b *testing.B) {
	ix := open(b, b.TempDir())
	defer ix.Close()
	ctx := context.Background()
	insts := make([]*storage.Instance, b.N)
	for i := range insts {
		study := fmt.Sprintf("1.2.826.0.1.3680043.2.1125.%d", i/200)
		series := fmt.Sprintf("%s.%d", study, i/50)
		insts[i] = indextest.NewInstance(fmt.Sprint("PAT", i/400), study, series, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i, in := range insts {
		if err := ix.PutInstance(ctx, in, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFootprint inserts b.N instances generated on the fly and reports
// the process' peak RSS (run with e.g. -benchtime 300000x).
func BenchmarkFootprint(b *testing.B) {
	ix := open(b, b.TempDir())
	defer ix.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		study := fmt.Sprintf("1.2.826.0.1.3680043.2.1125.%d", i/200)
		in := indextest.NewInstance(fmt.Sprint("PAT", i/400), study, fmt.Sprintf("%s.%d", study, i/50), i)
		if err := ix.PutInstance(ctx, in, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "MB-maxrss")
	}
}
