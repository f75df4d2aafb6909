package contract

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// TransferLeader hands the lead of Channel from the sender, the leader of
// Epoch (the channel's current epoch), to the member To: a planned change
// of leader, such as before the leader's host is taken down.
type TransferLeader struct {
	Channel protocol.ChannelID
	Epoch   uint64
	To      protocol.Address
}

func (*TransferLeader) Kind() CallKind { return CallTransferLeader }
func (c *TransferLeader) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Epoch)
	e.Fixed(c.To[:])
}
func (c *TransferLeader) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Epoch = d.U64()
	d.FixedInto(c.To[:])
}

// transferLeader starts a new epoch led by c.To. Only the leader of the
// current epoch may call it: a claim is how anyone else takes the lead, and
// it needs the leader gone or the members' attestations, where a transfer
// needs only the leader's word, since the leader gives up what is its own.
// The successor must be able to lead as a claim would require: a member
// that is not leaving, whose heartbeat is within the chain's HeartbeatTTL
// (a node that has gone quiet would leave the channel leaderless until a
// claim) and, in a channel of more than delegate.Seats members, a
// candidate. The call counts as the leader's heartbeat.
func (x *exec) transferLeader(c *TransferLeader) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	me, err := x.member(ch.ID, x.env.Sender)
	if err != nil {
		return err
	}
	if c.Epoch != ch.Epoch {
		return fmt.Errorf("%w: transfer for epoch %d, channel is at %d", ErrStaleEpoch, c.Epoch, ch.Epoch)
	}
	if ch.Leader != me.Address {
		return fmt.Errorf("%w: %s does not lead epoch %d; %s does", ErrNotLeader, me.Address, ch.Epoch, leaderName(ch.Leader))
	}
	if c.To == me.Address {
		return fmt.Errorf("%w: %s in epoch %d", ErrAlreadyLeader, me.Address, ch.Epoch)
	}
	to, err := x.member(ch.ID, c.To)
	if err != nil {
		if until := int64(getU64(x.st, banKey(ch.ID, c.To))); until > x.env.TimeMs {
			return fmt.Errorf("%w: successor %s until chain time %d ms", ErrBanned, c.To, until)
		}
		return fmt.Errorf("%w: successor %s", ErrNotMember, c.To)
	}
	if to.Leaving() {
		return fmt.Errorf("%w: successor %s asked to leave and cannot lead", ErrLeaving, to.Address)
	}
	if !to.ValidAt(x.env.TimeMs, x.params.HeartbeatTTL) {
		return fmt.Errorf("%w: successor %s sent no heartbeat within %s", ErrLapsed, to.Address, x.params.HeartbeatTTL)
	}
	if !isCandidate(ch, to.Address) {
		return fmt.Errorf("%w: successor %s may not lead; the channel's candidates are %v", ErrNotCandidate, to.Address, ch.Candidates)
	}
	me.LastHeartbeat = x.env.TimeMs
	x.putMember(ch.ID, me)
	x.setLeader(ch, to.Address)
	x.putChannel(ch)
	x.rc.Epoch = ch.Epoch
	return nil
}

// leaderName names a channel's leader in a refusal: "nobody" for none.
func leaderName(a protocol.Address) string {
	if a.IsZero() {
		return "nobody"
	}
	return a.String()
}
