package node

import (
	"context"
	"fmt"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/kos"
	"github.com/relais-health/relais/manifest"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
)

// openManifests sets up KOS manifests and key-image notes: the service
// over the node's index and ingest pipeline, its HTTP API under
// /api/studies/ and, when routing runs, the builder of routes with kos:
// true. Call after openRouting and openDICOMweb.
func (n *Node) openManifests() error {
	svc := n.manifestService()
	n.mountAPI(manifest.PathPrefix, svc.Handler(n.authorizeStudy))
	if n.routing != nil {
		r := n.routing
		n.routing.Engine.SetManifestBuilder(func(ctx context.Context, rq routing.ManifestRequest) error {
			return routeManifest(ctx, svc, r, rq)
		})
	}
	return nil
}

// manifestService builds the manifest service of the node.
func (n *Node) manifestService() *manifest.Service {
	cfg := n.Config
	return &manifest.Service{
		Index: n.Index, Blobs: n.Blobs, Store: n.StoreGenerated,
		Retrieve: kos.Retrieve{AETitle: cfg.AETitle, LocationUID: RetrieveLocationUID(cfg.AETitle), WADOBase: n.publicDICOMwebBase()},
		Journal:  n.Journal, Logger: n.Logger, Complete: n.completeManifest,
	}
}

// completeManifest adds the requesting site's issuers (sites, from the
// calling AE or STOW-RS user that sent the images, and its organisation's
// OIDs) where the images do not carry them: the Issuer of Patient ID
// Qualifiers of the local patient id and the Issuer of Accession Number.
// Nothing else is changed (an INS is only ever what the images say).
func (n *Node) completeManifest(m *kos.Manifest, insts []*storage.Instance) {
	cfg := n.Config
	var org config.Organisation
	found := false
	for _, in := range insts {
		if _, site, ok := cfg.SiteFor(in.Source.CallingAE, in.Source.User); ok {
			org, found = cfg.Organisations[site.Organisation]
			break
		}
	}
	if !found {
		return
	}
	if m.Patient.ID != "" && m.Patient.Qualifiers.UniversalEntityID == "" && config.ValidOID(org.PatientIDOID) {
		m.Patient.Qualifiers = kos.Issuer{UniversalEntityID: org.PatientIDOID, UniversalEntityIDType: "ISO"}
	}
	if m.Study.AccessionNumber != "" && m.Study.AccessionIssuer == (kos.Issuer{}) && config.ValidOID(org.AccessionOID) {
		m.Study.AccessionIssuer = kos.Issuer{UniversalEntityID: org.AccessionOID, UniversalEntityIDType: "ISO"}
	}
}

// RetrieveLocationUID is the Retrieve Location UID (0040,E011) written in
// the node's manifests: the XDS-I.b Imaging Document Source's repository
// id, derived from the node's AE title so that it is stable across
// restarts and the same for every manifest of the node.
func RetrieveLocationUID(aeTitle string) string {
	return manifest.HashUID("relais retrieve location\x00" + aeTitle)
}

// routeManifest is the routing engine's manifest builder: build and store
// the study's manifest, then queue it to the route's destinations (task
// IDs derived from the route, destinations and manifest: put-if-absent, so
// a retry queues nothing twice) and wake their workers.
func routeManifest(ctx context.Context, svc *manifest.Service, r *nodeRouting, rq routing.ManifestRequest) error {
	route, study, forward := rq.Route, rq.Study, rq.Forward
	res, err := svc.StudyManifest(ctx, study, "route:"+route)
	if err != nil {
		return err
	}
	p, err := queue.ParsePriority(rq.Priority)
	if err != nil {
		p = queue.Routine
	}
	var tasks []queue.Task
	for _, f := range forward {
		dests := append([]string{f}, rq.Failover...)
		tasks = append(tasks, queue.Task{ID: routing.TaskID(route, dests, res.SOPInstanceUID, "kos"), Route: route, Priority: p,
			Destinations: dests, StudyUID: study, SeriesUID: res.SeriesInstanceUID, SOPInstanceUID: res.SOPInstanceUID, Coerce: rq.Coerce})
	}
	if len(tasks) == 0 {
		return nil
	}
	if _, err := r.Queue.Enqueue(ctx, tasks, nil); err != nil {
		return fmt.Errorf("queueing manifest %s: %w", res.SOPInstanceUID, err)
	}
	if r.Dispatcher != nil {
		for _, f := range forward {
			r.Dispatcher.Notify(f)
		}
	}
	return nil
}
