package contract

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/scraft/scraft/protocol"
)

// join admits the sender with the next join sequence number. Its collateral
// is its channel stake, or MinStake locked from its pool deposit.
func (x *exec) join(c *Join) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	me := x.env.Sender
	if _, err := x.member(ch.ID, me); err == nil {
		return fmt.Errorf("%w: %s", ErrAlreadyMember, me)
	}
	if until := int64(getU64(x.st, banKey(ch.ID, me))); until > x.env.TimeMs {
		return fmt.Errorf("%w: %s until chain time %d ms (%d ms left)", ErrBanned, me, until, until-x.env.TimeMs)
	}
	if ch.Members >= MaxMembers {
		return fmt.Errorf("%w: channel has %d members", ErrTooLarge, ch.Members)
	}
	m := &Member{
		Address:       me,
		PublicKey:     append([]byte(nil), x.env.SenderKey...),
		JoinedAtMs:    x.env.TimeMs,
		JoinedHeight:  x.env.Height,
		LastHeartbeat: x.env.TimeMs,
	}
	if c.UsePool {
		acc := x.account(me)
		if acc.PoolFree() < ch.Config.MinStake {
			return fmt.Errorf("%w: pool has %d free, channel needs %d", ErrInsufficientStake, acc.PoolFree(), ch.Config.MinStake)
		}
		acc.PoolLocked += ch.Config.MinStake
		x.putAccount(me, acc)
		m.Collateral, m.Locked = CollateralPool, ch.Config.MinStake
	} else {
		stake := getU64(x.st, stakeKey(ch.ID, me))
		if stake < ch.Config.MinStake {
			return fmt.Errorf("%w: stake %d, channel needs %d", ErrInsufficientStake, stake, ch.Config.MinStake)
		}
		m.Collateral, m.Locked = CollateralStake, stake
	}
	ch.LastJoinSeq++
	ch.Members++
	m.JoinSeq = ch.LastJoinSeq
	x.putMember(ch.ID, m)
	x.putChannel(ch)

	l := x.memberList(ch.ID)
	i, _ := slices.BinarySearchFunc(l, me, protocol.Address.Compare)
	l = slices.Insert(l, i, me)
	put(x.st, membersKey(ch.ID), &l)

	x.rc.JoinSeq = m.JoinSeq
	x.emit(Event{Kind: EventMemberJoined, Channel: ch.ID, Member: me, JoinSeq: m.JoinSeq})
	return nil
}

// leave marks the sender as leaving; the next settlement proposed after
// this, once executed, removes it. In a closed channel it leaves at once.
func (x *exec) leave(c *Leave) error {
	ch, err := x.channel(c.Channel)
	if err != nil {
		return err
	}
	m, err := x.member(ch.ID, x.env.Sender)
	if err != nil {
		return err
	}
	if ch.Closed {
		x.removeMember(ch, m, m.Locked)
		if ch.Leader == m.Address {
			x.setLeader(ch, protocol.Address{})
		}
		x.putChannel(ch)
		return nil
	}
	if m.Leaving() {
		return fmt.Errorf("%w: since block %d", ErrLeaving, m.LeaveHeight)
	}
	m.LeaveHeight = x.env.Height
	x.putMember(ch.ID, m)
	x.emit(Event{Kind: EventMemberLeaving, Channel: ch.ID, Member: m.Address})
	return nil
}

// keepAlive records the member's heartbeat at chain time.
func (x *exec) keepAlive(c *KeepAlive) error {
	if _, err := x.openChannel(c.Channel); err != nil {
		return err
	}
	m, err := x.member(c.Channel, x.env.Sender)
	if err != nil {
		return err
	}
	m.LastHeartbeat = x.env.TimeMs
	x.putMember(c.Channel, m)
	return nil
}

// setNodeAddress records where the sender's node serves the channel. A
// member sets only its own record: the call names no member, the signer is
// the one. Setting the address it already has changes nothing.
func (x *exec) setNodeAddress(c *SetNodeAddress) error {
	if err := ValidNodeAddress(c.Address); err != nil {
		return err
	}
	if _, err := x.openChannel(c.Channel); err != nil {
		return err
	}
	m, err := x.member(c.Channel, x.env.Sender)
	if err != nil {
		return err
	}
	if m.NodeAddress == c.Address {
		return nil
	}
	m.NodeAddress = c.Address
	x.putMember(c.Channel, m)
	x.emit(Event{Kind: EventNodeAddress, Channel: c.Channel, Member: m.Address})
	return nil
}

// ValidNodeAddress checks a member's node address: empty (none), or
// host:port of at most MaxNodeAddressLen bytes where host is a DNS name or
// an IP literal other than an unspecified one (0.0.0.0, ::, which nobody
// can dial) and port is 1-65535. Anything else, spaces, control bytes,
// zones or paths, is refused, so that what other nodes dial and operators
// read is an address and nothing more.
func ValidNodeAddress(addr string) error {
	if addr == "" {
		return nil
	}
	if len(addr) > MaxNodeAddressLen {
		return fmt.Errorf("%w: node address of %d bytes (max %d)", ErrTooLarge, len(addr), MaxNodeAddressLen)
	}
	bad := func(why string) error { return fmt.Errorf("%w: node address %q: %s", ErrMalformed, addr, why) }
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad("not host:port")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || port[0] == '0' {
		return bad("port is not 1-65535")
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return bad("unspecified IP")
		}
		if strings.Contains(host, ":") != strings.HasPrefix(addr, "[") {
			return bad("IPv6 literal without brackets")
		}
		return nil
	}
	if strings.HasPrefix(addr, "[") {
		return bad("brackets around a name")
	}
	if !validHostName(host) {
		return bad("host is neither an IP nor a DNS name")
	}
	return nil
}

// validHostName reports whether h is a DNS name: dot-separated labels of
// 1-63 letters, digits and inner hyphens, at most 253 bytes in all.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// removeMember takes m out of the channel and gives back release of its
// locked collateral (the rest was fined). It fixes delegations that involve
// m and records its Departure. It does not change the leader; callers do.
// ch is changed, not stored.
func (x *exec) removeMember(ch *Channel, m *Member, release uint64) {
	switch m.Collateral {
	case CollateralStake:
		acc := x.account(m.Address)
		acc.Balance += release
		x.putAccount(m.Address, acc)
		putU64(x.st, stakeKey(ch.ID, m.Address), 0)
	case CollateralPool:
		acc := x.account(m.Address)
		acc.PoolLocked -= m.Locked
		acc.PoolDeposit -= m.Locked - release
		x.putAccount(m.Address, acc)
	}
	if !m.DelegatedTo.IsZero() {
		if cand, err := x.member(ch.ID, m.DelegatedTo); err == nil {
			cand.Delegators--
			x.putMember(ch.ID, cand)
		}
	}
	l := x.memberList(ch.ID)
	if m.Delegators > 0 {
		for _, a := range l {
			if d, err := x.member(ch.ID, a); err == nil && d.DelegatedTo == m.Address {
				d.DelegatedTo = protocol.Address{}
				x.putMember(ch.ID, d)
				x.emit(Event{Kind: EventDelegated, Channel: ch.ID, Member: d.Address})
			}
		}
	}
	if i, ok := slices.BinarySearchFunc(l, m.Address, protocol.Address.Compare); ok {
		l = slices.Delete(l, i, i+1)
	}
	put(x.st, membersKey(ch.ID), &l)
	x.st.Delete(memberKey(ch.ID, m.Address))
	put(x.st, departedKey(ch.ID, m.JoinSeq), &Departure{Address: m.Address, JoinSeq: m.JoinSeq, Height: x.env.Height, Epoch: ch.Epoch, PublicKey: m.PublicKey})
	ch.Members--
	x.emit(Event{Kind: EventMemberLeft, Channel: ch.ID, Member: m.Address, Amount: release})
}
