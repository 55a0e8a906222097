package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicomweb"
	"github.com/relais-health/relais/storage"
)

// openDICOMweb builds the DICOMweb server over the node's storage and its
// access check: Bearer tokens from the data directory's token store
// (http.auth: token) or nobody checked at all (http.auth: none, warned
// about at every start).
func (n *Node) openDICOMweb() error {
	cfg := n.Config
	n.DICOMweb = &dicomweb.Server{
		Index: n.Index, Blobs: n.Blobs, Ingest: n.Ingest, Journal: n.Journal, Logger: n.Logger,
		PublicURL: cfg.HTTP.PublicURL, AllowedOrigins: cfg.HTTP.CORS.AllowedOrigins,
		CORSMaxAge: time.Duration(cfg.HTTP.CORS.MaxAge), MaxResults: cfg.Limits.MaxFindResults,
		MaxSTOWSize: int64(cfg.HTTP.MaxSTOWSize),
	}
	n.DICOMweb.Full = n.disk.full
	n.DICOMweb.Metrics = dicomweb.NewMetrics()
	n.DICOMweb.Metrics.Register(n.Metrics.Registry)
	if cfg.HTTP.Auth == config.AuthNone {
		return nil
	}
	tokens, err := auth.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	n.Tokens = tokens
	n.DICOMweb.Authorize = func(w http.ResponseWriter, r *http.Request, a dicomweb.Access) (dicomweb.Principal, bool) {
		perm := auth.ReadImages
		if a == dicomweb.Store {
			perm = auth.StoreImages
		}
		if p, ok, handled := n.authorizeSession(w, r, perm); handled {
			return dicomweb.Principal{User: p.User, Study: n.studyScope(p)}, ok
		}
		p, err := tokens.Authorize(r, perm)
		if err != nil {
			if !errors.Is(err, auth.ErrNoToken) {
				n.Logger.Warn("DICOMweb authentication refused", "remote", r.RemoteAddr, "path", r.URL.Path, "token", auth.TokenID(bearer(r)), "user", p.User, "error", err)
			}
			auth.WriteChallenge(w, err)
			return dicomweb.Principal{User: p.User}, false
		}
		return dicomweb.Principal{User: p.User, Study: n.studyScope(p)}, true
	}
	return nil
}

func bearer(r *http.Request) string {
	t, _ := auth.BearerToken(r)
	return t
}

// studyScope says which studies p may see: a requester those its site
// sent (the site whose users list it, in the directory); every other role
// all of them (nil).
func (n *Node) studyScope(p auth.Principal) func(study string) bool {
	if p.Role != auth.RoleRequester {
		return nil
	}
	site, _, ok := n.directory.SiteFor("", p.User)
	if !ok {
		return func(string) bool { return false }
	}
	return func(study string) bool { return n.StudySite(study) == site }
}

var errStudySiteFound = errors.New("found")

// studySiteTTL bounds how long a study's site is remembered (the
// directory can change through its API).
const studySiteTTL = time.Minute

// maxStudySites bounds the StudySite cache.
const maxStudySites = 100_000

type studySite struct {
	site string
	at   time.Time
}

// StudySite returns the site a study came from: the site of the calling AE
// or STOW-RS user of one of its images ("" when none matches). A study
// comes from one sender; the first image the index yields is enough (the
// scan stops there, so a requester's search over many studies stays cheap).
func (n *Node) StudySite(study string) string {
	if v, ok := n.studySites.Load(study); ok && time.Since(v.(studySite).at) < studySiteTTL {
		return v.(studySite).site
	}
	var first *storage.Instance
	n.Index.StudyInstances(context.Background(), study, func(in *storage.Instance) error {
		if in.Source.Channel == storage.ChannelGenerated {
			return nil
		}
		first = in
		return errStudySiteFound
	})
	site := ""
	if first != nil {
		site, _, _ = n.directory.SiteFor(first.Source.CallingAE, first.Source.User)
	}
	if _, loaded := n.studySites.Swap(study, studySite{site, time.Now()}); !loaded && n.studySiteCount.Add(1) > maxStudySites {
		// Bounded: a requester's searches over a large archive must not
		// grow the cache for ever; dropping it only costs index reads.
		n.studySites.Clear()
		n.studySiteCount.Store(0)
	}
	return site
}
