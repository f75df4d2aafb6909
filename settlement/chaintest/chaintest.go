// Package chaintest is the conformance suite of settlement.Chain: one table
// of scenarios that every implementation must pass (devchain in process and
// over gRPC, a chain of CometBFT validators).
package chaintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Env is a fresh chain under test, created with the settings Run gives.
type Env interface {
	// Chain returns a Chain on this chain bound to key.
	Chain(t *testing.T, key *protocol.Key) settlement.Chain
	// Advance moves chain time forward by at least d from the head's; the
	// next block carries it. A chain whose clock a test controls jumps it;
	// one whose time it cannot jump (a BFT chain takes it from its
	// validators' clocks) waits until its blocks are d later.
	Advance(d time.Duration)
}

// Time says whether a scenario moves chain time.
type Time int

const (
	// Still scenarios never move chain time; they run on a chain with
	// contract.DefaultParams.
	Still Time = iota
	// Moves scenarios move chain time past heartbeats, bans and windows
	// (Env.Advance); they run on a chain with ShortParams, so that a chain
	// that must wait for its time waits seconds, not minutes.
	Moves
)

// Scenario is one conformance case.
type Scenario struct {
	Name string
	Time Time
	Run  func(t *testing.T, s *Suite)
}

// ShortParams are the settings of the chains the Moves scenarios run on:
// windows of seconds. They leave the scenarios room for a few blocks of a
// loaded machine within each window (a heartbeat outlives a channel's
// setup; a vote window outlives a heartbeat and the calls after it).
func ShortParams() contract.Params {
	p := contract.DefaultParams()
	p.HeartbeatTTL = 5 * time.Second
	p.BanDuration = 5 * time.Second
	p.VoteWindow = 12 * time.Second
	p.CensorshipWindow = 3 * time.Second
	p.ReportCooldown = 5 * time.Second
	return p
}

// Suite gives a scenario named members on a fresh Env.
type Suite struct {
	t    *testing.T
	env  Env
	ctx  context.Context
	keys map[string]settlement.Chain
	// p are the settings the Env was created with.
	p contract.Params
}

// advancePast moves chain time until it is past ms (chain time, Unix
// ms) by a second: the margin covers a clock that stood a few blocks
// behind the head.
func (s *Suite) advancePast(ms int64) {
	s.t.Helper()
	head, err := s.As("creator").Head(s.ctx)
	s.must(err)
	if d := ms - head.TimeMs + 1000; d > 0 {
		s.env.Advance(time.Duration(d) * time.Millisecond)
	}
}

// Key returns the deterministic key of a named member.
func Key(name string) *protocol.Key {
	seed := sha256.Sum256([]byte("chaintest/" + name))
	k, err := protocol.KeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// As returns the Chain of the named member.
func (s *Suite) As(name string) settlement.Chain {
	if c, ok := s.keys[name]; ok {
		return c
	}
	c := s.env.Chain(s.t, Key(name))
	s.keys[name] = c
	return c
}

// Addr returns the named member's address.
func (s *Suite) Addr(name string) protocol.Address { return Key(name).Address() }

func (s *Suite) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *Suite) want(err, target error) {
	s.t.Helper()
	if !errors.Is(err, target) {
		s.t.Fatalf("error %v, want %v", err, target)
	}
}

var code = []byte("\x00asm\x01\x00\x00\x00chaintest")

// channel creates a channel (min stake 100, fine 60) and has the members
// stake and join in order; the first claims leadership (epoch 1).
func (s *Suite) channel(members ...string) protocol.ChannelID {
	s.t.Helper()
	id, err := s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{
		Contract: "chat", Code: code,
		InitialState: protocol.State{{Account: protocol.Address{1}, Type: "chat::ChatGroup"}: []byte("v0")},
		Labels:       []contract.Label{{Key: "server_address", Value: "127.0.0.1:7000"}, {Key: "world_address", Value: "0x01"}},
		Config:       contract.ChannelConfig{TickInterval: 50 * time.Millisecond, SettleEveryTxs: 1000, GasLimit: 1 << 20, MinStake: 100, Fine: 60},
	})
	s.must(err)
	for i, m := range members {
		s.must(s.As(m).Stake(s.ctx, id, 100))
		seq, err := s.As(m).Join(s.ctx, id, false)
		s.must(err)
		if seq != uint64(i+1) {
			s.t.Fatalf("%s got join seq %d, want %d", m, seq, i+1)
		}
		if i == 0 {
			ep, err := s.As(m).ClaimLeader(s.ctx, id, 0, nil)
			s.must(err)
			if ep != 1 {
				s.t.Fatalf("first claim gave epoch %d", ep)
			}
		}
	}
	return id
}

func (s *Suite) info(id protocol.ChannelID) *settlement.ChannelInfo {
	s.t.Helper()
	info, err := s.As("creator").Channel(s.ctx, id)
	s.must(err)
	return info
}

func (s *Suite) attest(id protocol.ChannelID, epoch uint64, claimant string, by ...string) []protocol.Attestation {
	var out []protocol.Attestation
	for _, n := range by {
		a := protocol.Attestation{Channel: id, Epoch: epoch, Claimant: s.Addr(claimant)}
		a.Sign(Key(n))
		out = append(out, a)
	}
	return out
}

// crowdNames returns m0 … m(n−1).
func crowdNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%d", i)
	}
	return out
}

// crowd is a channel of n members m0 … m(n−1): m0 … m4, equal stakes and
// the earliest joined, are its candidates, and every other member mi
// delegates to m(i%5). The first five join in order, the rest at once.
func (s *Suite) crowd(n int) (protocol.ChannelID, []string) {
	s.t.Helper()
	names := crowdNames(n)
	id := s.channel(names[:5]...)
	s.parallel(names[5:], func(_ int, c settlement.Chain) error {
		if err := c.Stake(s.ctx, id, 100); err != nil {
			return err
		}
		_, err := c.Join(s.ctx, id, false)
		return err
	})
	s.parallel(names[5:], func(i int, c settlement.Chain) error {
		return c.Delegate(s.ctx, id, s.Addr(names[(5+i)%5]))
	})
	return id, names
}

// parallel runs f as each named member at once, with the member's index
// in names.
func (s *Suite) parallel(names []string, f func(int, settlement.Chain) error) {
	s.t.Helper()
	chains := make([]settlement.Chain, len(names))
	for i, n := range names {
		chains[i] = s.As(n)
	}
	errs := make(chan error, len(chains))
	for i, c := range chains {
		go func() { errs <- f(i, c) }()
	}
	for range chains {
		s.must(<-errs)
	}
}

// delegatorsOf returns the members of a crowd delegating to candidate i.
func delegatorsOf(names []string, i int) []string {
	var out []string
	for k := 5 + i; k < len(names); k += 5 {
		out = append(out, names[k])
	}
	return out
}

func (s *Suite) signedVote(id protocol.ChannelID, pid uint64, name string, opt protocol.VoteOption) protocol.Vote {
	v := protocol.Vote{Channel: id, Proposal: pid, Option: opt}
	v.Sign(Key(name))
	return v
}

// nonces returns the next nonce of each named account.
func (s *Suite) nonces(names []string) []uint64 {
	s.t.Helper()
	out := make([]uint64, len(names))
	for i, n := range names {
		acc, err := s.As("creator").Account(s.ctx, s.Addr(n))
		s.must(err)
		out[i] = acc.NextNonce
	}
	return out
}

// seven are the members of the channels where a minority tries to punish.
var seven = []string{"alice", "bob", "carol", "dave", "eve", "frank", "grace"}

// punishment returns a punish payload against target: a batch it signed at
// height whose claimed result differs from the honest one.
func (s *Suite) punishment(id protocol.ChannelID, target string, height uint64) []byte {
	honestCS := protocol.ChangeSet{}
	honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 5, ChangeSet: honestCS.Hash()}
	claimed := honest
	claimed.GasUsed = 6
	tx := protocol.SignTx(Key("bob"), protocol.Tx{Channel: id, Nonce: height, Function: "chat::send"})
	b := &protocol.Batch{Channel: id, Epoch: 1, FirstHeight: height, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{claimed}}
	b.Sign(Key(target))
	return protocol.Marshal(&protocol.Punish{Target: s.Addr(target), Height: height, Batch: b.Bytes(), Honest: honest, HonestChangeSet: honestCS, Reason: "gas differs"})
}

// votes casts each named member's vote: "name" for, "-name" against,
// "~name" abstain.
func (s *Suite) votes(id protocol.ChannelID, pid uint64, names ...string) {
	s.t.Helper()
	for _, n := range names {
		opt := protocol.VoteFor
		switch n[0] {
		case '-':
			n, opt = n[1:], protocol.VoteAgainst
		case '~':
			n, opt = n[1:], protocol.VoteAbstain
		}
		s.must(s.As(n).Vote(s.ctx, id, pid, opt))
	}
}

// untouched checks that no member of names lost collateral or was forced
// out, and that alice still leads in epoch 1.
func (s *Suite) untouched(id protocol.ChannelID, names ...string) {
	s.t.Helper()
	info := s.info(id)
	if info.Leader != s.Addr("alice") || info.Epoch != 1 || len(info.Members) != len(names) {
		s.t.Fatalf("leader %s epoch %d, %d members", info.Leader, info.Epoch, len(info.Members))
	}
	for _, n := range names {
		if m, ok := info.Member(s.Addr(n)); !ok || m.Locked != 100 {
			s.t.Fatalf("%s: %+v", n, m)
		}
	}
}

// Run runs every scenario, each on a fresh Env that newEnv creates with
// the settings p: contract.DefaultParams, or ShortParams for a scenario
// that Moves chain time.
func Run(t *testing.T, newEnv func(t *testing.T, p contract.Params) Env) {
	for _, sc := range Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			p, budget := contract.DefaultParams(), 30*time.Second
			if sc.Time == Moves {
				p, budget = ShortParams(), 90*time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			sc.Run(t, &Suite{t: t, env: newEnv(t, p), ctx: ctx, keys: map[string]settlement.Chain{}, p: p})
		})
	}
}

// Scenarios is the conformance table.
var Scenarios = []Scenario{
	{"channel is created with code, labels, state and config", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice")
		info := s.info(id)
		if info.Contract != "chat" || info.Creator != s.Addr("creator") || info.Config.TickInterval != 50*time.Millisecond ||
			info.Config.GasLimit != 1<<20 || info.Leader != s.Addr("alice") || info.Epoch != 1 {
			t.Fatalf("channel %+v", info.Channel)
		}
		if v, ok := info.Label("server_address"); !ok || v != "127.0.0.1:7000" {
			t.Fatalf("label %q %v", v, ok)
		}
		got, err := s.As("bob").Code(s.ctx, info.CodeHash)
		s.must(err)
		if string(got) != string(code) {
			t.Fatal("code differs")
		}
		for _, f := range []func(context.Context, protocol.ChannelID) (protocol.State, error){s.As("bob").SettledState, s.As("bob").InitialState} {
			st, err := f(s.ctx, id)
			s.must(err)
			if string(st[protocol.ResourceKey{Account: protocol.Address{1}, Type: "chat::ChatGroup"}]) != "v0" {
				t.Fatalf("state %v", st)
			}
		}
		// The same code again by hash only.
		id2, err := s.As("bob").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", CodeHash: info.CodeHash})
		s.must(err)
		if id2 == id {
			t.Fatal("same id twice")
		}
		_, err = s.As("bob").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat"})
		s.want(err, contract.ErrMalformed)
	}},
	{"the chain's settings are those of its genesis, and the rules keep them", Moves, func(t *testing.T, s *Suite) {
		for _, n := range []string{"creator", "alice"} {
			p, err := s.As(n).Params(s.ctx)
			s.must(err)
			if p != s.p {
				t.Fatalf("%s reads settings %+v, the chain was created with %+v", n, p, s.p)
			}
		}
		// A complaint's answer window, in a channel without its own, and a
		// case's voting time are the chain's, not the defaults.
		id := s.channel("alice", "bob", "carol")
		tx := protocol.SignTx(Key("bob"), protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
		cid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: s.Addr("alice"), Tx: *tx}))
		s.must(err)
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		for _, w := range []struct {
			pid    uint64
			window time.Duration
		}{{cid, s.p.CensorshipWindow}, {pid, s.p.VoteWindow}} {
			p, err := s.As("carol").Proposal(s.ctx, id, w.pid)
			s.must(err)
			if p.DeadlineMs-p.CreatedAtMs != w.window.Milliseconds() {
				t.Fatalf("proposal %d open %d ms, want %s", w.pid, p.DeadlineMs-p.CreatedAtMs, w.window)
			}
		}
	}},
	{"create_channel records the versions and bounds what the creator chooses", Still, func(t *testing.T, s *Suite) {
		spec := func(cfg contract.ChannelConfig) settlement.ChannelSpec {
			return settlement.ChannelSpec{Contract: "chat", Code: code, Config: cfg}
		}
		id, err := s.As("creator").CreateChannel(s.ctx, spec(contract.ChannelConfig{GasLimit: contract.MaxGasLimit, VMVersion: 2, GasTableVersion: 3}))
		s.must(err)
		if c := s.info(id).Config; c.GasLimit != contract.MaxGasLimit || c.VM() != 2 || c.GasTable() != 3 {
			t.Fatalf("config %+v", c)
		}
		id, err = s.As("creator").CreateChannel(s.ctx, spec(contract.ChannelConfig{}))
		s.must(err)
		if c := s.info(id).Config; c.VM() != contract.LegacyVersion || c.GasTable() != contract.LegacyVersion || c.Gas() != protocol.DefaultGasLimit {
			t.Fatalf("config with no versions %+v", c)
		}
		for _, tc := range []struct {
			cfg  contract.ChannelConfig
			want error
		}{
			{contract.ChannelConfig{GasLimit: contract.MaxGasLimit + 1}, contract.ErrTooLarge},
			{contract.ChannelConfig{TickInterval: contract.MaxTickInterval + time.Millisecond}, contract.ErrMalformed},
			{contract.ChannelConfig{TickInterval: time.Millisecond + time.Microsecond}, contract.ErrMalformed},
			{contract.ChannelConfig{SettleInterval: contract.MaxPolicyInterval + time.Second}, contract.ErrTooLarge},
		} {
			_, err := s.As("creator").CreateChannel(s.ctx, spec(tc.cfg))
			s.want(err, tc.want)
		}
		big := protocol.State{}
		for i := 0; i < 5; i++ {
			big[protocol.ResourceKey{Account: protocol.Address{byte(i)}, Type: "chat::Big"}] = make([]byte, protocol.MaxValueLen)
		}
		_, err = s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", Code: code, InitialState: big})
		s.want(err, contract.ErrTooLarge)
	}},
	{"create_channel records the ABI with the code, bounded, and binds its hash to the channel", Still, func(t *testing.T, s *Suite) {
		abi := []byte(`{"name":"chat","structs":[],"functions":[],"resources":[],"events":[]}`)
		id, err := s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", Code: code, ABI: abi})
		s.must(err)
		got, err := s.As("bob").ABI(s.ctx, id)
		s.must(err)
		if string(got.JSON) != string(abi) || got.Hash != contract.ABIHashOf(abi) {
			t.Fatalf("ABI %q hash %s", got.JSON, got.Hash)
		}
		// A channel created without one, and an unknown channel.
		old, err := s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", Code: code})
		s.must(err)
		_, err = s.As("bob").ABI(s.ctx, old)
		s.want(err, contract.ErrNoABI)
		_, err = s.As("bob").ABI(s.ctx, protocol.ChannelID{0xab})
		s.want(err, contract.ErrNoChannel)
		// Bad ABIs are refused with the reason, and the chain goes on.
		_, err = s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", Code: code, ABI: []byte(`{"name":`)})
		s.want(err, contract.ErrMalformed)
		huge := append(append([]byte(`{"doc":"`), make([]byte, contract.MaxABILen)...), `"}`...)
		for i := 8; i < len(huge)-2; i++ {
			huge[i] = 'x'
		}
		_, err = s.As("creator").CreateChannel(s.ctx, settlement.ChannelSpec{Contract: "chat", Code: code, ABI: huge})
		s.want(err, contract.ErrTooLarge)
		if got, err := s.As("creator").ABI(s.ctx, id); err != nil || got.Hash != contract.ABIHashOf(abi) {
			t.Fatalf("after refusals: %+v, %v", got, err)
		}
	}},
	{"members join in sequence and stay valid for the chain's heartbeat TTL", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		m, err := s.As("alice").Member(s.ctx, id, s.Addr("bob"))
		s.must(err)
		if m.JoinSeq != 2 || !m.Valid || m.Locked != 100 {
			t.Fatalf("member %+v", m)
		}
		s.env.Advance(s.p.HeartbeatTTL + time.Second)
		s.must(s.As("alice").KeepAlive(s.ctx, id))
		info := s.info(id)
		a, _ := info.Member(s.Addr("alice"))
		b, _ := info.Member(s.Addr("bob"))
		if !a.Valid || b.Valid || info.ValidMembers() != 1 {
			t.Fatalf("alice valid %v, bob valid %v", a.Valid, b.Valid)
		}
		s.want(s.As("carol").KeepAlive(s.ctx, id), contract.ErrNotMember)
		_, err = s.As("bob").Join(s.ctx, id, false)
		s.want(err, contract.ErrAlreadyMember)
		_, err = s.As("carol").Join(s.ctx, protocol.ChannelID{9}, false)
		s.want(err, contract.ErrNoChannel)
	}},
	{"members publish their own node address, bounded and well-formed", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		s.must(s.As("alice").SetNodeAddress(s.ctx, id, "127.0.0.1:7801"))
		s.must(s.As("bob").SetNodeAddress(s.ctx, id, "node-b.example:7802"))
		m, err := s.As("carol").Member(s.ctx, id, s.Addr("alice"))
		s.must(err)
		if m.NodeAddress != "127.0.0.1:7801" {
			t.Fatalf("alice's node address %q", m.NodeAddress)
		}
		info := s.info(id)
		if b, _ := info.Member(s.Addr("bob")); b.NodeAddress != "node-b.example:7802" {
			t.Fatalf("bob's node address %q", b.NodeAddress)
		}
		// A non-member cannot, and a member sets only its own record.
		s.want(s.As("carol").SetNodeAddress(s.ctx, id, "127.0.0.1:7803"), contract.ErrNotMember)
		s.want(s.As("carol").SetNodeAddress(s.ctx, protocol.ChannelID{9}, "127.0.0.1:7803"), contract.ErrNoChannel)
		// Refused whole: no address, an unspecified IP, a port out of
		// range, bytes that are not an address, and one over the limit.
		for _, bad := range []string{"nowhere", "0.0.0.0:7801", "127.0.0.1:70000", "a b:1", "x\n:1",
			strings.Repeat("a", contract.MaxNodeAddressLen-len(":1")+1) + ":1",
			strings.Repeat("a", 4096)} {
			if err := s.As("alice").SetNodeAddress(s.ctx, id, bad); !errors.Is(err, contract.ErrMalformed) && !errors.Is(err, contract.ErrTooLarge) {
				t.Fatalf("address %.40q: error %v", bad, err)
			}
		}
		// The node moved, then said nothing: the record follows.
		s.must(s.As("alice").SetNodeAddress(s.ctx, id, "[::1]:7901"))
		if m, _ := s.As("bob").Member(s.ctx, id, s.Addr("alice")); m.NodeAddress != "[::1]:7901" {
			t.Fatalf("moved address %q", m.NodeAddress)
		}
		s.must(s.As("alice").SetNodeAddress(s.ctx, id, ""))
		info = s.info(id)
		a, _ := info.Member(s.Addr("alice"))
		b, _ := info.Member(s.Addr("bob"))
		if a.NodeAddress != "" || b.NodeAddress != "node-b.example:7802" {
			t.Fatalf("alice %q bob %q", a.NodeAddress, b.NodeAddress)
		}
		s.must(s.As("alice").CloseChannel(s.ctx, id))
		s.want(s.As("bob").SetNodeAddress(s.ctx, id, "127.0.0.1:7802"), contract.ErrChannelClosed)
	}},
	{"leader claims: refused while valid, accepted once the heartbeat lapsed, epochs grow", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		_, err := s.As("bob").ClaimLeader(s.ctx, id, 1, nil)
		s.want(err, contract.ErrLeaderValid)
		s.env.Advance(s.p.HeartbeatTTL + time.Second)
		ep, err := s.As("bob").ClaimLeader(s.ctx, id, 1, nil)
		s.must(err)
		if ep != 2 {
			t.Fatalf("epoch %d", ep)
		}
		_, err = s.As("carol").ClaimLeader(s.ctx, id, 1, nil)
		s.want(err, contract.ErrStaleEpoch)
		// Fast path: alice and carol attest that bob is unreachable.
		s.must(s.As("alice").KeepAlive(s.ctx, id))
		s.must(s.As("carol").KeepAlive(s.ctx, id))
		_, err = s.As("carol").ClaimLeader(s.ctx, id, 2, s.attest(id, 2, "carol", "carol"))
		s.want(err, contract.ErrLeaderValid)
		ep, err = s.As("carol").ClaimLeader(s.ctx, id, 2, s.attest(id, 2, "carol", "carol", "alice"))
		s.must(err)
		if info := s.info(id); ep != 3 || info.Leader != s.Addr("carol") || info.Epoch != 3 {
			t.Fatalf("epoch %d leader %s", info.Epoch, info.Leader)
		}
	}},
	{"settlement: votes, execution, settled state", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		key := protocol.ResourceKey{Account: protocol.Address{1}, Type: "chat::ChatGroup"}
		cs, err := protocol.NewChangeSet([]protocol.Change{{Key: key, Kind: protocol.OpModify, Old: []byte("v0"), New: []byte("v1")}})
		s.must(err)
		digest, stateHash := protocol.Hash{0xd1}, protocol.Hash{0x5a}
		pid, err := s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 42, ChangeSet: cs, Digest: digest, StateHash: stateHash}))
		s.must(err)
		_, err = s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 2, To: 42}))
		s.want(err, contract.ErrBadRange)
		_, err = s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, []byte{0xff})
		s.want(err, contract.ErrMalformed)
		s.must(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.want(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrAlreadyVoted)
		s.want(s.As("mallory").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrNotMember)
		s.want(s.As("alice").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		v := protocol.Vote{Channel: id, Proposal: pid, Option: protocol.VoteFor}
		v.Sign(Key("bob"))
		forged := v
		forged.Option = protocol.VoteAgainst
		s.want(s.As("mallory").SubmitVotes(s.ctx, id, pid, []protocol.Vote{forged}), contract.ErrBadVote)
		s.must(s.As("mallory").SubmitVotes(s.ctx, id, pid, []protocol.Vote{v}))
		s.must(s.As("carol").ExecuteProposal(s.ctx, id, pid))
		s.want(s.As("carol").ExecuteProposal(s.ctx, id, pid), contract.ErrProposalClosed)
		s.want(s.As("carol").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrProposalClosed)
		info := s.info(id)
		if info.SettledHeight != 42 || info.SettledDigest != digest || info.SettledStateHash != stateHash {
			t.Fatalf("settled %d %s state hash %s", info.SettledHeight, info.SettledDigest, info.SettledStateHash)
		}
		st, err := s.As("bob").SettledState(s.ctx, id)
		s.must(err)
		if string(st[key]) != "v1" {
			t.Fatalf("settled state %v", st)
		}
		p, err := s.As("bob").Proposal(s.ctx, id, pid)
		s.must(err)
		if p.Status != contract.ProposalExecuted || p.For != 2 || len(p.Votes) != 2 {
			t.Fatalf("proposal %+v", p)
		}
		var back protocol.Settlement
		s.must(protocol.Unmarshal(p.Data, &back))
		if back.StateHash != stateHash {
			t.Fatalf("proposal's state hash %s, want %s", back.StateHash, stateHash)
		}
	}},
	{"leave waits for settlement and releases the stake", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		before, err := s.As("bob").Account(s.ctx, s.Addr("bob"))
		s.must(err)
		s.must(s.As("bob").Leave(s.ctx, id))
		s.want(s.As("bob").Leave(s.ctx, id), contract.ErrLeaving)
		pid, err := s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 3}))
		s.must(err)
		s.must(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("bob").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("alice").ExecuteProposal(s.ctx, id, pid))
		_, err = s.As("alice").Member(s.ctx, id, s.Addr("bob"))
		s.want(err, contract.ErrNotMember)
		after, err := s.As("bob").Account(s.ctx, s.Addr("bob"))
		s.must(err)
		if after.Balance != before.Balance+100 {
			t.Fatalf("balance %d, want %d", after.Balance, before.Balance+100)
		}
	}},
	{"departures: an ended membership is on record with its block and epoch", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		_, err := s.As("carol").Departure(s.ctx, id, 2)
		s.want(err, contract.ErrNoDeparture)
		// Leaving is not gone: the settlement lets bob go.
		s.must(s.As("bob").Leave(s.ctx, id))
		_, err = s.As("carol").Departure(s.ctx, id, 2)
		s.want(err, contract.ErrNoDeparture)
		pid, err := s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 3}))
		s.must(err)
		s.must(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("carol").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("alice").ExecuteProposal(s.ctx, id, pid))
		dp, err := s.As("carol").Departure(s.ctx, id, 2)
		s.must(err)
		if dp.Address != s.Addr("bob") || dp.JoinSeq != 2 || dp.Epoch != 1 || dp.Height == 0 || !bytes.Equal(dp.PublicKey, Key("bob").Public()) {
			t.Fatalf("bob's departure %+v", dp)
		}
		// A forced exit of the leader: the record keeps the epoch it
		// ended in, not the one the punishment started.
		tx := protocol.SignTx(Key("carol"), protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
		honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 5, ChangeSet: protocol.ChangeSet{}.Hash()}
		claimed := honest
		claimed.GasUsed = 6
		b := &protocol.Batch{Channel: id, Epoch: 1, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{claimed}}
		b.Sign(Key("alice"))
		pu := &protocol.Punish{Target: s.Addr("alice"), Height: 4, Batch: b.Bytes(), Honest: honest, Reason: "gas differs"}
		pid, err = s.As("carol").CreateProposal(s.ctx, id, protocol.ProposalPunish, protocol.Marshal(pu))
		s.must(err) // in a channel of two the report alone passes
		s.must(s.As("carol").ExecuteProposal(s.ctx, id, pid))
		dp, err = s.As("carol").Departure(s.ctx, id, 1)
		s.must(err)
		if info := s.info(id); dp.Address != s.Addr("alice") || dp.Epoch != 1 || info.Epoch <= 1 {
			t.Fatalf("alice's departure %+v, channel epoch %d", dp, info.Epoch)
		}
		_, err = s.As("carol").Departure(s.ctx, id, 3)
		s.want(err, contract.ErrNoDeparture)
		_, err = s.As("carol").Departure(s.ctx, protocol.ChannelID{9}, 1)
		s.want(err, contract.ErrNoChannel)
	}},
	{"epoch leaders: who led each epoch stays on record", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		check := func(want ...string) { // the leader of epochs 0, 1, ...; "" none
			t.Helper()
			info := s.info(id)
			if info.Epoch != uint64(len(want)-1) {
				t.Fatalf("channel at epoch %d, want %d", info.Epoch, len(want)-1)
			}
			var last uint64
			for e, name := range want {
				el, err := s.As("bob").EpochLeader(s.ctx, id, uint64(e))
				s.must(err)
				var leader protocol.Address
				if name != "" {
					leader = s.Addr(name)
				}
				switch {
				case el.Epoch != uint64(e) || el.Leader != leader:
					t.Fatalf("epoch %d on record: %+v, want leader %q", e, el, name)
				case e == 0 && el.Height != info.CreatedHeight:
					t.Fatalf("epoch 0 begins at block %d, the channel at %d", el.Height, info.CreatedHeight)
				case e > 0 && el.Height <= last:
					t.Fatalf("epoch %d begins at block %d, epoch %d at %d", e, el.Height, e-1, last)
				}
				last = el.Height
			}
			if cur, _ := s.As("bob").EpochLeader(s.ctx, id, info.Epoch); cur.Leader != info.Leader {
				t.Fatalf("current epoch led by %s on record, by %s in the channel", cur.Leader, info.Leader)
			}
			_, err := s.As("bob").EpochLeader(s.ctx, id, info.Epoch+1)
			s.want(err, contract.ErrNoEpochLeader)
		}
		check("", "alice")
		// A claim after the leader's heartbeat expired.
		s.env.Advance(s.p.HeartbeatTTL + time.Second)
		_, err := s.As("bob").ClaimLeader(s.ctx, id, 1, nil)
		s.must(err)
		check("", "alice", "bob")
		// An election: alice and carol, valid again, are its electorate.
		s.must(s.As("alice").KeepAlive(s.ctx, id))
		s.must(s.As("carol").KeepAlive(s.ctx, id))
		pid, err := s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalElection, protocol.Marshal(&protocol.Election{Epoch: 2, Candidate: s.Addr("carol")}))
		s.must(err)
		s.must(s.As("carol").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("alice").ExecuteProposal(s.ctx, id, pid))
		check("", "alice", "bob", "carol")
		// The leader let go by a settlement: an epoch without a leader,
		// then a claim.
		s.must(s.As("carol").Leave(s.ctx, id))
		pid, err = s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 3}))
		s.must(err)
		s.must(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("bob").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("alice").ExecuteProposal(s.ctx, id, pid))
		check("", "alice", "bob", "carol", "")
		_, err = s.As("alice").ClaimLeader(s.ctx, id, 4, nil)
		s.must(err)
		check("", "alice", "bob", "carol", "", "alice")
		_, err = s.As("bob").EpochLeader(s.ctx, protocol.ChannelID{9}, 0)
		s.want(err, contract.ErrNoChannel)
	}},
	{"shared pool: collateral locked, withdraw only free money", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice")
		s.must(s.As("dave").Deposit(s.ctx, 250))
		if _, err := s.As("dave").Join(s.ctx, id, true); err != nil {
			t.Fatal(err)
		}
		s.want(s.As("dave").Withdraw(s.ctx, 200), contract.ErrLocked)
		s.must(s.As("dave").Withdraw(s.ctx, 150))
		acc, err := s.As("dave").Account(s.ctx, s.Addr("dave"))
		s.must(err)
		if acc.PoolDeposit != 100 || acc.PoolLocked != 100 {
			t.Fatalf("account %+v", acc)
		}
	}},
	{"punishment: fine to the reporter, who leads; a ban of the chain's BanDuration", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		honestCS := protocol.ChangeSet{}
		honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 5, ChangeSet: honestCS.Hash()}
		claimed := honest
		claimed.GasUsed = 6
		tx := protocol.SignTx(Key("bob"), protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
		b := &protocol.Batch{Channel: id, Epoch: 1, FirstHeight: 3, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{claimed}}
		b.Sign(Key("alice"))
		pu := &protocol.Punish{Target: s.Addr("alice"), Height: 3, Batch: b.Bytes(), Honest: honest, HonestChangeSet: honestCS, Reason: "gas differs"}
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, protocol.Marshal(pu))
		s.must(err) // bob's filing is his vote: one of the two others
		s.want(s.As("bob").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrAlreadyVoted)
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.must(s.As("carol").Vote(s.ctx, id, pid, protocol.VoteFor))
		before, _ := s.As("bob").Account(s.ctx, s.Addr("bob"))
		s.must(s.As("bob").ExecuteProposal(s.ctx, id, pid))
		after, _ := s.As("bob").Account(s.ctx, s.Addr("bob"))
		if after.Balance != before.Balance+60 {
			t.Fatalf("reporter got %d", after.Balance-before.Balance)
		}
		info := s.info(id)
		if info.Leader != s.Addr("bob") || info.Epoch != 2 || len(info.Members) != 2 {
			t.Fatalf("leader %s epoch %d members %d", info.Leader, info.Epoch, len(info.Members))
		}
		s.must(s.As("alice").Stake(s.ctx, id, 100))
		_, err = s.As("alice").Join(s.ctx, id, false)
		s.want(err, contract.ErrBanned)
		s.env.Advance(s.p.BanDuration + time.Second)
		_, err = s.As("alice").Join(s.ctx, id, false)
		s.must(err)
	}},
	{"punishment: two colluders of seven cannot force out the leader; four of the six others can", Still, func(t *testing.T, s *Suite) {
		id := s.channel(seven...)
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		s.votes(id, pid, "carol") // the colluders: bob's filing and carol
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.untouched(id, seven...)
		s.votes(id, pid, "dave")
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.votes(id, pid, "eve")
		p, err := s.As("bob").Proposal(s.ctx, id, pid)
		s.must(err)
		if p.For != 4 || len(p.Voters) != 6 || p.VotesNeeded() != 4 || len(p.Votes) != 4 {
			t.Fatalf("proposal %+v", p.Proposal)
		}
		before, _ := s.As("bob").Account(s.ctx, s.Addr("bob"))
		s.must(s.As("grace").ExecuteProposal(s.ctx, id, pid))
		after, _ := s.As("bob").Account(s.ctx, s.Addr("bob"))
		if info := s.info(id); info.Leader != s.Addr("bob") || len(info.Members) != 6 || after.Balance != before.Balance+60 {
			t.Fatalf("leader %s, %d members, reporter got %d", info.Leader, len(info.Members), after.Balance-before.Balance)
		}
	}},
	{"punishment: one case per offence, and votes against fail it early", Still, func(t *testing.T, s *Suite) {
		id := s.channel(seven...)
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		_, err = s.As("carol").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.want(err, contract.ErrDuplicateCase)
		if want := fmt.Sprintf("proposal %d (open)", pid); !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not name %q", err, want)
		}
		s.votes(id, pid, "-carol", "-dave")
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.votes(id, pid, "~eve") // 1 for, 2 left: 4 can no longer be reached
		p, err := s.As("bob").Proposal(s.ctx, id, pid)
		s.must(err)
		if p.Status != contract.ProposalFailed {
			t.Fatalf("status %s", p.Status)
		}
		s.want(s.As("frank").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrProposalClosed)
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrProposalClosed)
		_, err = s.As("frank").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.want(err, contract.ErrDuplicateCase)
		s.untouched(id, seven...)
	}},
	{"punishment: a reporter whose case is voted down may not report again for a while", Moves, func(t *testing.T, s *Suite) {
		id := s.channel(seven...)
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		s.votes(id, pid, "-carol", "-dave", "-eve")
		_, err = s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 4))
		s.want(err, contract.ErrReportCooldown)
		s.env.Advance(s.p.ReportCooldown + time.Second)
		_, err = s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 4))
		s.must(err)
	}},
	{"punishment: the electorate is fixed at filing, offline members count, voting closes", Moves, func(t *testing.T, s *Suite) {
		id := s.channel(seven...)
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		// A member added after filing cannot vote; the target cannot.
		s.must(s.As("henry").Stake(s.ctx, id, 100))
		_, err = s.As("henry").Join(s.ctx, id, false)
		s.must(err)
		s.want(s.As("henry").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrNotEligible)
		s.want(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteAgainst), contract.ErrNotEligible)
		// Only bob and carol stay online: the four offline others still
		// count, so the two cannot pass it.
		s.env.Advance(s.p.HeartbeatTTL + time.Second)
		s.must(s.As("bob").KeepAlive(s.ctx, id))
		s.must(s.As("carol").KeepAlive(s.ctx, id))
		s.votes(id, pid, "carol")
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		// The deadline (VoteWindow after filing) passes: the case has
		// failed.
		filed, err := s.As("bob").Proposal(s.ctx, id, pid)
		s.must(err)
		if filed.DeadlineMs-filed.CreatedAtMs != s.p.VoteWindow.Milliseconds() {
			t.Fatalf("voting open %d ms, want the chain's %s", filed.DeadlineMs-filed.CreatedAtMs, s.p.VoteWindow)
		}
		s.advancePast(filed.DeadlineMs)
		s.want(s.As("dave").Vote(s.ctx, id, pid, protocol.VoteFor), contract.ErrDeadlinePassed)
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		p, err := s.As("bob").Proposal(s.ctx, id, pid)
		s.must(err)
		head, err := s.As("bob").Head(s.ctx)
		s.must(err)
		if p.Standing(head.TimeMs) != contract.ProposalFailed || p.For != 2 {
			t.Fatalf("after the deadline: %s, %d for", p.Standing(head.TimeMs), p.For)
		}
		s.untouched(id, append(seven, "henry")...)
	}},
	{"punishment: in a channel of two the report alone forces out, bans, fines nobody", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		before, _ := s.As("alice").Account(s.ctx, s.Addr("alice"))
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "alice", 3))
		s.must(err)
		s.must(s.As("bob").ExecuteProposal(s.ctx, id, pid))
		after, _ := s.As("alice").Account(s.ctx, s.Addr("alice"))
		if info := s.info(id); !info.Leader.IsZero() || len(info.Members) != 1 || after.Balance != before.Balance+100 {
			t.Fatalf("leader %s, %d members, target got back %d", info.Leader, len(info.Members), after.Balance-before.Balance)
		}
		s.must(s.As("alice").Stake(s.ctx, id, 100))
		_, err = s.As("alice").Join(s.ctx, id, false)
		s.want(err, contract.ErrBanned)
	}},
	{"election: exactly 2/3 of the valid others does not pass, more does", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol", "dave")
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalElection, protocol.Marshal(&protocol.Election{Epoch: 1, Candidate: s.Addr("carol")}))
		s.must(err)
		s.want(s.As("alice").Vote(s.ctx, id, pid, protocol.VoteAgainst), contract.ErrNotEligible) // the leader
		s.votes(id, pid, "carol")
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.votes(id, pid, "dave")
		s.must(s.As("bob").ExecuteProposal(s.ctx, id, pid))
		if info := s.info(id); info.Leader != s.Addr("carol") || info.Epoch != 2 {
			t.Fatalf("leader %s epoch %d", info.Leader, info.Epoch)
		}
	}},
	{"censorship: unanswered complaint closes the channel", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		tx := protocol.SignTx(Key("bob"), protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: s.Addr("alice"), Tx: *tx}))
		s.must(err)
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrNotPassed)
		s.env.Advance(s.p.CensorshipWindow + time.Second)
		s.must(s.As("bob").ExecuteProposal(s.ctx, id, pid))
		if !s.info(id).Closed {
			t.Fatal("channel not closed")
		}
		s.want(s.As("alice").KeepAlive(s.ctx, id), contract.ErrChannelClosed)
	}},
	{"censorship: the leader proves inclusion", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		tx := protocol.SignTx(Key("bob"), protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: s.Addr("alice"), Tx: *tx}))
		s.must(err)
		b := &protocol.Batch{Channel: id, Epoch: 1, FirstHeight: 5, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{{}}}
		b.Sign(Key("bob"))
		s.want(s.As("alice").ProveInclusion(s.ctx, id, pid, b.Bytes()), contract.ErrBadProof)
		b.Sign(Key("alice"))
		s.must(s.As("alice").ProveInclusion(s.ctx, id, pid, b.Bytes()))
		s.env.Advance(s.p.CensorshipWindow + time.Second)
		s.want(s.As("bob").ExecuteProposal(s.ctx, id, pid), contract.ErrProposalClosed)
	}},
	{"election proposal names a new leader", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol")
		pid, err := s.As("bob").CreateProposal(s.ctx, id, protocol.ProposalElection, protocol.Marshal(&protocol.Election{Epoch: 1, Candidate: s.Addr("carol")}))
		s.must(err)
		s.must(s.As("carol").Vote(s.ctx, id, pid, protocol.VoteFor))
		s.must(s.As("bob").ExecuteProposal(s.ctx, id, pid))
		if info := s.info(id); info.Leader != s.Addr("carol") || info.Epoch != 2 {
			t.Fatalf("leader %s epoch %d", info.Leader, info.Epoch)
		}
	}},
	{"delegation: only to candidates, within capacity (27 members: 5 each)", Still, func(t *testing.T, s *Suite) {
		names := crowdNames(27)
		id := s.channel(names...)
		info := s.info(id)
		if len(info.Candidates) != 5 {
			t.Fatalf("candidates %v", info.Candidates)
		}
		for i, a := range info.Candidates {
			if a != s.Addr(names[i]) { // equal stakes: the earliest joined
				t.Fatalf("candidate %d is %s, want %s", i, a, names[i])
			}
		}
		s.want(s.As("m5").Delegate(s.ctx, id, s.Addr("m6")), contract.ErrNotCandidate)
		s.want(s.As("m0").Delegate(s.ctx, id, s.Addr("m1")), contract.ErrNotEligible)
		for _, d := range names[5:10] {
			s.must(s.As(d).Delegate(s.ctx, id, s.Addr("m0")))
		}
		s.want(s.As("m10").Delegate(s.ctx, id, s.Addr("m0")), contract.ErrNoCapacity)
		s.must(s.As("m10").Delegate(s.ctx, id, s.Addr("m1")))
		m, err := s.As("m0").Member(s.ctx, id, s.Addr("m10"))
		s.must(err)
		if m.DelegatedTo != s.Addr("m1") {
			t.Fatalf("delegated to %s", m.DelegatedTo)
		}
		if c, _ := s.info(id).Member(s.Addr("m0")); c.Delegators != 5 {
			t.Fatalf("m0 holds %d", c.Delegators)
		}
		// Only a candidate leads.
		_, err = s.As("m5").ClaimLeader(s.ctx, id, 1, s.attest(id, 1, "m5", names[1:]...))
		s.want(err, contract.ErrNotCandidate)
	}},
	{"candidates: a stake more than 10% above the weakest takes its seat; its delegators are let go", Still, func(t *testing.T, s *Suite) {
		id := s.channel(crowdNames(7)...)
		s.must(s.As("m5").Delegate(s.ctx, id, s.Addr("m4")))
		s.must(s.As("m6").Stake(s.ctx, id, 11))
		info := s.info(id)
		if len(info.Candidates) != 5 || info.Candidates[0] != s.Addr("m6") || slices.Contains(info.Candidates, s.Addr("m4")) {
			t.Fatalf("candidates %v", info.Candidates)
		}
		if m, _ := info.Member(s.Addr("m5")); !m.DelegatedTo.IsZero() {
			t.Fatalf("m5 still delegates to %s", m.DelegatedTo)
		}
		s.must(s.As("m5").Delegate(s.ctx, id, s.Addr("m6")))
	}},
	{"candidates: a lapsed heartbeat loses the seat at the next call; a leader that is no candidate yields to a claim", Moves, func(t *testing.T, s *Suite) {
		names := crowdNames(7)
		id := s.channel(names...)
		s.must(s.As("m6").Delegate(s.ctx, id, s.Addr("m1")))
		// Everyone but m1 beats shortly before the oldest heartbeat (m0's)
		// lapses; then time passes m1's.
		info := s.info(id)
		oldest, _ := info.Member(s.Addr("m0"))
		m1, _ := info.Member(s.Addr("m1"))
		s.advancePast(oldest.LastHeartbeat + s.p.HeartbeatTTL.Milliseconds() - 2000)
		for _, n := range names {
			if n != "m1" {
				s.must(s.As(n).KeepAlive(s.ctx, id))
			}
		}
		s.advancePast(m1.LastHeartbeat + s.p.HeartbeatTTL.Milliseconds())
		s.must(s.As("m0").KeepAlive(s.ctx, id))
		info = s.info(id)
		if slices.Contains(info.Candidates, s.Addr("m1")) || !slices.Contains(info.Candidates, s.Addr("m5")) {
			t.Fatalf("candidates %v", info.Candidates)
		}
		if m, _ := info.Member(s.Addr("m6")); !m.DelegatedTo.IsZero() {
			t.Fatalf("m6 still delegates to %s", m.DelegatedTo)
		}
		// m1 is back, as an outsider. The leader asks to leave: m1, the
		// best ranked outsider, takes its seat; m0 leads until a
		// candidate claims, which needs no attestations.
		s.must(s.As("m1").KeepAlive(s.ctx, id))
		_, err := s.As("m2").ClaimLeader(s.ctx, id, 1, nil)
		s.want(err, contract.ErrLeaderValid)
		s.must(s.As("m0").Leave(s.ctx, id))
		if info := s.info(id); info.Leader != s.Addr("m0") || !slices.Contains(info.Candidates, s.Addr("m1")) {
			t.Fatalf("leader %s, candidates %v", info.Leader, info.Candidates)
		}
		_, err = s.As("m6").ClaimLeader(s.ctx, id, 1, nil)
		s.want(err, contract.ErrNotCandidate)
		ep, err := s.As("m2").ClaimLeader(s.ctx, id, 1, nil)
		s.must(err)
		if ep != 2 {
			t.Fatalf("epoch %d", ep)
		}
	}},
	{"settlement of 100 members: 7 chain txs, silent delegators carried, own votes override", Still, func(t *testing.T, s *Suite) {
		id, names := s.crowd(100)
		cands := names[:5]
		all := append([]string{"creator"}, names...)
		before := s.nonces(all)
		pid, err := s.As("m0").CreateProposal(s.ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 9}))
		s.must(err)
		// Each candidate carries its own vote and those of 13 of its 19
		// delegators (10 for, 3 against): 30 delegators stay silent.
		for i, c := range cands {
			votes := []protocol.Vote{s.signedVote(id, pid, c, protocol.VoteFor)}
			for k, d := range delegatorsOf(names, i)[:13] {
				opt := protocol.VoteFor
				if k < 3 {
					opt = protocol.VoteAgainst
				}
				votes = append(votes, s.signedVote(id, pid, d, opt))
			}
			s.must(s.As(c).SubmitVotes(s.ctx, id, pid, votes))
		}
		s.must(s.As("m1").ExecuteProposal(s.ctx, id, pid))
		after := s.nonces(all)
		txs := uint64(0)
		for i := range all {
			txs += after[i] - before[i]
		}
		if txs != 7 {
			t.Fatalf("the settlement took %d chain txs, want 7", txs)
		}
		p, err := s.As("m1").Proposal(s.ctx, id, pid)
		s.must(err)
		if p.Status != contract.ProposalExecuted || p.For != 85 || p.Against != 15 || len(p.Votes) != 70 {
			t.Fatalf("proposal %s: %d for, %d against, %d votes on record", p.Status, p.For, p.Against, len(p.Votes))
		}
		if info := s.info(id); info.SettledHeight != 9 {
			t.Fatalf("settled height %d", info.SettledHeight)
		}
	}},
	{"one Chain used concurrently keeps its nonces in order", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice")
		errs := make(chan error, 50)
		for i := range 50 {
			go func() {
				if i%5 == 0 {
					errs <- s.As("alice").Stake(s.ctx, id, 1)
				} else {
					errs <- s.As("alice").KeepAlive(s.ctx, id)
				}
			}()
		}
		for range 50 {
			s.must(<-errs)
		}
		acc, err := s.As("alice").Account(s.ctx, s.Addr("alice"))
		s.must(err)
		// stake, join and claim used nonces 1–3, then 50 more.
		if acc.NextNonce != 54 {
			t.Fatalf("next nonce %d, want 54", acc.NextNonce)
		}
		m, err := s.As("alice").Member(s.ctx, id, s.Addr("alice"))
		s.must(err)
		if m.Locked != 110 {
			t.Fatalf("locked %d, want 110", m.Locked)
		}
	}},
	{"events stream in order and resume from any id", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		s.must(s.As("bob").CloseChannel(s.ctx, id))
		ctx, cancel := context.WithCancel(s.ctx)
		defer cancel()
		st, err := s.As("bob").Watch(ctx, settlement.EventID{})
		s.must(err)
		var all []settlement.Event
		for {
			ev, err := st.Recv()
			s.must(err)
			all = append(all, ev)
			if ev.Kind == contract.EventChannelClosed {
				break
			}
		}
		var kinds []contract.EventKind
		for i, ev := range all {
			if i > 0 && !all[i-1].ID.Less(ev.ID) {
				t.Fatalf("event ids not increasing: %s then %s", all[i-1].ID, ev.ID)
			}
			if ev.Channel == id {
				kinds = append(kinds, ev.Kind)
			}
		}
		want := []contract.EventKind{contract.EventChannelCreated, contract.EventStaked, contract.EventMemberJoined,
			contract.EventLeaderChanged, contract.EventStaked, contract.EventMemberJoined, contract.EventChannelClosed}
		if len(kinds) != len(want) {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
		for i := range want {
			if kinds[i] != want[i] {
				t.Fatalf("kinds %v, want %v", kinds, want)
			}
		}
		if e := all[3]; e.Kind != contract.EventLeaderChanged || e.Member != s.Addr("alice") || e.Epoch != 1 {
			t.Fatalf("leader event %+v", e)
		}
		// Resume from the middle: the same tail, nothing missed or repeated.
		mid := all[len(all)/2]
		st2, err := s.As("alice").Watch(ctx, mid.ID)
		s.must(err)
		for _, want := range all[len(all)/2:] {
			got, err := st2.Recv()
			s.must(err)
			if got != want {
				t.Fatalf("resumed stream gave %+v, want %+v", got, want)
			}
		}
	}},
}
