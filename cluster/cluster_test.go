package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestThreeNodesCommit(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	var acked []*protocol.Outcome
	var wg sync.WaitGroup
	for i, nd := range tc.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tc.channel(nd)
			for j := 0; j < 20; j++ {
				out, err := c.Submit(ctx, tc.tx(tc.users[i], fmt.Sprintf("m%d-%d;", i, j)))
				if err != nil {
					t.Errorf("node %d submit %d: %v", i, j, err)
					return
				}
				if out.Result.Status != protocol.StatusOK {
					t.Errorf("node %d submit %d: status %s: %s", i, j, out.Result.Status, out.Message)
				}
				mu.Lock()
				acked = append(acked, out)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	tc.checkConverged(acked, 10*time.Second)

	// A tx submitted again returns its first outcome, from any node.
	tx := tc.tx(tc.users[0], "again")
	first, err := tc.channel(tc.nodes[1]).Submit(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range tc.nodes {
		again, err := tc.channel(nd).Submit(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if again.Height != first.Height || again.Digest != first.Digest {
			t.Fatalf("resubmitted tx: height %d, first at %d", again.Height, first.Height)
		}
	}
}
