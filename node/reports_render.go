package node

import (
	"github.com/relais-health/relais/cda"
	"github.com/relais-health/relais/report"
)

// The PDF rendering and level 1 documents (set when package cda has them).
var (
	renderReportPDF func(*cda.Report) ([]byte, error)
	level1Report    func(*cda.Report, []byte) ([]byte, error)
)

func (n *Node) reportDirectory() report.Directory {
	if n.directory != nil {
		return n.directory
	}
	return configDirectory{n.Config}
}
