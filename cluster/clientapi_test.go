package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// The cluster's sentinels carry the client API's codes: the stream answers
// them as they are.
func TestClientErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("%w: nonce 3 (last 5)", ErrStaleNonce), protocol.ErrStaleNonce},
		{fmt.Errorf("%w: key 3", ErrBadSignature), protocol.ErrBadSignature},
		{fmt.Errorf("%w: bad signature", ErrBadTx), protocol.ErrBadRequest},
		{fmt.Errorf("%w: height 9 above the applied 3", ErrNotReady), protocol.ErrNotReady},
		{ErrBusy, protocol.ErrBusy},
		{ErrLeadershipLost, protocol.ErrUnavailable},
		{ErrClosed, protocol.ErrNodeClosed},
		{ErrChannelClosed, protocol.ErrChannelClosed},
		{ErrNotLeader, protocol.ErrUnavailable},
		{ErrUnknownChannel, protocol.ErrNoChannel},
		{fmt.Errorf("leave: %w", ErrQuorum), protocol.ErrBadRequest},
	}
	for _, tt := range tests {
		if got, want := protocol.CodeOf(tt.err), protocol.CodeOf(tt.want); !errors.Is(tt.err, tt.want) || got != want {
			t.Errorf("%v: code %s, want %s", tt.err, got, want)
		}
	}
	// A stale nonce and a bad signature are bad txs too.
	if !errors.Is(ErrStaleNonce, ErrBadTx) || !errors.Is(ErrBadSignature, ErrBadTx) {
		t.Error("ErrStaleNonce and ErrBadSignature must be ErrBadTx")
	}
}

func TestSubscriptionBacklogThenLive(t *testing.T) {
	var backlog []protocol.Outcome
	for h := uint64(11); h <= 11+backlogChunk+9; h++ {
		backlog = append(backlog, protocol.Outcome{Height: h})
	}
	top := backlog[len(backlog)-1].Height
	ch := make(chan Applied, 1)
	s := &subscription{ch: ch, cancel: func() {}, after: top, backlog: backlog}
	ctx := context.Background()
	var got []uint64
	for len(got) < len(backlog) {
		outs, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) > backlogChunk {
			t.Fatalf("%d outcomes in one Next", len(outs))
		}
		for _, o := range outs {
			got = append(got, o.Height)
		}
	}
	ch <- Applied{Outcomes: []protocol.Outcome{{Height: top}, {Height: top + 1}}}
	outs, err := s.Next(ctx)
	if err != nil || len(outs) != 1 || outs[0].Height != top+1 {
		t.Fatalf("live after the backlog: %v, %v", outs, err)
	}
	for i, h := range got {
		if h != 11+uint64(i) {
			t.Fatalf("backlog heights %v", got)
		}
	}
	close(ch)
	if _, err := s.Next(ctx); !errors.Is(err, protocol.ErrSlowSubscriber) {
		t.Fatalf("closed feed: %v", err)
	}
}

// TestCheckMemberNotCaughtUp: a node that is not caught up with the
// channel answers NotReady for an address it does not know — the client
// tries again, on another node — and only a caught-up node says NotMember.
// (A node restarted after a crash used to tell long-standing members they
// were none while it replayed its log.)
func TestCheckMemberNotCaughtUp(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, nil)
	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	member := tc.users[3].Address()
	stranger, _ := protocol.GenerateKey(nil)
	api := follower.get().ClientAPI()
	check := func(a protocol.Address, want error) func() error {
		return func() error {
			err := api.CheckMember(tc.id, a)
			if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
				return fmt.Errorf("CheckMember(%s) = %v, want %v", a, err, want)
			}
			return nil
		}
	}

	testutil.WaitFor(t, 10*time.Second, check(member, nil))
	testutil.WaitFor(t, 10*time.Second, check(stranger.Address(), ErrNotMember))

	// Cut off, the follower loses its leader: it is no longer caught up.
	tc.faults.Isolate(follower.addr)
	testutil.WaitFor(t, 10*time.Second, check(stranger.Address(), ErrNotReady))
	err := api.CheckMember(tc.id, stranger.Address())
	if protocol.CodeOf(err) != protocol.CodeNotReady || !protocol.CodeOf(err).Retryable() {
		t.Fatalf("not caught up: %v has code %s", err, protocol.CodeOf(err))
	}
	if err := check(member, nil)(); err != nil {
		t.Fatal(err) // a member it knows stays one
	}
	// The caught-up leader still knows a stranger for one.
	if err := leader.get().ClientAPI().CheckMember(tc.id, stranger.Address()); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("leader: %v", err)
	}

	tc.faults.Heal()
	testutil.WaitFor(t, 10*time.Second, check(stranger.Address(), ErrNotMember))
}

// TestExpectedChannelNotReady: a channel the node is about to open (its
// configuration names it, the client API already serves) is "not ready",
// which a client retries, not "no such channel", which it does not; once
// the open ends, calls reach the channel.
func TestExpectedChannelNotReady(t *testing.T) {
	tc := newTestClusterUsers(t, 1, 1, nil)
	n := tc.nodes[0].get()
	api := n.ClientAPI()
	other := protocol.ChannelID{0xee}
	if err := api.CheckMember(other, tc.users[0].Address()); !errors.Is(err, protocol.ErrNoChannel) {
		t.Fatalf("a channel the node does not host: %v, want ErrNoChannel", err)
	}
	n.Expect(other)
	if !api.Exists(other) {
		t.Fatal("an expected channel does not exist for the client API")
	}
	if err := api.CheckMember(other, tc.users[0].Address()); !errors.Is(err, protocol.ErrNotReady) || !protocol.CodeOf(err).Retryable() {
		t.Fatalf("an expected channel: %v, want a retryable ErrNotReady", err)
	}
	// An open that fails (the chain has no such channel) ends the wait.
	if _, err := n.Open(context.Background(), other); err == nil {
		t.Fatal("opening a channel the chain does not have succeeded")
	}
	if err := api.CheckMember(other, tc.users[0].Address()); !errors.Is(err, protocol.ErrNoChannel) {
		t.Fatalf("after a failed open: %v, want ErrNoChannel", err)
	}
}
