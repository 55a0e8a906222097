package node

import (
	"bytes"
	"context"
	"fmt"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/storage"
)

// ChannelGenerated is the Source.Channel of the instances Relais builds
// itself (manifests, key-image notes, encapsulated reports). The routing
// rules do not see them: whoever builds one says where it goes, so that a
// report added to a study never makes a stable route resend the study.
const ChannelGenerated = storage.ChannelGenerated

// StoreGenerated stores a Part 10 file that Relais built (a KOS, an
// Encapsulated CDA) as an instance of its study through the ingest
// pipeline, exactly like a received one: durable, journaled, indexed, found
// by C-FIND and QIDO-RS. user is who asked for it (journaled). Storing the
// same SOP Instance UID again is a duplicate under the node's policy (the
// first one kept by default), which makes retries after a crash safe.
func (n *Node) StoreGenerated(ctx context.Context, file []byte, user string) (*ingest.Result, error) {
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(file))
	if err != nil {
		return nil, fmt.Errorf("node: generated instance: %w", err)
	}
	return n.Ingest.Store(ctx, &ingest.Request{
		Source:            storage.Source{Channel: ChannelGenerated, CalledAE: n.Config.AETitle, User: user},
		SOPClassUID:       meta.MediaStorageSOPClassUID,
		SOPInstanceUID:    meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID,
		Data:              bytes.NewReader(file[off:]),
	})
}
