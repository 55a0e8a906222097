package node

import (
	"context"
	"path/filepath"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/telerequest"
)

// openRequests opens the request store (DATA/requests), mounts the API
// (/api/requests), chains the matcher to ingest (every durable instance is
// offered to the requests waiting for their study, without blocking
// ingest) and runs the matcher with its periodic sweep until Close.
func (n *Node) openRequests() error {
	st, err := telerequest.OpenStore(filepath.Join(n.Config.DataDir, "requests"))
	if err != nil {
		return err
	}
	d := telerequest.Deps{Store: st, Index: n.Index, Directory: n.directory, Journal: n.Journal, Logger: n.Logger, Buffer: n.Config.Requests.Buffer}
	svc := telerequest.New(d)
	n.requests = svc
	n.mountAPI(telerequest.PathPrefix, svc.Handler(n.Authorize))
	if n.Ingest != nil {
		prev := n.Ingest.OnDurable
		n.Ingest.OnDurable = func(inst *storage.Instance, kind string, seq uint64) {
			if prev != nil {
				prev(inst, kind, seq)
			}
			svc.OnInstance(inst)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx, n.Config.Requests.Sweep())
	}()
	n.closers = append(n.closers, func() error {
		cancel()
		<-done
		return nil
	})
	return nil
}

// Requests returns the telemedicine request workflow (nil before Open).
// The report workflow marks a study's requests reported with
// Requests().MarkReported when its report is signed.
func (n *Node) Requests() *telerequest.Service { return n.requests }
