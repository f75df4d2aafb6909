package contracts

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestChatRun(t *testing.T) {
	h := newTestHost(t, "chat")
	alice, bob := addr(0xa1), addr(0xb0)

	h.mustAbort(alice, "join", `{"nick":"alice"}`, 100) // no group before init
	h.mustCall(alice, "init", `{}`)
	h.mustCall(alice, "join", `{"nick":"alice"}`)
	h.mustAbort(alice, "join", `{"nick":"again"}`, 101)
	h.mustAbort(bob, "send", `{"text":"hi"}`, 102)
	h.mustCall(bob, "join", `{"nick":"bob"}`)

	out := h.mustCall(alice, "send", `{"text":"hello, world"}`)
	if got, _ := h.abi.DecodeOutput("send", out); string(got) != "0" {
		t.Fatalf("first message id = %s, want 0", got)
	}
	if len(h.cur.events) != 1 || h.cur.events[0].Type != "chat::Message" {
		t.Fatalf("events = %+v", h.cur.events)
	}
	msg, err := h.abi.DecodeEvent("chat::Message", h.cur.events[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":0,"sender":"0x` + hex.EncodeToString(alice[:]) + `","height":7,"timestamp_ms":350,"text":"hello, world"}`
	if string(msg) != want {
		t.Fatalf("event\n got %s\nwant %s", msg, want)
	}
	if got := h.resource(derived("chat", 0, 0, 0), "chat::Message"); got != want {
		t.Fatalf("stored message\n got %s\nwant %s", got, want)
	}
	if got := h.resource(channelAccount, "chat::ChatGroup"); got != `{"name":"scraft chat","next_id":1,"members":2}` {
		t.Fatalf("group = %s", got)
	}

	// Bad input aborts with a clear code and message.
	ab := h.mustAbort(alice, "send", `{"text":"`+strings.Repeat("x", 1025)+`"}`, 1)
	if !strings.Contains(ab.msg, "exceeds 1024") {
		t.Fatalf("abort message %q", ab.msg)
	}
	h.mustAbort(alice, "send", `{"text":""}`, 103)
	if ab := h.call(alice, "send", []byte{2, 0xff, 0xfe}); ab == nil || ab.code != 1 || !strings.Contains(ab.msg, "UTF-8") {
		t.Fatalf("invalid UTF-8: %v", ab)
	}
	if ab := h.call(alice, "send", []byte{1, 'a', 0}); ab == nil || ab.code != 1 || !strings.Contains(ab.msg, "trailing") {
		t.Fatalf("trailing byte: %v", ab)
	}
	for _, tc := range []struct {
		name  string
		input []byte
		want  string // in the abort message; "" for success
	}{
		{"truncated length", []byte{0x85}, "truncated"},
		{"truncated text", []byte{5, 'a'}, "beyond the input"},
		{"over-long length", []byte{0x81, 0x00, 'a'}, "over-long ULEB128"},
		{"surrogate", []byte{3, 0xed, 0xa0, 0x80}, "UTF-8"},
		{"overlong slash", []byte{2, 0xc0, 0xaf}, "UTF-8"},
		{"cut sequence", []byte{2, 0xe2, 0x82}, "UTF-8"},
		{"emoji", append([]byte{4}, "😀"...), ""},
		{"euro", append([]byte{3}, "€"...), ""},
	} {
		ab := h.call(alice, "send", tc.input)
		switch {
		case tc.want == "" && ab != nil:
			t.Errorf("%s: %v", tc.name, ab)
		case tc.want != "" && (ab == nil || ab.code != 1 || !strings.Contains(ab.msg, tc.want)):
			t.Errorf("%s: got %v, want abort 1 with %q", tc.name, ab, tc.want)
		}
	}

	// The history keeps the last 100 messages in a ring of resources.
	for i := 3; i < 130; i++ {
		h.mustCall(bob, "send", `{"text":"m"}`)
	}
	if n := h.count("chat::Message"); n != 100 {
		t.Fatalf("%d messages stored, want 100", n)
	}
	out = h.mustCall(bob, "history", `{"from":0,"limit":3}`)
	hist, err := h.abi.DecodeOutput("history", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hist), `[{"id":30,`) || strings.Count(string(hist), `"id"`) != 3 {
		t.Fatalf("history = %s", hist)
	}

	// leave removes the member and asks the node to take it out.
	h.mustCall(bob, "leave", `{}`)
	if h.resource(bob, "chat::Member") != "" {
		t.Fatal("bob still a member")
	}
	last := h.cur.events[len(h.cur.events)-1]
	if last.Type != "scraft::Leave" || string(last.Data) != string(bob[:]) {
		t.Fatalf("last event %+v", last)
	}
	h.mustAbort(bob, "leave", `{}`, 102)
	if got := h.resource(channelAccount, "chat::ChatGroup"); got != `{"name":"scraft chat","next_id":130,"members":1}` {
		t.Fatalf("group = %s", got)
	}
}

// AssemblyScript's own errors reach the host's abort with code 4.
func TestRuntimeAbort(t *testing.T) {
	h := newTestHost(t, "chat")
	h.mustCall(addr(1), "init", "")
	ab := h.callLen(addr(1), "send", nil, 1<<31-1)
	if ab == nil || ab.code != 4 || !strings.Contains(ab.msg, "~lib/") {
		t.Fatalf("huge input length: %v", ab)
	}
	t.Log(ab)
}
