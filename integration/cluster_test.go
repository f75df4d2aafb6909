package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// nodeKeys returns the members that run the nodes. Failover tests send
// their load with these keys: a member that runs no node stays valid on
// chain for 15 s after its last heartbeat and cannot attest, so right after
// such members join, a claim's fast path lacks their 2/3.
func (pc *procCluster) nodeKeys() []*protocol.Key {
	var out []*protocol.Key
	for _, nd := range pc.nodes {
		out = append(out, nd.key)
	}
	return out
}

// others returns the nodes but skip.
func (pc *procCluster) others(skip *procNode) []*procNode {
	var out []*procNode
	for _, nd := range pc.nodes {
		if nd != skip {
			out = append(out, nd)
		}
	}
	return out
}

// TestKillLeader kills the leader process with SIGKILL under load: writes
// resume on a new leader, and no acknowledged tx is lost.
func TestKillLeader(t *testing.T) {
	pc := newProcCluster(t, 3, 0)
	l := pc.startLoad(pc.nodeKeys())
	testutil.Eventually(t, 30*time.Second, "writes before the kill", func() bool { return l.count() >= 40 })

	old := pc.waitLeader(10 * time.Second)
	killedAt := time.Now()
	old.p.kill()
	before := l.count()
	nl := pc.waitOtherLeader(old, 20*time.Second)
	testutil.Eventually(t, 30*time.Second, "writes after the kill", func() bool { return l.count() >= before+40 })
	var resumed time.Time
	l.mu.Lock()
	for _, a := range l.acks {
		if a.sent.After(killedAt) && (resumed.IsZero() || a.at.Before(resumed)) {
			resumed = a.at
		}
	}
	l.mu.Unlock()
	t.Logf("leader killed; new leader %s; first write acknowledged %s after the kill", nl.addr, resumed.Sub(killedAt))
	acks := l.end()
	pc.checkAcked(acks, pc.others(old), 30*time.Second)

	// The killed node comes back with its data and catches up.
	pc.restart(old)
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
}

// TestIsolatedLeaderCannotCommit stops the leader process (SIGSTOP): the
// others elect and claim a new epoch; when the old leader wakes it cannot
// commit anything of its own and follows.
func TestIsolatedLeaderCannotCommit(t *testing.T) {
	pc := newProcCluster(t, 3, 0)
	l := pc.startLoad(pc.nodeKeys())
	testutil.Eventually(t, 30*time.Second, "writes before the fault", func() bool { return l.count() >= 30 })
	old := pc.waitLeader(10 * time.Second)
	st0, err := old.status(pc.id)
	if err != nil {
		t.Fatal(err)
	}
	old.p.signal(syscall.SIGSTOP)
	nl := pc.waitOtherLeader(old, 20*time.Second)
	st1, err := nl.status(pc.id)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Epoch <= st0.Epoch {
		t.Fatalf("new leader in epoch %d, old in %d", st1.Epoch, st0.Epoch)
	}
	before := l.count()
	testutil.Eventually(t, 30*time.Second, "writes while the old leader is stopped", func() bool { return l.count() >= before+30 })
	old.p.signal(syscall.SIGCONT)
	testutil.WaitFor(t, 20*time.Second, func() error {
		st, err := old.status(pc.id)
		if err != nil {
			return err
		}
		if st.Leading {
			return errorf("old leader still leading in epoch %d", st.Epoch)
		}
		if st.Epoch < st1.Epoch {
			return errorf("old leader sees epoch %d", st.Epoch)
		}
		return nil
	})
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
	if st, _ := old.status(pc.id); st != nil && st.Evidence != 0 {
		t.Fatalf("old leader recorded %d pieces of evidence", st.Evidence)
	}
}

// TestRestartAndJoin restarts a follower and adds a 4th and 5th node under
// load.
func TestRestartAndJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process join: long")
	}
	pc := newProcCluster(t, 3, 3)
	l := pc.startLoad(pc.users)
	testutil.Eventually(t, 30*time.Second, "writes", func() bool { return l.count() >= 30 })
	f := pc.others(pc.waitLeader(10 * time.Second))[0]
	f.p.kill()
	before := l.count()
	testutil.Eventually(t, 30*time.Second, "writes with a follower down", func() bool { return l.count() >= before+30 })
	pc.restart(f)
	// Once the restarted node is up, a second node on its data directory
	// is refused.
	testutil.WaitFor(t, 30*time.Second, func() error {
		_, err := f.status(pc.id)
		return err
	})
	out, err := exec.Command(scraftBin, "node", "--data", filepath.Join(f.dir, "data"), "--listen", testutil.FreePort(t), "--admin", "",
		"--chain", pc.chainAddr, "--key", filepath.Join(f.dir, "node.key")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "data directory in use") {
		t.Fatalf("second node on a data directory in use: %v: %s", err, out)
	}

	// The 4th joins with `scraft node --channel --peer`, the 5th is a
	// running node told to join with `scraft join`.
	n4 := pc.newNode(mustKey(t))
	pc.nodes = append(pc.nodes, n4)
	pc.startNode(n4, []string{pc.nodes[0].addr, pc.nodes[1].addr})
	n5 := pc.newNode(mustKey(t))
	pc.nodes = append(pc.nodes, n5)
	n5.p = startProc(t, "node-"+n5.addr, "node", "--data", filepath.Join(n5.dir, "data"), "--listen", n5.addr,
		"--admin", n5.admin, "--admin-allow-join", "--chain", pc.chainAddr, "--key", filepath.Join(n5.dir, "node.key"))
	testutil.WaitFor(t, 30*time.Second, func() error {
		out, err := exec.Command(scraftBin, "join", "--admin", n5.admin, "--channel", pc.id.String(),
			"--peer", pc.nodes[2].addr).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scraft join: %v: %s", err, out)
		}
		return nil
	})
	pc.waitVoters(5, 60*time.Second)
	before = l.count()
	testutil.Eventually(t, 30*time.Second, "writes with five nodes", func() bool { return l.count() >= before+30 })
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
}

// TestChaosKills kills a random node (the leader every other round) with
// SIGKILL or stops it with SIGSTOP, under load, round after round, then
// checks that every acknowledged tx is on every node with the same digest.
func TestChaosKills(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: long")
	}
	pc := newProcCluster(t, 3, 0)
	l := pc.startLoad(pc.nodeKeys())
	rounds := 8
	for r := 0; r < rounds; r++ {
		before := l.count()
		testutil.Eventually(t, 60*time.Second, "writes", func() bool { return l.count() >= before+20 })
		victim := pc.nodes[r%3]
		if r%2 == 0 {
			victim = pc.waitLeader(30 * time.Second)
		}
		if r%3 == 2 {
			t.Logf("round %d: SIGSTOP %s", r, victim.addr)
			victim.p.signal(syscall.SIGSTOP)
			mid := l.count()
			testutil.Eventually(t, 60*time.Second, "writes while stopped", func() bool { return l.count() >= mid+20 })
			victim.p.signal(syscall.SIGCONT)
		} else {
			t.Logf("round %d: SIGKILL %s", r, victim.addr)
			victim.p.kill()
			mid := l.count()
			testutil.Eventually(t, 60*time.Second, "writes while down", func() bool { return l.count() >= mid+20 })
			pc.restart(victim)
		}
		pc.waitVoters(3, 60*time.Second)
	}
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
}
