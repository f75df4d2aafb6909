package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

func TestFailoverLeaderStops(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 3, nil)
	old := tc.waitLeader(10 * time.Second)
	_, epoch0, _ := tc.channel(old).view.current()

	stop := make(chan struct{})
	done := make(chan struct{})
	followers := []*testNode{}
	for _, nd := range tc.nodes {
		if nd != old {
			followers = append(followers, nd)
		}
	}
	go func() {
		defer close(done)
		out := tc.load(stop, tc.users[3:], func(i int) *testNode { return followers[i%2] })
		tc.mu.Lock()
		tc.acked = out
		tc.mu.Unlock()
	}()
	// Let some writes through, then stop the leader.
	testutil.Eventually(t, 10*time.Second, "writes before the fault", func() bool {
		return tc.channel(old).Status().Height >= 20
	})
	start := time.Now()
	tc.stopNode(old)
	nl := tc.waitLeader(10 * time.Second)
	h := tc.channel(nl).Status().Height
	testutil.Eventually(t, 10*time.Second, "writes after the failover", func() bool {
		return tc.channel(nl).Status().Height >= h+20
	})
	t.Logf("failover: new leader writing %s after the stop", time.Since(start))
	close(stop)
	<-done
	if _, epoch, _ := tc.channel(nl).view.current(); epoch <= epoch0 {
		t.Fatalf("epoch %d after failover, was %d", epoch, epoch0)
	}
	tc.checkConverged(tc.acked, 10*time.Second)

	// The old leader comes back with its data and catches up.
	tc.restartNode(old)
	tc.checkConverged(tc.acked, 20*time.Second)
}

func TestIsolatedLeaderIsFenced(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 2, nil)
	old := tc.waitLeader(10 * time.Second)
	var followers []*testNode
	for _, nd := range tc.nodes {
		if nd != old {
			followers = append(followers, nd)
		}
	}
	stop := make(chan struct{})
	done := make(chan []*protocol.Outcome)
	go func() { done <- tc.load(stop, tc.users[3:], func(i int) *testNode { return followers[i%2] }) }()
	testutil.Eventually(t, 10*time.Second, "writes before the fault", func() bool {
		return tc.channel(old).Status().Height >= 20
	})

	tc.faults.Isolate(old.addr)
	nl := tc.waitOtherLeader(old, 10*time.Second)
	// The old leader cannot commit: it is cut from the quorum and the chain
	// gave the next epoch to another member.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := tc.channel(old).Submit(ctx, tc.tx(old.key, "from the isolated leader"))
	cancel()
	if err == nil {
		t.Fatal("the isolated old leader committed a tx")
	}
	h := tc.channel(nl).Status().Height
	testutil.Eventually(t, 10*time.Second, "writes after the failover", func() bool {
		return tc.channel(nl).Status().Height >= h+20
	})
	tc.faults.Heal()
	close(stop)
	acked := <-done
	tc.checkConverged(acked, 20*time.Second)
	if st := tc.channel(old).Status(); st.Evidence != 0 {
		t.Fatalf("old leader recorded %d pieces of evidence", st.Evidence)
	}
}

func TestChaosDropsAndDelays(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	tc := newTestClusterUsers(t, 3, 3, nil)
	stop := make(chan struct{})
	done := make(chan []*protocol.Outcome)
	go func() { done <- tc.load(stop, tc.users[3:], func(i int) *testNode { return tc.nodes[i%3] }) }()
	l := tc.waitLeader(10 * time.Second)
	for _, f := range []struct {
		name  string
		apply func()
	}{
		{"drop 5%", func() { tc.faults.SetDrop(0.05) }},
		{"delay 5ms", func() { tc.faults.SetDelay(5 * time.Millisecond) }},
		{"partition one follower", func() {
			for _, nd := range tc.nodes {
				if nd != l {
					tc.faults.Isolate(nd.addr)
					return
				}
			}
		}},
	} {
		t.Log("fault:", f.name)
		f.apply()
		l = tc.waitLeader(10 * time.Second)
		h := tc.channel(l).Status().Height
		testutil.Eventually(t, 20*time.Second, "writes under "+f.name, func() bool {
			l = tc.waitLeader(10 * time.Second)
			return tc.channel(l).Status().Height >= h+30
		})
		tc.faults.Heal()
	}
	close(stop)
	tc.checkConverged(<-done, 20*time.Second)
}
