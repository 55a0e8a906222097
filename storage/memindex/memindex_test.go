package memindex

import (
	"testing"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/indextest"
)

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) storage.Index { return New() })
}
