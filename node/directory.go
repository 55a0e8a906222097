package node

import "github.com/relais-health/relais/directory"

// openDirectory opens the directory of organisations, professionals and
// sites (the configuration's plus the API's, DATA/directory) and mounts its
// API under /api/directory.
func (n *Node) openDirectory() error {
	d, err := directory.Open(n.Config.DataDir, n.Config, n.Journal)
	if err != nil {
		return err
	}
	n.directory = d
	n.mountAPI(directory.PathPrefix, d.Handler(n.Authorize))
	return nil
}

// Directory returns who is who: organisations, professionals and sites,
// as configured and changed through the API. Use it rather than the
// configuration's maps, which do not see the API's changes.
func (n *Node) Directory() *directory.Directory { return n.directory }
