package cluster

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDataDirLocked: a second node on a data directory in use is refused
// with the holder's pid, and gets it once the first closes.
func TestDataDirLocked(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	nd := tc.nodes[0]
	_, err := NewNode(nd.cfg)
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second node on %s: %v, want ErrDataDirInUse", nd.cfg.DataDir, err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error does not name the holder: %v", err)
	}
	tc.stopNode(nd)
	n, err := NewNode(nd.cfg)
	if err != nil {
		t.Fatalf("node on a released data directory: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
