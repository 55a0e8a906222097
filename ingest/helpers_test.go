package ingest

import (
	"context"
	"encoding/json"

	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
)

// commitRecordOnly journals an index record without a blob: tests use it to
// stand for a crash between the journal append and the blob's fsync.
func (p *Pipeline) commitRecordOnly(ctx context.Context, inst *storage.Instance) (uint64, error) {
	data, err := json.Marshal(inst)
	if err != nil {
		return 0, err
	}
	return p.Journal.Append(ctx, &journal.Event{Kind: "instance.stored", SOPInstanceUID: inst.SOPInstanceUID, Data: data})
}
