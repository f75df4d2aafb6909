package transport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil"
)

// echoServer answers every call on the client stream at once with an
// outcome the size of a chat message's: the transport alone, no node.
type echoServer struct {
	clientpb.UnimplementedClientServer
}

func (echoServer) Stream(st grpc.BidiStreamingServer[clientpb.ClientMessage, clientpb.ServerMessage]) error {
	out := &clientpb.Outcome{
		Height: 1, Kind: 1, Hash: make([]byte, 32), Status: 0, StatusName: "ok", GasUsed: 20000,
		ChangeSet: make([]byte, 120), Digest: make([]byte, 32),
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		if err := st.Send(&clientpb.ServerMessage{Id: m.GetId(), Body: &clientpb.ServerMessage_Call{Call: out}}); err != nil {
			return err
		}
	}
}

// BenchmarkStreamEcho is the floor under the client API's cost: n clients,
// each with its own connection as the SDK makes, send a call the size of a
// signed chat message and wait for an outcome the size of its answer, one
// after the other, to a server with the node's gRPC settings that answers
// at once. It reports round trips per second and the CPU time (server and
// clients, one process) per round trip. The shared cases put the clients'
// streams on 3 connections, as a process with many clients in it could.
func BenchmarkStreamEcho(b *testing.B) {
	for _, tc := range []struct{ n, conns int }{{1, 1}, {64, 64}, {256, 256}, {256, 3}} {
		n := tc.n
		name := fmt.Sprintf("clients=%d", n)
		if tc.conns < n {
			name += fmt.Sprintf("/shared-conns=%d", tc.conns)
		}
		b.Run(name, func(b *testing.B) {
			ln, err := listen()
			require.NoError(b, err)
			cfg := DefaultConfig()
			cfg.Logger = testLogger(b)
			srv, err := NewServer(ln, cfg)
			require.NoError(b, err)
			clientpb.RegisterClientServer(srv.GRPC(), echoServer{})
			served := make(chan error, 1)
			go func() { served <- srv.Serve() }()
			defer func() {
				require.NoError(b, srv.Close())
				require.NoError(b, <-served)
			}()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ready, done sync.WaitGroup
			var trips atomic.Int64
			start := make(chan struct{})
			conns := make([]*grpc.ClientConn, tc.conns)
			for i := range conns {
				conn, err := grpc.NewClient(srv.Addr(),
					grpc.WithTransportCredentials(insecure.NewCredentials()),
					grpc.WithInitialWindowSize(flowWindow), grpc.WithInitialConnWindowSize(flowWindow))
				require.NoError(b, err)
				defer conn.Close()
				conns[i] = conn
			}
			for i := range n {
				st, err := clientpb.NewClientClient(conns[i%len(conns)]).Stream(ctx)
				require.NoError(b, err)
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					call := &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: make([]byte, 230)}}}
					round := func() bool {
						call.Id++
						if st.Send(call) != nil {
							return false
						}
						_, err := st.Recv()
						return err == nil
					}
					round() // connected
					ready.Done()
					<-start
					for ctx.Err() == nil && round() {
						trips.Add(1)
					}
				}()
			}
			ready.Wait()
			cpu0 := testutil.CPUTime()
			t0 := time.Now()
			close(start)
			<-time.After(3 * time.Second)
			got := trips.Load()
			elapsed := time.Since(t0)
			cpu := testutil.CPUTime() - cpu0
			cancel()
			done.Wait()
			b.ReportMetric(float64(got)/elapsed.Seconds(), "trips/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(got), "cpu-µs/trip")
		})
	}
}
