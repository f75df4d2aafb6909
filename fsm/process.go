package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/scraft/scraft/protocol"
)

// fault is an entry the leader should never have put in a batch.
type fault struct {
	index  int
	reason Reason
	detail string
}

var (
	emptyChangeSetHash = protocol.ChangeSet{}.Hash()
	emptyEventsHash    = protocol.EventsHash(nil)
	emptyOutputHash    = protocol.OutputHash(nil)
)

// failure is the result of an entry that changes nothing.
func failure(s protocol.Status, abort uint32, gas uint64) protocol.Result {
	return protocol.Result{
		Status:    s,
		AbortCode: abort,
		GasUsed:   gas,
		ChangeSet: emptyChangeSetHash,
		Events:    emptyEventsHash,
		Output:    emptyOutputHash,
	}
}

// run executes entries at consecutive heights from first into v.top and
// chains the digest in v.top. sigErrs, when not nil, holds the signature
// verdict of each call entry (nil for valid). It never fails: an invalid
// entry still takes its height, with a failure status and no effect, and is
// reported as a fault when the leader should not have included it.
func (m *Machine) run(v *view, entries []protocol.Entry, first, ts uint64, sigErrs []error) ([]protocol.Outcome, []fault) {
	outs := make([]protocol.Outcome, len(entries))
	var faults []fault
	for i := range entries {
		var sigErr error
		if sigErrs != nil {
			sigErr = sigErrs[i]
		}
		o := &outs[i]
		o.Height = first + uint64(i)
		if reason, detail := m.runEntry(v, &entries[i], o, ts, sigErr); reason != 0 {
			faults = append(faults, fault{index: i, reason: reason, detail: detail})
		}
		o.Digest = protocol.NextDigest(v.top.digest, o.Hash, &o.Result)
		v.top.digest = o.Digest
		v.top.height = o.Height
		v.top.states = append(v.top.states, v.top.stateHash())
	}
	return outs, faults
}

// runEntry fills o (all but Digest) and reports a fault reason, 0 if none.
func (m *Machine) runEntry(v *view, en *protocol.Entry, o *protocol.Outcome, ts uint64, sigErr error) (Reason, string) {
	o.Kind = en.Kind
	reject := func(s protocol.Status, r Reason, format string, args ...any) (Reason, string) {
		o.Result = failure(s, 0, 0)
		o.Message = fmt.Sprintf(format, args...)
		return r, o.Message
	}
	switch {
	case en.Kind == protocol.EntryCall && en.Call != nil:
		o.Hash = en.Call.Hash()
		return m.runCall(v, en.Call, o, ts, sigErr)
	case en.Kind == protocol.EntryJoin && en.Join != nil:
		o.Hash = en.Hash()
		return m.runJoin(v, en.Join, o, ts)
	case en.Kind == protocol.EntryLeave && en.Leave != nil:
		o.Hash = en.Hash()
		return m.runLeave(v, en.Leave.Member, o, ts)
	case en.Kind == protocol.EntryTick && en.Tick != nil:
		o.Hash = en.Hash()
		return m.runTick(v, en.Tick, o, ts)
	}
	// An entry of unknown kind or without its body cannot be encoded
	// faithfully; hash what the kind byte says so the digest stays defined.
	o.Hash = protocol.HashOf(protocol.DomainEntry, []byte{uint8(en.Kind)})
	return reject(protocol.StatusRejected, ReasonBadEntry, "fsm: malformed %s entry", en.Kind)
}

func (m *Machine) runCall(v *view, tx *protocol.SignedTx, o *protocol.Outcome, ts uint64, sigErr error) (Reason, string) {
	fail := func(s protocol.Status, format string, args ...any) {
		o.Result = failure(s, 0, 0)
		o.Message = fmt.Sprintf(format, args...)
	}
	t := &tx.Tx
	if sigErr != nil {
		fail(protocol.StatusBadSignature, "fsm: tx from %s: %v", t.Sender, sigErr)
		return ReasonBadSignature, o.Message
	}
	if h := v.top.closing; h != 0 {
		fail(protocol.StatusRejected, "fsm: the channel is closing since height %d", h)
		return ReasonClosing, o.Message
	}
	if t.Channel != m.cfg.Channel {
		fail(protocol.StatusBadInput, "fsm: tx for channel %s", t.Channel)
		return 0, ""
	}
	if _, ok := v.member(t.Sender); !ok {
		fail(protocol.StatusNotMember, "fsm: %s is not a member", t.Sender)
		return 0, ""
	}
	next := v.nonce(t.Sender) + 1
	if t.Nonce != next {
		fail(protocol.StatusBadNonce, "fsm: nonce %d, want %d", t.Nonce, next)
		return 0, ""
	}
	// From here the tx counts: its nonce is used whatever the contract does.
	v.setNonce(t.Sender, next)
	contract, fn, ok := strings.Cut(t.Function, "::")
	switch {
	case ok && contract == protocol.ReservedContract:
		m.runRequest(v, t, fn, o)
	case !ok || contract != m.cfg.Contract:
		fail(protocol.StatusBadInput, "fsm: function %q is not of contract %q", t.Function, m.cfg.Contract)
	case reserved(fn):
		fail(protocol.StatusBadInput, "fsm: %q is reserved", fn)
	default:
		m.execute(v, protocol.Call{Function: fn, Args: t.Args, Sender: t.Sender, Height: o.Height, TimestampMs: ts, Gas: m.cfg.GasLimit}, o)
	}
	return 0, ""
}

// runRequest runs a call of the reserved namespace. A request takes its
// height and nonce like any call; it runs no contract code and emits the
// event a contract would emit to ask the same (protocol.EventLeave or
// EventClose, data: the sender), so that the node sees one kind of request.
func (m *Machine) runRequest(v *view, t *protocol.Tx, fn string, o *protocol.Outcome) {
	var ev protocol.Event
	switch {
	case len(t.Args) != 0:
		o.Result = failure(protocol.StatusBadInput, 0, 0)
		o.Message = fmt.Sprintf("fsm: %s::%s takes no args", protocol.ReservedContract, fn)
		return
	case t.Function == protocol.RequestLeave:
		ev = protocol.Event{Type: protocol.EventLeave, Data: t.Sender[:]}
	case t.Function == protocol.RequestClose:
		ev = protocol.Event{Type: protocol.EventClose, Data: t.Sender[:]}
	default:
		o.Result = failure(protocol.StatusBadInput, 0, 0)
		o.Message = fmt.Sprintf("fsm: unknown request %q", t.Function)
		return
	}
	evs := []protocol.Event{ev}
	o.Result = protocol.Result{
		Status:    protocol.StatusOK,
		ChangeSet: emptyChangeSetHash,
		Events:    protocol.EventsHash(evs),
		Output:    emptyOutputHash,
	}
	o.Events = evs
	m.takeRequests(v, evs, t.Sender, o.Height)
}

// takeRequests records the leave and close requests among the events of a
// successful entry: scraft::Leave names the member to take out (16 bytes;
// empty means the sender), scraft::Close closes the channel. A leave of a
// non-member, or of a member that asked already, changes nothing; so does
// any other data.
func (m *Machine) takeRequests(v *view, evs []protocol.Event, sender protocol.Address, height uint64) {
	for _, ev := range evs {
		switch ev.Type {
		case protocol.EventLeave:
			who := sender
			switch len(ev.Data) {
			case 0:
			case len(who):
				copy(who[:], ev.Data)
			default:
				continue
			}
			if who.IsZero() {
				continue
			}
			if mem, ok := v.member(who); ok && mem.LeaveHeight == 0 {
				asked := mem
				asked.LeaveHeight = height
				v.putMember(mem, true, asked)
			}
		case protocol.EventClose:
			if v.top.closing == 0 {
				v.top.closing = height
			}
		}
	}
}

func reserved(fn string) bool {
	switch fn {
	case protocol.FuncInit, protocol.FuncOnTick, protocol.FuncOnJoin, protocol.FuncOnLeave:
		return true
	}
	return false
}

func (m *Machine) runJoin(v *view, j *protocol.MemberJoin, o *protocol.Outcome, ts uint64) (Reason, string) {
	reject := func(format string, args ...any) (Reason, string) {
		o.Result = failure(protocol.StatusRejected, 0, 0)
		o.Message = fmt.Sprintf(format, args...)
		return ReasonBadJoin, o.Message
	}
	if protocol.AddressOf(j.PublicKey) != j.Member {
		return reject("fsm: join of %s: public key does not match", j.Member)
	}
	if h := v.top.closing; h != 0 {
		return reject("fsm: join of %s: the channel is closing since height %d", j.Member, h)
	}
	if _, ok := v.member(j.Member); ok {
		return reject("fsm: join of %s: already a member", j.Member)
	}
	// Members with a join seq up to the one recorded at load are in the
	// genesis. Later ones may reach the channel in any order (each node
	// joins when it is ready), so only the load mark bounds them; the chain
	// check below proves the member holds this seq.
	if hi := m.cfg.Genesis.HighestJoinSeq; j.JoinSeq <= hi {
		return reject("fsm: join of %s: join seq %d not above %d, the highest at load", j.Member, j.JoinSeq, hi)
	}
	if err := m.factChecks().checkJoin(*j, v.top.epoch); err != nil {
		return reject("fsm: join of %s: %v", j.Member, err)
	}
	v.putMember(Member{}, false, Member{Address: j.Member, PublicKey: j.PublicKey, JoinSeq: j.JoinSeq})
	v.top.joinSeq = max(v.top.joinSeq, j.JoinSeq)
	m.hook(v, protocol.FuncOnJoin, j.Member[:], j.Member, o, ts)
	return 0, ""
}

// runLeave takes a member out. The leader may order it for one of two
// reasons, and for no other: the member asked to leave in the channel (its
// LeaveHeight, state every member agrees on), or the chain ended its
// membership without it asking here (it left through the chain only, or was
// forced out), which Config.Leaves checks against the chain's history for
// the batch's epoch. Anything else is a leader evicting a member at will.
func (m *Machine) runLeave(v *view, who protocol.Address, o *protocol.Outcome, ts uint64) (Reason, string) {
	reject := func(format string, args ...any) (Reason, string) {
		o.Result = failure(protocol.StatusRejected, 0, 0)
		o.Message = fmt.Sprintf(format, args...)
		return ReasonBadLeave, o.Message
	}
	mem, ok := v.member(who)
	if !ok {
		return reject("fsm: leave of %s: not a member", who)
	}
	if mem.LeaveHeight == 0 {
		if err := m.factChecks().checkLeave(mem, v.top.epoch); err != nil {
			return reject("fsm: leave of %s: it did not ask to leave, and %v", who, err)
		}
	}
	m.hook(v, protocol.FuncOnLeave, who[:], who, o, ts)
	// The hook's events may have changed the member (a leave request).
	mem, _ = v.member(who)
	v.removeMember(mem)
	return 0, ""
}

func (m *Machine) runTick(v *view, t *protocol.Tick, o *protocol.Outcome, ts uint64) (Reason, string) {
	reject := func(format string, args ...any) (Reason, string) {
		o.Result = failure(protocol.StatusRejected, 0, 0)
		o.Message = fmt.Sprintf(format, args...)
		return ReasonBadTick, o.Message
	}
	iv := m.cfg.TickIntervalMs
	switch {
	case iv == 0:
		return reject("fsm: channel has no ticks")
	case v.top.closing != 0:
		return reject("fsm: tick %d: the channel is closing since height %d", t.Number, v.top.closing)
	case t.TimestampMs > ts:
		return reject("fsm: tick %d at %d ms, after the batch's %d ms", t.Number, t.TimestampMs, ts)
	case t.Number != v.top.tick+1:
		return reject("fsm: tick %d, want %d", t.Number, v.top.tick+1)
	case v.top.tick > 0 && (t.TimestampMs < v.top.tickMs || t.TimestampMs-v.top.tickMs < iv-m.cfg.TickToleranceMs):
		return reject("fsm: tick %d at %d ms, previous at %d ms, interval %d ms", t.Number, t.TimestampMs, v.top.tickMs, iv)
	}
	v.top.tick, v.top.tickMs = t.Number, t.TimestampMs
	var arg [8]byte
	binary.LittleEndian.PutUint64(arg[:], t.Number)
	m.hook(v, protocol.FuncOnTick, arg[:], protocol.Address{}, o, ts)
	return 0, ""
}

// hook runs an optional hook; one the contract does not export succeeds
// with no effect.
func (m *Machine) hook(v *view, fn string, args []byte, sender protocol.Address, o *protocol.Outcome, ts uint64) {
	if !m.exec.Has(fn) {
		o.Result = failure(protocol.StatusOK, 0, 0)
		return
	}
	m.execute(v, protocol.Call{Function: fn, Args: args, Sender: sender, Height: o.Height, TimestampMs: ts, Gas: m.cfg.GasLimit}, o)
}

// execute runs a contract call and applies its change set to the view.
func (m *Machine) execute(v *view, c protocol.Call, o *protocol.Outcome) {
	r := m.exec.Execute(c, v)
	if r.Status != protocol.StatusOK {
		o.Result = failure(r.Status, r.AbortCode, r.GasUsed)
		o.Message = r.Message
		return
	}
	var cs protocol.ChangeSet
	var err error
	switch {
	case len(r.Events) > protocol.MaxEvents:
		err = fmt.Errorf("%d events, at most %d", len(r.Events), protocol.MaxEvents)
	case len(r.ChangeSet.Changes) > protocol.MaxChanges:
		// A change set the journal could not decode from a snapshot.
		err = fmt.Errorf("%d changes, at most %d", len(r.ChangeSet.Changes), protocol.MaxChanges)
	default:
		cs, err = protocol.NewChangeSet(r.ChangeSet.Changes)
	}
	if err == nil {
		// applyChanges checks everything before it writes anything.
		err = v.applyChanges(cs)
		cs = dropNoOps(cs)
	}
	if err != nil {
		// A deterministic executor gives the same bad change set on every
		// member, so turning it into a trap keeps members in agreement.
		o.Result = failure(protocol.StatusTrap, 0, r.GasUsed)
		o.Message = "fsm: contract result refused: " + err.Error()
		return
	}
	o.Result = protocol.Result{
		Status:    protocol.StatusOK,
		GasUsed:   r.GasUsed,
		ChangeSet: cs.Hash(),
		Events:    protocol.EventsHash(r.Events),
		Output:    protocol.OutputHash(r.Output),
	}
	o.ChangeSet, o.Events, o.Output = cs, r.Events, r.Output
	m.takeRequests(v, r.Events, c.Sender, c.Height)
}

// dropNoOps removes modifications that write the value already there, so a
// change set lists only real changes and the journal merges to the same
// change set as a diff of the states.
func dropNoOps(cs protocol.ChangeSet) protocol.ChangeSet {
	out := cs.Changes[:0]
	for _, c := range cs.Changes {
		if c.Kind != protocol.OpModify || !bytes.Equal(c.Old, c.New) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return protocol.ChangeSet{}
	}
	return protocol.ChangeSet{Changes: out}
}
