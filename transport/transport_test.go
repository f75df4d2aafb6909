package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func header(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(id + ":addr")}
}

// TestRoundTrip sends each RPC with every field set and checks that raft on
// the far side sees exactly the request, and the sender exactly the answer.
func TestRoundTrip(t *testing.T) {
	a := newTestServer(t, testConfig(t, nil))
	b := newTestServer(t, testConfig(t, nil))
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")
	target := tb.LocalAddr()
	require.Equal(t, raft.ServerAddress(b.Addr()), target)

	appendedAt := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		req  any // what a sends
		resp any // what b's raft answers
		call func(req, resp any) error
		got  any // where a receives the answer
	}{
		{
			name: "AppendEntries",
			req: &raft.AppendEntriesRequest{
				RPCHeader: header("a"), Term: 7, Leader: []byte("a:addr"),
				PrevLogEntry: 41, PrevLogTerm: 6, LeaderCommitIndex: 40,
				Entries: []*raft.Log{
					{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte("ext"), AppendedAt: appendedAt},
					{Index: 43, Term: 7, Type: raft.LogConfiguration, Data: []byte{0, 1, 2}},
					{Index: 44, Term: 7, Type: raft.LogNoop},
				},
			},
			resp: &raft.AppendEntriesResponse{RPCHeader: header("b"), Term: 7, LastLog: 44, Success: true, NoRetryBackoff: true},
			call: func(req, resp any) error {
				return ta.AppendEntries("b", target, req.(*raft.AppendEntriesRequest), resp.(*raft.AppendEntriesResponse))
			},
			got: new(raft.AppendEntriesResponse),
		},
		{
			name: "heartbeat",
			req:  &raft.AppendEntriesRequest{RPCHeader: header("a"), Term: 7},
			resp: &raft.AppendEntriesResponse{RPCHeader: header("b"), Term: 8},
			call: func(req, resp any) error {
				return ta.AppendEntries("b", target, req.(*raft.AppendEntriesRequest), resp.(*raft.AppendEntriesResponse))
			},
			got: new(raft.AppendEntriesResponse),
		},
		{
			name: "RequestVote",
			req: &raft.RequestVoteRequest{RPCHeader: header("a"), Term: 9, Candidate: []byte("a:addr"),
				LastLogIndex: 100, LastLogTerm: 8, LeadershipTransfer: true},
			resp: &raft.RequestVoteResponse{RPCHeader: header("b"), Term: 9, Peers: []byte("peers"), Granted: true},
			call: func(req, resp any) error {
				return ta.RequestVote("b", target, req.(*raft.RequestVoteRequest), resp.(*raft.RequestVoteResponse))
			},
			got: new(raft.RequestVoteResponse),
		},
		{
			name: "RequestPreVote",
			req:  &raft.RequestPreVoteRequest{RPCHeader: header("a"), Term: 10, LastLogIndex: 5, LastLogTerm: 4},
			resp: &raft.RequestPreVoteResponse{RPCHeader: header("b"), Term: 9, Granted: true},
			call: func(req, resp any) error {
				return ta.RequestPreVote("b", target, req.(*raft.RequestPreVoteRequest), resp.(*raft.RequestPreVoteResponse))
			},
			got: new(raft.RequestPreVoteResponse),
		},
		{
			name: "TimeoutNow",
			req:  &raft.TimeoutNowRequest{RPCHeader: header("a")},
			resp: &raft.TimeoutNowResponse{RPCHeader: header("b")},
			call: func(req, resp any) error {
				return ta.TimeoutNow("b", target, req.(*raft.TimeoutNowRequest), resp.(*raft.TimeoutNowResponse))
			},
			got: new(raft.TimeoutNowResponse),
		},
	}

	var mu sync.Mutex
	var answer any
	var seen any
	respond(t, tb, func(rpc raft.RPC) {
		mu.Lock()
		defer mu.Unlock()
		seen = rpc.Command
		rpc.Respond(answer, nil)
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			answer = tc.resp
			mu.Unlock()
			require.NoError(t, tc.call(tc.req, tc.got))
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tc.req, seen)
			require.Equal(t, tc.resp, tc.got)
		})
	}
}

// TestNoHeartbeatFastPath checks that a heartbeat reaches raft through
// Consumer even when a heartbeat handler is set (see ChannelTransport).
func TestNoHeartbeatFastPath(t *testing.T) {
	a := newTestServer(t, testConfig(t, nil))
	b := newTestServer(t, testConfig(t, nil))
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")
	tb.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.Error("heartbeat handler called")
		rpc.Respond(nil, errors.New("fast path"))
	})
	var seen []any
	respond(t, tb, func(rpc raft.RPC) {
		seen = append(seen, rpc.Command)
		rpc.Respond(&raft.AppendEntriesResponse{Term: 5, Success: true}, nil)
	})
	heartbeat := &raft.AppendEntriesRequest{RPCHeader: header("a"), Term: 5, Leader: []byte("a:addr")}
	var resp raft.AppendEntriesResponse
	require.NoError(t, ta.AppendEntries("b", tb.LocalAddr(), heartbeat, &resp))
	require.True(t, resp.Success)
	require.Equal(t, []any{heartbeat}, seen)
}

// TestRemoteError checks that an error raft answers with reaches the
// sender with its text.
func TestRemoteError(t *testing.T) {
	a := newTestServer(t, testConfig(t, nil))
	b := newTestServer(t, testConfig(t, nil))
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")
	respond(t, tb, func(rpc raft.RPC) { rpc.Respond(nil, errors.New("unsupported snapshot version 9")) })
	err := ta.RequestVote("b", tb.LocalAddr(), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	require.ErrorContains(t, err, "unsupported snapshot version 9")
}

// TestUnknownChannel checks that an RPC for a channel the target does not
// host fails at once with ErrUnknownChannel, for every kind of RPC.
func TestUnknownChannel(t *testing.T) {
	a := newTestServer(t, testConfig(t, nil))
	b := newTestServer(t, testConfig(t, nil))
	ta := mustTransport(t, a, "only-on-a")
	target := raft.ServerAddress(b.Addr())

	tests := []struct {
		name string
		call func() error
	}{
		{"AppendEntries", func() error {
			return ta.AppendEntries("b", target, &raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
		}},
		{"RequestVote", func() error {
			return ta.RequestVote("b", target, &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
		}},
		{"RequestPreVote", func() error {
			return ta.RequestPreVote("b", target, &raft.RequestPreVoteRequest{}, new(raft.RequestPreVoteResponse))
		}},
		{"TimeoutNow", func() error {
			return ta.TimeoutNow("b", target, &raft.TimeoutNowRequest{}, new(raft.TimeoutNowResponse))
		}},
		{"InstallSnapshot", func() error {
			return ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Size: 3}, new(raft.InstallSnapshotResponse),
				bytes.NewReader([]byte("abc")))
		}},
		{"AppendEntriesPipeline", func() error {
			p, err := ta.AppendEntriesPipeline("b", target)
			if err != nil {
				return err
			}
			defer p.Close()
			f, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
			if err != nil {
				return err
			}
			return f.Error()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.ErrorIs(t, err, ErrUnknownChannel)
			require.ErrorContains(t, err, "only-on-a")
		})
	}
}

// TestChannelIsolation checks that channels on one server are independent:
// closing one leaves the other working, and the closed id can be reopened.
func TestChannelIsolation(t *testing.T) {
	a := newTestServer(t, testConfig(t, nil))
	b := newTestServer(t, testConfig(t, nil))
	ta1 := mustTransport(t, a, "one")
	ta2 := mustTransport(t, a, "two")
	tb1 := mustTransport(t, b, "one")
	tb2 := mustTransport(t, b, "two")
	_, err := b.Transport("one")
	require.ErrorIs(t, err, ErrChannelExists)

	for _, tr := range []*ChannelTransport{tb1, tb2} {
		respond(t, tr, func(rpc raft.RPC) {
			rpc.Respond(&raft.RequestVoteResponse{Term: rpc.Command.(*raft.RequestVoteRequest).Term}, nil)
		})
	}
	vote := func(tr *ChannelTransport, term uint64) error {
		var resp raft.RequestVoteResponse
		if err := tr.RequestVote("b", raft.ServerAddress(b.Addr()), &raft.RequestVoteRequest{Term: term}, &resp); err != nil {
			return err
		}
		if resp.Term != term {
			return fmt.Errorf("answer of term %d for term %d", resp.Term, term)
		}
		return nil
	}
	require.NoError(t, vote(ta1, 1))
	require.NoError(t, vote(ta2, 2))

	require.NoError(t, tb1.Close())
	require.NoError(t, tb1.Close(), "Close twice")
	require.ErrorIs(t, vote(ta1, 3), ErrUnknownChannel)
	require.NoError(t, vote(ta2, 4))

	// The sender's own Close aborts only its channel.
	require.NoError(t, ta2.Close())
	require.ErrorIs(t, vote(ta2, 5), ErrClosed)

	tb1again := mustTransport(t, b, "one")
	respond(t, tb1again, func(rpc raft.RPC) { rpc.Respond(&raft.RequestVoteResponse{Term: 6}, nil) })
	require.NoError(t, vote(ta1, 6))
}

// TestPendingRPCOnClose checks that an RPC waiting for a raft that never
// reads its Consumer fails when the channel closes, rather than hanging.
func TestPendingRPCOnClose(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.RPCTimeout = time.Minute // longer than the test may take
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfg)
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")

	done := make(chan error, 1)
	go func() {
		done <- ta.RequestVote("b", tb.LocalAddr(), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	}()
	require.NoError(t, tb.Close())
	require.Error(t, <-done)
}

// TestPipelineOrder pipelines many requests and checks that every response
// comes back for its own request, in order.
func TestPipelineOrder(t *testing.T) {
	for _, inFlight := range []int{2, 16} {
		t.Run(fmt.Sprintf("inflight=%d", inFlight), func(t *testing.T) {
			cfg := testConfig(t, nil)
			cfg.MaxInFlight = inFlight
			a := newTestServer(t, cfg)
			b := newTestServer(t, cfg)
			ta := mustTransport(t, a, "chan")
			tb := mustTransport(t, b, "chan")
			var delivered []uint64 // order raft saw, owned by the responder
			respond(t, tb, func(rpc raft.RPC) {
				req := rpc.Command.(*raft.AppendEntriesRequest)
				delivered = append(delivered, req.PrevLogEntry)
				rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: true}, nil)
			})

			p, err := ta.AppendEntriesPipeline("b", tb.LocalAddr())
			require.NoError(t, err)
			const n = 1000
			checked := make(chan error, 1)
			go func() {
				for i := uint64(1); i <= n; i++ {
					f := <-p.Consumer()
					if err := f.Error(); err != nil {
						checked <- err
						return
					}
					if f.Request().PrevLogEntry != i || f.Response().LastLog != i {
						checked <- fmt.Errorf("future %d: request %d, response %d", i, f.Request().PrevLogEntry, f.Response().LastLog)
						return
					}
				}
				checked <- nil
			}()
			for i := uint64(1); i <= n; i++ {
				req := &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: i,
					Entries: []*raft.Log{{Index: i + 1, Term: 1, Data: make([]byte, 256)}}}
				_, err := p.AppendEntries(req, new(raft.AppendEntriesResponse))
				require.NoError(t, err)
			}
			require.NoError(t, <-checked)
			require.NoError(t, p.Close())
			require.NoError(t, p.Close(), "Close twice")
			_, err = p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
			require.ErrorIs(t, err, raft.ErrPipelineShutdown)
			require.Len(t, delivered, n)
			for i, idx := range delivered {
				require.Equal(t, uint64(i+1), idx)
			}
		})
	}
}

// TestPipelineBreaks checks that a pipeline whose peer goes away fails its
// pending and later requests instead of hanging.
func TestPipelineBreaks(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.RPCTimeout = time.Minute
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfg)
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan") // nobody reads its Consumer

	p, err := ta.AppendEntriesPipeline("b", tb.LocalAddr())
	require.NoError(t, err)
	defer p.Close()
	f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse))
	require.NoError(t, err)
	require.NoError(t, tb.Close())
	require.Error(t, f.Error())
	require.Equal(t, f, <-p.Consumer())
	_, err = p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse))
	require.Error(t, err)
}

// TestInstallSnapshot streams snapshots of several sizes and checks that
// raft reads exactly the data sent, with the request intact.
func TestInstallSnapshot(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.SnapshotChunkSize = 64 << 10
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfg)
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")

	type received struct {
		req *raft.InstallSnapshotRequest
		sum [32]byte
		n   int64
	}
	got := make(chan received, 1)
	respond(t, tb, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.InstallSnapshotRequest)
		h := sha256.New()
		n, err := io.Copy(h, rpc.Reader)
		if err != nil {
			rpc.Respond(nil, err)
			return
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- received{req, sum, n}
		rpc.Respond(&raft.InstallSnapshotResponse{RPCHeader: header("b"), Term: req.Term, Success: true}, nil)
	})

	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, 64 << 10, 64<<10 + 1, 5 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			rng.Read(data)
			req := &raft.InstallSnapshotRequest{
				RPCHeader: header("a"), SnapshotVersion: raft.SnapshotVersionMax, Term: 3, Leader: []byte("a:addr"),
				LastLogIndex: 99, LastLogTerm: 3, Peers: []byte("peers"), Configuration: []byte("config"),
				ConfigurationIndex: 12, Size: int64(size),
			}
			var resp raft.InstallSnapshotResponse
			require.NoError(t, ta.InstallSnapshot("b", tb.LocalAddr(), req, &resp, bytes.NewReader(data)))
			r := <-got
			require.Equal(t, req, r.req)
			require.Equal(t, int64(size), r.n)
			require.Equal(t, sha256.Sum256(data), r.sum)
			require.Equal(t, raft.InstallSnapshotResponse{RPCHeader: header("b"), Term: 3, Success: true}, resp)
		})
	}

	t.Run("short", func(t *testing.T) {
		// Fewer bytes than announced: raft sees the short stream end.
		req := &raft.InstallSnapshotRequest{Term: 3, Size: 10}
		require.NoError(t, ta.InstallSnapshot("b", tb.LocalAddr(), req, new(raft.InstallSnapshotResponse), bytes.NewReader([]byte("abc"))))
		require.Equal(t, int64(3), (<-got).n)
	})
}

// TestFaults checks that cut links fail at once, in both directions, and
// heal.
func TestFaults(t *testing.T) {
	faults := NewFaults(1)
	cfg := testConfig(t, faults)
	srvs := []*Server{newTestServer(t, cfg), newTestServer(t, cfg), newTestServer(t, cfg)}
	trs := make([]*ChannelTransport, len(srvs))
	for i, s := range srvs {
		trs[i] = mustTransport(t, s, "chan")
		respond(t, trs[i], func(rpc raft.RPC) { rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil) })
	}
	vote := func(from, to int) error {
		return trs[from].RequestVote("x", trs[to].LocalAddr(), &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
	}
	reach := func(t *testing.T, want [3][3]bool) {
		t.Helper()
		for from := range 3 {
			for to := range 3 {
				if from == to {
					continue
				}
				err := vote(from, to)
				if want[from][to] {
					require.NoError(t, err, "%d→%d", from, to)
				} else {
					require.ErrorIs(t, err, ErrFaultInjected, "%d→%d", from, to)
				}
			}
		}
	}
	addr := func(i int) string { return srvs[i].Addr() }
	all := [3][3]bool{{true, true, true}, {true, true, true}, {true, true, true}}

	reach(t, all)
	faults.Partition([]string{addr(0)}, []string{addr(1), addr(2)})
	reach(t, [3][3]bool{{true, false, false}, {false, true, true}, {false, true, true}})
	faults.Heal()
	reach(t, all)
	faults.Isolate(addr(2))
	reach(t, [3][3]bool{{true, true, false}, {true, true, false}, {false, false, true}})
	faults.Heal()
	faults.Disconnect(addr(0), addr(1))
	require.True(t, faults.Cut(addr(1), addr(0)))
	reach(t, [3][3]bool{{true, false, true}, {false, true, true}, {true, true, true}})
	faults.Heal()
	faults.SetDrop(1)
	require.ErrorIs(t, vote(0, 1), ErrFaultInjected)
	faults.SetDrop(0)
	faults.SetDelay(time.Millisecond)
	require.NoError(t, vote(0, 1))
	faults.Heal()

	// A cut pipeline fails instead of sending.
	p, err := trs[0].AppendEntriesPipeline("b", trs[1].LocalAddr())
	require.NoError(t, err)
	defer p.Close()
	faults.Disconnect(addr(0), addr(1))
	_, err = p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
	require.ErrorIs(t, err, ErrFaultInjected)
	faults.Heal()
}

// TestFaultsDeterministic checks that random drops depend only on the seed
// and the sequence of messages.
func TestFaultsDeterministic(t *testing.T) {
	run := func(seed int64) []bool {
		f := NewFaults(seed)
		f.SetDrop(0.5)
		out := make([]bool, 200)
		for i := range out {
			_, err := f.check("a", "b")
			out[i] = err != nil
		}
		return out
	}
	require.Equal(t, run(7), run(7))
	require.NotEqual(t, run(7), run(8))
	var nilFaults *Faults
	_, err := nilFaults.check("a", "b")
	require.NoError(t, err)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"zero RPCTimeout", func(c *Config) { c.RPCTimeout = 0 }, false},
		{"MaxInFlight 1", func(c *Config) { c.MaxInFlight = 1 }, false},
		{"chunk above message size", func(c *Config) { c.SnapshotChunkSize = c.MaxMessageSize }, false},
		{"min ping above keepalive", func(c *Config) { c.KeepaliveMinTime = c.KeepaliveTime + 1 }, false},
		{"no logger", func(c *Config) { c.Logger = nil }, false},
		{"negative shutdown", func(c *Config) { c.ShutdownTimeout = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			if err := cfg.Validate(); tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// TestServerClose checks that Close is safe twice, ends Serve, and that a
// closed server refuses new channels.
func TestServerClose(t *testing.T) {
	srv := newTestServer(t, testConfig(t, nil))
	tr := mustTransport(t, srv, "chan")
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close())
	_, err := srv.Transport("other")
	require.ErrorIs(t, err, ErrClosed)
	_, err = srv.Conn("127.0.0.1:1")
	require.ErrorIs(t, err, ErrClosed)
	err = tr.RequestVote("x", "127.0.0.1:1", &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
	require.ErrorIs(t, err, ErrClosed)
}

// TestNoGoroutineLeak exercises every kind of RPC, closes everything and
// checks that the goroutine count returns to where it started.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		cfg := testConfig(t, nil)
		a, err := NewServer(mustListen(t), cfg)
		require.NoError(t, err)
		b, err := NewServer(mustListen(t), cfg)
		require.NoError(t, err)
		servedA, servedB := make(chan error, 1), make(chan error, 1)
		go func() { servedA <- a.Serve() }()
		go func() { servedB <- b.Serve() }()
		ta, err := a.Transport("chan")
		require.NoError(t, err)
		tb, err := b.Transport("chan")
		require.NoError(t, err)
		stop := make(chan struct{})
		responder := make(chan struct{})
		go func() {
			defer close(responder)
			for {
				select {
				case rpc := <-tb.Consumer():
					switch cmd := rpc.Command.(type) {
					case *raft.AppendEntriesRequest:
						rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
					case *raft.InstallSnapshotRequest:
						_, _ = io.Copy(io.Discard, rpc.Reader)
						rpc.Respond(&raft.InstallSnapshotResponse{Term: cmd.Term, Success: true}, nil)
					}
				case <-stop:
					return
				}
			}
		}()
		require.NoError(t, ta.AppendEntries("b", tb.LocalAddr(), &raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)))
		require.NoError(t, ta.InstallSnapshot("b", tb.LocalAddr(), &raft.InstallSnapshotRequest{Size: 1 << 20},
			new(raft.InstallSnapshotResponse), bytes.NewReader(make([]byte, 1<<20))))
		p, err := ta.AppendEntriesPipeline("b", tb.LocalAddr())
		require.NoError(t, err)
		f, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
		require.NoError(t, err)
		require.NoError(t, f.Error())
		// Leave the pipeline open: Close must end it on both sides.
		close(stop)
		<-responder
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
		require.NoError(t, <-servedA)
		require.NoError(t, <-servedB)
	}()
	waitFor(t, 10*time.Second, "goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func mustListen(t testing.TB) net.Listener {
	ln, err := listen()
	require.NoError(t, err)
	return ln
}

// TestPipelineBoundsInFlight holds the far side's answers and checks that
// the pipeline never has more than MaxInFlight requests unanswered.
func TestPipelineBoundsInFlight(t *testing.T) {
	const inFlight, total = 3, 12
	cfg := testConfig(t, nil)
	cfg.MaxInFlight = inFlight
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfg)
	ta := mustTransport(t, a, "chan")
	tb := mustTransport(t, b, "chan")
	release := make(chan struct{})
	respond(t, tb, func(rpc raft.RPC) {
		select {
		case <-release:
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		case <-t.Context().Done():
		}
	})
	p, err := ta.AppendEntriesPipeline("b", tb.LocalAddr())
	require.NoError(t, err)
	defer p.Close()

	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		for range total {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
		sendErr <- nil
	}()
	for released := 0; released <= total; released++ {
		want := int64(min(total, released+inFlight))
		waitFor(t, 10*time.Second, fmt.Sprintf("%d requests sent", want), func() bool {
			n := sent.Load()
			require.LessOrEqual(t, n, want, "more than %d unanswered requests", inFlight)
			return n == want
		})
		if released < total {
			release <- struct{}{}
			require.NoError(t, (<-p.Consumer()).Error())
		}
	}
	require.NoError(t, <-sendErr)
}

// TestFaultsOtherServices checks that Faults also cut the other services'
// calls on the server's shared connections.
func TestFaultsOtherServices(t *testing.T) {
	faults := NewFaults(1)
	cfg := testConfig(t, faults)
	a := newTestServer(t, cfg)
	b, err := NewServer(mustListen(t), cfg)
	require.NoError(t, err)
	healthpb.RegisterHealthServer(b.GRPC(), health.NewServer())
	served := make(chan error, 1)
	go func() { served <- b.Serve() }()
	t.Cleanup(func() {
		require.NoError(t, b.Close())
		require.NoError(t, <-served)
	})

	conn, err := a.Conn(b.Addr())
	require.NoError(t, err)
	again, err := a.Conn(b.Addr())
	require.NoError(t, err)
	require.Same(t, conn, again, "one connection per peer")
	client := healthpb.NewHealthClient(conn)
	check := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	watch := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	require.NoError(t, check())
	require.NoError(t, watch())
	faults.Isolate(b.Addr())
	require.ErrorIs(t, check(), ErrFaultInjected)
	require.ErrorIs(t, watch(), ErrFaultInjected)
	faults.Heal()
	require.NoError(t, check())
}
