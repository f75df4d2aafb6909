package console

import (
	"encoding/json"
	"fmt"
	"testing"

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
	m := newModel(r.st)
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
	m := newModel(r.st)
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
	m := newModel(st)
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
