package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicomweb"
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
	n.DICOMweb.Authorize = func(w http.ResponseWriter, r *http.Request, a dicomweb.Access) (string, bool) {
		perm := auth.ReadImages
		if a == dicomweb.Store {
			perm = auth.StoreImages
		}
		if p, ok, handled := n.authorizeSession(w, r, perm); handled {
			return p.User, ok
		}
		p, err := tokens.Authorize(r, perm)
		if err != nil {
			if !errors.Is(err, auth.ErrNoToken) {
				n.Logger.Warn("DICOMweb authentication refused", "remote", r.RemoteAddr, "path", r.URL.Path, "token", auth.TokenID(bearer(r)), "user", p.User, "error", err)
			}
			auth.WriteChallenge(w, err)
			return p.User, false
		}
		return p.User, true
	}
	return nil
}

func bearer(r *http.Request) string {
	t, _ := auth.BearerToken(r)
	return t
}
