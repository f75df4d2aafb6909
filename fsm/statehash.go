package fsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/scraft/scraft/protocol"
)

// The machine-state hash (DESIGN.md, "The state hash") commits to
// everything the machine's behaviour depends on at a height: the scalars
// of meta and the sets of resources, nonces and members. The sets are
// folded into a lattice hash (LtHash, Bellare–Micciancio; the parameters
// of Lewi et al., 1024 lanes of 16 bits, as Solana's accounts hash uses),
// a sum of one 2 KiB expansion per element: adding, changing or removing
// an element costs two expansions at most, whatever the state's size, so
// every height's hash is kept in the journal at the cost of the entry's
// own changes. A sum does not depend on the order of its terms, so the
// incremental hash equals the hash recomputed from scratch
// (Machine.recomputeStateHash), which Restore uses.

const (
	ltLanes = 1024
	ltBytes = 2 * ltLanes

	// stateHashDomain separates the final hash from every other SHA-256 use.
	stateHashDomain = "scraft/fsm/state-hash/v1"
	// ltDomain separates element expansions.
	ltDomain = "scraft/fsm/lthash/v1"

	tagResource = 'r'
	tagNonce    = 'n'
	tagMember   = 'm'
)

// ltHash is a multiset hash: lane-wise sums mod 2^16 of each element's
// expansion. Lane i is bytes 2i..2i+1, little-endian; the sums run four
// lanes to a uint64 word.
type ltHash [ltLanes / 4]uint64

var ltZeroIV [aes.BlockSize]byte

// expand writes the 2 KiB expansion of elem: AES-256-CTR keyed with
// SHA-256(ltDomain ‖ elem), a pseudorandom function of the element (the
// XOF the lattice hash needs; AES and SHA-256 run in hardware on the
// CPUs nodes run on, the standard library has no BLAKE3).
func expand(elem []byte, out *[ltBytes]byte) {
	key := ltKey(elem)
	expandKey(&key, out)
}

// ltKey is the AES key of elem's expansion, which depends on nothing else.
func ltKey(elem []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(ltDomain))
	h.Write(elem)
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// expandKey writes the expansion under key: the keystream of AES-256-CTR
// from a zero IV.
func expandKey(key *[32]byte, out *[ltBytes]byte) {
	block, _ := aes.NewCipher(key[:]) // a 32-byte key never fails
	clear(out[:])
	cipher.NewCTR(block, ltZeroIV[:]).XORKeyStream(out[:], out[:])
}

const (
	laneHigh = 0x8000_8000_8000_8000
	laneLow  = 0x7fff_7fff_7fff_7fff
)

// scratch holds expansions, which would escape to the heap.
var scratch = sync.Pool{New: func() any { return new([ltBytes]byte) }}

func (l *ltHash) add(elem []byte) {
	x := scratch.Get().(*[ltBytes]byte)
	defer scratch.Put(x)
	expand(elem, x)
	l.addExpanded(x)
}

func (l *ltHash) sub(elem []byte) {
	x := scratch.Get().(*[ltBytes]byte)
	defer scratch.Put(x)
	expand(elem, x)
	l.subExpanded(x)
}

func (l *ltHash) addExpanded(x *[ltBytes]byte) {
	for i := range l {
		a, b := l[i], binary.LittleEndian.Uint64(x[8*i:])
		// Four 16-bit additions without carries across lanes.
		l[i] = ((a & laneLow) + (b & laneLow)) ^ ((a ^ b) & laneHigh)
	}
}

func (l *ltHash) subExpanded(x *[ltBytes]byte) {
	for i := range l {
		a, b := l[i], binary.LittleEndian.Uint64(x[8*i:])
		// Four 16-bit subtractions without borrows across lanes.
		l[i] = ((a | laneHigh) - (b & laneLow)) ^ ((a ^ ^b) & laneHigh)
	}
}

// nonceCache keeps the expansion of each sender's last nonce element: the
// next call of the sender subtracts exactly that element, so caching it
// saves one of the two expansions a call's nonce costs. An expansion is a
// pure function of the element, so a stale entry (a dropped proposal's)
// is still right for its nonce; it only misses. It belongs to the Machine
// and is used on its goroutine.
type nonceCache map[protocol.Address]cachedNonce

type cachedNonce struct {
	nonce uint64
	x     *[ltBytes]byte
}

// expCache keeps the expansions last computed for resource and member
// elements, by their AES key: a resource's change subtracts the element
// its previous change added (a channel's shared resources change at every
// call), so the cache saves one of a change's two expansions. An expansion
// is a function of its key alone, so a hit is exact, and a miss (a slot
// taken by another key) only costs the expansion. Slots are chosen by
// the key's first bytes, 64 of them: 128 KiB at most. It belongs to the
// Machine and is used on its goroutine.
type expCache struct {
	slots [expCacheSlots]cachedExp
}

const expCacheSlots = 64

type cachedExp struct {
	key [32]byte
	x   *[ltBytes]byte
}

// expansion returns elem's expansion, valid until the next call.
func (c *expCache) expansion(elem []byte) *[ltBytes]byte {
	key := ltKey(elem)
	s := &c.slots[binary.LittleEndian.Uint16(key[:2])%expCacheSlots]
	if s.x != nil && s.key == key {
		return s.x
	}
	if s.x == nil {
		s.x = new([ltBytes]byte)
	}
	expandKey(&key, s.x)
	s.key = key
	return s.x
}

// addElem adds elem to the top layer's lattice hash, through the cache
// when the view has one.
func (v *view) addElem(elem []byte) {
	if v.expX == nil {
		v.top.acc.add(elem)
		return
	}
	v.top.acc.addExpanded(v.expX.expansion(elem))
}

// subElem takes elem out of the top layer's lattice hash, through the
// cache when the view has one.
func (v *view) subElem(elem []byte) {
	if v.expX == nil {
		v.top.acc.sub(elem)
		return
	}
	v.top.acc.subExpanded(v.expX.expansion(elem))
}

// Element encodings: a tag, then fixed-width fields and length-prefixed
// strings, so distinct elements never encode alike.

func resourceElem(k protocol.ResourceKey, v []byte) []byte {
	b := make([]byte, 0, 1+len(k.Account)+binary.MaxVarintLen64+len(k.Type)+len(v))
	b = append(b, tagResource)
	b = append(b, k.Account[:]...)
	b = binary.AppendUvarint(b, uint64(len(k.Type)))
	b = append(b, k.Type...)
	return append(b, v...)
}

func nonceElem(a protocol.Address, n uint64) []byte {
	b := make([]byte, 0, 1+len(a)+8)
	b = append(b, tagNonce)
	b = append(b, a[:]...)
	return binary.LittleEndian.AppendUint64(b, n)
}

func memberElem(m Member) []byte {
	b := make([]byte, 0, 1+len(m.Address)+len(m.PublicKey)+16)
	b = append(b, tagMember)
	b = append(b, m.Address[:]...)
	b = append(b, m.PublicKey...)
	b = binary.LittleEndian.AppendUint64(b, m.JoinSeq)
	return binary.LittleEndian.AppendUint64(b, m.LeaveHeight)
}

// stateHash is the machine-state hash of meta: its scalars and its lattice
// hash. The resource count is derived from the resources and left out.
func (s *meta) stateHash() protocol.Hash {
	var buf [len(stateHashDomain) + 8 + 32 + 8 + 16 + 8*5 + ltBytes]byte
	b := append(buf[:0], stateHashDomain...)
	b = binary.LittleEndian.AppendUint64(b, s.height)
	b = append(b, s.digest[:]...)
	b = binary.LittleEndian.AppendUint64(b, s.epoch)
	b = append(b, s.leader[:]...)
	b = binary.LittleEndian.AppendUint64(b, s.timestampMs)
	b = binary.LittleEndian.AppendUint64(b, s.tick)
	b = binary.LittleEndian.AppendUint64(b, s.tickMs)
	b = binary.LittleEndian.AppendUint64(b, s.joinSeq)
	b = binary.LittleEndian.AppendUint64(b, s.closing)
	for _, x := range s.acc {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return sha256.Sum256(b)
}

// recomputeAcc returns the lattice hash of st's sets from scratch, in
// sorted order (the sum does not depend on it; sorting keeps to the
// package's rule that nothing is computed from a map's order).
func recomputeAcc(st *state) ltHash {
	var acc ltHash
	for _, k := range st.res.Keys() {
		acc.add(resourceElem(k, st.res[k]))
	}
	senders := make([]protocol.Address, 0, len(st.nonces))
	for a := range st.nonces {
		senders = append(senders, a)
	}
	slices.SortFunc(senders, protocol.Address.Compare)
	for _, a := range senders {
		acc.add(nonceElem(a, st.nonces[a]))
	}
	for _, m := range sortedMembers(st.members) {
		acc.add(memberElem(m))
	}
	return acc
}

// setNonce records that sender used nonce n, its previous one being n-1.
func (v *view) setNonce(sender protocol.Address, n uint64) {
	if v.nonceX == nil {
		if n > 1 {
			v.top.acc.sub(nonceElem(sender, n-1))
		}
		v.top.acc.add(nonceElem(sender, n))
		v.top.nonces[sender] = n
		return
	}
	c := v.nonceX[sender]
	if n > 1 {
		if c.x != nil && c.nonce == n-1 {
			v.top.acc.subExpanded(c.x)
		} else {
			v.top.acc.sub(nonceElem(sender, n-1))
		}
	}
	if c.x == nil {
		c.x = new([ltBytes]byte)
	}
	expand(nonceElem(sender, n), c.x)
	c.nonce = n
	v.top.acc.addExpanded(c.x)
	v.nonceX[sender] = c
	v.top.nonces[sender] = n
}

// putMember adds mem or replaces old (when had) with it.
func (v *view) putMember(old Member, had bool, mem Member) {
	if had {
		v.subElem(memberElem(old))
	}
	v.addElem(memberElem(mem))
	v.top.members[mem.Address] = memberSlot{m: mem, ok: true}
}

// removeMember takes mem out.
func (v *view) removeMember(mem Member) {
	v.subElem(memberElem(mem))
	v.top.members[mem.Address] = memberSlot{}
}

// StateHash returns the machine-state hash at height h, for h from the
// settled height to the applied height (the journal keeps one per
// height). ok is false outside that range, and for heights restored from
// a snapshot of version 2 or older, which did not carry them.
func (m *Machine) StateHash(h uint64) (protocol.Hash, bool) {
	st := m.st
	switch {
	case h == st.settled:
		return st.settledState, !st.settledState.IsZero()
	case h < st.settled || h > st.height:
		return protocol.Hash{}, false
	}
	sh := st.journal[h-st.settled-1].state
	return sh, !sh.IsZero()
}

// recomputeStateHash returns the state hash of the applied height,
// computed from the whole state (O(state)); StateHash(Height()) equals it.
func (m *Machine) recomputeStateHash() protocol.Hash {
	mt := m.st.meta
	mt.acc = recomputeAcc(m.st)
	return mt.stateHash()
}
