package node

import (
	"context"
	"net"
	"strings"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dimse"
)

// MayQueryRetrieve reports whether the association's peer may run C-FIND,
// C-MOVE or C-GET: a configured query/retrieve caller from one of its
// hosts, or any peer on loopback when that is allowed (the default). Images
// and identities leave Relais only through this check; the refusal status
// is 0124 (not authorized) and is journaled by the caller.
func (n *Node) MayQueryRetrieve(ctx context.Context, a *dimse.AssociationInfo) bool {
	if a == nil {
		return false
	}
	ip := hostOf(a.RemoteAddr)
	if n.Config.DICOM.QueryRetrieveLoopback && ip != nil && ip.IsLoopback() {
		return true
	}
	return callerAllowed(ctx, n.Config.DICOM.QueryRetrieveCallers, strings.TrimSpace(a.CallingAE), ip)
}

func callerAllowed(ctx context.Context, callers []config.Caller, ae string, ip net.IP) bool {
	for _, c := range callers {
		if c.AE != ae {
			continue
		}
		if len(c.Hosts) == 0 || hostAllowed(ctx, ip, c.Hosts) {
			return true
		}
	}
	return false
}
