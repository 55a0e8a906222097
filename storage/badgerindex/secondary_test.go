package badgerindex

import (
	"context"
	"fmt"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/indextest"
)

// TestSecondaryRebuild opens an index written before the secondary indices
// existed (simulated by deleting them) and checks they are rebuilt on
// first use, over more than one page of studies.
func TestSecondaryRebuild(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ix := open(t, dir)
	const studies = 600
	for i := 0; i < studies; i++ {
		in := indextest.NewInstance(fmt.Sprintf("P%d", i%7), fmt.Sprintf("1.2.%d", i), fmt.Sprintf("1.2.%d.1", i), 1)
		if err := ix.PutInstance(ctx, in, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	err := ix.DB().Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("x/")})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete([]byte("meta/xver"))
	})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix = open(t, dir)
	defer ix.Close()
	count := func(k storage.StudyKey, r storage.ValueRange) int {
		n := 0
		if err := ix.StudiesBy(ctx, k, r, func(*storage.Study) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(storage.StudyByPatientID, storage.ValueRange{Value: "P3", Exact: true}); n != (studies-3+6)/7 {
		t.Errorf("P3: %d studies, want %d", n, (studies-3+6)/7)
	}
	if n := count(storage.StudyByModality, storage.ValueRange{Value: "CT", Exact: true}); n != studies {
		t.Errorf("CT: %d studies, want %d", n, studies)
	}
	if n := count(storage.StudyByPatientName, storage.ValueRange{Value: "DOE"}); n != studies {
		t.Errorf("DOE*: %d studies, want %d", n, studies)
	}
}

// TestStudiesByCachedRecords: the decoded-study cache behind StudiesBy
// never serves a stale record, and a caller modifying what it got does not
// change what the next caller gets.
func TestStudiesByCachedRecords(t *testing.T) {
	ctx := context.Background()
	ix := open(t, t.TempDir())
	defer ix.Close()
	in := indextest.NewInstance("P1", "1.2.3", "1.2.3.1", 1)
	if err := ix.PutInstance(ctx, in, 1); err != nil {
		t.Fatal(err)
	}
	get := func() *storage.Study {
		var got *storage.Study
		err := ix.StudiesBy(ctx, storage.StudyByPatientID, storage.ValueRange{Value: "P1", Exact: true}, func(s *storage.Study) error {
			got = s
			return nil
		})
		if err != nil || got == nil {
			t.Fatalf("StudiesBy: %v %v", got, err)
		}
		return got
	}
	s := get()
	s.Attrs["00081030"] = "SCRIBBLED"
	s.Modalities[0] = "XX"
	if s2 := get(); s2.Attrs["00081030"] == "SCRIBBLED" || s2.Modalities[0] == "XX" {
		t.Fatal("a caller's changes leaked into the cache")
	}
	in2 := indextest.NewInstance("P1", "1.2.3", "1.2.3.2", 2)
	if err := ix.PutInstance(ctx, in2, 2); err != nil {
		t.Fatal(err)
	}
	if s3 := get(); s3.Instances != 2 || s3.Series != 2 {
		t.Fatalf("stale study record: %d instances, %d series", s3.Instances, s3.Series)
	}
}
