package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// TestChatView: a chat channel's view lists the room's messages in id
// order with their senders' nicks, also once the ring of the last 100
// wrapped.
func TestChatView(t *testing.T) {
	r := newRun(t, "chat")
	var ann, bob protocol.Address
	ann[15], bob[15] = 1, 2
	r.call(ann, "join", `{"nick":"ann"}`)
	r.call(bob, "join", `{"nick":"bob"}`)
	for i := range 105 {
		who := ann
		if i%2 == 1 {
			who = bob
		}
		r.call(who, "send", fmt.Sprintf(`{"text":"message %d"}`, i))
	}
	m := newModel(r.st, nil)
	if m.contract() != "chat" {
		t.Fatalf("model %q for a chat state", m.contract())
	}
	m.load(r.st)
	v := m.view().(StateView)
	if len(v.Messages) != 100 || v.Nicks[ann.String()] != "ann" || v.Nicks[bob.String()] != "bob" {
		t.Fatalf("%d messages, nicks %v", len(v.Messages), v.Nicks)
	}
	for i, raw := range v.Messages {
		var msg struct {
			ID   uint64 `json:"id"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &msg); err != nil {
			t.Fatal(err)
		}
		// The chat numbers messages from 1; the last 100 of 105 remain.
		if want := fmt.Sprintf("message %d", i+5); msg.Text != want {
			t.Fatalf("message %d: %q, want %q", i, msg.Text, want)
		}
	}
	// An outcome that changes something makes a delta; one that does not
	// makes none.
	m.apply(r.st, r.call(ann, "send", `{"text":"one more"}`))
	if d, ok := m.delta().(StateView); !ok || len(d.Messages) != 100 {
		t.Fatalf("delta after a message: %T", m.delta())
	}
	m.apply(r.st, &protocol.Outcome{Height: 999})
	if m.delta() != nil {
		t.Fatal("a delta for an outcome that changed nothing")
	}
}

// TestEditorView: an editor channel's view holds each document with its
// elements, in id order, as the contract stores them.
func TestEditorView(t *testing.T) {
	r := newRun(t, "editor")
	var ann protocol.Address
	ann[15] = 1
	r.call(ann, "create_document", `{"title":"plan"}`)
	r.call(ann, "create_document", `{"title":"notes"}`)
	r.call(ann, "create_element", `{"doc":2,"kind":"text","data":"b"}`)
	r.call(ann, "create_element", `{"doc":1,"kind":"text","data":"first"}`)
	r.call(ann, "create_element", `{"doc":1,"kind":"text","data":"second"}`)
	r.call(ann, "update_element", `{"doc":1,"element":1,"version":1,"data":"first, edited"}`)
	m := newModel(r.st, nil)
	if m.contract() != "editor" {
		t.Fatalf("model %q for an editor state", m.contract())
	}
	m.load(r.st)
	v := m.view().(StateView)
	if len(v.Documents) != 2 {
		t.Fatalf("%d documents", len(v.Documents))
	}
	var got []string
	for _, d := range v.Documents {
		var doc struct{ Title string }
		json.Unmarshal(d.Document, &doc)
		got = append(got, doc.Title)
		for _, e := range d.Elements {
			var el struct {
				Data    string
				Version uint64
			}
			json.Unmarshal(e, &el)
			got = append(got, fmt.Sprintf("%s v%d", el.Data, el.Version))
		}
	}
	if want := "[plan first, edited v2 second v1 notes b v1]"; fmt.Sprint(got) != want {
		t.Fatalf("editor view %v, want %s", got, want)
	}
}

// TestGenericView: a state of a contract the node does not know is listed
// resource by resource in key order, its values in hex, bounded.
func TestGenericView(t *testing.T) {
	st := protocol.State{}
	for i := range maxResources + 5 {
		var a protocol.Address
		a[0], a[1] = byte(i>>8), byte(i)
		st[protocol.ResourceKey{Account: a, Type: "other::Thing"}] = []byte{byte(i), 0xff}
	}
	// A type that names a known contract but is not in its ABI stays raw.
	st[protocol.ResourceKey{Type: "chat::Forged"}] = []byte{1}
	m := newModel(st, nil)
	if m.contract() != "generic" {
		t.Fatalf("model %q", m.contract())
	}
	m.load(st)
	v := m.view().(StateView)
	if len(v.Resources) != maxResources || v.Omitted != 6 {
		t.Fatalf("%d resources, %d omitted", len(v.Resources), v.Omitted)
	}
	if r := v.Resources[0]; r.Type != "chat::Forged" || r.Hex != "01" || r.Value != nil {
		t.Fatalf("first resource %+v", r)
	}
	if r := v.Resources[1]; r.Hex != "00ff" || r.Size != 2 {
		t.Fatalf("second resource %+v", r)
	}
}

// kvABI is contracts/kv's abi.json: a contract the node does not know by
// name, whose ABI comes from the chain.
func kvABI(t testing.TB) *contracts.Contract {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "contracts", "kv", "abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := contracts.ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &contracts.Contract{Name: a.Name, ABI: a}
}

// TestViewWithChannelABI: with the channel's own ABI, a contract the node
// does not know gets the generic view decoded with it; a value that does
// not decode, and a type of another contract, stay raw; a channel whose
// ABI names a demo gets that demo's view even before its state shows it.
func TestViewWithChannelABI(t *testing.T) {
	kv := kvABI(t)
	val, err := kv.EncodeValue("Entry", []byte(`{"value":"seven"}`))
	if err != nil {
		t.Fatal(err)
	}
	st := protocol.State{
		{Account: protocol.Address{1}, Type: "kv::Entry"}:    val,
		{Account: protocol.Address{2}, Type: "kv::Entry"}:    {0xff, 0xff, 0xff},
		{Account: protocol.Address{3}, Type: "other::Thing"}: {1},
	}
	m := newModel(st, kv)
	if m.contract() != "generic" {
		t.Fatalf("model %q", m.contract())
	}
	m.load(st)
	v := m.view().(StateView)
	if len(v.Resources) != 3 {
		t.Fatalf("resources %+v", v.Resources)
	}
	if r := v.Resources[0]; string(r.Value) != `{"value":"seven"}` || r.Hex != "" {
		t.Fatalf("kv entry %+v", r)
	}
	if r := v.Resources[1]; r.Value != nil || r.Hex != "ffffff" {
		t.Fatalf("a value that does not decode: %+v", r)
	}
	if r := v.Resources[2]; r.Value != nil || r.Hex != "01" {
		t.Fatalf("another contract's type: %+v", r)
	}
	// Without the ABI the same state is hex throughout.
	m = newModel(st, nil)
	m.load(st)
	if r := m.view().(StateView).Resources[0]; r.Value != nil {
		t.Fatalf("kv entry decoded with no ABI: %+v", r)
	}
	// A demo's ABI from the chain picks its view on an empty state.
	for _, name := range []string{"movecraft", "chat", "editor"} {
		c, err := contracts.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := newModel(protocol.State{}, c).contract(); got != name {
			t.Fatalf("%s ABI: model %q", name, got)
		}
	}
}

// abiNode is a Node whose ABI answer a test chooses: the faults of a
// chain that fails or holds an ABI the console cannot parse.
type abiNode struct {
	raw []byte
	err error
}

func (abiNode) Address() protocol.Address                                 { return protocol.Address{} }
func (abiNode) Channels(context.Context, bool) []ChannelState             { return nil }
func (n abiNode) ABI(context.Context, protocol.ChannelID) ([]byte, error) { return n.raw, n.err }

// TestChannelABIFromNode: the channel's ABI as the node gives it; none, a
// failing chain and an ABI that does not parse all leave the view without
// one (and logged), never stopped.
func TestChannelABIFromNode(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "contracts", "kv", "abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	logger := testutil.Logger(t, "console")
	if c := channelABI(context.Background(), abiNode{raw: raw}, protocol.ChannelID{1}, logger); c == nil || c.Name != "kv" {
		t.Fatalf("kv ABI: %+v", c)
	}
	for _, n := range []abiNode{
		{},
		{err: errors.New("chain down")},
		{raw: []byte(`{"name":"kv","functions":[{"name":"f","args":[{"name":"a","type":"nosuch"}]}]}`)},
		{raw: []byte(`{"name":`)},
	} {
		if c := channelABI(context.Background(), n, protocol.ChannelID{1}, logger); c != nil {
			t.Fatalf("%q, %v: ABI %+v, want none", n.raw, n.err, c)
		}
	}
}
