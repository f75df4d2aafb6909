package contract

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestJoin(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		join  Join
		want  error
		coll  Collateral
	}{
		{"with channel stake", func(h *harness) { h.must("dave", &Stake{Channel: h.ch, Amount: 100}) }, Join{}, nil, CollateralStake},
		{"stake below minimum", func(h *harness) { h.must("dave", &Stake{Channel: h.ch, Amount: 99}) }, Join{}, ErrInsufficientStake, 0},
		{"with shared pool", func(h *harness) { h.must("dave", &Deposit{Amount: 100}) }, Join{UsePool: true}, nil, CollateralPool},
		{"pool below minimum", func(h *harness) { h.must("dave", &Deposit{Amount: 99}) }, Join{UsePool: true}, ErrInsufficientStake, 0},
		{"pool already locked elsewhere", func(h *harness) {
			other := h.must("creator", &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{MinStake: 100}}).Channel
			h.must("dave", &Deposit{Amount: 150})
			h.must("dave", &Join{Channel: other, UsePool: true})
		}, Join{UsePool: true}, ErrInsufficientStake, 0},
		{"already member", func(h *harness) {}, Join{}, nil, CollateralStake},
		{"banned", func(h *harness) {
			putU64(h.st, banKey(h.ch, h.addr("dave")), uint64(h.now+1000))
			h.must("dave", &Stake{Channel: h.ch, Amount: 100})
		}, Join{}, ErrBanned, 0},
		{"ban expired", func(h *harness) {
			putU64(h.st, banKey(h.ch, h.addr("dave")), uint64(h.now+1000))
			h.must("dave", &Stake{Channel: h.ch, Amount: 100})
			h.advance(time.Second)
		}, Join{}, nil, CollateralStake},
		{"unknown channel", nil, Join{Channel: protocol.ChannelID{7}}, ErrNoChannel, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob")
			who := "dave"
			if tc.name == "already member" {
				who, tc.want = "bob", ErrAlreadyMember
			}
			if tc.setup != nil {
				tc.setup(h)
			}
			j := tc.join
			if j.Channel.IsZero() {
				j.Channel = h.ch
			}
			rc, err := h.call(who, &j)
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			if rc.JoinSeq != 3 {
				t.Fatalf("join seq %d, want 3", rc.JoinSeq)
			}
			m, err := GetMember(h.st, h.ch, h.addr(who))
			if err != nil || m.JoinSeq != 3 || m.Collateral != tc.coll || m.Locked != 100 || !m.ValidAt(h.now, DefaultHeartbeatTTL) {
				t.Fatalf("member %+v, %v", m, err)
			}
			if ch := h.chanRec(); ch.Members != 3 || ch.LastJoinSeq != 3 {
				t.Fatalf("channel %+v", ch)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		name      string
		by        string
		after     time.Duration
		want      error
		wantValid bool
	}{
		{"member, just now", "bob", 0, nil, true},
		{"member, 15 s later", "bob", DefaultHeartbeatTTL, nil, true},
		{"member, 15.001 s later", "bob", DefaultHeartbeatTTL + time.Millisecond, nil, false},
		{"not a member", "mallory", 0, ErrNotMember, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob")
			_, err := h.call(tc.by, &KeepAlive{Channel: h.ch})
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			m, _ := GetMember(h.st, h.ch, h.addr(tc.by))
			if m.LastHeartbeat != h.now {
				t.Fatalf("heartbeat %d, want %d", m.LastHeartbeat, h.now)
			}
			if got := m.ValidAt(h.now+tc.after.Milliseconds(), DefaultHeartbeatTTL); got != tc.wantValid {
				t.Fatalf("valid %v after %s", got, tc.after)
			}
		})
	}
}

func TestLeave(t *testing.T) {
	initial := DefaultParams().InitialBalance
	settle := func(h *harness) {
		pid, err := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"alice", "bob", "carol"} {
			h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
		}
		h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	}
	tests := []struct {
		name     string
		who      string
		run      func(h *harness) error
		want     error
		released bool
	}{
		{"leave waits for settlement", "carol", func(h *harness) error {
			_, err := h.call("carol", &Leave{Channel: h.ch})
			return err
		}, nil, false},
		{"settlement releases stake", "carol", func(h *harness) error {
			h.must("carol", &Leave{Channel: h.ch})
			settle(h)
			return nil
		}, nil, true},
		{"settlement proposed before the leave does not release", "carol", func(h *harness) error {
			pid, _ := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 5})
			h.must("carol", &Leave{Channel: h.ch})
			for _, n := range []string{"alice", "bob", "carol"} {
				h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			}
			h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return nil
		}, nil, false},
		{"leave twice", "carol", func(h *harness) error {
			h.must("carol", &Leave{Channel: h.ch})
			_, err := h.call("carol", &Leave{Channel: h.ch})
			return err
		}, ErrLeaving, false},
		{"closed channel releases at once", "carol", func(h *harness) error {
			h.must("creator", &Close{Channel: h.ch})
			_, err := h.call("carol", &Leave{Channel: h.ch})
			return err
		}, nil, true},
		{"leader leaving clears the leader", "alice", func(h *harness) error {
			h.must("alice", &Leave{Channel: h.ch})
			settle(h)
			if ch := h.chanRec(); !ch.Leader.IsZero() || ch.Epoch != 2 {
				t.Fatalf("leader %s epoch %d", ch.Leader, ch.Epoch)
			}
			return nil
		}, nil, true},
		{"not a member", "mallory", func(h *harness) error {
			_, err := h.call("mallory", &Leave{Channel: h.ch})
			return err
		}, ErrNotMember, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			var seq uint64
			if m, err := GetMember(h.st, h.ch, h.addr(tc.who)); err == nil {
				seq = m.JoinSeq
			}
			epoch := h.chanRec().Epoch
			wantErr(t, tc.run(h), tc.want)
			if tc.want != nil {
				return
			}
			_, err := GetMember(h.st, h.ch, h.addr(tc.who))
			if gone := errorsIs(err, ErrNotMember); gone != tc.released {
				t.Fatalf("member gone %v, want %v", gone, tc.released)
			}
			// An ended membership is on record for good, with the epoch it
			// ended in (before any change of leader its removal made).
			dp, err := GetDeparture(h.st, h.ch, seq)
			switch {
			case !tc.released && !errorsIs(err, ErrNoDeparture):
				t.Fatalf("departure of a member still in: %+v, %v", dp, err)
			case tc.released && (err != nil || dp.Address != h.addr(tc.who) || dp.JoinSeq != seq || dp.Epoch != epoch || dp.Height == 0 ||
				protocol.AddressOf(dp.PublicKey) != h.addr(tc.who)):
				t.Fatalf("departure %+v, %v; want %s, join seq %d, epoch %d", dp, err, tc.who, seq, epoch)
			}
			acc := GetAccount(h.st, h.params(), h.addr(tc.who))
			if want := initial - 100; tc.released {
				want = initial
				if acc.Balance != want {
					t.Fatalf("balance %d, want %d", acc.Balance, want)
				}
			} else if acc.Balance != want {
				t.Fatalf("balance %d, want %d", acc.Balance, want)
			}
		})
	}
}

func TestLeavePoolCollateral(t *testing.T) {
	h := newHarness(t)
	h.channel("alice")
	h.must("bob", &Deposit{Amount: 100})
	h.must("bob", &Join{Channel: h.ch, UsePool: true})
	h.must("creator", &Close{Channel: h.ch})
	h.must("bob", &Leave{Channel: h.ch})
	if a := GetAccount(h.st, h.params(), h.addr("bob")); a.PoolLocked != 0 || a.PoolDeposit != 100 {
		t.Fatalf("account %+v", a)
	}
	h.must("bob", &Withdraw{Amount: 100})
}

func TestDelegate(t *testing.T) {
	names := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}
	tests := []struct {
		name  string
		calls [][2]string // delegator, candidate
		want  error
	}{
		{"one each", [][2]string{{"m5", "m0"}, {"m6", "m1"}}, nil},
		{"capacity of 10 members is 1", [][2]string{{"m5", "m0"}, {"m6", "m0"}}, ErrNoCapacity},
		{"move frees the old candidate", [][2]string{{"m5", "m0"}, {"m5", "m1"}, {"m6", "m0"}}, nil},
		{"withdraw", [][2]string{{"m5", "m0"}, {"m5", ""}, {"m6", "m0"}}, nil},
		{"to oneself", [][2]string{{"m5", "m5"}}, ErrNotEligible},
		{"to a delegator", [][2]string{{"m5", "m0"}, {"m6", "m5"}}, ErrNotCandidate},
		{"to a member that is not a candidate", [][2]string{{"m5", "m6"}}, ErrNotCandidate},
		{"a candidate with delegators", [][2]string{{"m5", "m0"}, {"m0", "m1"}}, ErrNotEligible},
		{"a candidate without delegators", [][2]string{{"m0", "m1"}}, ErrNotEligible},
		{"to a non-member", [][2]string{{"m5", "mallory"}}, ErrNotMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel(names...)
			var err error
			for _, c := range tc.calls {
				var cand protocol.Address
				if c[1] != "" {
					cand = h.addr(c[1])
				}
				if _, err = h.call(c[0], &Delegate{Channel: h.ch, Candidate: cand}); err != nil {
					break
				}
			}
			wantErr(t, err, tc.want)
		})
	}
}

func TestValidNodeAddress(t *testing.T) {
	long := strings.Repeat("a", 63) + "."
	tests := []struct {
		addr string
		want error
	}{
		{"", nil},
		{"127.0.0.1:7801", nil},
		{"[::1]:7801", nil},
		{"node-1.example.org:443", nil},
		{"localhost:1", nil},
		{"10.0.0.1:65535", nil},
		{"127.0.0.1", ErrMalformed},
		{"127.0.0.1:0", ErrMalformed},
		{"127.0.0.1:65536", ErrMalformed},
		{"127.0.0.1:07801", ErrMalformed},
		{"127.0.0.1:+80", ErrMalformed},
		{"0.0.0.0:7801", ErrMalformed},
		{"[::]:7801", ErrMalformed},
		{"[fe80::1%eth0]:7801", ErrMalformed},
		{"[example.org]:7801", ErrMalformed},
		{":7801", ErrMalformed},
		{"-bad.example:1", ErrMalformed},
		{"a..b:1", ErrMalformed},
		{"evil host:1", ErrMalformed},
		{"host\n:1", ErrMalformed},
		{"host/path:1", ErrMalformed},
		{"http://host:1", ErrMalformed},
		{"\x1b[31mred:1", ErrMalformed},
		{strings.Repeat(long, 4) + "a:1", ErrMalformed}, // a name over 253 bytes
		{strings.Repeat("a", MaxNodeAddressLen+1), ErrTooLarge},
	}
	for _, tc := range tests {
		if err := ValidNodeAddress(tc.addr); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("ValidNodeAddress(%q) = %v, want %v", tc.addr, err, tc.want)
		}
	}
}

func TestSetNodeAddress(t *testing.T) {
	h := newHarness(t)
	h.channel("alice", "bob")
	rc := h.must("alice", &SetNodeAddress{Channel: h.ch, Address: "127.0.0.1:7801"})
	if len(rc.Events) != 1 || rc.Events[0].Kind != EventNodeAddress || rc.Events[0].Member != h.addr("alice") {
		t.Fatalf("events %+v", rc.Events)
	}
	m, err := GetMember(h.st, h.ch, h.addr("alice"))
	if err != nil || m.NodeAddress != "127.0.0.1:7801" {
		t.Fatalf("member %+v, %v", m, err)
	}
	// The same address again changes nothing.
	if rc := h.must("alice", &SetNodeAddress{Channel: h.ch, Address: "127.0.0.1:7801"}); len(rc.Events)+len(rc.Writes) != 0 {
		t.Fatalf("same address wrote %+v", rc)
	}
	// Only the member itself sets it, and only a well-formed one; bob's
	// record is untouched by alice's call.
	_, err = h.call("carol", &SetNodeAddress{Channel: h.ch, Address: "127.0.0.1:7803"})
	wantErr(t, err, ErrNotMember)
	_, err = h.call("alice", &SetNodeAddress{Channel: h.ch, Address: "0.0.0.0:7801"})
	wantErr(t, err, ErrMalformed)
	if m, _ := GetMember(h.st, h.ch, h.addr("bob")); m.NodeAddress != "" {
		t.Fatalf("bob's node address %q", m.NodeAddress)
	}
	// A call over the length limit does not even decode.
	long := EncodeCall(&SetNodeAddress{Channel: h.ch, Address: strings.Repeat("a", MaxNodeAddressLen+1)})
	if _, err := DecodeCall(long); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decode of a long address: %v", err)
	}
	// Empty clears it; the record is then the same bytes as one from
	// before node addresses.
	h.must("alice", &SetNodeAddress{Channel: h.ch, Address: "127.0.0.1:7801"})
	h.must("alice", &SetNodeAddress{Channel: h.ch, Address: ""})
	m, _ = GetMember(h.st, h.ch, h.addr("alice"))
	if m.NodeAddress != "" {
		t.Fatalf("cleared address %q", m.NodeAddress)
	}
	e := protocol.NewEncoder(128)
	m.Encode(e)
	old := e.Out()
	e = protocol.NewEncoder(128)
	m.NodeAddress = "h:1"
	m.Encode(e)
	if set := e.Out(); len(set) != len(old)+4 {
		t.Fatalf("encoded %d bytes with an address, %d without", len(set), len(old))
	}
	// A written-out empty address is not canonical.
	bad := append(append([]byte(nil), old...), 0)
	var back Member
	d := protocol.NewDecoder(bad)
	back.Decode(d)
	if d.Finish() == nil {
		t.Fatal("decoded an empty written-out address")
	}
	// A closed channel takes no address.
	h.must("alice", &Close{Channel: h.ch})
	_, err = h.call("alice", &SetNodeAddress{Channel: h.ch, Address: "127.0.0.1:7801"})
	wantErr(t, err, ErrChannelClosed)
}
