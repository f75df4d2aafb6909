package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// countFSM counts applied commands and chains their hashes, so two FSMs
// with the same count and hash applied the same commands in the same order.
type countFSM struct {
	mu    sync.Mutex
	count uint64
	hash  [32]byte
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.hash = sha256.Sum256(append(f.hash[:], l.Data...))
	return f.count
}

func (f *countFSM) state() (uint64, [32]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.hash
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	count, hash := f.state()
	return &countSnapshot{count, hash}, nil
}

func (f *countFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var buf [40]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count = binary.BigEndian.Uint64(buf[:8])
	copy(f.hash[:], buf[8:])
	return nil
}

type countSnapshot struct {
	count uint64
	hash  [32]byte
}

func (s *countSnapshot) Persist(sink raft.SnapshotSink) error {
	var buf [40]byte
	binary.BigEndian.PutUint64(buf[:8], s.count)
	copy(buf[8:], s.hash[:])
	if _, err := sink.Write(buf[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *countSnapshot) Release() {}

// testNode is one in-process node: a Server and the raft of each channel
// it hosts.
type testNode struct {
	srv    *Server
	served chan error
	rafts  map[string]*raft.Raft
	fsms   map[string]*countFSM
	down   bool
}

// testCluster is n nodes hosting the same channels, each channel a raft
// group of all n nodes over the nodes' shared transports.
type testCluster struct {
	t      testing.TB
	faults *Faults
	nodes  []*testNode
}

func raftConfig(t testing.TB, id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	// Short, but with room for -race on a busy 2-core machine.
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.Logger = testLogger(t).Named(id)
	return c
}

func newTestCluster(t testing.TB, n int, channels ...string) *testCluster {
	c := &testCluster{t: t, faults: NewFaults(1)}
	cfg := testConfig(t, c.faults)
	cfg.RPCTimeout = 2 * time.Second
	for range n {
		ln, err := listen()
		require.NoError(t, err)
		srv, err := NewServer(ln, cfg)
		require.NoError(t, err)
		node := &testNode{srv: srv, served: make(chan error, 1),
			rafts: make(map[string]*raft.Raft), fsms: make(map[string]*countFSM)}
		go func() { node.served <- srv.Serve() }()
		c.nodes = append(c.nodes, node)
	}
	t.Cleanup(c.close)
	var servers []raft.Server
	for _, node := range c.nodes {
		servers = append(servers, raft.Server{ID: raft.ServerID(node.srv.Addr()), Address: raft.ServerAddress(node.srv.Addr())})
	}
	for _, ch := range channels {
		for _, node := range c.nodes {
			tr, err := node.srv.Transport(ch)
			require.NoError(t, err)
			conf := raftConfig(t, node.srv.Addr())
			conf.Logger = conf.Logger.With("channel", ch)
			fsm := &countFSM{}
			logs := raft.NewInmemStore()
			r, err := raft.NewRaft(conf, fsm, logs, logs, raft.NewInmemSnapshotStore(), tr)
			require.NoError(t, err)
			require.NoError(t, r.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
			node.rafts[ch] = r
			node.fsms[ch] = fsm
		}
	}
	return c
}

// kill shuts down a node's rafts, then its server.
func (c *testCluster) kill(node *testNode) {
	if node.down {
		return
	}
	node.down = true
	for ch, r := range node.rafts {
		if err := r.Shutdown().Error(); err != nil {
			c.t.Errorf("shutdown %s on %s: %v", ch, node.srv.Addr(), err)
		}
	}
	require.NoError(c.t, node.srv.Close())
	require.NoError(c.t, <-node.served)
}

func (c *testCluster) close() {
	for _, node := range c.nodes {
		c.kill(node)
	}
}

func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if !n.down {
			out = append(out, n)
		}
	}
	return out
}

// waitLeader waits until one live node of the channel leads and every live
// node not in except agrees, and returns that node.
func (c *testCluster) waitLeader(ch string, except ...*testNode) *testNode {
	c.t.Helper()
	var leader *testNode
	waitFor(c.t, 20*time.Second, "a leader of "+ch, func() bool {
		leader = nil
		for _, n := range c.live() {
			if n.rafts[ch].State() == raft.Leader && !contains(except, n) {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range c.live() {
			if contains(except, n) {
				continue
			}
			if addr, _ := n.rafts[ch].LeaderWithID(); string(addr) != leader.srv.Addr() {
				return false
			}
		}
		return true
	})
	return leader
}

func contains(nodes []*testNode, n *testNode) bool {
	for _, x := range nodes {
		if x == n {
			return true
		}
	}
	return false
}

// apply submits n commands to the channel's leader concurrently and waits
// for them; a command refused for leadership reasons is retried on the new
// leader. It returns how many commands may have been applied twice (those
// whose leader was lost before it answered).
func (c *testCluster) apply(ch string, first, n int, except ...*testNode) int {
	c.t.Helper()
	ambiguous := 0
	pending := make([]int, 0, n)
	for i := first; i < first+n; i++ {
		pending = append(pending, i)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(pending) > 0 {
		require.True(c.t, time.Now().Before(deadline), "applying %d commands to %s", n, ch)
		leader := c.waitLeader(ch, except...)
		futures := make([]raft.ApplyFuture, len(pending))
		for i, seq := range pending {
			futures[i] = leader.rafts[ch].Apply([]byte(fmt.Sprintf("%s-%d", ch, seq)), 5*time.Second)
		}
		var retry []int
		for i, f := range futures {
			switch err := f.Error(); {
			case err == nil:
			case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
				retry = append(retry, pending[i])
			case errors.Is(err, raft.ErrLeadershipLost):
				ambiguous++
				retry = append(retry, pending[i])
			default:
				c.t.Fatalf("apply to %s: %v", ch, err)
			}
		}
		pending = retry
	}
	return ambiguous
}

// waitConverged waits until every live node's FSM of the channel has
// applied at least min commands and all agree; it returns the count.
func (c *testCluster) waitConverged(ch string, atLeast uint64) uint64 {
	c.t.Helper()
	var count uint64
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%s FSMs to converge at ≥ %d", ch, atLeast), func() bool {
		live := c.live()
		count0, hash0 := live[0].fsms[ch].state()
		if count0 < atLeast {
			return false
		}
		for _, n := range live[1:] {
			if cnt, h := n.fsms[ch].state(); cnt != count0 || h != hash0 {
				return false
			}
		}
		count = count0
		return true
	})
	return count
}

// TestRaftMultiplexed runs two channels' raft groups over the same three
// servers: both elect, replicate, survive the kill of a leader's node.
func TestRaftMultiplexed(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three-node raft clusters")
	}
	channels := []string{"alpha", "beta"}
	c := newTestCluster(t, 3, channels...)

	const n = 1000
	var wg sync.WaitGroup
	extra := make([]int, len(channels))
	for i, ch := range channels {
		c.waitLeader(ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			extra[i] = c.apply(ch, 0, n)
		}()
	}
	wg.Wait()
	hashes := map[string][32]byte{}
	for i, ch := range channels {
		count := c.waitConverged(ch, n)
		require.LessOrEqual(t, count, uint64(n+extra[i]))
		_, hashes[ch] = c.nodes[0].fsms[ch].state()
	}
	require.NotEqual(t, hashes["alpha"], hashes["beta"], "channels must not see each other's commands")

	// Kill the node leading alpha: both channels lose a member, alpha its
	// leader; both must carry on with the two others.
	old := c.waitLeader("alpha")
	c.kill(old)
	newLeader := c.waitLeader("alpha")
	require.NotEqual(t, old, newLeader)
	for i, ch := range channels {
		extra[i] += c.apply(ch, n, 100)
		count := c.waitConverged(ch, n+100)
		require.LessOrEqual(t, count, uint64(n+100+extra[i]))
	}
}

// TestRaftPartition isolates a channel's leader with Faults: the minority
// cannot commit, the majority elects and commits, and after healing all
// three converge on the majority's history.
func TestRaftPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three-node raft clusters")
	}
	c := newTestCluster(t, 3, "alpha")
	c.apply("alpha", 0, 100)
	c.waitConverged("alpha", 100)

	old := c.waitLeader("alpha")
	c.faults.Isolate(old.srv.Addr())
	// The isolated leader cannot commit: the write fails once it notices it
	// lost its quorum.
	err := old.rafts["alpha"].Apply([]byte("minority"), time.Second).Error()
	require.Error(t, err)
	oldCount, _ := old.fsms["alpha"].state()
	require.Equal(t, uint64(100), oldCount)

	newLeader := c.waitLeader("alpha", old)
	require.NotEqual(t, old, newLeader)
	require.Zero(t, c.apply("alpha", 100, 50, old))

	c.faults.Heal()
	count := c.waitConverged("alpha", 150)
	// The minority's write was never committed.
	require.Equal(t, uint64(150), count)
	c.apply("alpha", 150, 10)
	c.waitConverged("alpha", 160)
}

// TestRaftSnapshotCatchUp makes a follower miss entries that the leader has
// compacted away, so that it catches up through InstallSnapshot.
func TestRaftSnapshotCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three-node raft clusters")
	}
	c := newTestCluster(t, 3, "alpha")
	c.apply("alpha", 0, 10)
	c.waitConverged("alpha", 10)
	leader := c.waitLeader("alpha")
	var lagging *testNode
	for _, n := range c.nodes {
		if n != leader {
			lagging = n
		}
	}
	c.faults.Isolate(lagging.srv.Addr())
	require.Zero(t, c.apply("alpha", 10, 200, lagging))
	// Snapshot and drop the log the lagging node lacks on the node that
	// leads now; TrailingLogs (10240 by default) would keep it.
	r := c.waitLeader("alpha", lagging).rafts["alpha"]
	cfg := r.ReloadableConfig()
	cfg.TrailingLogs = 1
	require.NoError(t, r.ReloadConfig(cfg))
	require.NoError(t, r.Snapshot().Error())

	c.faults.Heal()
	count := c.waitConverged("alpha", 210)
	require.Equal(t, uint64(210), count)
	// The lagging node got there through a snapshot, not the log.
	stats := lagging.rafts["alpha"].Stats()
	require.NotEqual(t, "0", stats["last_snapshot_index"], "stats: %v", stats)
}
