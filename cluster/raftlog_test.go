package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRaftLoggerQuietsRoutineWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := newRaftLogger(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})).Named("raft").With("channel", "x")
	l.Warn("failed to get previous log", "previous-index", 7)
	l.Log(hclog.Warn, "appendEntries rejected, sending older logs")
	if buf.Len() != 0 {
		t.Fatalf("routine warnings logged at info level:\n%s", buf.String())
	}
	l.Warn("failed to contact quorum of nodes")
	if !strings.Contains(buf.String(), "[WARN]") || !strings.Contains(buf.String(), "quorum") {
		t.Fatalf("other warnings must stay warnings:\n%s", buf.String())
	}
}
