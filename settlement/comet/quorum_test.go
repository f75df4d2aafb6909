package comet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// liar is a validator's API that lies about what the chain holds: another
// leader, a departure that never happened, a settled state nobody voted
// for, an epoch no claim gave, an event no block holds.
type liar struct {
	backend
	mallory protocol.Address
}

func (l liar) ChannelInfo(id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	info, err := l.backend.ChannelInfo(id)
	if err == nil {
		info.Leader, info.Epoch = l.mallory, info.Epoch+1
	}
	return info, err
}

func (l liar) EpochLeader(id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	return &contract.EpochLeader{Epoch: epoch, Leader: l.mallory, Height: 1}, nil
}

func (l liar) Departure(id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	return &contract.Departure{Address: l.mallory, JoinSeq: joinSeq, Height: 1, Epoch: 1}, nil
}

func (l liar) SettledState(id protocol.ChannelID, initial bool) (protocol.State, error) {
	return protocol.State{{Account: l.mallory, Type: "chat::ChatGroup"}: []byte("mallory's")}, nil
}

func (l liar) Submit(ctx context.Context, raw []byte) (devchain.Outcome, error) {
	o, err := l.backend.Submit(ctx, raw)
	o.Receipt.Epoch += 7
	return o, err
}

func (l liar) Watch(ctx context.Context, from settlement.EventID) settlement.EventStream {
	return &liarStream{EventStream: l.backend.Watch(ctx, from), mallory: l.mallory}
}

type liarStream struct {
	settlement.EventStream
	mallory protocol.Address
	lied    bool
}

func (s *liarStream) Recv() (settlement.Event, error) {
	ev, err := s.EventStream.Recv()
	if err == nil && !s.lied {
		// A leader change that never happened, just before the first real
		// event.
		s.lied = true
		fake := ev
		fake.Event = contract.Event{Kind: contract.EventLeaderChanged, Channel: ev.Channel, Member: s.mallory, Epoch: 9}
		return fake, nil
	}
	return ev, err
}

// serveLiar serves validator i's state through a liar, with i's API key,
// so a client that pins the chain's keys accepts it.
func (c *testNet) serveLiar(i int, mallory protocol.Address) string {
	c.t.Helper()
	v := c.vals[i]
	g, err := devchain.NewBackendGRPCServer(liar{backend{v.chain, v}, mallory}, v.chain.Config(), v.key)
	if err != nil {
		c.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	go g.Serve(l)
	c.t.Cleanup(g.Stop)
	return l.Addr().String()
}

func TestOneLyingValidatorIsOutvoted(t *testing.T) {
	c := newTestNet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mallory := chaintest.Key("mallory").Address()
	liarAddr := c.serveLiar(3, mallory)
	pins := devchain.WithChainKeys(c.tn.ChainKeys...)
	addrs := []string{c.tn.APIs[0], c.tn.APIs[1], c.tn.APIs[2], liarAddr}
	quorum := func(name string) *devchain.Client {
		cl, err := DialQuorum(addrs, chaintest.Key(name), 1, pins)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	creator, alice := quorum("creator"), quorum("alice")

	id, err := creator.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("\x00asm q"),
		InitialState: protocol.State{{Account: protocol.Address{1}, Type: "chat::ChatGroup"}: []byte("v0")},
		Config:       contract.ChannelConfig{MinStake: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Stake(ctx, id, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	// The liar reports epoch 8 for the claim; three others say 1.
	epoch, err := alice.ClaimLeader(ctx, id, 0, nil)
	if err != nil || epoch != 1 {
		t.Fatalf("claim: epoch %d, %v", epoch, err)
	}

	// Alone, the liar is believed: the test has teeth.
	direct, err := devchain.Dial(liarAddr, chaintest.Key("bob"), pins)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	// Its validator may commit the claim's block a moment after the
	// others that answered it.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if info, err := direct.Channel(ctx, id); err != nil || info.Leader != mallory {
			return fmt.Errorf("the liar alone: %+v, %v", info, err)
		}
		return nil
	})

	bob := quorum("bob")
	info, err := bob.Channel(ctx, id)
	if err != nil || info.Leader != chaintest.Key("alice").Address() || info.Epoch != 1 {
		t.Fatalf("channel through the quorum: %+v, %v", info, err)
	}
	el, err := bob.EpochLeader(ctx, id, 1)
	if err != nil || el.Leader != chaintest.Key("alice").Address() {
		t.Fatalf("epoch leader through the quorum: %+v, %v", el, err)
	}
	if _, err := bob.Departure(ctx, id, 1); !errors.Is(err, contract.ErrNoDeparture) {
		t.Fatalf("departure through the quorum: %v", err)
	}
	st, err := bob.SettledState(ctx, id)
	if err != nil || string(st[protocol.ResourceKey{Account: protocol.Address{1}, Type: "chat::ChatGroup"}]) != "v0" || len(st) != 1 {
		t.Fatalf("settled state through the quorum: %v, %v", st, err)
	}
	es, err := bob.Watch(ctx, settlement.EventID{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := es.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Member == mallory {
			t.Fatalf("the liar's event came through: %+v", ev)
		}
		if ev.Kind == contract.EventLeaderChanged {
			if ev.Member != chaintest.Key("alice").Address() || ev.Epoch != 1 {
				t.Fatalf("leader event %+v", ev)
			}
			break
		}
	}

	// Two answers are needed: the liar and one validator that is down
	// cannot make one.
	c.stop(0)
	c.stop(1)
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	if _, err := bob.Channel(short, id); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("with only the liar and one honest validator: %v", err)
	}
}
