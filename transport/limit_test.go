package transport

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// newHealthServer starts a Server with gRPC's health service registered:
// its Watch holds a stream open for as long as the caller keeps it.
func newHealthServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ln, err := listen()
	require.NoError(t, err)
	srv, err := NewServer(ln, cfg)
	require.NoError(t, err)
	healthpb.RegisterHealthServer(srv.GRPC(), health.NewServer())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.NoError(t, <-served)
	})
	return srv
}

func dialHealth(t *testing.T, addr string) (*grpc.ClientConn, healthpb.HealthClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn, healthpb.NewHealthClient(conn)
}

// TestMaxConnections opens one connection more than the server holds: it
// is closed at once and counted, while the connection held keeps being
// served; once that one goes, a new one is served.
func TestMaxConnections(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.MaxConnections = 1
	srv := newHealthServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	connA, a := dialHealth(t, srv.Addr())
	_, err := a.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, int64(1), srv.ConnStats().Open)

	// The attacker's connection: closed before it can say anything.
	raw, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer raw.Close()
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = raw.Read(make([]byte, 64))
	var ne net.Error
	require.Error(t, err)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "refused connection still open: %v", err)
	waitFor(t, 10*time.Second, "refusal counted", func() bool { return srv.ConnStats().Refused == 1 })

	_, err = a.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "the connection held is still served")

	connA.Close()
	waitFor(t, 10*time.Second, "slot freed", func() bool { return srv.ConnStats().Open == 0 })
	_, b := dialHealth(t, srv.Addr())
	_, err = b.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

// TestMaxConcurrentStreams holds the one stream a connection may have
// open: a second waits for a slot (here until its deadline), and gets it
// once the first ends.
func TestMaxConcurrentStreams(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.MaxConcurrentStreams = 1
	srv := newHealthServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, h := dialHealth(t, srv.Addr())

	watch := func(ctx context.Context) (healthpb.Health_WatchClient, error) {
		w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return nil, err
		}
		if _, err := w.Recv(); err != nil {
			return nil, err
		}
		return w, nil
	}
	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	_, err := watch(ctx1)
	require.NoError(t, err)

	ctx2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	_, err = watch(ctx2)
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "second stream on a connection allowed one: %v", err)

	cancel1()
	_, err = watch(ctx)
	require.NoError(t, err)
}
