package devchain

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// oldServer is a chain server from before epochs' leaders were recorded:
// it does not know the GetEpochLeader call.
type oldServer struct{ *Server }

func (oldServer) GetEpochLeader(context.Context, *chainpb.EpochLeaderRequest) (*chainpb.GetEpochLeaderResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method GetEpochLeader not implemented")
}

// It knows departures no better.
func (oldServer) GetDeparture(context.Context, *chainpb.DepartureRequest) (*chainpb.GetDepartureResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method GetDeparture not implemented")
}

// TestEpochLeaderFromOldServer: a client of a server that does not know
// the calls gets ErrNoEpochLeader (ErrNoDeparture), as for an epoch begun on a chain from
// before the records, so a node falls back to what it did then rather
// than retry for ever; a current server answers the same question.
func TestEpochLeaderFromOldServer(t *testing.T) {
	c, _ := newTestChain(t, t.TempDir(), 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, _ := protocol.GenerateKey(nil)
	local := NewLocal(c, k)
	id, err := local.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("code"), Config: contract.ChannelConfig{MinStake: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Stake(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := local.ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(tlsOptions(t, c.cfg)...)
	chainpb.RegisterDevChainServer(g, oldServer{NewServer(c)})
	go g.Serve(l)
	t.Cleanup(g.Stop)
	old, err := Dial(l.Addr().String(), k, pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.EpochLeader(ctx, id, 1); !errors.Is(err, contract.ErrNoEpochLeader) {
		t.Fatalf("old server: %v, want ErrNoEpochLeader", err)
	}
	if _, err := old.Departure(ctx, id, 1); !errors.Is(err, contract.ErrNoDeparture) {
		t.Fatalf("old server, departure: %v, want ErrNoDeparture", err)
	}

	cur, err := Dial(serve(t, c), k, pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if el, err := cur.EpochLeader(ctx, id, 1); err != nil || el.Leader != k.Address() {
		t.Fatalf("current server: %+v, %v", el, err)
	}
	_, err = cur.EpochLeader(ctx, id, 2)
	if !errors.Is(err, contract.ErrNoEpochLeader) {
		t.Fatalf("epoch not reached: %v, want ErrNoEpochLeader", err)
	}
}
