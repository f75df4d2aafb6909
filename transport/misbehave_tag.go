//go:build scraft_misbehave

package transport

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A node built with -tags scraft_misbehave takes these SCRAFT_MISBEHAVE
// kinds at its port (the cluster's kinds are in cluster/misbehave.go):
//
//	isolate   SIGUSR1 cuts the node off from its peers, SIGUSR2 joins it
//	          again: Raft and the peer API, both ways; its chain link and
//	          the client API stay. isolate:PATH also reads the fault
//	          file PATH on each SIGHUP (parseFaultSpec): links to single
//	          peers to cut, a delay on what the node sends
//	noattest  refuse every peer's Attest call, as a member whose
//	          AttestAfter is very long: a fast claim cannot gather this
//	          member's attestation
//
// The released binary is built without the tag and has no such setting.
func init() {
	kind, arg, _ := strings.Cut(os.Getenv("SCRAFT_MISBEHAVE"), ":")
	switch kind {
	case "isolate":
		misbehave = func(s *Server) []grpc.ServerOption { return isolate(s, arg) }
	case "noattest":
		misbehave = func(*Server) []grpc.ServerOption {
			return refuse(func(method string) bool { return method == "/scraft.peer.v1.Peer/Attest" })
		}
	}
}

// isolate cuts s off while SIGUSR1 was the last of SIGUSR1 and SIGUSR2 it
// received: its outgoing Raft and peer calls fail at once (Faults, on the
// sending side), and every incoming call but the client API's is refused.
// With a faultFile, SIGHUP sets the faults that file names instead.
func isolate(s *Server, faultFile string) []grpc.ServerOption {
	if s.cfg.Faults == nil {
		s.cfg.Faults = NewFaults(0)
	}
	f := s.cfg.Faults
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	if faultFile != "" {
		signal.Notify(sigs, syscall.SIGHUP)
	}
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP:
				applyFaultFile(s, f, faultFile)
			case syscall.SIGUSR1:
				s.logger.Warn("misbehaving: cut off from every peer", "addr", s.addr)
				f.Isolate(s.addr)
			default:
				s.logger.Warn("misbehaving: reachable again", "addr", s.addr)
				f.Heal()
			}
		}
	}()
	return refuse(func(method string) bool {
		return !strings.HasPrefix(method, "/scraft.client.v1.") && f.Cut(s.addr, s.addr)
	})
}

// refuse returns interceptors that answer UNAVAILABLE to every incoming
// call cut reports.
func refuse(cut func(method string) bool) []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if cut(info.FullMethod) {
			return nil, status.Error(grpccodes.Unavailable, "misbehaving: refused")
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if cut(info.FullMethod) {
			return status.Error(grpccodes.Unavailable, "misbehaving: refused")
		}
		return handler(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}
