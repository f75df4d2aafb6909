package clientapi

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// scriptedSub is a protocol.Subscription that returns a fixed list of Next results,
// then waits for its context.
type scriptedSub struct {
	steps []scriptedNext
}

type scriptedNext struct {
	outs []protocol.Outcome
	err  error
}

func (s *scriptedSub) Snapshot() *protocol.Snapshot { return nil }
func (s *scriptedSub) Close()                       {}
func (s *scriptedSub) Next(ctx context.Context) ([]protocol.Outcome, error) {
	if len(s.steps) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	n := s.steps[0]
	s.steps = s.steps[1:]
	return n.outs, n.err
}

// scriptedAPI serves one scripted subscription over stubAPI.
type scriptedAPI struct {
	*stubAPI
	sub *scriptedSub
}

func (a *scriptedAPI) Subscribe(context.Context, protocol.ChannelID, uint64) (protocol.Subscription, error) {
	return a.sub, nil
}

// TestSubscribeMessages checks what a subscription puts on the wire for
// what its Next returns: a long run split at MaxUpdateOutcomes, outcomes
// that come with an error sent before the error, and the error's resume
// height the last one sent.
func TestSubscribeMessages(t *testing.T) {
	k := fuzzKey(t)
	ch := protocol.ChannelID{1}
	outs := testOutcomes(11, 6)
	api := &scriptedAPI{stubAPI: newStubAPI(ch, k.Address()), sub: &scriptedSub{steps: []scriptedNext{
		{outs: outs[:5]},
		{outs: outs[5:], err: protocol.ErrSlowSubscriber},
	}}}
	cfg := DefaultConfig()
	cfg.Addresses = []string{"n"}
	cfg.MaxUpdateOutcomes = 2
	svc, err := NewService(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ss, err := svc.newSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ss.cancel()
	ss.addr = k.Address()
	ss.bound.Store(true)
	ss.dispatch(&clientpb.ClientMessage{Id: 3, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:], FromHeight: 10}}})

	// Play the stream's sender; take each message as the client would
	// decode it.
	recv := func() *clientpb.ServerMessage {
		t.Helper()
		select {
		case u := <-ss.updates:
			b, err := proto.Marshal(u.m)
			if err != nil {
				t.Fatal(err)
			}
			var m clientpb.ServerMessage
			if err := proto.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.GetId() != 3 {
				t.Fatalf("message for request %d", m.GetId())
			}
			return &m
		case m := <-ss.out:
			t.Fatalf("a subscription's message came through the answer queue: %v", m)
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
		return nil
	}
	if s := recv().GetSnapshot(); !s.GetResumed() || s.GetHeight() != 10 {
		t.Fatalf("first message: snapshot %v", s)
	}
	var sizes []int
	next := uint64(11)
	for next <= 16 {
		u := recv().GetUpdates()
		if u == nil {
			t.Fatalf("updates end at %d", next)
		}
		sizes = append(sizes, len(u.GetOutcomes()))
		for _, p := range u.GetOutcomes() {
			o, err := OutcomeFromPB(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := outs[next-11]; o.Height != next || o.Digest != want.Digest {
				t.Fatalf("outcome at %d: %+v", next, o)
			}
			next++
		}
	}
	if want := []int{2, 2, 1, 1}; !slices.Equal(sizes, want) {
		t.Fatalf("message sizes %v, want %v", sizes, want)
	}
	e := ErrorFromPB(recv().GetError())
	if e == nil || !errors.Is(e.Code.Err(), protocol.ErrSlowSubscriber) || e.ResumeHeight != 16 {
		t.Fatalf("end: %+v, want slow subscriber resuming from 16", e)
	}
	if got := svc.Stats().Dropped; got != 1 {
		t.Fatalf("dropped %d", got)
	}
}
