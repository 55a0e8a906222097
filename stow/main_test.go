package stow

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps the expected refusal warnings of the pipeline and of Store
// out of the test output (set STOW_TEST_LOG=1 to see them).
func TestMain(m *testing.M) {
	if os.Getenv("STOW_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	}
	os.Exit(m.Run())
}
