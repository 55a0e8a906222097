package node

import (
	"github.com/relais-health/relais/cda"
	"github.com/relais-health/relais/report"
)

// The PDF rendering and the level 1 document (PDF body) of reports.
var (
	renderReportPDF = cda.PDF
	level1Report    = cda.Level1
)

func (n *Node) reportDirectory() report.Directory {
	if n.directory != nil {
		return n.directory
	}
	return configDirectory{n.Config}
}
