package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// fakeExec is a tiny deterministic contract interpreter:
//
//	put   "name=value"  create or modify resource (sender, "t::name")
//	del   "name"        delete it (abort 2 if absent)
//	abort               abort with code 7
//	gas   "n"           use n gas (out of gas past the limit)
//	emit  data          one event t::Said{data}, output data
//	raise "type=data"   one event of that type with that data
//	bad                 a change set that does not fit the state
//	spam                a write and too many events
//	dup                 two writes of one resource
//	on_join/on_leave    create/delete (member, "t::Member")
//	on_tick             write (zero, "t::Tick") = tick number
type fakeExec struct {
	noHooks bool
	calls   int
}

func (f *fakeExec) Has(fn string) bool {
	switch fn {
	case protocol.FuncOnJoin, protocol.FuncOnLeave, protocol.FuncOnTick:
		return !f.noHooks
	}
	return false
}

func (f *fakeExec) Execute(c protocol.Call, st protocol.StateReader) protocol.CallResult {
	f.calls++
	key := func(acc protocol.Address, name string) protocol.ResourceKey {
		return protocol.ResourceKey{Account: acc, Type: "t::" + name}
	}
	write := func(k protocol.ResourceKey, v []byte) protocol.Change {
		if old, ok := st.Get(k); ok {
			return protocol.Change{Key: k, Kind: protocol.OpModify, Old: old, New: v}
		}
		return protocol.Change{Key: k, Kind: protocol.OpNew, New: v}
	}
	ok := func(gas uint64, changes ...protocol.Change) protocol.CallResult {
		return protocol.CallResult{Status: protocol.StatusOK, GasUsed: gas, ChangeSet: protocol.ChangeSet{Changes: changes}}
	}
	gas := 10 + uint64(len(c.Args))
	switch c.Function {
	case "put":
		name, val, _ := strings.Cut(string(c.Args), "=")
		return ok(gas, write(key(c.Sender, name), []byte(val)))
	case "del":
		k := key(c.Sender, string(c.Args))
		old, found := st.Get(k)
		if !found {
			return protocol.CallResult{Status: protocol.StatusAbort, AbortCode: 2, GasUsed: gas, Message: "no such resource"}
		}
		return ok(gas, protocol.Change{Key: k, Kind: protocol.OpDelete, Old: old})
	case "abort":
		return protocol.CallResult{Status: protocol.StatusAbort, AbortCode: 7, GasUsed: gas, Message: "aborted"}
	case "gas":
		n, _ := strconv.ParseUint(string(c.Args), 10, 64)
		if n > c.Gas {
			return protocol.CallResult{Status: protocol.StatusOutOfGas, GasUsed: c.Gas, Message: "out of gas"}
		}
		return ok(n)
	case "emit":
		r := ok(gas)
		r.Events = []protocol.Event{{Type: "t::Said", Data: c.Args}}
		r.Output = c.Args
		return r
	case "raise":
		// "type=data": one event of that type, e.g. a scraft::Leave.
		typ, data, _ := strings.Cut(string(c.Args), "=")
		r := ok(gas)
		r.Events = []protocol.Event{{Type: typ, Data: []byte(data)}}
		return r
	case "spam":
		r := ok(gas, write(key(c.Sender, "spam"), []byte("x")))
		r.Events = make([]protocol.Event, protocol.MaxEvents+1)
		return r
	case "dup":
		return ok(gas, write(key(c.Sender, "d"), []byte("1")), write(key(c.Sender, "d"), []byte("2")))
	case "bad":
		return ok(gas, protocol.Change{Key: key(c.Sender, "absent"), Kind: protocol.OpModify, Old: []byte("x"), New: []byte("y")})
	case protocol.FuncOnJoin:
		return ok(gas, write(key(c.Sender, "Member"), slices.Clone(c.Args)))
	case protocol.FuncOnLeave:
		k := key(c.Sender, "Member")
		if old, found := st.Get(k); found {
			return ok(gas, protocol.Change{Key: k, Kind: protocol.OpDelete, Old: old})
		}
		return ok(gas)
	case protocol.FuncOnTick:
		return ok(gas, write(key(protocol.Address{}, "Tick"), slices.Clone(c.Args)))
	}
	return protocol.CallResult{Status: protocol.StatusBadInput, Message: "unknown function " + c.Function}
}

var testChannel = protocol.ChannelID{0xc0, 0xff, 0xee}

func testKey(t testing.TB, i int) *protocol.Key {
	t.Helper()
	k, err := protocol.KeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func memberOf(k *protocol.Key, seq uint64) Member {
	return Member{Address: k.Address(), PublicKey: k.Public(), JoinSeq: seq}
}

// testConfig makes a channel of contract "t" whose members are keys, with
// ticks every 100 ms (10 ms tolerance) and one genesis resource.
func testConfig(keys ...*protocol.Key) Config {
	cfg := DefaultConfig()
	cfg.Channel = testChannel
	cfg.Contract = "t"
	cfg.GasLimit = 1000
	cfg.TickIntervalMs = 100
	cfg.TickToleranceMs = 10
	cfg.Genesis.State = protocol.State{{Type: "t::Genesis"}: []byte("hello")}
	for i, k := range keys {
		cfg.Genesis.Members = append(cfg.Genesis.Members, memberOf(k, uint64(i+1)))
	}
	cfg.Genesis.HighestJoinSeq = uint64(len(keys))
	return cfg
}

func newMachine(t testing.TB, cfg Config) *Machine {
	t.Helper()
	m, err := New(cfg, &fakeExec{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func call(k *protocol.Key, nonce uint64, fn, args string) protocol.Entry {
	tx := protocol.SignTx(k, protocol.Tx{Channel: testChannel, Nonce: nonce, Function: "t::" + fn, Args: []byte(args)})
	return protocol.Entry{Kind: protocol.EntryCall, Call: tx}
}

// request is a signed call of the reserved namespace (scraft::leave, ...).
func request(k *protocol.Key, nonce uint64, fn string) protocol.Entry {
	tx := protocol.SignTx(k, protocol.Tx{Channel: testChannel, Nonce: nonce, Function: fn})
	return protocol.Entry{Kind: protocol.EntryCall, Call: tx}
}

func tick(n, ts uint64) protocol.Entry {
	return protocol.Entry{Kind: protocol.EntryTick, Tick: &protocol.Tick{Number: n, TimestampMs: ts}}
}

func join(k *protocol.Key, seq uint64) protocol.Entry {
	return protocol.Entry{Kind: protocol.EntryJoin, Join: &protocol.MemberJoin{Member: k.Address(), PublicKey: k.Public(), JoinSeq: seq}}
}

func leave(k *protocol.Key) protocol.Entry {
	return protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: k.Address()}}
}

// honestBatch signs a batch of entries with the results m computes for them
// on top of its applied state, faults included (Propose would refuse those).
// m is not changed.
func honestBatch(m *Machine, entries []protocol.Entry, epoch uint64, leader *protocol.Key, ts uint64) *protocol.Batch {
	l := newLayer(m.st.meta)
	l.epoch, l.leader, l.timestampMs = epoch, leader.Address(), ts
	v := &view{base: m.st, top: l}
	outs, _ := m.run(v, entries, m.st.height+1, ts, verifyCalls(entries))
	b := &protocol.Batch{Channel: m.cfg.Channel, Epoch: epoch, FirstHeight: m.st.height + 1, TimestampMs: ts,
		Entries: entries, Digest: l.digest}
	for _, o := range outs {
		b.Results = append(b.Results, o.Result)
	}
	b.Sign(leader)
	return b
}

// roundTrip encodes and decodes b, as raft would carry it.
func roundTrip(t testing.TB, b *protocol.Batch) *protocol.Batch {
	t.Helper()
	out, err := protocol.DecodeBatch(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustApply(t testing.TB, m *Machine, b *protocol.Batch) *Applied {
	t.Helper()
	a, err := m.Apply(b, nil)
	if err != nil {
		t.Fatalf("apply batch at %d: %v", b.FirstHeight, err)
	}
	return a
}

func snapshotBytes(m *Machine) []byte { return m.Snapshot().Bytes() }

// stateBytes encodes everything members must agree on, and the journal
// (digest, state hash and change set per height): not the batches, which
// differ between members that applied a lie and the honest batch.
func stateBytes(m *Machine) []byte {
	st := m.st
	var buf bytes.Buffer
	cw := &chunkWriter{w: &buf, sum: sha256.New()}
	e := cw.next()
	e.U64(st.height)
	e.Fixed(st.digest[:])
	e.U64(st.settled)
	e.Fixed(st.settledDigest[:])
	sh := m.recomputeStateHash()
	e.Fixed(sh[:])
	e = cw.writeSets(e, st)
	for _, je := range st.journal {
		e.Fixed(je.digest[:])
		e.Fixed(je.state[:])
		e.U8(uint8(je.pos))
		je.cs.Encode(e)
	}
	cw.flush(e)
	return buf.Bytes()
}

func requireSameState(t testing.TB, a, b *Machine) {
	t.Helper()
	if a.Height() != b.Height() || a.LastDigest() != b.LastDigest() {
		t.Fatalf("height/digest differ: %d %s vs %d %s", a.Height(), a.LastDigest(), b.Height(), b.LastDigest())
	}
	if !bytes.Equal(stateBytes(a), stateBytes(b)) {
		t.Fatal("states differ")
	}
	for _, m := range []*Machine{a, b} {
		if m.st.resources != len(m.st.res) {
			t.Fatalf("resource count %d, state holds %d", m.st.resources, len(m.st.res))
		}
	}
}

func statuses(outs []protocol.Outcome) []protocol.Status {
	s := make([]protocol.Status, len(outs))
	for i, o := range outs {
		s[i] = o.Result.Status
	}
	return s
}

// testChain answers the facts a machine asks for as a node's chain
// would: the leader of each epoch (leaders; an epoch it lacks is led by
// nobody), the verdict on each join and on each leave of a member that did
// not ask (join, leave; nil says yes to all).
type testChain struct {
	leaders map[uint64]protocol.Address
	join    func(protocol.MemberJoin) error
	leave   func(m Member, epoch uint64) error
}

func (c *testChain) answer(need *NeedFactsError, f *Facts) {
	if need.Leader {
		f.SetLeader(need.Epoch, c.leaders[need.Epoch])
	}
	for _, j := range need.Joins {
		var err error
		if c.join != nil {
			err = c.join(j)
		}
		f.SetJoin(j, err)
	}
	for _, m := range need.Leaves {
		var err error
		if c.leave != nil {
			err = c.leave(m, need.Epoch)
		}
		f.SetLeave(m, need.Epoch, err)
	}
}

// apply is ApplyFacts with the facts the batch asks for.
func (c *testChain) apply(m *Machine, b *protocol.Batch, ver *Verified) (*Applied, error) {
	facts := &Facts{}
	for {
		a, err := m.ApplyFacts(b, ver, facts)
		var need *NeedFactsError
		if !errors.As(err, &need) {
			return a, err
		}
		c.answer(need, facts)
	}
}

// propose is ProposeFacts with the facts the entries ask for.
func (c *testChain) propose(m *Machine, entries []protocol.Entry, epoch uint64, key *protocol.Key, ts uint64) (*protocol.Batch, []protocol.Outcome, error) {
	facts := &Facts{}
	for {
		b, outs, err := m.ProposeFacts(entries, epoch, key, ts, facts)
		var need *NeedFactsError
		if !errors.As(err, &need) {
			return b, outs, err
		}
		c.answer(need, facts)
	}
}
