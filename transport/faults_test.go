package transport

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestLatencyMatrix checks how the round trip of a link is found: its own,
// else its regions', else none; both ways alike; and what it adds to the
// global delay.
func TestLatencyMatrix(t *testing.T) {
	f := NewFaults(1)
	for addr, region := range map[string]string{"a1": "eu", "a2": "eu", "b1": "us", "c1": "ap"} {
		f.SetRegion(addr, region)
	}
	require.NoError(t, f.SetRegionRTT("eu", "eu", 10*time.Millisecond))
	require.NoError(t, f.SetRegionRTT("eu", "us", 60*time.Millisecond))
	require.NoError(t, f.SetRegionRTT("ap", "eu", 150*time.Millisecond))
	require.NoError(t, f.SetLatency("b1", "c1", 200*time.Millisecond))

	tests := []struct {
		name     string
		from, to string
		want     time.Duration
	}{
		{"within a region", "a1", "a2", 10 * time.Millisecond},
		{"between regions", "a1", "b1", 60 * time.Millisecond},
		{"the other way", "b1", "a2", 60 * time.Millisecond},
		{"pair given in the other order", "c1", "a1", 150 * time.Millisecond},
		{"a link's own", "c1", "b1", 200 * time.Millisecond},
		{"regions without a round trip", "b1", "b1x", 0},
		{"an address in no region", "a1", "zz", 0},
		{"to itself", "a1", "a1", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, f.Latency(tc.from, tc.to))
			d, err := f.check(tc.from, tc.to)
			require.NoError(t, err)
			require.Equal(t, tc.want, d)
		})
	}

	f.SetDelay(5 * time.Millisecond)
	d, err := f.check("a1", "b1")
	require.NoError(t, err)
	require.Equal(t, 65*time.Millisecond, d, "the global delay adds to the link's")

	f.Heal()
	require.Equal(t, 60*time.Millisecond, f.Latency("a1", "b1"), "Heal keeps the matrix")
	d, err = f.check("a1", "b1")
	require.NoError(t, err)
	require.Equal(t, 60*time.Millisecond, d)

	f.Partition([]string{"a1"}, []string{"b1"})
	_, err = f.check("a1", "b1")
	require.ErrorIs(t, err, ErrFaultInjected, "a cut link fails at once, latency or not")
	f.Heal()

	require.NoError(t, f.SetLatency("c1", "b1", 0))
	require.Zero(t, f.Latency("b1", "c1"), "no region round trip between us and ap")
	require.NoError(t, f.SetLatency("a1", "a2", 1*time.Millisecond))
	require.Equal(t, time.Millisecond, f.Latency("a2", "a1"), "a link overrides its regions")
	require.NoError(t, f.SetLatency("a1", "a2", 0))
	require.Equal(t, 10*time.Millisecond, f.Latency("a2", "a1"))
	f.SetRegion("a2", "us")
	require.Equal(t, 60*time.Millisecond, f.Latency("a1", "a2"), "moved to another region")
	f.SetRegion("a2", "")
	require.Zero(t, f.Latency("a1", "a2"))
	require.NoError(t, f.SetRegionRTT("eu", "us", 0))
	require.Zero(t, f.Latency("a1", "b1"))
}

// TestLatencyBadInput checks that nonsense is refused with an error and
// changes nothing.
func TestLatencyBadInput(t *testing.T) {
	f := NewFaults(1)
	f.SetRegion("a", "eu")
	f.SetRegion("b", "us")
	require.NoError(t, f.SetRegionRTT("eu", "us", time.Second))
	require.Error(t, f.SetRegionRTT("eu", "us", -time.Second))
	require.Error(t, f.SetRegionRTT("", "us", time.Second))
	require.Error(t, f.SetLatency("a", "b", -1))
	require.Error(t, f.SetLatency("a", "a", time.Second))
	require.Equal(t, time.Second, f.Latency("a", "b"))
}

// TestLatencyApplied checks that a link's round trip holds back the calls
// that cross it, Raft's and the other services', and no other link's: a
// link of an hour outlasts a call's deadline, its neighbour does not.
func TestLatencyApplied(t *testing.T) {
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
	c := newTestServer(t, cfg)
	faults.SetRegion(a.Addr(), "eu")
	faults.SetRegion(b.Addr(), "ap")
	faults.SetRegion(c.Addr(), "eu")
	require.NoError(t, faults.SetRegionRTT("eu", "ap", time.Hour))

	conn, err := a.Conn(b.Addr())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// Raft between the two servers of one region is not held back.
	ta, tc := mustTransport(t, a, "chan"), mustTransport(t, c, "chan")
	respond(t, tc, func(rpc raft.RPC) { rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil) })
	require.NoError(t, ta.RequestVote("x", tc.LocalAddr(), &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse)))

	// Made short, the link lets calls through again.
	require.NoError(t, faults.SetLatency(a.Addr(), b.Addr(), time.Millisecond))
	ctx2, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	_, err = healthpb.NewHealthClient(conn).Check(ctx2, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}
