package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits on change sets and resource values.
const (
	// MaxValueLen bounds one resource value.
	MaxValueLen = 1 << 20
	// MaxChanges bounds the entries of one change set.
	MaxChanges = 1 << 16
	// MaxTypeLen bounds a resource type name such as "chat::ChatGroup".
	MaxTypeLen = MaxNameLen
)

// OpKind says what happened to one resource.
type OpKind uint8

// The kinds of change, as in the seed's change-set format.
const (
	OpNew    OpKind = 1 // created: New holds the value
	OpModify OpKind = 2 // changed: Old and New hold both values
	OpDelete OpKind = 3 // removed: Old holds the value it had
)

func (k OpKind) String() string {
	switch k {
	case OpNew:
		return "new"
	case OpModify:
		return "modify"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

var (
	// ErrInconsistent means two change sets cannot follow each other (a
	// resource created twice, or changed after it was deleted), or a change
	// set does not fit the state it is applied to.
	ErrInconsistent = errors.New("protocol: inconsistent change sets")
	// ErrBadChange means a change is malformed (unknown kind, missing value).
	ErrBadChange = errors.New("protocol: malformed change")
)

// ResourceKey names one resource: an account and a resource type.
type ResourceKey struct {
	Account Address
	Type    string
}

// Compare orders keys by account bytes, then by type.
func (k ResourceKey) Compare(o ResourceKey) int {
	if c := k.Account.Compare(o.Account); c != 0 {
		return c
	}
	return strings.Compare(k.Type, o.Type)
}

func (k ResourceKey) String() string { return k.Account.String() + "/" + k.Type }

// Change is what happened to one resource.
type Change struct {
	Key  ResourceKey
	Kind OpKind
	Old  []byte // OpModify, OpDelete
	New  []byte // OpNew, OpModify
}

// ChangeSet lists changes sorted by key, at most one per key. Build one with
// NewChangeSet or Diff; the zero value is the empty change set.
type ChangeSet struct {
	Changes []Change
}

// NewChangeSet sorts changes by key and checks that no key repeats and each
// change is well formed.
func NewChangeSet(changes []Change) (ChangeSet, error) {
	cs := ChangeSet{Changes: slices.Clone(changes)}
	slices.SortFunc(cs.Changes, func(a, b Change) int { return a.Key.Compare(b.Key) })
	for i, c := range cs.Changes {
		if err := c.validate(); err != nil {
			return ChangeSet{}, err
		}
		if i > 0 && cs.Changes[i-1].Key == c.Key {
			return ChangeSet{}, fmt.Errorf("%w: %s appears twice", ErrBadChange, c.Key)
		}
	}
	return cs, nil
}

func (c *Change) validate() error {
	if c.Key.Type == "" || len(c.Key.Type) > MaxTypeLen {
		return fmt.Errorf("%w: resource type length %d", ErrBadChange, len(c.Key.Type))
	}
	switch c.Kind {
	case OpNew:
		if c.Old != nil {
			return fmt.Errorf("%w: new %s carries an old value", ErrBadChange, c.Key)
		}
	case OpModify:
	case OpDelete:
		if c.New != nil {
			return fmt.Errorf("%w: delete %s carries a new value", ErrBadChange, c.Key)
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrBadChange, c.Kind)
	}
	return nil
}

// Len returns the number of changes.
func (cs ChangeSet) Len() int { return len(cs.Changes) }

// Encode writes the canonical encoding of cs.
func (cs ChangeSet) Encode(e *Encoder) {
	e.Uleb(uint64(len(cs.Changes)))
	for _, c := range cs.Changes {
		e.Fixed(c.Key.Account[:])
		e.String(c.Key.Type)
		e.U8(uint8(c.Kind))
		switch c.Kind {
		case OpNew:
			e.Bytes(c.New)
		case OpModify:
			e.Bytes(c.Old)
			e.Bytes(c.New)
		case OpDelete:
			e.Bytes(c.Old)
		}
	}
}

// Decode reads cs and checks it is sorted, unique and well formed.
func (cs *ChangeSet) Decode(d *Decoder) {
	n := d.Length(MaxChanges)
	cs.Changes = nil
	if n > 0 && d.Err() == nil {
		cs.Changes = make([]Change, 0, min(n, 1024))
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		var c Change
		d.FixedInto(c.Key.Account[:])
		c.Key.Type = d.String(MaxTypeLen)
		c.Kind = OpKind(d.U8())
		switch c.Kind {
		case OpNew:
			c.New = nonNil(d.Bytes(MaxValueLen))
		case OpModify:
			c.Old = nonNil(d.Bytes(MaxValueLen))
			c.New = nonNil(d.Bytes(MaxValueLen))
		case OpDelete:
			c.Old = nonNil(d.Bytes(MaxValueLen))
		}
		if d.Err() != nil {
			return
		}
		if err := c.validate(); err != nil {
			d.Fail(err)
			return
		}
		if i > 0 && cs.Changes[i-1].Key.Compare(c.Key) >= 0 {
			d.Fail(fmt.Errorf("%w: change set keys unsorted or repeated at %s", ErrNonCanonical, c.Key))
			return
		}
		cs.Changes = append(cs.Changes, c)
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Bytes returns the canonical encoding of cs.
func (cs ChangeSet) Bytes() []byte {
	e := NewEncoder(16)
	cs.Encode(e)
	return e.Out()
}

// DecodeChangeSet decodes a change set and refuses trailing bytes.
func DecodeChangeSet(b []byte) (ChangeSet, error) {
	d := NewDecoder(b)
	var cs ChangeSet
	cs.Decode(d)
	if err := d.Finish(); err != nil {
		return ChangeSet{}, fmt.Errorf("decode change set: %w", err)
	}
	return cs, nil
}

// Hash returns the hash of the canonical encoding.
func (cs ChangeSet) Hash() Hash { return HashOf(DomainChangeSet, cs.Bytes()) }

// Equal reports whether two change sets are the same.
func (cs ChangeSet) Equal(o ChangeSet) bool { return bytes.Equal(cs.Bytes(), o.Bytes()) }

// Merge returns the net change set of a followed by b (DESIGN §3): per key,
// new→modify = new, new→delete = nothing, modify→modify = modify,
// modify→delete = delete, delete→new = modify; a modify or delete→new whose
// old and new values are equal is no change at all. Sequences that cannot
// happen (new after new, anything but new after delete) are ErrInconsistent.
func Merge(a, b ChangeSet) (ChangeSet, error) {
	out := make([]Change, 0, len(a.Changes)+len(b.Changes))
	i, j := 0, 0
	for i < len(a.Changes) || j < len(b.Changes) {
		switch {
		case j == len(b.Changes) || (i < len(a.Changes) && a.Changes[i].Key.Compare(b.Changes[j].Key) < 0):
			out = append(out, a.Changes[i])
			i++
		case i == len(a.Changes) || a.Changes[i].Key.Compare(b.Changes[j].Key) > 0:
			out = append(out, b.Changes[j])
			j++
		default:
			c, keep, err := mergeOne(a.Changes[i], b.Changes[j])
			if err != nil {
				return ChangeSet{}, err
			}
			if keep {
				out = append(out, c)
			}
			i++
			j++
		}
	}
	return ChangeSet{Changes: out}, nil
}

func mergeOne(x, y Change) (Change, bool, error) {
	bad := func() (Change, bool, error) {
		return Change{}, false, fmt.Errorf("%w: %s then %s on %s", ErrInconsistent, x.Kind, y.Kind, x.Key)
	}
	switch x.Kind {
	case OpNew:
		switch y.Kind {
		case OpModify:
			return Change{Key: x.Key, Kind: OpNew, New: y.New}, true, nil
		case OpDelete:
			return Change{}, false, nil
		}
	case OpModify:
		switch y.Kind {
		case OpModify:
			if bytes.Equal(x.Old, y.New) {
				return Change{}, false, nil
			}
			return Change{Key: x.Key, Kind: OpModify, Old: x.Old, New: y.New}, true, nil
		case OpDelete:
			return Change{Key: x.Key, Kind: OpDelete, Old: x.Old}, true, nil
		}
	case OpDelete:
		if y.Kind == OpNew {
			if bytes.Equal(x.Old, y.New) {
				return Change{}, false, nil
			}
			return Change{Key: x.Key, Kind: OpModify, Old: x.Old, New: y.New}, true, nil
		}
	}
	return bad()
}

// MergeAll folds Merge over sets in order.
func MergeAll(sets []ChangeSet) (ChangeSet, error) {
	var acc ChangeSet
	for i, s := range sets {
		var err error
		if acc, err = Merge(acc, s); err != nil {
			return ChangeSet{}, fmt.Errorf("merge change set %d: %w", i, err)
		}
	}
	return acc, nil
}

// changeJSON is one op list of the seed's JSON view.
type changeJSON struct {
	New    []string    `json:"new"`
	Modify [][2]string `json:"modify"`
	Delete []string    `json:"delete"`
}

// MarshalJSON renders the seed's shape: accounts → address → resource type →
// {new: [value], modify: [[old, new]], delete: [old]}, values in hex.
func (cs ChangeSet) MarshalJSON() ([]byte, error) {
	accounts := map[string]map[string]*changeJSON{}
	for _, c := range cs.Changes {
		acc := accounts[c.Key.Account.String()]
		if acc == nil {
			acc = map[string]*changeJSON{}
			accounts[c.Key.Account.String()] = acc
		}
		op := acc[c.Key.Type]
		if op == nil {
			op = &changeJSON{New: []string{}, Modify: [][2]string{}, Delete: []string{}}
			acc[c.Key.Type] = op
		}
		switch c.Kind {
		case OpNew:
			op.New = append(op.New, hex.EncodeToString(c.New))
		case OpModify:
			op.Modify = append(op.Modify, [2]string{hex.EncodeToString(c.Old), hex.EncodeToString(c.New)})
		case OpDelete:
			op.Delete = append(op.Delete, hex.EncodeToString(c.Old))
		}
	}
	// encoding/json writes map keys sorted, so the output is deterministic.
	return json.Marshal(struct {
		Accounts map[string]map[string]*changeJSON `json:"accounts"`
	}{accounts})
}

// UnmarshalJSON reads the seed's JSON shape.
func (cs *ChangeSet) UnmarshalJSON(b []byte) error {
	var v struct {
		Accounts map[string]map[string]changeJSON `json:"accounts"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var changes []Change
	for accStr, types := range v.Accounts {
		acc, err := ParseAddress(accStr)
		if err != nil {
			return err
		}
		for typ, op := range types {
			key := ResourceKey{Account: acc, Type: typ}
			if len(op.New)+len(op.Modify)+len(op.Delete) != 1 {
				return fmt.Errorf("%w: %s needs exactly one op", ErrBadChange, key)
			}
			c := Change{Key: key}
			var err error
			switch {
			case len(op.New) == 1:
				c.Kind = OpNew
				c.New, err = hex.DecodeString(op.New[0])
			case len(op.Modify) == 1:
				c.Kind = OpModify
				if c.Old, err = hex.DecodeString(op.Modify[0][0]); err == nil {
					c.New, err = hex.DecodeString(op.Modify[0][1])
				}
			default:
				c.Kind = OpDelete
				c.Old, err = hex.DecodeString(op.Delete[0])
			}
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrBadChange, key, err)
			}
			c.Old, c.New = fixNil(c.Kind, c.Old, c.New)
			changes = append(changes, c)
		}
	}
	out, err := NewChangeSet(changes)
	if err != nil {
		return err
	}
	*cs = out
	return nil
}

func fixNil(k OpKind, old, nw []byte) ([]byte, []byte) {
	switch k {
	case OpNew:
		return nil, nonNil(nw)
	case OpDelete:
		return nonNil(old), nil
	}
	return nonNil(old), nonNil(nw)
}
