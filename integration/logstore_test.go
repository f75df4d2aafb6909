package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/internal/testutil"
)

// storeFile is where a node's store of kind keeps a channel's Raft log.
func (pc *procCluster) storeFile(nd *procNode, kind string) string {
	name := "raft.db"
	if kind == "wal" {
		name = "wal"
	}
	return filepath.Join(nd.dir, "data", "channels", pc.id.String(), name)
}

// TestLogStoreKillNode runs three node processes on one kind of Raft log
// store and kills the leader with SIGKILL under load. It comes back,
// without --log-store, on the store it wrote (the kind found on disk, as
// for a data folder older than the flag), catches up, and every
// acknowledged tx is on every node. A node started with the other kind
// named refuses the channel with an error naming both and creates nothing.
// The default kind runs in every other process test (TestKillLeader kills
// its leader the same way): -short runs the other kind only.
func TestLogStoreKillNode(t *testing.T) {
	kinds := []string{"bolt", "wal"}
	if testing.Short() {
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == cluster.DefaultLogStore })
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			other := map[string]string{"bolt": "wal", "wal": "bolt"}[kind]
			t.Setenv("SCRAFT_NODE_ARGS", "--log-store "+kind)
			pc := newProcCluster(t, 3, 0)
			for _, nd := range pc.nodes {
				if _, err := os.Stat(pc.storeFile(nd, kind)); err != nil {
					t.Fatalf("node %s has no %s store: %v", nd.addr, kind, err)
				}
			}
			l := pc.startLoad(pc.nodeKeys())
			testutil.Eventually(t, 30*time.Second, "writes before the kill", func() bool { return l.count() >= 60 })
			old := pc.waitLeader(10 * time.Second)
			old.p.kill()
			before := l.count()
			pc.waitOtherLeader(old, 20*time.Second)
			testutil.Eventually(t, 30*time.Second, "writes after the kill", func() bool { return l.count() >= before+40 })

			// Asked for the other kind, the node refuses the channel.
			out, err := exec.Command(scraftBin, append(slices.Clone(old.p.args), "--log-store", other)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "a "+kind+" store") || !strings.Contains(string(out), "asked for is "+other) {
				t.Fatalf("node with --log-store %s on a %s channel: %v: %s", other, kind, err, out)
			}
			if _, err := os.Stat(pc.storeFile(old, other)); !os.IsNotExist(err) {
				t.Fatalf("a %s store was created: %v", other, err)
			}

			// Without the flag it opens what it wrote, and catches up.
			old.p.args = slices.DeleteFunc(old.p.args, func(a string) bool { return a == "--log-store" || a == kind })
			pc.restart(old)
			testutil.Eventually(t, 30*time.Second, "writes after the restart", func() bool { return l.count() >= before+80 })
			acks := l.end()
			pc.checkAcked(acks, pc.nodes, 60*time.Second)
		})
	}
}
