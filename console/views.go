package console

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// model turns a channel's state into what the page draws. One goroutine
// (the channel view's) calls it.
type model interface {
	// contract names the view: movecraft, chat, editor or generic.
	contract() string
	// load builds the model from a whole state.
	load(st protocol.State)
	// apply takes one outcome; st already holds its changes.
	apply(st protocol.State, o *protocol.Outcome)
	// view returns the whole view, JSON-able.
	view() any
	// delta returns what changed since the last delta (or load), or nil.
	delta() any
}

// newModel picks the view of a channel. With the channel's own ABI (abi,
// from the chain) its contract's name decides: movecraft, chat and editor
// have their views, decoded with that ABI; any other contract gets the
// generic view, decoded with it. Without one, the state's resource types
// decide: the first type whose prefix names a contract the node knows
// (contracts.Get) and whose ABI lists it.
func newModel(st protocol.State, abi *contracts.Contract) model {
	if abi != nil {
		switch abi.Name {
		case "movecraft":
			return newMCModel(abi)
		case "chat", "editor":
			return &stateModel{name: abi.Name, abi: abi}
		}
		return &stateModel{name: "generic", abi: abi}
	}
	for _, k := range st.Keys() {
		name, _, ok := strings.Cut(k.Type, "::")
		if !ok {
			continue
		}
		c, err := contracts.Get(name)
		if err != nil {
			continue
		}
		if _, ok := c.Resource(k.Type); !ok {
			continue
		}
		switch name {
		case "movecraft":
			return newMCModel(c)
		case "chat", "editor":
			return &stateModel{name: name, abi: c}
		}
	}
	return &stateModel{name: "generic"}
}

// maxResources bounds the resources a generic view lists; the rest are
// counted.
const maxResources = 2000

// Resource is one decoded resource of a generic view.
type Resource struct {
	Account protocol.Address `json:"account"`
	Type    string           `json:"type"`
	// Value is the value decoded with the contract's ABI, or null; Hex is
	// the raw value when it could not be decoded.
	Value json.RawMessage `json:"value,omitempty"`
	Hex   string          `json:"hex,omitempty"`
	Size  int             `json:"size"`
}

// StateView is the view of a chat, editor or other channel: its
// resources decoded, and for chat and editor their own shapes.
type StateView struct {
	Resources []Resource `json:"resources"`
	// Omitted counts the resources past maxResources.
	Omitted int `json:"omitted"`
	// Chat: the room's messages in id order, and the members' nicks.
	Messages []json.RawMessage `json:"messages,omitempty"`
	Nicks    map[string]string `json:"nicks,omitempty"`
	// Editor: each document with its elements, in id order.
	Documents []Document `json:"documents,omitempty"`
}

// Document is an editor document with its elements.
type Document struct {
	Document json.RawMessage   `json:"document"`
	Elements []json.RawMessage `json:"elements"`
}

// stateModel decodes the whole state on each view: chat and editor
// states are small (chat keeps its last 100 messages), and a generic view
// is bounded by maxResources.
type stateModel struct {
	name  string
	abi   *contracts.Contract // nil for a generic view of an unknown contract
	st    protocol.State
	dirty bool
}

func (m *stateModel) contract() string { return m.name }

func (m *stateModel) load(st protocol.State) { m.st, m.dirty = st, false }

func (m *stateModel) apply(st protocol.State, o *protocol.Outcome) {
	m.st = st
	if len(o.ChangeSet.Changes) > 0 {
		m.dirty = true
	}
}

func (m *stateModel) delta() any {
	if !m.dirty {
		return nil
	}
	m.dirty = false
	return m.view()
}

// decode decodes a resource with the ABI of the contract its type names.
func decode(abi *contracts.Contract, k protocol.ResourceKey, v []byte) (json.RawMessage, bool) {
	c := abi
	if name, _, ok := strings.Cut(k.Type, "::"); ok && (c == nil || c.Name != name) {
		if cc, err := contracts.Get(name); err == nil {
			c = cc
		}
	}
	if c == nil {
		return nil, false
	}
	j, err := c.DecodeResource(k.Type, v)
	return j, err == nil
}

func (m *stateModel) view() any {
	out := StateView{Resources: []Resource{}}
	type elem struct {
		doc, id uint64
		j       json.RawMessage
	}
	var msgs []elem
	var docs []elem
	var els []elem
	for _, k := range m.st.Keys() {
		v := m.st[k]
		j, ok := decode(m.abi, k, v)
		if len(out.Resources) < maxResources {
			r := Resource{Account: k.Account, Type: k.Type, Size: len(v)}
			if ok {
				r.Value = j
			} else {
				r.Hex = hex.EncodeToString(v[:min(len(v), 256)])
			}
			out.Resources = append(out.Resources, r)
		} else {
			out.Omitted++
		}
		if !ok {
			continue
		}
		var ids struct {
			ID   uint64 `json:"id"`
			Doc  uint64 `json:"doc"`
			Nick string `json:"nick"`
		}
		json.Unmarshal(j, &ids)
		switch k.Type {
		case "chat::Message":
			msgs = append(msgs, elem{id: ids.ID, j: j})
		case "chat::Member":
			if out.Nicks == nil {
				out.Nicks = map[string]string{}
			}
			out.Nicks[k.Account.String()] = ids.Nick
		case "editor::Document":
			docs = append(docs, elem{id: ids.ID, j: j})
		case "editor::Element":
			els = append(els, elem{doc: ids.Doc, id: ids.ID, j: j})
		}
	}
	byID := func(a, b elem) int {
		if a.doc != b.doc {
			return cmpU64(a.doc, b.doc)
		}
		return cmpU64(a.id, b.id)
	}
	slices.SortFunc(msgs, byID)
	for _, e := range msgs {
		out.Messages = append(out.Messages, e.j)
	}
	slices.SortFunc(docs, byID)
	slices.SortFunc(els, byID)
	for _, d := range docs {
		doc := Document{Document: d.j, Elements: []json.RawMessage{}}
		for _, e := range els {
			if e.doc == d.id {
				doc.Elements = append(doc.Elements, e.j)
			}
		}
		out.Documents = append(out.Documents, doc)
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
