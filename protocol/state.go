package protocol

import (
	"bytes"
	"fmt"
	"slices"
)

// State is a Move-style global storage: account → resource type → value.
// It is a plain map for lookups; everything that produces output from it
// (Keys, Diff, Encode) sorts first, never relying on map order.
type State map[ResourceKey][]byte

// Get returns the value of k. It makes a State a read-only store for the
// vm and the fsm.
func (s State) Get(k ResourceKey) ([]byte, bool) {
	v, ok := s[k]
	return v, ok
}

// Keys returns the keys in canonical order.
func (s State) Keys() []ResourceKey {
	keys := make([]ResourceKey, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, ResourceKey.Compare)
	return keys
}

// Clone returns a copy that shares no map (values are immutable by
// convention and are shared).
func (s State) Clone() State {
	c := make(State, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

// Apply applies cs to s, checking every old value: a new key must be absent,
// a modified or deleted key must hold exactly the old value. On error s is
// unchanged.
func (s State) Apply(cs ChangeSet) error {
	for _, c := range cs.Changes {
		cur, ok := s[c.Key]
		switch c.Kind {
		case OpNew:
			if ok {
				return fmt.Errorf("%w: new %s already exists", ErrInconsistent, c.Key)
			}
		case OpModify, OpDelete:
			if !ok || !bytes.Equal(cur, c.Old) {
				return fmt.Errorf("%w: %s %s: old value does not match", ErrInconsistent, c.Kind, c.Key)
			}
		}
	}
	for _, c := range cs.Changes {
		if c.Kind == OpDelete {
			delete(s, c.Key)
		} else {
			s[c.Key] = c.New
		}
	}
	return nil
}

// Diff returns the change set that turns before into after.
func Diff(before, after State) ChangeSet {
	keys := make([]ResourceKey, 0, len(before)+len(after))
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	// Map order is random; the sort makes the output canonical.
	slices.SortFunc(keys, ResourceKey.Compare)
	out := make([]Change, 0, len(keys))
	for _, k := range keys {
		old, had := before[k]
		nw, has := after[k]
		switch {
		case had && !has:
			out = append(out, Change{Key: k, Kind: OpDelete, Old: nonNil(old)})
		case !had && has:
			out = append(out, Change{Key: k, Kind: OpNew, New: nonNil(nw)})
		case had && has && !bytes.Equal(old, nw):
			out = append(out, Change{Key: k, Kind: OpModify, Old: nonNil(old), New: nonNil(nw)})
		}
	}
	if len(out) == 0 {
		return ChangeSet{}
	}
	return ChangeSet{Changes: out}
}

// Encode writes s canonically: a vector of (account, type, value) sorted by
// key.
func (s State) Encode(e *Encoder) {
	keys := s.Keys()
	e.Uleb(uint64(len(keys)))
	for _, k := range keys {
		e.Fixed(k.Account[:])
		e.String(k.Type)
		e.Bytes(s[k])
	}
}

// MaxStateEntries bounds the resources of one decoded state.
const MaxStateEntries = 1 << 22

// DecodeState reads a state written by Encode.
func DecodeState(d *Decoder) State {
	n := d.Length(MaxStateEntries)
	s := make(State, min(n, 1024))
	var prev ResourceKey
	for i := 0; i < n && d.Err() == nil; i++ {
		var k ResourceKey
		d.FixedInto(k.Account[:])
		k.Type = d.String(MaxTypeLen)
		v := nonNil(d.Bytes(MaxValueLen))
		if d.Err() != nil {
			break
		}
		if k.Type == "" {
			d.Fail(fmt.Errorf("%w: empty resource type", ErrBadChange))
			break
		}
		if i > 0 && prev.Compare(k) >= 0 {
			d.Fail(fmt.Errorf("%w: state keys unsorted or repeated at %s", ErrNonCanonical, k))
			break
		}
		s[k] = v
		prev = k
	}
	return s
}

// Hash returns the hash of the canonical encoding.
func (s State) Hash() Hash {
	e := NewEncoder(64 * len(s))
	s.Encode(e)
	return HashOf("scraft/state/v1", e.Out())
}
