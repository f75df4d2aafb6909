package clientapi

import (
	"fmt"
	"math"
	"time"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// Conversions between the client API's Go types and its wire messages. The
// From functions check every field: they are what a client runs on a node's
// answers, and what the node runs on a client's requests.

// OutcomeToPB returns the wire form of o.
func OutcomeToPB(o *protocol.Outcome) *clientpb.Outcome {
	p := &clientpb.Outcome{
		Height:     o.Height,
		Kind:       uint32(o.Kind),
		Hash:       o.Hash[:],
		Status:     uint32(o.Result.Status),
		StatusName: o.Result.Status.String(),
		AbortCode:  o.Result.AbortCode,
		GasUsed:    o.Result.GasUsed,
		Message:    o.Message,
		Output:     o.Output,
		Digest:     o.Digest[:],
	}
	if o.ChangeSet.Len() > 0 {
		p.ChangeSet = o.ChangeSet.Bytes()
	}
	if len(o.Events) > 0 {
		p.Events = make([]*clientpb.Event, len(o.Events))
		for i, ev := range o.Events {
			p.Events[i] = &clientpb.Event{Type: ev.Type, Data: ev.Data}
		}
	}
	return p
}

// OutcomeFromPB decodes an outcome and recomputes its result's hashes from
// the payload it carries, so that the digest chain can be checked with
// protocol.NextDigest.
func OutcomeFromPB(p *clientpb.Outcome) (*protocol.Outcome, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: missing outcome", protocol.ErrBadRequest)
	}
	o := &protocol.Outcome{
		Height:  p.GetHeight(),
		Kind:    protocol.EntryKind(p.GetKind()),
		Message: p.GetMessage(),
		Output:  p.GetOutput(),
	}
	if err := fixed(o.Hash[:], p.GetHash(), "outcome hash"); err != nil {
		return nil, err
	}
	if err := fixed(o.Digest[:], p.GetDigest(), "outcome digest"); err != nil {
		return nil, err
	}
	if p.GetStatus() > 255 {
		return nil, fmt.Errorf("%w: status %d", protocol.ErrBadRequest, p.GetStatus())
	}
	cs, err := protocol.DecodeChangeSet(orEmptyChangeSet(p.GetChangeSet()))
	if err != nil {
		return nil, fmt.Errorf("%w: outcome change set: %v", protocol.ErrBadRequest, err)
	}
	if len(p.GetEvents()) > protocol.MaxEvents {
		return nil, fmt.Errorf("%w: %d events", protocol.ErrBadRequest, len(p.GetEvents()))
	}
	for _, ev := range p.GetEvents() {
		o.Events = append(o.Events, protocol.Event{Type: ev.GetType(), Data: ev.GetData()})
	}
	o.ChangeSet = cs
	o.Result = protocol.Result{
		Status:    protocol.Status(p.GetStatus()),
		AbortCode: p.GetAbortCode(),
		GasUsed:   p.GetGasUsed(),
		ChangeSet: cs.Hash(),
		Events:    protocol.EventsHash(o.Events),
		Output:    protocol.OutputHash(o.Output),
	}
	return o, nil
}

// orEmptyChangeSet turns an absent change set into the encoding of an empty
// one.
func orEmptyChangeSet(b []byte) []byte {
	if len(b) == 0 {
		return []byte{0}
	}
	return b
}

// SnapshotToPB returns the wire form of s.
func SnapshotToPB(s *protocol.Snapshot) *clientpb.Snapshot {
	e := protocol.NewEncoder(64 * (len(s.State) + 1))
	s.State.Encode(e)
	p := &clientpb.Snapshot{
		Channel: s.Channel[:],
		Height:  s.Height,
		Digest:  s.Digest[:],
		State:   e.Out(),
		Members: make([]string, len(s.Members)),
	}
	for i, m := range s.Members {
		p.Members[i] = m.String()
	}
	return p
}

// SnapshotFromPB decodes a snapshot. A resumed marker (no state) decodes
// to nil.
func SnapshotFromPB(p *clientpb.Snapshot) (*protocol.Snapshot, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: missing snapshot", protocol.ErrBadRequest)
	}
	if p.GetResumed() {
		return nil, nil
	}
	s := &protocol.Snapshot{Height: p.GetHeight()}
	if err := fixed(s.Channel[:], p.GetChannel(), "snapshot channel"); err != nil {
		return nil, err
	}
	if err := fixed(s.Digest[:], p.GetDigest(), "snapshot digest"); err != nil {
		return nil, err
	}
	d := protocol.NewDecoder(p.GetState())
	s.State = protocol.DecodeState(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: snapshot state: %v", protocol.ErrBadRequest, err)
	}
	for _, m := range p.GetMembers() {
		a, err := protocol.ParseAddress(m)
		if err != nil {
			return nil, fmt.Errorf("%w: snapshot member: %v", protocol.ErrBadRequest, err)
		}
		s.Members = append(s.Members, a)
	}
	return s, nil
}

// StatusToPB returns the wire form of st.
func StatusToPB(st *protocol.ChannelStatus) *clientpb.ChannelStatus {
	p := &clientpb.ChannelStatus{
		Channel:       st.Channel[:],
		Leader:        st.Leader.String(),
		Epoch:         st.Epoch,
		Height:        st.Height,
		SettledHeight: st.SettledHeight,
		Digest:        st.Digest[:],
		Ready:         st.Ready,
	}
	for _, m := range st.Members {
		age := int64(-1)
		if m.HeartbeatAge >= 0 {
			age = m.HeartbeatAge.Milliseconds()
		}
		p.Members = append(p.Members, &clientpb.MemberStatus{
			Address: m.Address.String(), Lag: uint64(max(m.Lag, 0)), LagKnown: m.Lag >= 0, HeartbeatAgeMs: age, Leader: m.Leader,
		})
	}
	return p
}

// StatusFromPB decodes a channel status.
func StatusFromPB(p *clientpb.ChannelStatus) (*protocol.ChannelStatus, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: missing status", protocol.ErrBadRequest)
	}
	st := &protocol.ChannelStatus{
		Epoch:         p.GetEpoch(),
		Height:        p.GetHeight(),
		SettledHeight: p.GetSettledHeight(),
		Ready:         p.GetReady(),
	}
	if err := fixed(st.Channel[:], p.GetChannel(), "status channel"); err != nil {
		return nil, err
	}
	if err := fixed(st.Digest[:], p.GetDigest(), "status digest"); err != nil {
		return nil, err
	}
	var err error
	if st.Leader, err = protocol.ParseAddress(p.GetLeader()); err != nil {
		return nil, fmt.Errorf("%w: status leader: %v", protocol.ErrBadRequest, err)
	}
	for _, m := range p.GetMembers() {
		a, err := protocol.ParseAddress(m.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("%w: status member: %v", protocol.ErrBadRequest, err)
		}
		age := time.Duration(-1)
		if m.GetHeartbeatAgeMs() >= 0 {
			age = time.Duration(m.GetHeartbeatAgeMs()) * time.Millisecond
		}
		lag := int64(-1)
		if m.GetLagKnown() {
			lag = int64(min(m.GetLag(), math.MaxInt64))
		}
		st.Members = append(st.Members, protocol.MemberStatus{Address: a, Lag: lag, HeartbeatAge: age, Leader: m.GetLeader()})
	}
	return st, nil
}

// ErrorToPB returns the wire form of err.
func ErrorToPB(err error) *clientpb.Error {
	if err == nil {
		return nil
	}
	p := &clientpb.Error{Code: uint32(protocol.CodeOf(err)), Message: err.Error()}
	if e, ok := err.(*protocol.Error); ok {
		p.Message, p.AbortCode, p.ResumeHeight = e.Message, e.AbortCode, e.ResumeHeight
	}
	return p
}

// ErrorFromPB returns the *protocol.Error of a wire error, nil for none.
func ErrorFromPB(p *clientpb.Error) *protocol.Error {
	if p == nil || p.GetCode() == uint32(protocol.CodeOK) {
		return nil
	}
	return &protocol.Error{Code: protocol.Code(p.GetCode()), Message: p.GetMessage(), AbortCode: p.GetAbortCode(), ResumeHeight: p.GetResumeHeight()}
}

// ChannelFromPB decodes a 16-byte channel id field.
func ChannelFromPB(b []byte) (protocol.ChannelID, error) {
	var c protocol.ChannelID
	if len(b) != protocol.AddressLen {
		return c, fmt.Errorf("%w: channel id of %d bytes, want %d", protocol.ErrBadRequest, len(b), protocol.AddressLen)
	}
	copy(c[:], b)
	return c, nil
}

func fixed(dst, src []byte, what string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("%w: %s of %d bytes, want %d", protocol.ErrBadRequest, what, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}
