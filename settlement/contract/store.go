package contract

import (
	"slices"

	"github.com/scraft/scraft/protocol"
)

// Store is the chain state the rules read and write: a flat key-value map.
// Keys and values are canonical encodings; the rules never iterate the
// store, so any ordered or unordered map can back it (bbolt in devchain,
// MemStore in tests). Values returned by Get must not be modified.
type Store interface {
	Get(key []byte) []byte
	Put(key, value []byte)
	Delete(key []byte)
}

// MemStore is an in-memory Store.
type MemStore map[string][]byte

// Get implements Store.
func (m MemStore) Get(key []byte) []byte { return m[string(key)] }

// Put implements Store.
func (m MemStore) Put(key, value []byte) { m[string(key)] = value }

// Delete implements Store.
func (m MemStore) Delete(key []byte) { delete(m, string(key)) }

// overlay buffers one call's writes so that a refused call leaves no trace.
type overlay struct {
	base    Store
	writes  map[string][]byte
	deleted map[string]bool
}

func newOverlay(base Store) *overlay {
	return &overlay{base: base, writes: map[string][]byte{}, deleted: map[string]bool{}}
}

func (o *overlay) Get(key []byte) []byte {
	k := string(key)
	if o.deleted[k] {
		return nil
	}
	if v, ok := o.writes[k]; ok {
		return v
	}
	return o.base.Get(key)
}

func (o *overlay) Put(key, value []byte) {
	k := string(key)
	delete(o.deleted, k)
	o.writes[k] = value
}

func (o *overlay) Delete(key []byte) {
	k := string(key)
	delete(o.writes, k)
	o.deleted[k] = true
}

// Write is one buffered change of a call: Value nil means delete.
type Write struct {
	Key   []byte
	Value []byte
}

// flush writes the buffered changes to the base store in key order and
// returns them in that order.
func (o *overlay) flush() []Write {
	keys := make([]string, 0, len(o.writes)+len(o.deleted))
	for k := range o.writes {
		keys = append(keys, k)
	}
	for k := range o.deleted {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Write, 0, len(keys))
	for _, k := range keys {
		if v, ok := o.writes[k]; ok {
			o.base.Put([]byte(k), v)
			out = append(out, Write{Key: []byte(k), Value: v})
		} else {
			o.base.Delete([]byte(k))
			out = append(out, Write{Key: []byte(k)})
		}
	}
	return out
}

// Key prefixes of the chain state. Every record lives under one byte of
// prefix followed by fixed-width ids, so keys sort by channel then member.
const (
	prefixAccount  = 'a' // a ‖ address → Account
	prefixCode     = 'c' // c ‖ code hash → wasm bytes
	prefixChannel  = 'h' // h ‖ channel → Channel
	prefixMembers  = 'l' // l ‖ channel → sorted member addresses
	prefixMember   = 'm' // m ‖ channel ‖ address → Member
	prefixStake    = 's' // s ‖ channel ‖ address → u64 stake
	prefixBan      = 'b' // b ‖ channel ‖ address → u64 ban end (ms)
	prefixState    = 't' // t ‖ channel → settled protocol.State
	prefixInitial  = 'i' // i ‖ channel → initial protocol.State
	prefixProposal = 'p' // p ‖ channel ‖ u64 id → Proposal
	prefixVote     = 'v' // v ‖ channel ‖ u64 id ‖ address → option
	prefixDeparted = 'd' // d ‖ channel ‖ u64 join seq → Departure
	prefixEpoch    = 'e' // e ‖ channel ‖ u64 epoch → EpochLeader
	prefixCase     = 'k' // k ‖ channel ‖ target ‖ u64 epoch ‖ u64 height → u64 punish proposal id
	prefixCooldown = 'r' // r ‖ channel ‖ address → u64 end (ms) of a false reporter's cooldown
	prefixParams   = 'g' // g → the chain's Params, written at genesis
	// y ‖ ABI hash → the ABI's JSON; z ‖ channel → the hash of its ABI.
	prefixABI        = 'y'
	prefixChannelABI = 'z'
)

func key1(p byte, a []byte) []byte {
	k := make([]byte, 0, 1+len(a))
	return append(append(k, p), a...)
}

func key2(p byte, a, b []byte) []byte {
	k := make([]byte, 0, 1+len(a)+len(b))
	return append(append(append(k, p), a...), b...)
}

func u64be(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func accountKey(a protocol.Address) []byte   { return key1(prefixAccount, a[:]) }
func codeKey(h protocol.Hash) []byte         { return key1(prefixCode, h[:]) }
func channelKey(c protocol.ChannelID) []byte { return key1(prefixChannel, c[:]) }
func membersKey(c protocol.ChannelID) []byte { return key1(prefixMembers, c[:]) }
func memberKey(c protocol.ChannelID, a protocol.Address) []byte {
	return key2(prefixMember, c[:], a[:])
}
func stakeKey(c protocol.ChannelID, a protocol.Address) []byte { return key2(prefixStake, c[:], a[:]) }
func banKey(c protocol.ChannelID, a protocol.Address) []byte   { return key2(prefixBan, c[:], a[:]) }
func stateKey(c protocol.ChannelID) []byte                     { return key1(prefixState, c[:]) }
func initialKey(c protocol.ChannelID) []byte                   { return key1(prefixInitial, c[:]) }
func proposalKey(c protocol.ChannelID, id uint64) []byte {
	return key2(prefixProposal, c[:], u64be(id))
}
func voteKey(c protocol.ChannelID, id uint64, a protocol.Address) []byte {
	return append(key2(prefixVote, c[:], u64be(id)), a[:]...)
}
func departedKey(c protocol.ChannelID, joinSeq uint64) []byte {
	return key2(prefixDeparted, c[:], u64be(joinSeq))
}
func epochKey(c protocol.ChannelID, epoch uint64) []byte {
	return key2(prefixEpoch, c[:], u64be(epoch))
}
func cooldownKey(c protocol.ChannelID, a protocol.Address) []byte {
	return key2(prefixCooldown, c[:], a[:])
}
func caseKey(c protocol.ChannelID, target protocol.Address, epoch, height uint64) []byte {
	return append(append(key2(prefixCase, c[:], target[:]), u64be(epoch)...), u64be(height)...)
}
