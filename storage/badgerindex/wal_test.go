package badgerindex

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/blobtest"
	"github.com/relais-health/relais/storage/fsblob"
	"github.com/relais-health/relais/storage/indextest"
)

// TestJournalIsTheWAL runs the protocol the ingest follows (see the storage
// package comment): blob Commit + durable journal append, then an unsynced
// index write; after a "crash" that lost index writes, replaying the
// journal from AppliedSeq restores the index, skipping blobs that are
// missing or torn (never acknowledged).
func TestJournalIsTheWAL(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	blobs, err := fsblob.New(filepath.Join(root, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(filepath.Join(root, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix := open(t, filepath.Join(root, "index"))

	store := func(n int, applyIndex bool) *storage.Instance {
		inst := indextest.NewInstance("P1", "1.2.3", "1.2.3.1", n)
		data := blobtest.Payload(int64(n), 4096+n)
		inst.Size = int64(len(data))
		blobtest.Put(t, blobs, inst.BlobKey, data)
		rec, _ := json.Marshal(inst)
		seq, err := j.Append(ctx, &journal.Event{Kind: "instance.stored", StudyUID: inst.StudyInstanceUID, SOPInstanceUID: inst.SOPInstanceUID, Data: rec})
		if err != nil {
			t.Fatal(err)
		}
		if applyIndex {
			if err := ix.PutInstance(ctx, inst, seq); err != nil {
				t.Fatal(err)
			}
		}
		return inst
	}
	for n := 1; n <= 5; n++ {
		store(n, true)
	}
	for n := 6; n <= 9; n++ {
		store(n, false) // acknowledged, but the index write was lost
	}
	// A torn blob: journaled with a size its file does not have.
	torn := indextest.NewInstance("P1", "1.2.3", "1.2.3.1", 10)
	torn.Size = 999999
	blobtest.Put(t, blobs, torn.BlobKey, []byte("short"))
	rec, _ := json.Marshal(torn)
	if _, err := j.Append(ctx, &journal.Event{Kind: "instance.stored", Data: rec}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	ix.Close()

	// Restart: replay.
	j, err = journal.Open(filepath.Join(root, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ix = open(t, filepath.Join(root, "index"))
	defer ix.Close()
	from, err := ix.AppliedSeq(ctx)
	if err != nil || from != 5 {
		t.Fatalf("AppliedSeq = %d, %v", from, err)
	}
	replayed, skipped := 0, 0
	err = j.Replay(ctx, from, func(ev *journal.Event) error {
		if ev.Kind != "instance.stored" {
			return nil
		}
		var inst storage.Instance
		if err := json.Unmarshal(ev.Data, &inst); err != nil {
			return err
		}
		size, err := blobs.Stat(ctx, inst.BlobKey)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && size != inst.Size) {
			skipped++
			return nil
		}
		if err != nil {
			return err
		}
		replayed++
		return ix.PutInstance(ctx, &inst, ev.Seq)
	})
	if err != nil {
		t.Fatal(err)
	}
	if replayed != 4 || skipped != 1 {
		t.Fatalf("replayed %d, skipped %d", replayed, skipped)
	}
	st, _ := ix.Stats(ctx)
	if st.Instances != 9 {
		t.Fatalf("instances after replay: %d", st.Instances)
	}
	// Replaying everything again is harmless (idempotent).
	j.Replay(ctx, 0, func(ev *journal.Event) error {
		var inst storage.Instance
		json.Unmarshal(ev.Data, &inst)
		if inst.SOPInstanceUID == torn.SOPInstanceUID {
			return nil
		}
		return ix.PutInstance(ctx, &inst, ev.Seq)
	})
	if st2, _ := ix.Stats(ctx); st2 != st {
		t.Fatalf("stats changed by a second replay: %+v → %+v", st, st2)
	}
}
